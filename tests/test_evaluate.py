"""scripts/evaluate.py and --eval-every end to end, on tiny runs of both frameworks."""

import contextlib
import io
import json

import jax
import numpy as np
import pytest
from conftest import load_script

from gancore import data
from gancore.config import Config
from gancore.reporting import read_metrics
from jaxgan import classifier, evaluate, metrics

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
def evaluated(runs, tmp_path_factory):
    """`evaluate.py --workdir RUN --n N --json FILE` on a run of `runs`, once a framework (two tests read the jaxgan
    run's): framework -> (exit code, stdout, stderr, the figures written)."""
    done = {}

    def of(framework):
        if framework not in done:
            out, stdout, stderr = tmp_path_factory.mktemp("figures") / "figures.json", io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = load_script("evaluate").main(["--workdir", str(runs[framework]), "--n", str(N), "--json", str(out)])
            done[framework] = code, stdout.getvalue(), stderr.getvalue(), json.loads(out.read_text()) if out.exists() else None
        return done[framework]

    return of


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
def test_evaluate_a_finished_run(runs, real_floor, evaluated, framework):
    code, out, err, figures = evaluated(framework)
    assert code == 0, err
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
    assert f"{figures['fid']:.4f}" in out and f"{figures['kid']:.5f} ± {figures['kid_std']:.5f}" in out
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
        (["--workdir", "{tmp}/nothing-here"], "holds no run (no config.json)"),
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


def test_eval_every_adds_figures_to_metrics_jsonl(runs, evaluated):
    first, second = read_metrics(runs["jax"] / "metrics.jsonl")
    assert "fid" not in first
    assert second["n"] == N and second["d_loss"] > 0  # training and quality figures share the epoch's record
    # The same generator, noise and test images as scripts/evaluate.py at the same N and seed.
    code, _, err, figures = evaluated("jax")
    assert code == 0, err
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


# The NumPy float64 paths evaluate.py took before the searches and KID moved to the device:
# the reference that the device's figures must agree with to float32 round-off.
def numpy_nearest_distances(x_NxD, y_MxD, chunk=1000):
    x32, y32 = np.asarray(x_NxD, np.float32), np.asarray(y_MxD, np.float32)
    y_sq_M = (y32 * y32).sum(1)
    nearest_N = np.concatenate([(y_sq_M[None, :] - 2.0 * x32[i : i + chunk] @ y32.T).argmin(1) for i in range(0, len(x32), chunk)])
    diff = np.asarray(x_NxD, np.float64) - np.asarray(y_MxD, np.float64)[nearest_N]
    return np.sqrt((diff * diff).sum(1))


def numpy_sq_distances(x_NxF, y_MxF):
    return np.maximum((x_NxF * x_NxF).sum(1)[:, None] + (y_MxF * y_MxF).sum(1)[None, :] - 2.0 * x_NxF @ y_MxF.T, 0.0)


def numpy_precision_recall(real_NxF, fake_MxF, k=3):
    real, fake = np.asarray(real_NxF, np.float64), np.asarray(fake_MxF, np.float64)
    real_radii_N, fake_radii_M = (np.partition(numpy_sq_distances(x, x), k, axis=1)[:, k] for x in (real, fake))
    d_NxM = numpy_sq_distances(real, fake)
    return float((d_NxM <= real_radii_N[:, None]).any(0).mean()), float((d_NxM <= fake_radii_M[None, :]).any(1).mean())


def numpy_mmd2(x_NxF, y_MxF):
    kernel = lambda a, b: (a @ b.T / a.shape[1] + 1.0) ** 3
    n, m = len(x_NxF), len(y_MxF)
    k_xx, k_yy = kernel(x_NxF, x_NxF), kernel(y_MxF, y_MxF)
    within = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1)) + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * kernel(x_NxF, y_MxF).mean())


def numpy_kid(x_NxF, y_MxF, n_subsets, subset_size, seed=0):
    rng = np.random.default_rng(seed)
    estimates = [
        numpy_mmd2(x_NxF[rng.choice(len(x_NxF), subset_size, replace=False)], y_MxF[rng.choice(len(y_MxF), subset_size, replace=False)])
        for _ in range(n_subsets)
    ]
    return float(np.mean(estimates)), float(np.std(estimates))


def numpy_evaluate(samples_NxD, ref_index_M, labels_N, kid_subsets, kid_subset_size):
    """evaluate_samples as it was: every image embedded afresh, every search and KID in NumPy."""
    params = evaluate.classifier_params()
    train, test = data.load("train"), data.load("test")
    features, logits = classifier.embed(params, samples_NxD)
    ref_features, ref_logits = classifier.embed(params, test.flat_NxD[ref_index_M])
    train_features = evaluate.mnist_embedding()["train_features"].astype(np.float64)  # pinned to embed() below
    precision, recall = numpy_precision_recall(ref_features, features)
    kid, kid_std = numpy_kid(features, ref_features, kid_subsets, kid_subset_size)
    figures = {
        "fid": metrics.fid(features, ref_features),
        "fd_logits": metrics.fid(logits, ref_logits),
        "precision": precision,
        "recall": recall,
        "kid": kid,
        "kid_std": kid_std,
        "classifier_score": metrics.classifier_score(logits),
    }
    figures["class_accuracy"] = float(np.mean(logits.argmax(1) == labels_N))
    figures["intra_fid"] = metrics.intra_fid(features, labels_N, ref_features, test.labels_N[ref_index_M])[0]
    for space, queries, refs, train_vectors in (
        ("features", features, ref_features, train_features),
        ("pixels", evaluate.to_unit_range(samples_NxD), evaluate.to_unit_range(test.flat_NxD[ref_index_M]), evaluate.to_unit_range(train.flat_NxD)),
    ):
        dists_N, test_dists_M = numpy_nearest_distances(queries, train_vectors), numpy_nearest_distances(refs, train_vectors)
        figures |= dict(zip([f"nn_{space}_{f}" for f in ("median", "median_test", "close")], metrics.memorisation(dists_N, test_dists_M)))
    return figures


def mock_samples(n, seed=0):
    """n uint8 'samples' a generator might give: copies of training images, noisy copies and blurred noise."""
    rng = np.random.default_rng(seed)
    train = data.load("train")
    idx = rng.choice(len(train), n, replace=False)
    images = train.flat_NxD[idx].astype(np.float64)
    third = n // 3
    images[third : 2 * third] += rng.normal(0, 40, (third, images.shape[1]))
    images[2 * third :] = 0.5 * images[2 * third :] + rng.uniform(0, 120, (n - 2 * third, images.shape[1]))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), train.labels_N[idx]


def test_device_figures_agree_with_the_numpy_path_to_float32_round_off():
    samples, labels = mock_samples(400)
    ref = evaluate.test_reference(500, seed=3)
    figures = evaluate.evaluate_samples(samples, ref, labels, kid_subsets=20, kid_subset_size=300, nn_spaces=evaluate.NN_SPACES)
    expected = numpy_evaluate(samples, ref.index_N, labels, kid_subsets=20, kid_subset_size=300)
    for key in ("fid", "fd_logits", "kid", "kid_std", "classifier_score", "class_accuracy", "intra_fid"):
        assert figures[key] == pytest.approx(expected[key], rel=1e-6), key
    for space in evaluate.NN_SPACES:
        for stat in ("median", "median_test"):
            assert figures[f"nn_{space}_{stat}"] == pytest.approx(expected[f"nn_{space}_{stat}"], rel=1e-5), (space, stat)
        assert figures[f"nn_{space}_close"] == pytest.approx(expected[f"nn_{space}_close"], abs=1.01 / 400), space
    assert figures["precision"] == pytest.approx(expected["precision"], abs=1.01 / 400)
    assert figures["recall"] == pytest.approx(expected["recall"], abs=1.01 / 500)
    # Figures that can fail: a third of the samples are copies, the rest are not digits of the test set.
    assert 0.3 <= figures["nn_pixels_close"] <= 0.4 and figures["precision"] < 0.97 and figures["recall"] < 0.9 and figures["fid"] > 50


def test_cached_train_features_are_the_classifiers():
    train = data.load("train")
    idx = np.random.default_rng(4).choice(len(train), 300, replace=False)
    features = classifier.embed(evaluate.classifier_params(), train.flat_NxD[idx])[0]
    embedding = evaluate.mnist_embedding()
    np.testing.assert_allclose(embedding["train_features"][idx], features, rtol=1e-6, atol=1e-6)
    expected = numpy_nearest_distances(embedding["test_features"][:50], embedding["train_features"])
    np.testing.assert_allclose(evaluate.test_nn_distances("features")[:50], expected, rtol=1e-5)


def test_a_second_evaluation_compiles_nothing():
    # The shapes of `evaluate.py --n N` (real_floor's): the first run may load those programs, the second must not compile.
    samples, labels = mock_samples(N, seed=5)
    ref = evaluate.test_reference(N, seed=6)
    run = lambda: evaluate.evaluate_samples(samples, ref, labels, nn_spaces=evaluate.NN_SPACES)
    first = run()
    compiles = []
    listener = lambda event, *_, **__: compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        second = run()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == [] and second == first


def test_a_changed_or_damaged_cache_file_is_recomputed_not_trusted(tmp_path, capsys):
    path, calls = tmp_path / "cache.npz", []

    def compute():
        calls.append(1)
        return {"x": np.arange(6.0).reshape(2, 3)}

    first = evaluate.cached_arrays(path, "key-a", compute)
    again = evaluate.cached_arrays(path, "key-a", compute)
    assert len(calls) == 1 and np.array_equal(again["x"], first["x"]) and capsys.readouterr().err == ""
    # The same key, an array changed in place (its digest kept): recomputed, with a warning.
    with np.load(path) as z:
        tampered = {name: z[name] for name in z.files}
    tampered["x"][0, 0] = 99.0
    np.savez(path, **tampered)
    assert evaluate.cached_arrays(path, "key-a", compute)["x"][0, 0] == 0.0 and len(calls) == 2
    assert "does not match the images and classifier it was made from" in capsys.readouterr().err
    # Another key (other images or weights): recomputed; a torn file: recomputed.
    evaluate.cached_arrays(path, "key-b", compute)
    path.write_bytes(path.read_bytes()[:100])
    evaluate.cached_arrays(path, "key-b", compute)
    assert len(calls) == 4
    assert evaluate.cached_arrays(path, "key-b", compute)["x"].shape == (2, 3) and len(calls) == 4
