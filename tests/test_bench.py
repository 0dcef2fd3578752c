import json

import jax
import pytest

from conftest import load_script
from jaxgan import flops
from jaxgan.build import make_gan
from jaxgan.config import Config
from jaxgan.step import create_train_state, train_step


def test_flop_count_by_hand_for_a_tiny_model():
    # G: 1 -> 2 -> 3 (MACs 2 + 6 = 8); D: 3 -> 2 -> 1 (MACs 6 + 2 = 8); batch 1.
    # D step: G fwd 8, D fwd x2 16, D bwd x2: weights 16 + inputs above layer 0 (2) x2 = 20 -> 44
    # G step: G fwd 8, D fwd 8, D input grads 8, G bwd: weights 8 + inputs above layer 0 (6) -> 38
    assert flops.step_flops(1, latent_dim=1, g_features=(2,), data_dim=3, d_features=(2,)) == 2 * (44 + 38)
    assert flops.step_flops(7, latent_dim=1, g_features=(2,), data_dim=3, d_features=(2,)) == 7 * 2 * (44 + 38)


def test_flop_count_agrees_with_xla_cost_analysis():
    config = Config(batch_size=600)
    state = create_train_state(make_gan(config), jax.random.key(0))
    compiled = train_step.lower(state, jax.numpy.zeros((600, 784))).compile()
    cost = compiled.cost_analysis()
    xla_flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
    # XLA also counts the element-wise work (activations, random bits, Adam) that the
    # analytic count leaves out: about 1% at this batch.
    assert flops.step_flops(600) == pytest.approx(xla_flops, rel=0.02)
    assert flops.step_flops(600) < xla_flops
    assert flops.step_flops(6000) == pytest.approx(88.78e9, rel=1e-3)


def test_bench_runs_at_a_tiny_size_and_reports_every_row(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--batch-size", "50", "--images", "500", "--steps", "3", "--article-steps", "1", "--torch", "eager", "article",
            "--jax", "float32", "--prng", "threefry2x32", "rbg", "--json", str(out)]
    assert load_script("bench").main(argv) == 0
    result = json.loads(out.read_text())
    rows = {r["row"]: r for r in result["rows"]}
    assert set(rows) == {"torch eager", "torch article loader", "jaxgan float32 threefry2x32", "jaxgan float32 rbg"}
    assert rows["torch eager"]["x_eager"] == 1.0
    assert rows["jaxgan float32 rbg"]["steps"] == 10  # 3 steps round up to one whole epoch of 500 / 50
    for r in rows.values():
        assert r["steps_per_s"] > 0
        assert r["images_per_s"] == pytest.approx(50 * r["steps_per_s"])
        assert r["tflops"] == pytest.approx(r["steps_per_s"] * flops.step_flops(50) / 1e12)
    assert rows["jaxgan float32 rbg"]["compile_s"] > 0
    assert "| jaxgan float32 rbg |" in capsys.readouterr().out
