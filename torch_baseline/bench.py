"""The PyTorch rows of scripts/bench.py: the article's step timed in eager PyTorch, torch.compile,
CUDA graphs, bfloat16 autocast, and the article's per-image DataLoader.

torch itself is imported inside the functions, so scripts/bench.py --compile-only never loads it.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from gancore.config import Config
from gancore.reporting import METRIC_KEYS


class TorchRow(NamedTuple):
    name: str
    precision: str  # of the matrix products
    mode: str | None  # torch.compile's mode, None: not compiled
    graph: bool = False  # the whole step captured as one CUDA graph (GraphedStep)


# name in --torch: its row
TORCH_ROWS = {
    "eager": TorchRow("torch eager", "float32", None),
    "compile": TorchRow("torch compile", "float32", "default"),
    "cudagraphs": TorchRow("torch reduce-overhead (CUDA graphs)", "float32", "reduce-overhead"),
    "graph": TorchRow("torch CUDA graph of the whole step", "float32", None, graph=True),
    "eager-bf16": TorchRow("torch eager bf16 autocast", "bfloat16", None),
    "compile-bf16": TorchRow("torch compile bf16 autocast", "bfloat16", "default"),
    "graph-bf16": TorchRow("torch CUDA graph of the whole step bf16 autocast", "bfloat16", None, graph=True),
    "article": TorchRow("torch article loader", "float32", None),
}


def torch_modules(G, D, mode: str | None, bf16: bool, device: str):
    """G and D as the row runs them: autocast to bfloat16 products (outputs back in float32,
    so BCE and Adam stay float32), compiled with torch.compile in `mode`."""
    import torch

    def autocast(module):
        def forward(x):
            # No cast cache: a CUDA graph must not capture it (PyTorch's rule), and a forward casts each weight once anyway.
            with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, cache_enabled=False):
                return module(x).float()

        return forward

    G, D = (autocast(G), autocast(D)) if bf16 else (G, D)
    if mode is None:
        return G, D
    G, D = torch.compile(G, mode=mode), torch.compile(D, mode=mode)
    if mode == "reduce-overhead":
        # CUDA graph trees hand out outputs that the next replay of the same graph overwrites, and the step
        # reads D(x) for its metrics after D's later calls (the crash on the H200): copy each output out.
        return (lambda z: G(z).clone()), (lambda x: D(x).clone())
    return G, D


class GraphedStep:
    """The article's step (`train.train_step`) on static input tensors, captured whole as one CUDA graph after
    `warmup` eager steps, as PyTorch's whole-network recipe does (Adam built `capturable`).

    Each call is one step on its inputs and returns a copy of its metrics [d_loss, g_loss, d_real, d_fake]
    (the graph's own output is overwritten by its next replay). With `capture=False` the calls run the
    same code with no stream, capture or replay: how a CPU holds it against the eager step.
    """

    def __init__(self, G, D, g_optim, d_optim, x_BxD, z_BxZ, *, capture: bool, warmup: int = 2):
        import torch

        self._nets, self._capture, self._warmup, self._calls = (G, D, g_optim, d_optim), capture, warmup, 0
        self.x_BxD, self.z_d_BxZ, self.z_g_BxZ = torch.empty_like(x_BxD), torch.empty_like(z_BxZ), torch.empty_like(z_BxZ)
        self._graph = self._metrics_4 = None

    def _step(self):
        import torch

        from torch_baseline.train import train_step

        metrics = train_step(*self._nets, self.x_BxD, self.z_d_BxZ, self.z_g_BxZ)
        return torch.stack([metrics[k] for k in METRIC_KEYS])

    def __call__(self, x_BxD, z_d_BxZ, z_g_BxZ):
        import torch

        for static, new in ((self.x_BxD, x_BxD), (self.z_d_BxZ, z_d_BxZ), (self.z_g_BxZ, z_g_BxZ)):
            static.copy_(new)
        if not self._capture:
            self._metrics_4 = self._step()
        elif self._graph is not None:
            self._graph.replay()
        elif self._calls < self._warmup:  # Adam's state is made by its first step; it must exist before capture
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._metrics_4 = self._step()
            torch.cuda.current_stream().wait_stream(side)
        else:
            for optim in self._nets[2:]:
                optim.zero_grad(set_to_none=True)  # so the gradients are allocated in the graph's memory pool
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):
                self._metrics_4 = self._step()
            self._graph.replay()  # capture records the step without running it
        self._calls += 1
        return self._metrics_4.clone()


def bench_torch(images_NxD: np.ndarray, batch_size: int, steps: int, row: str, precision: str, device: str) -> dict:
    import torch

    from torch_baseline import train as tb

    spec = TORCH_ROWS[row]
    if (spec.mode == "reduce-overhead" or spec.graph) and not device.startswith("cuda"):
        return {"row": spec.name, "precision": spec.precision, "skipped": f"needs CUDA (CUDA graphs replay GPU kernels); torch runs on {device} here"}
    torch.backends.cuda.matmul.allow_tf32 = precision == "default"
    torch.manual_seed(0)
    config = Config(batch_size=batch_size)
    G, D, g_optim, d_optim = tb.build(config, images_NxD.shape[1], device, capturable=spec.graph)
    G, D = torch_modules(G, D, spec.mode, spec.precision == "bfloat16", device)
    if spec.graph:
        z_BxZ = torch.zeros(batch_size, config.latent_dim, device=device)
        graphed = GraphedStep(G, D, g_optim, d_optim, torch.zeros(batch_size, images_NxD.shape[1], device=device), z_BxZ, capture=True)
        step = lambda x, z_d, z_g: graphed(x, z_d, z_g)[0]
    else:
        step = lambda x, z_d, z_g: tb.train_step(G, D, g_optim, d_optim, x, z_d, z_g)["d_loss"]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    mark_step = torch.compiler.cudagraph_mark_step_begin if spec.mode == "reduce-overhead" else (lambda: None)
    shuffle = torch.Generator().manual_seed(0)
    if row == "article":
        batches = lambda: tb.article_batches(tb.ArticleDataset(images_NxD.reshape(-1, 28, 28), np.zeros(len(images_NxD))), batch_size, shuffle, device)
    else:
        on_device = torch.from_numpy(images_NxD).to(device)
        batches = lambda: tb.device_batches(on_device, batch_size, shuffle)

    def run(n: int) -> tuple[int, float]:
        done, last = 0, None
        while done < n:
            for x in batches():
                mark_step()  # CUDA graph trees: a new step may overwrite the last one's outputs
                z_d = torch.randn(len(x), config.latent_dim, device=device)
                z_g = torch.randn(len(x), config.latent_dim, device=device)
                last = step(x, z_d, z_g)
                done += 1
                if done == n:
                    break
        sync()
        return done, float(last)

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run(3)  # warm-up: compilation; CUDA graphs record on a later call than the first
    compile_s = time.perf_counter() - start if spec.mode or spec.graph else None
    start, (done, last) = time.perf_counter(), run(steps)
    peak = torch.cuda.max_memory_allocated() / 1e9 if device.startswith("cuda") else None
    return {
        "row": spec.name,
        "precision": spec.precision,
        "steps": done,
        "seconds": time.perf_counter() - start,
        "compile_s": compile_s,
        "peak_mem_gb": peak,
        "final_d_loss": last,
    }
