"""Beyond MNIST: Fashion-MNIST from IDX files, any TFDS image set (mocked), TensorBoard events, the pictures."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import load_script
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_data import write_idx

from gancore import data, reporting, runs, sources, summaries
from gancore.config import Config, ConfigError

TINY = dict(latent_dim=8, g_features=(16,), d_features=(16,), batch_size=16, epochs=2, sample_every=1)


def events(workdir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(workdir), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture
def fashion_dir(tmp_path, monkeypatch):
    """Four gzipped IDX files where Debian puts Fashion-MNIST's: 20 train images (2 per class), 4 test."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(20) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(4),
    }
    for name, array in arrays.items():
        write_idx(tmp_path / (name + ".gz"), array, gz=True)
    monkeypatch.setattr(sources, "FASHION_MNIST_DIR", tmp_path)
    return arrays


def test_fashion_mnist_reads_debians_idx_files(fashion_dir):
    train = data.load("train", dataset="fashion_mnist")
    np.testing.assert_array_equal(train.images_NxHxW, fashion_dir["train-images-idx3-ubyte"])
    assert train.image_shape == (28, 28) and train.flat_NxD.shape == (20, 784)
    bags = data.load("train", dataset="fashion_mnist", digit=8)  # class 8: "Bag"
    np.testing.assert_array_equal(bags.images_NxHxW, fashion_dir["train-images-idx3-ubyte"][[8, 18]])
    assert len(data.load("test", dataset="fashion_mnist")) == 4


@pytest.mark.parametrize("script", ["train_jax", "train_torch"])
def test_missing_fashion_mnist_says_how_to_install_it(tmp_path, monkeypatch, capsys, script):
    monkeypatch.setattr(sources, "FASHION_MNIST_DIR", tmp_path / "not-installed")
    workdir = tmp_path / "run"
    code = load_script(script).main(["--dataset", "fashion_mnist", "--workdir", str(workdir)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "Fashion-MNIST is not installed" in err and "apt-get install dataset-fashion-mnist" in err
    assert not workdir.exists()


def test_unknown_dataset_is_refused_in_one_sentence():
    with pytest.raises(ConfigError, match=r"^--dataset must be mnist, fashion_mnist or tfds:NAME .*got 'cifar10'\.$"):
        Config(dataset="cifar10").validate()
    with pytest.raises(data.DataError, match="TFDS has no data set 'no_such_set'"):
        data.load("train", dataset="tfds:no_such_set")


def test_unreachable_network_is_said_in_one_sentence(monkeypatch):
    import requests

    def offline(*args, **kwargs):
        raise requests.ConnectionError("Failed to resolve 'www.cs.toronto.edu'")

    monkeypatch.setattr(tfds, "data_source", offline)
    with pytest.raises(data.DataError) as info:
        data.load("train", dataset="tfds:cifar10")
    message = str(info.value)
    assert "the network cannot be reached" in message and "--data-dir" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_importing_the_data_module_or_loading_mnist_leaves_tfds_unimported(python):
    check = (
        "import sys, gancore.data, jaxgan.fit; gancore.data.load('train', subset=10); "
        "sys.exit('tensorflow_datasets imported' if 'tensorflow_datasets' in sys.modules else 0)"
    )
    result = subprocess.run([python, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_run_saved_before_dataset_existed_resumes_as_mnist():
    runs.check_same_run({"framework": "jax"}, {"framework": "jax", "dataset": "mnist"})
    with pytest.raises(ConfigError, match=r"has no dataset in its config.json \(read as 'mnist'\), this command has 'tfds:cifar10'; use the same --dataset"):
        runs.check_same_run({"framework": "jax"}, {"framework": "jax", "dataset": "tfds:cifar10"})


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_mocked_32x32x3_tfds_set_trains_end_to_end(tmp_path, framework):
    """A cifar10-shaped set through tfds.data_source (mocked): colour grids, events, GIF and strip."""
    config = Config(**TINY, dataset="tfds:cifar10", workdir=str(tmp_path / "run"))
    with tfds.testing.mock_data(num_examples=40):
        train = data.load("train", dataset="tfds:cifar10")
        if framework == "jax":
            from jaxgan.fit import fit, load_final_params

            workdir = fit(config)
            assert load_final_params(workdir)["g_params"]["out"]["kernel"].shape == (16, 32 * 32 * 3)
        else:
            from torch_baseline.train import fit

            workdir = fit(config)
    assert train.images_NxHxW.shape == (40, 32, 32, 3) and train.images_NxHxW.dtype == np.uint8
    assert json.loads((workdir / "config.json").read_text())["image_shape"] == [32, 32, 3]
    records = reporting.read_metrics(workdir / "metrics.jsonl")
    assert [r["step"] for r in records] == [2, 4]  # 40 images at batch 16: 2 steps an epoch

    # The grid is in colour: 64 samples of 32x32 on an 8x8 canvas, 2 pixels of padding, scale 2.
    grid = np.asarray(Image.open(workdir / "samples" / "epoch_0002.png"))
    assert grid.shape == ((8 * 34 + 2) * 2, (8 * 34 + 2) * 2, 4)
    assert np.abs(grid[..., 0].astype(int) - grid[..., 1]).max() > 50

    # TensorBoard's own reader gets back metrics.jsonl's numbers (float32) and the grids' PNG bytes.
    tb = events(workdir)
    for key in ("step", "d_loss", "g_loss", "d_real", "d_fake", "seconds", "steps_per_s"):
        got = tb.Scalars(key)
        assert [s.step for s in got] == [1, 2]
        assert [s.value for s in got] == [float(np.float32(r[key])) for r in records]
    images = tb.Images("samples")
    assert [i.step for i in images] == [1, 2] and (images[0].width, images[0].height) == (grid.shape[1], grid.shape[0])
    assert images[1].encoded_image_string == (workdir / "samples" / "epoch_0002.png").read_bytes()

    with Image.open(workdir / "progress.gif") as gif:
        assert gif.n_frames == 2
    strip = Image.open(workdir / "interpolation.png")  # 8 rows of 10 steps
    assert strip.size == ((10 * 34 + 2) * 2, (8 * 34 + 2) * 2)


def test_interpolation_runs_between_the_grids_noise_vectors_on_great_circles():
    z_grid = reporting.fixed_noise(64, 16, seed=3)
    z = summaries.interpolation_noise(rows=4, steps=5, latent_dim=16, seed=3).reshape(4, 5, 16)
    np.testing.assert_allclose(z[:, 0], z_grid[0:8:2], rtol=1e-6)
    np.testing.assert_allclose(z[:, -1], z_grid[1:8:2], rtol=1e-6)
    # Each step turns by the same angle; the norm moves linearly from one end's to the other's.
    norms = np.linalg.norm(z, axis=-1)
    unit = z / norms[..., None]
    angles = np.arccos(np.clip(np.sum(unit[:, 1:] * unit[:, :-1], axis=-1), -1, 1))
    np.testing.assert_allclose(angles, angles[:, :1].repeat(4, axis=1), rtol=1e-3)
    np.testing.assert_allclose(norms, np.linspace(norms[:, 0], norms[:, -1], 5, axis=1), rtol=1e-5)
    assert np.all(angles > 0.2)  # the ends are far apart: a linear blend would shrink the middle


def test_progress_gif_has_one_frame_per_grid_of_this_run(tmp_path):
    samples = tmp_path / "samples"
    samples.mkdir()
    for epoch, level in ((5, -1.0), (10, 0.0), (15, 0.5), (40, 1.0)):  # epoch 40: left by a longer, replaced run
        reporting.save_grid(np.full((4, 36), level), samples / f"epoch_{epoch:04d}.png", (6, 6))
    assert summaries.save_progress_gif(samples, tmp_path / "progress.gif", last_epoch=15) == 3
    with Image.open(tmp_path / "progress.gif") as gif:
        assert gif.n_frames == 3 and gif.info["loop"] == 0
        centres = []
        for i in range(3):
            gif.seek(i)
            centres.append(np.asarray(gif.convert("L"))[8, 8])
            assert gif.info["duration"] == (summaries.GIF_LAST_FRAME_MS if i == 2 else summaries.GIF_FRAME_MS)
    assert centres == [0, 128, 192]  # the three grids' grey levels (0, 0.5 and 0.75 of 255, as matplotlib rounds them), in epoch order


def test_resumed_run_replaces_tensorboard_events_written_after_its_checkpoint(tmp_path, monkeypatch):
    from tensorboard.summary.writer import event_file_writer

    # The process's writers counted to 9: the resumed run's file gets 10, a name that sorts before 9's in the same second.
    monkeypatch.setattr(event_file_writer, "_global_uid", event_file_writer.AtomicCounter(9))
    with summaries.TensorBoard(tmp_path) as tb:
        for epoch in (1, 2, 3):
            tb.scalars({"epoch": epoch, "d_loss": float(epoch)})
    with summaries.TensorBoard(tmp_path, first_epoch=3) as tb:  # the checkpoint was at epoch 2
        for epoch in (3, 4):
            tb.scalars({"epoch": epoch, "d_loss": 10.0 * epoch})
    assert [(s.step, s.value) for s in events(tmp_path).Scalars("d_loss")] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
    with summaries.TensorBoard(tmp_path) as tb:  # a new run (--overwrite) starts from nothing
        tb.scalars({"epoch": 1, "d_loss": 7.0})
    assert [(s.step, s.value) for s in events(tmp_path).Scalars("d_loss")] == [(1, 7.0)]
