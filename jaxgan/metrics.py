"""Sample-quality metrics on classifier features and outputs: pure NumPy, float64.

FID and its sibling on logits (Fréchet distance of two Gaussians fitted to the
two feature sets), the classifier score, improved precision/recall
(Kynkäänniemi et al. 2019) and mode coverage. FID is biased by the sample size:
compare only figures computed at the same N, beside the real-vs-real floor.
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
