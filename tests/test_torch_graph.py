"""The CUDA-graph rows of scripts/bench.py run the article's step: GraphedStep against the eager step."""

import copy

import pytest
import torch

from gancore.config import Config
from torch_baseline import train as tb
from torch_baseline.bench import GraphedStep, torch_modules

BATCH, DIM, STEPS = 32, 784, 3


def nets(device: str, dropout: float, capturable: bool = False):
    torch.manual_seed(0)
    return tb.build(Config(batch_size=BATCH, dropout=dropout), DIM, device, capturable=capturable)


def inputs(device: str) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(1)
    draw = lambda *shape: torch.rand(*shape, generator=g).to(device) * 2 - 1
    return [(draw(BATCH, DIM), draw(BATCH, 128), draw(BATCH, 128)) for _ in range(STEPS)]


def run(step, batches, dropout_seed: int = 2) -> torch.Tensor:
    """Every step's metrics [S, 4]; the dropout masks drawn from `dropout_seed` in the same order either way."""
    torch.manual_seed(dropout_seed)
    return torch.stack([step(*batch) for batch in batches])


def params(*modules) -> list[torch.Tensor]:
    return [p.detach().clone() for m in modules for p in m.parameters()]


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16 autocast"])
def test_graphed_step_with_capture_off_is_the_eager_step_bit_for_bit(bf16):
    G, D, g_optim, d_optim = nets("cpu", dropout=0.3)
    twin = copy.deepcopy((G, D, g_optim, d_optim))
    batches = inputs("cpu")
    f, d = torch_modules(G, D, None, bf16, "cpu")
    eager = run(lambda x, z_d, z_g: torch.stack(list(tb.train_step(f, d, g_optim, d_optim, x, z_d, z_g).values())), batches)
    tf, td = torch_modules(*twin[:2], None, bf16, "cpu")
    graphed = GraphedStep(tf, td, *twin[2:], *batches[0][:2], capture=False)
    same = run(graphed, batches)
    assert same.shape == (STEPS, 4) and torch.equal(same, eager)
    assert all(torch.equal(a, b) for a, b in zip(params(G, D), params(*twin[:2]), strict=True))
    assert not torch.equal(params(G)[0], nets("cpu", dropout=0.3)[0].net[0].weight)  # it trained: G moved
    # The static inputs are copies: a step reads what it is given, not what the caller later does to it.
    x = batches[0][0].clone()
    graphed(x, *batches[0][1:])
    x.fill_(0.0)
    assert torch.equal(graphed.x_BxD, batches[0][0])


def test_the_check_catches_a_graphed_step_fed_the_wrong_noise():
    G, D, g_optim, d_optim = nets("cpu", dropout=0.0)
    twin = copy.deepcopy((G, D, g_optim, d_optim))
    batches = inputs("cpu")
    eager = run(lambda x, z_d, z_g: torch.stack(list(tb.train_step(G, D, g_optim, d_optim, x, z_d, z_g).values())), batches)
    graphed = GraphedStep(*twin, *batches[0][:2], capture=False)
    stale = run(lambda x, z_d, z_g: graphed(x, z_d, z_d), batches)  # G's update on D's noise: a different step
    assert torch.equal(stale[:, 0][:1], eager[:, 0][:1]) and not torch.equal(stale[:, 1], eager[:, 1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU: scripts/gpu_bench.sh runs this there")
@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16 autocast"])
def test_captured_step_on_a_gpu_follows_the_eager_step(bf16):
    torch.backends.cuda.matmul.allow_tf32 = False
    G, D, g_optim, d_optim = nets("cuda", dropout=0.0)
    cG, cD, cg, cd = nets("cuda", dropout=0.0, capturable=True)
    batches = inputs("cuda") * 2  # 6 steps: 2 warm-up, the capture, 3 replays
    f, d = torch_modules(G, D, None, bf16, "cuda")
    eager = run(lambda x, z_d, z_g: torch.stack(list(tb.train_step(f, d, g_optim, d_optim, x, z_d, z_g).values())), batches)
    graphed = GraphedStep(*torch_modules(cG, cD, None, bf16, "cuda"), cg, cd, *batches[0][:2], capture=True)
    captured = run(graphed, batches)
    assert graphed._graph is not None
    # The same kernels but for capturable Adam's bias correction (float32 on the GPU, not a Python float) and
    # whatever cuBLAS picks under capture: round-off, amplified a little by each step (sidebyside.lockstep's envelope).
    torch.testing.assert_close(captured, eager, rtol=1e-2 if bf16 else 1e-3, atol=1e-4)
    start = params(*nets("cuda", dropout=0.0)[:2])
    for a, b, s in zip(params(cG, cD), params(G, D), start, strict=True):
        # A weight whose gradient is near zero takes an Adam step of up to lr whose sign round-off decides (test_parity's bound).
        torch.testing.assert_close(a, b, rtol=0, atol=3 * 2e-4)
        assert torch.linalg.norm(a - b) <= 5e-3 * torch.linalg.norm(b - s)
