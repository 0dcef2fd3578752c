"""The sample-quality metrics against closed forms, a plain SciPy reference and hand-worked toy sets."""

import numpy as np
import pytest
import scipy.linalg

from jaxgan import metrics


def correlated(n, f, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    mixing_FxF = rng.standard_normal((f, f)) / np.sqrt(f) + np.eye(f)
    return rng.standard_normal((n, f)) @ mixing_FxF + shift


def random_spd(f, seed):
    m = np.random.default_rng(seed).standard_normal((f, f))
    return m @ m.T / f + 0.5 * np.eye(f)


def scipy_frechet(mu1, s1, mu2, s2):
    """The textbook formula, fine on well-conditioned covariances."""
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))


def test_fid_of_a_set_with_itself_is_zero():
    x = correlated(500, 16, seed=0, shift=3.0)
    assert abs(metrics.fid(x, x)) < 1e-9 * np.trace(np.cov(x, rowvar=False))


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    # Diagonal covariances commute: the distance is |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2.
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = 1.0 + 0.0 + 6.25 + (1 - 3) ** 2 + (2 - 1) ** 2 + 0.0
    assert metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    assert expected == 12.25


def test_fid_of_samples_from_two_gaussians_approaches_their_distance():
    rng = np.random.default_rng(1)
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([0.5, 0.0, 2.0])
    s1, s2 = random_spd(3, seed=2), random_spd(3, seed=3)
    x = rng.multivariate_normal(mu1, s1, size=200_000)
    y = rng.multivariate_normal(mu2, s2, size=200_000)
    exact = metrics.frechet_distance(mu1, s1, mu2, s2)
    assert exact == pytest.approx(scipy_frechet(mu1, s1, mu2, s2), rel=1e-10)
    assert metrics.fid(x, y) == pytest.approx(exact, rel=0.02)


def test_fid_is_symmetric():
    x, y = correlated(400, 12, seed=4), correlated(300, 12, seed=5, shift=0.3)
    assert metrics.fid(x, y) == pytest.approx(metrics.fid(y, x), rel=1e-10)
    assert metrics.fid(x, y) > 0.1


@pytest.mark.parametrize("seed", range(5))
def test_frechet_distance_agrees_with_scipy_on_well_conditioned_data(seed):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    s1, s2 = random_spd(8, seed=10 + seed), random_spd(8, seed=20 + seed)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(scipy_frechet(mu1, s1, mu2, s2), rel=1e-9)


def test_dead_features_leave_fid_real_and_unchanged():
    # A ReLU feature that never fires makes both covariances singular.
    x, y = correlated(300, 6, seed=6), correlated(300, 6, seed=7, shift=0.5)
    pad = lambda v: np.hstack([v, np.zeros((len(v), 2))])
    assert metrics.fid(pad(x), pad(y)) == pytest.approx(metrics.fid(x, y), rel=1e-9)
    assert abs(metrics.fid(pad(x), pad(x))) < 1e-9


def test_classifier_score_is_ten_for_confident_uniform_predictions():
    logits_NxK = 200.0 * np.eye(10)[np.arange(50) % 10]
    assert metrics.classifier_score(logits_NxK) == pytest.approx(10.0, rel=1e-12)


def test_classifier_score_is_one_when_every_sample_looks_the_same():
    assert metrics.classifier_score(np.tile(np.linspace(-1, 1, 10), (30, 1))) == pytest.approx(1.0, rel=1e-12)
    # Confident but all one class: no diversity.
    assert metrics.classifier_score(200.0 * np.eye(10)[np.zeros(30, int)]) == pytest.approx(1.0, rel=1e-12)


def test_classifier_score_lies_between_one_and_ten():
    logits = np.random.default_rng(8).standard_normal((1000, 10)) * 3
    assert 1.0 < metrics.classifier_score(logits) < 10.0
    # Five equally frequent, certain classes: exp(log 5).
    assert metrics.classifier_score(200.0 * np.eye(10)[np.arange(40) % 5]) == pytest.approx(5.0, rel=1e-12)


REAL_1D = np.arange(10.0)[:, None]  # k = 3 radii: 3 at the ends, 2 elsewhere


def test_knn_radii_on_a_line():
    # A float32 search about the set's mean: exact to float32 round-off.
    np.testing.assert_allclose(metrics.knn_radii(REAL_1D, k=3), [9, 4, 4, 4, 4, 4, 4, 4, 4, 9], rtol=1e-6)


def test_precision_counts_fakes_inside_real_balls():
    # 4.5 lies inside; 11.5 is 2.5 from the end point 9 (radius 3): inside;
    # 12.5 is 3.5 from 9 and 4.5 from 8 (radius 2): outside; 100 is far out.
    fake = np.array([[4.5], [11.5], [12.5], [100.0]])
    precision, _ = metrics.precision_recall(REAL_1D, fake, k=3)
    assert precision == 0.5


def test_collapsed_fakes_have_full_precision_and_low_recall():
    # Fake radii: 0.6, 0.4, 0.4, 0.6; only the real 0 and 1 lie within one of them.
    fake = np.array([[0.2], [0.4], [0.6], [0.8]])
    assert metrics.precision_recall(REAL_1D, fake, k=3) == (1.0, 0.2)


def test_identical_and_disjoint_sets():
    x = correlated(200, 5, seed=9)
    assert metrics.precision_recall(x, x, k=3) == (1.0, 1.0)
    assert metrics.precision_recall(x, x + 1000.0, k=3) == (0.0, 0.0)


def test_chunking_does_not_change_precision_recall():
    x, y = correlated(250, 4, seed=10), correlated(230, 4, seed=11, shift=0.7)
    full = metrics.precision_recall(x, y, k=3, chunk=10_000)
    assert metrics.precision_recall(x, y, k=3, chunk=17) == full
    assert 0.0 < full[0] < 1.0 and 0.0 < full[1] < 1.0  # a partial overlap, so chunk edges matter


def test_mode_coverage_counts_classes_and_measures_kl():
    reference = np.arange(1000) % 10
    assert metrics.mode_coverage(np.arange(500) % 10, reference) == (10, pytest.approx(0.0, abs=1e-15))
    modes, kl = metrics.mode_coverage(np.arange(500) % 2, reference)
    assert modes == 2 and kl == pytest.approx(np.log(5), rel=1e-12)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="at least 2 feature vectors"):
        metrics.fid(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="needs more than k points"):
        metrics.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)


def slow_mmd2(x, y):
    """Bińkowski et al.'s estimator written out term by term."""
    k = lambda a, b: (a @ b / len(a) + 1.0) ** 3
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd2_matches_the_term_by_term_formula():
    x, y = correlated(7, 3, seed=12), correlated(5, 3, seed=13, shift=0.4)
    assert metrics.mmd2_unbiased(x, y) == pytest.approx(slow_mmd2(x, y), rel=1e-12)
    # One subset of the whole sets is the plain estimate; its spread is 0.
    subset = x[np.random.default_rng(0).choice(7, 5, replace=False)]
    assert metrics.kid(x, y[:5], n_subsets=1, subset_size=5) == (pytest.approx(slow_mmd2(subset, y), rel=1e-12), 0.0)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift():
    x, y = np.split(correlated(4000, 8, seed=14), 2)  # one mixing matrix: one distribution
    same_mean, same_std = metrics.kid(x, y, n_subsets=50, subset_size=500)
    shifted_mean, shifted_std = metrics.kid(x, y + 0.5, n_subsets=50, subset_size=500)
    assert abs(same_mean) < 2 * same_std / np.sqrt(50) + 1e-3 and same_std > 0
    assert shifted_mean > 20 * shifted_std / np.sqrt(50) and shifted_mean > 50 * abs(same_mean)


def test_kid_is_unbiased_where_fid_is_not():
    # 400 pairs of 10-point samples of one Gaussian: FID's mean sits far above its true 0, KID's within noise of 0.
    rng = np.random.default_rng(16)
    pairs = [(rng.standard_normal((10, 4)), rng.standard_normal((10, 4))) for _ in range(400)]
    kids = np.array([metrics.mmd2_unbiased(x, y) for x, y in pairs])
    fids = np.array([metrics.fid(x, y) for x, y in pairs])
    assert abs(kids.mean()) < 3 * kids.std() / np.sqrt(len(kids))
    assert fids.mean() > 20 * fids.std() / np.sqrt(len(fids)) and fids.min() > 0


def test_intra_fid_averages_the_fid_of_each_class():
    x, y = correlated(300, 4, seed=17), correlated(300, 4, seed=18, shift=0.5)
    labels_x, labels_y = np.arange(300) % 3, np.arange(300) // 100
    mean, per_class = metrics.intra_fid(x, labels_x, y, labels_y, n_classes=3)
    expected = [metrics.fid(x[labels_x == c], y[labels_y == c]) for c in range(3)]
    assert per_class == pytest.approx(expected, rel=1e-12) and mean == pytest.approx(np.mean(expected), rel=1e-12)
    with pytest.raises(ValueError, match="class 2 has 0 and 100 feature vectors"):
        metrics.intra_fid(x[:4], [0, 0, 1, 1], y, labels_y, n_classes=3)


def test_nearest_distances_match_brute_force_and_read_zero_for_copies():
    train, queries = correlated(500, 6, seed=19), correlated(37, 6, seed=20, shift=0.2)
    queries[:5] = train[[3, 100, 250, 499, 0]]
    brute = np.sqrt(((queries[:, None, :] - train[None, :, :]) ** 2).sum(-1)).min(1)
    dists = metrics.nearest_distances(queries, train, chunk=8)
    np.testing.assert_allclose(dists, brute, rtol=1e-6)
    assert np.all(dists[:5] == 0.0) and np.all(dists[5:] > 0.1)


def test_memorisation_counts_samples_closer_than_the_test_images():
    test = np.arange(1.0, 101.0)  # 1st percentile 1.99
    samples = np.array([0.0, 0.5, 1.5, 2.5, 50.0, 60.0, 70.0, 80.0])
    assert metrics.memorisation(samples, test) == (pytest.approx(26.25), pytest.approx(50.5), 3 / 8)
