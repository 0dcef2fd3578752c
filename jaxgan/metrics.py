"""Sample-quality metrics on classifier features and outputs: pure NumPy, float64.

FID and its sibling on logits (Fréchet distance of two Gaussians fitted to the
two feature sets), FID within each class, KID (unbiased), the classifier score,
improved precision/recall (Kynkäänniemi et al. 2019), mode coverage and the
nearest-neighbour distances of a memorisation check. FID is biased by the sample
size: compare only figures computed at the same N, beside the real-vs-real floor.
"""

from __future__ import annotations

import numpy as np


def gaussian_stats(x_NxF: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean_F, covariance_FxF) in float64, the covariance unbiased (N - 1)."""
    x_NxF = np.asarray(x_NxF, np.float64)
    if x_NxF.ndim != 2 or len(x_NxF) < 2:
        raise ValueError(f"need at least 2 feature vectors as [N, F], got shape {x_NxF.shape}.")
    return x_NxF.mean(0), np.cov(x_NxF, rowvar=False).reshape(x_NxF.shape[1], x_NxF.shape[1])


def _psd_sqrt(sigma_FxF: np.ndarray) -> np.ndarray:
    eigvals, eigvecs = np.linalg.eigh(sigma_FxF)
    # Round-off makes zero eigenvalues of a singular covariance slightly negative.
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def frechet_distance(mu1_F, sigma1_FxF, mu2_F, sigma2_FxF) -> float:
    """||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr sqrt(S1^1/2 S2 S1^1/2), in float64.

    The trace term uses the symmetric product A S2 A with A = S1^1/2 (eigh,
    negative eigenvalues clipped), which has the same eigenvalues as S1 S2;
    `scipy.linalg.sqrtm(S1 @ S2)` of the non-symmetric product can return large
    imaginary parts.
    """
    mu1, mu2 = np.asarray(mu1_F, np.float64), np.asarray(mu2_F, np.float64)
    s1, s2 = np.asarray(sigma1_FxF, np.float64), np.asarray(sigma2_FxF, np.float64)
    a = _psd_sqrt(s1)
    middle = a @ s2 @ a
    eigvals = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigvals, 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)


def fid(x_NxF: np.ndarray, y_MxF: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets."""
    return frechet_distance(*gaussian_stats(x_NxF), *gaussian_stats(y_MxF))


def intra_fid(x_NxF, labels_N, y_MxF, labels_M, n_classes: int = 10) -> tuple[float, list[float]]:
    """(mean over classes, per-class FIDs): class c of x against class c of y."""
    labels_N, labels_M = np.asarray(labels_N), np.asarray(labels_M)
    per_class = []
    for c in range(n_classes):
        x_c, y_c = np.asarray(x_NxF)[labels_N == c], np.asarray(y_MxF)[labels_M == c]
        if min(len(x_c), len(y_c)) < 2:
            raise ValueError(f"class {c} has {len(x_c)} and {len(y_c)} feature vectors; intra-FID needs at least 2 of each class on both sides.")
        per_class.append(fid(x_c, y_c))
    return float(np.mean(per_class)), per_class


def polynomial_kernel(x_NxF: np.ndarray, y_MxF: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / F + 1)^3, KID's kernel, [N, M] in float64."""
    x_NxF, y_MxF = np.asarray(x_NxF, np.float64), np.asarray(y_MxF, np.float64)
    return (x_NxF @ y_MxF.T / x_NxF.shape[1] + 1.0) ** 3


def mmd2_unbiased(x_NxF: np.ndarray, y_MxF: np.ndarray) -> float:
    """The unbiased estimate of MMD^2 with `polynomial_kernel` (Bińkowski et al. 2018, eq. 3).

    The within-set means leave out the diagonal k(x_i, x_i), so the estimate's
    expectation is 0 for two samples of one distribution (it can be negative).
    """
    n, m = len(x_NxF), len(y_MxF)
    if min(n, m) < 2:
        raise ValueError(f"MMD needs at least 2 feature vectors on each side, got {n} and {m}.")
    k_xx, k_yy = polynomial_kernel(x_NxF, x_NxF), polynomial_kernel(y_MxF, y_MxF)
    within = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1)) + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * polynomial_kernel(x_NxF, y_MxF).mean())


def kid(x_NxF: np.ndarray, y_MxF: np.ndarray, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: (mean, standard deviation) of `mmd2_unbiased` over random subsets of each set.

    Each subset draws `subset_size` vectors of each set without replacement (the
    protocol of Bińkowski et al.: 100 subsets of 1000). The std is the spread of
    one subset's estimate (NumPy's std, ddof 0, as torch-fidelity and clean-fid
    report it), not the standard error of the mean.
    """
    x_NxF, y_MxF = np.asarray(x_NxF, np.float64), np.asarray(y_MxF, np.float64)
    if not 2 <= subset_size <= min(len(x_NxF), len(y_MxF)) or n_subsets < 1:
        raise ValueError(
            f"KID needs 2 <= subset_size <= {min(len(x_NxF), len(y_MxF))} (the smaller set) and n_subsets >= 1, "
            f"got {subset_size} and {n_subsets}."
        )
    rng = np.random.default_rng(seed)
    estimates = [
        mmd2_unbiased(x_NxF[rng.choice(len(x_NxF), subset_size, replace=False)], y_MxF[rng.choice(len(y_MxF), subset_size, replace=False)])
        for _ in range(n_subsets)
    ]
    return float(np.mean(estimates)), float(np.std(estimates))


def nearest_distances(x_NxD: np.ndarray, y_MxD: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """dist_N: each x's Euclidean distance to its nearest y, float64.

    The search runs in float32 chunks (10,000 x 60,000 MNIST images fit in
    memory and time); the distance to the neighbour found is then recomputed in
    float64, so an exact copy reads 0.
    """
    x32, y32 = np.asarray(x_NxD, np.float32), np.asarray(y_MxD, np.float32)
    y_sq_M = (y32 * y32).sum(1)
    # ||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y; ||x||^2 does not change which y is nearest.
    nearest_N = np.concatenate([(y_sq_M[None, :] - 2.0 * x32[i : i + chunk] @ y32.T).argmin(1) for i in range(0, len(x32), chunk)])
    diff = np.asarray(x_NxD, np.float64) - np.asarray(y_MxD, np.float64)[nearest_N]
    return np.sqrt((diff * diff).sum(1))


def memorisation(sample_dists_N: np.ndarray, test_dists_M: np.ndarray, percentile: float = 1.0) -> tuple[float, float, float]:
    """(median sample distance, median test distance, share of samples closer than the test's `percentile`).

    The distances are to the nearest training image; held-out test images show
    how close a new digit comes by chance, so a generator that copies has many
    samples below the test images' low percentile.
    """
    threshold = np.percentile(test_dists_M, percentile)
    return float(np.median(sample_dists_N)), float(np.median(test_dists_M)), float(np.mean(np.asarray(sample_dists_N) < threshold))


def log_softmax(logits_NxK: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits_NxK, np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def classifier_score(logits_NxK: np.ndarray) -> float:
    """exp E_x[KL(p(y|x) || p(y))], p(y) the mean of p(y|x): between 1 and K.

    K only when every sample is classified with certainty and the classes are equally frequent.
    """
    log_p_NxK = log_softmax(logits_NxK)
    p_NxK = np.exp(log_p_NxK)
    log_marginal_K = np.log(p_NxK.mean(0))
    # Where p(y|x) underflows to 0, its term p log p is 0 as well.
    kl_N = np.sum(np.where(p_NxK > 0, p_NxK * (log_p_NxK - log_marginal_K), 0.0), axis=1)
    return float(np.exp(kl_N.mean()))


def _sq_distances(x_NxF: np.ndarray, y_MxF: np.ndarray) -> np.ndarray:
    d = (x_NxF * x_NxF).sum(1)[:, None] + (y_MxF * y_MxF).sum(1)[None, :] - 2.0 * x_NxF @ y_MxF.T
    return np.maximum(d, 0.0)


def knn_radii(x_NxF: np.ndarray, k: int = 3, chunk: int = 1000) -> np.ndarray:
    """radii_N: each point's squared distance to its k-th nearest other point of the set."""
    x_NxF = np.asarray(x_NxF, np.float64)
    if not 1 <= k < len(x_NxF):
        raise ValueError(f"k = {k} needs more than k points, got {len(x_NxF)}.")
    # Column k of the sorted distances: column 0 is the point itself.
    return np.concatenate(
        [np.partition(_sq_distances(x_NxF[i : i + chunk], x_NxF), k, axis=1)[:, k] for i in range(0, len(x_NxF), chunk)]
    )


def precision_recall(real_NxF: np.ndarray, fake_MxF: np.ndarray, k: int = 3, chunk: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    precision: the fraction of fake points inside at least one real point's
    k-NN ball (radius: the distance to its k-th nearest real neighbour);
    recall: the fraction of real points inside at least one fake point's ball.
    """
    real, fake = np.asarray(real_NxF, np.float64), np.asarray(fake_MxF, np.float64)
    real_radii_N, fake_radii_M = knn_radii(real, k, chunk), knn_radii(fake, k, chunk)
    fake_in_real_M = np.zeros(len(fake), bool)
    real_in_fake_N = np.zeros(len(real), bool)
    for i in range(0, len(real), chunk):
        d_CxM = _sq_distances(real[i : i + chunk], fake)
        fake_in_real_M |= (d_CxM <= real_radii_N[i : i + chunk, None]).any(0)
        real_in_fake_N[i : i + chunk] = (d_CxM <= fake_radii_M[None, :]).any(1)
    return float(fake_in_real_M.mean()), float(real_in_fake_N.mean())


def class_histogram(labels_N: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """The fraction of samples in each class, float64 [n_classes]."""
    return np.bincount(np.asarray(labels_N), minlength=n_classes).astype(np.float64) / len(labels_N)


def mode_coverage(predicted_N: np.ndarray, reference_labels_M: np.ndarray, n_classes: int = 10) -> tuple[int, float]:
    """(classes hit by the predictions, KL(predicted histogram || reference histogram) in nats).

    The KL is finite as long as the reference holds every class.
    """
    p, q = class_histogram(predicted_N, n_classes), class_histogram(reference_labels_M, n_classes)
    if np.any((p > 0) & (q == 0)):
        raise ValueError("the reference labels miss a class that the predictions hit; KL is infinite.")
    hit = p > 0
    return int(hit.sum()), float(np.sum(p[hit] * np.log(p[hit] / q[hit])))
