"""scripts/evaluate.py and --eval-every end to end, on tiny runs of both frameworks."""

import json

import numpy as np
import pytest

from conftest import load_script
from jaxgan import classifier, data, evaluate, metrics
from jaxgan.config import Config
from jaxgan.reporting import read_metrics

N = 100


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One finished run of each framework: two epochs of a narrow GAN on 200 images.

    The jaxgan run evaluates its samples after epoch 2 (--eval-every 2).
    """
    from jaxgan.fit import fit
    from torch_baseline.train import fit as torch_fit

    root = tmp_path_factory.mktemp("runs")
    config = Config(epochs=2, batch_size=100, subset=200, g_features=(32, 64), d_features=(32,), sample_every=2)
    return {
        "jax": fit(Config(**{**config.to_dict(), "workdir": str(root / "jax"), "eval_every": 2, "eval_n": N})),
        "torch": torch_fit(Config(**{**config.to_dict(), "workdir": str(root / "torch")}), loader="device"),
    }


def evaluate_main(argv, capsys):
    code = load_script("evaluate").main(argv)
    return code, capsys.readouterr()


@pytest.fixture(scope="module")
def real_floor(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "real.json"
    assert load_script("evaluate").main(["--real", "--n", str(N), "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_real_images_score_like_real_images(real_floor):
    assert real_floor["source"] == "real" and real_floor["n"] == N
    # 100 training labels against 100 test labels: the histograms differ by chance alone.
    assert real_floor["modes"] == 10 and real_floor["mode_kl"] < 0.3
    assert real_floor["classifier_score"] > 8.0  # a confident classifier on varied digits
    assert real_floor["precision"] > 0.6 and real_floor["recall"] > 0.6
    # FID's small-sample bias dominates at N = 100 (about 134 here; 2.3 at N = 10,000).
    assert 0.0 < real_floor["fid"] < 200.0
    # KID has no such bias; at N = 100 every subset is the whole set, so the subsets do not vary.
    assert real_floor["kid_subsets"] == 100 and real_floor["kid_subset_size"] == N and real_floor["n_reference"] == N
    assert abs(real_floor["kid"]) < 60.0 and real_floor["kid_std"] < 1e-9
    # The training labels stand for the asked-for classes: the classifier's accuracy, and FID within
    # each class of about 10 images, far above FID over all 100.
    assert real_floor["class_accuracy"] > 0.95 and real_floor["intra_fid"] > real_floor["fid"]
    assert sum(n for n, _ in real_floor["intra_fid_class_n"]) == sum(m for _, m in real_floor["intra_fid_class_n"]) == N
    # Training images are their own nearest training image: the check reads them as copies, while
    # the held-out test images lie well away from the training set.
    for space in ("features", "pixels"):
        assert real_floor[f"nn_{space}_median"] == 0.0 and real_floor[f"nn_{space}_close"] == 1.0
        assert real_floor[f"nn_{space}_median_test"] > 1.0
    assert real_floor["nn_train_n"] == 60_000


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_evaluate_a_finished_run(runs, real_floor, framework, tmp_path, capsys):
    out = tmp_path / "figures.json"
    code, captured = evaluate_main(["--workdir", str(runs[framework]), "--n", str(N), "--json", str(out)], capsys)
    assert code == 0, captured.err
    figures = json.loads(out.read_text())
    assert figures["framework"] == framework and figures["n"] == N and figures["epochs"] == 2
    # Two epochs on 200 images: noise, far from the digits the floor measures.
    assert figures["fid"] > 5 * real_floor["fid"]
    assert 1.0 <= figures["classifier_score"] <= 10.0 and 1 <= figures["modes"] <= 10
    assert 0.0 <= figures["precision"] <= 1.0 and 0.0 <= figures["recall"] <= 1.0
    assert sum(figures["class_histogram"]) == pytest.approx(1.0, abs=1e-3)
    assert figures["kid"] > 10 * abs(real_floor["kid"]) + 100.0
    # Noise samples copy no training digit: no closer to one than the test images are.
    for space in ("features", "pixels"):
        assert figures[f"nn_{space}_median"] > figures[f"nn_{space}_median_test"] and figures[f"nn_{space}_close"] < 0.05
    assert "intra_fid" not in figures  # an unconditional run
    assert f"{figures['fid']:.4f}" in captured.out and f"{figures['kid']:.5f} ± {figures['kid_std']:.5f}" in captured.out
    assert (runs[framework] / "eval_samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_samples_scores_test_images_against_themselves_perfectly():
    ref = evaluate.test_reference(N)
    test_images = data.load("test").flat_NxD[evaluate.choose(10_000, N, 0)]
    figures = evaluate.evaluate_samples(test_images, ref)
    # 100 samples of 128 features: the covariance is singular, and the square roots of its
    # round-off-sized eigenvalues leave an error far above float64's epsilon.
    assert abs(figures["fid"]) < 1e-4 and abs(figures["fd_logits"]) < 1e-6
    assert figures["precision"] == figures["recall"] == 1.0 and figures["mode_kl"] < 0.02
    # The same images on both sides: the medians agree, and 1 of 100 lies below the 1st percentile.
    assert figures["nn_features_median"] == figures["nn_features_median_test"] and figures["nn_features_close"] == 0.01
    assert "nn_pixels_median" not in figures  # pixel space only when asked for


def test_intra_fid_is_the_mean_fid_within_each_asked_for_class():
    ref = evaluate.test_reference(1000, seed=1)
    train = data.load("train")
    chosen = evaluate.choose(len(train), 1000, 0)
    images, labels = train.flat_NxD[chosen], train.labels_N[chosen]
    figures = evaluate.evaluate_samples(images, ref, labels, kid_subsets=10, nn_spaces=())
    features = classifier.embed(evaluate.classifier_params(), images)[0]
    per_class = [metrics.fid(features[labels == c], ref.features_NxF[ref.labels_N == c]) for c in range(10)]
    assert figures["intra_fid_per_class"] == pytest.approx(per_class, abs=1e-4)
    assert figures["intra_fid"] == pytest.approx(np.mean(per_class), rel=1e-9)
    assert figures["kid_subsets"] == 10 and figures["kid_subset_size"] == 1000 and "nn_train_n" not in figures
    # Labels that do not match the images: the class accuracy falls to chance, intra-FID rises many times.
    shuffled = evaluate.evaluate_samples(images, ref, np.roll(labels, 1), kid_subsets=10, nn_spaces=())
    assert shuffled["class_accuracy"] < 0.2 and shuffled["intra_fid"] > 5 * figures["intra_fid"]
    assert shuffled["fid"] == figures["fid"]
    # One image a class: no within-class covariance, so no intra-FID, and the counts say why.
    few = evaluate.evaluate_samples(images[:10], ref, np.arange(10), kid_subsets=2, nn_spaces=())
    assert few["intra_fid"] is None and few["intra_fid_class_n"][0][0] == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n", "5", "--real"], "--n must be in [10, 10000]"),
        ([], "pass either --workdir DIR (a finished run) or --real"),
        (["--real", "--kid-subset-size", "1"], "--kid-subset-size at least 2"),
        (["--workdir", "{tmp}/nothing-here"], "holds no run (no readable config.json)"),
        (["--workdir", "{tmp}/unfinished"], "has no final_params: the run has not finished"),
    ],
)
def test_bad_input_gets_one_clear_sentence(tmp_path, capsys, argv, message):
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.json").write_text(json.dumps({"framework": "jax", "epochs": 3, "image_shape": [28, 28]}))
    code, captured = evaluate_main([a.format(tmp=tmp_path) for a in argv], capsys)
    assert code == 2
    assert captured.err.startswith("error: ") and message in captured.err and captured.err.count("\n") == 1


def test_tampered_classifier_is_refused_by_the_script(runs, capsys, monkeypatch):
    monkeypatch.setattr(classifier, "WEIGHTS_SHA256", "0" * 64)
    evaluate.classifier_params.cache_clear()
    try:
        code, captured = evaluate_main(["--workdir", str(runs["jax"]), "--n", str(N)], capsys)
    finally:
        evaluate.classifier_params.cache_clear()
    assert code == 2 and "are not the committed ones" in captured.err and captured.err.count("\n") == 1


def test_eval_every_refuses_a_tampered_classifier_before_writing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(classifier, "WEIGHTS_SHA256", "0" * 64)
    evaluate.classifier_params.cache_clear()
    try:
        code = load_script("train_jax").main(["--eval-every", "1", "--subset", "200", "--batch-size", "100", "--workdir", str(tmp_path / "run")])
    finally:
        evaluate.classifier_params.cache_clear()
    err = capsys.readouterr().err
    assert code == 2 and "are not the committed ones" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_eval_every_adds_figures_to_metrics_jsonl(runs, tmp_path, capsys):
    first, second = read_metrics(runs["jax"] / "metrics.jsonl")
    assert "fid" not in first
    assert second["n"] == N and second["d_loss"] > 0  # training and quality figures share the epoch's record
    # The same generator, noise and test images as scripts/evaluate.py at the same N and seed.
    out = tmp_path / "figures.json"
    assert evaluate_main(["--workdir", str(runs["jax"]), "--n", str(N), "--json", str(out)], capsys)[0] == 0
    figures = json.loads(out.read_text())
    for key in ("fid", "fd_logits", "classifier_score", "precision", "recall", "modes", "mode_kl", "kid", "kid_std", "nn_features_median"):
        assert second[key] == pytest.approx(figures[key], rel=1e-6), key


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("train_jax", ["--eval-every", "0"], "--eval-every must be at least 1 epoch"),
        ("train_jax", ["--eval-every", "1", "--eval-n", "20000"], "--eval-n must be in [10, 10000]"),
        ("train_jax", ["--eval-every", "1", "--data-dir", "/usr/share/datasets/fashion-mnist"], "applies to --dataset mnist without --data-dir only"),
        ("train_torch", ["--eval-every", "1"], "--eval-every is a jaxgan option: run it with scripts/train_jax.py."),
    ],
)
def test_bad_eval_flags_are_refused(tmp_path, capsys, script, argv, message):
    code = load_script(script).main([*argv, "--workdir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
