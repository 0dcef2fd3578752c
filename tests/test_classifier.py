"""The committed classifier: its accuracy, its size and the checksum that guards it."""

import numpy as np
import pytest

from gancore import data
from jaxgan import classifier


def test_committed_classifier_is_accurate_on_test_images():
    test = data.load("test")
    idx = np.random.default_rng(0).choice(len(test), 2000, replace=False)
    assert classifier.accuracy(classifier.load_params(), test.flat_NxD[idx], test.labels_N[idx]) >= 0.99


def test_committed_weights_are_small_and_match_their_checksum():
    assert classifier.WEIGHTS_PATH.stat().st_size < 1_000_000
    assert data.sha256(classifier.WEIGHTS_PATH) == classifier.WEIGHTS_SHA256


def test_embed_gives_features_and_logits_for_floats_and_pixels_alike():
    params = classifier.load_params()
    pixels = data.load("test", subset=1001).flat_NxD  # not a multiple of the batch: the padded tail
    features, logits = classifier.embed(params, pixels)
    assert features.shape == (1001, classifier.FEATURE_DIM) and logits.shape == (1001, 10)
    assert features.dtype == logits.dtype == np.float64 and features.min() >= 0.0
    np.testing.assert_allclose(classifier.embed(params, data.to_unit_range(pixels))[1], logits, rtol=0, atol=0)


def test_weights_with_a_changed_byte_are_refused(tmp_path):
    raw = bytearray(classifier.WEIGHTS_PATH.read_bytes())
    raw[len(raw) // 2] ^= 1
    tampered = tmp_path / "classifier.msgpack"
    tampered.write_bytes(bytes(raw))
    with pytest.raises(classifier.ClassifierError, match=r"are not the committed ones \(sha256 [0-9a-f]{12}\.\.\., expected"):
        classifier.load_params(tampered)


def test_missing_weights_are_refused(tmp_path):
    with pytest.raises(classifier.ClassifierError, match="cannot be read"):
        classifier.load_params(tmp_path / "absent.msgpack")
