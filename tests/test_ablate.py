"""jaxgan.ablation (scripts/ablate.py) with --seeds: every figure as mean ± sd over seeds, beside the real-data floor at the same N."""

import json

import numpy as np
import pytest

from gancore.config import Config, ConfigError
from jaxgan.ablation import VARIANTS, ablate, variant_configs


def test_seeds_give_mean_and_sd_of_every_figure_beside_the_floor(tmp_path):
    base = Config(epochs=1, batch_size=64, subset=256, eval_n=100, seed=3, sample_every=1, checkpoint_every=1)
    assert ablate(variant_configs("article", base, 2, tmp_path), tmp_path) == tmp_path
    info = json.loads((tmp_path / "results.json").read_text())
    r = info["variants"]["article"]
    assert r["seeds"] == [3, 4] and [s["seed"] for s in r["per_seed"]] == [3, 4]
    assert (tmp_path / "article" / "seed_3" / "final_params").exists() and (tmp_path / "article" / "seed_4" / "final_params").exists()
    # One program for both seeds: its table of members beside them.
    assert [m["seed"] for m in json.loads((tmp_path / "article" / "seeds.json").read_text())["members"]] == [3, 4]
    for key in ("fid", "kid", "precision", "nn_features_close"):
        values = [s[key] for s in r["per_seed"]]
        assert r[key] == pytest.approx(np.mean(values)) and r["sd"][key] == pytest.approx(np.std(values, ddof=1))
    assert r["sd"]["fid"] > 0  # two seeds, two generators
    assert r["class_accuracy"] is None and r["intra_fid"] is None  # unconditional
    # The floor: 100 training images through the same evaluation, far better than one epoch of training.
    floor = info["floor"]
    assert info["eval_n"] == 100 and 0 < floor["fid"] < r["fid"] / 3 and floor["class_accuracy"] > 0.95
    assert floor["nn_features_close"] == 1.0  # training images are their own nearest training image
    table = (tmp_path / "table.md").read_text()
    assert "N = 100 samples" in table and "mean ± sd over 2 seeds" in table
    assert f"| floor | 100 MNIST training images | | | {floor['fid']:.1f} |" in table
    assert f"| {r['fid']:.1f} ± {r['sd']['fid']:.1f} |" in table
    with pytest.raises(ConfigError, match="--seeds must be at least 1, got 0."):
        variant_configs("article", base, 0, tmp_path)


def test_every_variant_is_a_valid_config_of_its_own_gan():
    from jaxgan.build import make_gan

    for name, (changes, _) in VARIANTS.items():
        config = Config(**changes).validate()
        gan = make_gan(config)
        assert (gan.ema_decay, gan.r1_weight, gan.r1_every, gan.g_tx_lr) == (
            changes.get("ema_decay", 0.0),
            changes.get("r1_weight", 0.0),
            changes.get("r1_every", 1),
            changes.get("g_lr", config.lr),
        ), name
