"""Sample-quality metrics on classifier features and outputs.

FID and its sibling on logits (Fréchet distance of two Gaussians fitted to the
two feature sets), FID within each class, KID (unbiased), the classifier score,
improved precision/recall (Kynkäänniemi et al. 2019), mode coverage and the
nearest-neighbour distances of a memorisation check. FID is biased by the sample
size: compare only figures computed at the same N, beside the real-vs-real floor.

Where the work is: FID's statistics and matrix square roots are float64 NumPy
on the host (F x F, F = 128 at most); KID's kernels are float64 JAX on the
device (`jax.enable_x64`); the searches over all pairs of two sets (k-NN radii,
precision/recall's balls, nearest neighbours) are jitted float32 JAX on the
device, `SEARCH_CHUNK` query rows a step, with only one number per point
coming back.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

SEARCH_CHUNK = 1000  # query rows a step: 1000 x 60,000 float32 distances are 240 MB
# Full float32 products: a GPU's default TF32 would move distances by 1e-3 relative.
_HIGHEST = jax.lax.Precision.HIGHEST


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


def _mmd2(x_NxF: jax.Array, y_MxF: jax.Array) -> jax.Array:
    def kernel_sum(a, b):  # the sum of k(a_i, b_j) = (a.b / F + 1)^3 over all pairs
        return jnp.sum((jnp.dot(a, b.T, precision=_HIGHEST) / a.shape[1] + 1.0) ** 3)

    def self_sum(a):  # the diagonal k(a_i, a_i) left out
        return kernel_sum(a, a) - jnp.sum((jnp.sum(a * a, 1) / a.shape[1] + 1.0) ** 3)

    n, m = x_NxF.shape[0], y_MxF.shape[0]
    return self_sum(x_NxF) / (n * (n - 1)) + self_sum(y_MxF) / (m * (m - 1)) - 2.0 * kernel_sum(x_NxF, y_MxF) / (n * m)


@jax.jit
def _mmd2_subsets(x_NxF: jax.Array, y_MxF: jax.Array, idx_x_SxB: jax.Array, idx_y_SxB: jax.Array) -> jax.Array:
    return jax.lax.map(lambda idx: _mmd2(x_NxF[idx[0]], y_MxF[idx[1]]), (idx_x_SxB, idx_y_SxB))


def _mmd2_estimates(x_NxF, y_MxF, idx_x_SxB: np.ndarray, idx_y_SxB: np.ndarray) -> np.ndarray:
    """estimates_S in float64: one MMD^2 per pair of index rows, on the device."""
    with jax.enable_x64(True):
        x, y = jnp.asarray(x_NxF, jnp.float64), jnp.asarray(y_MxF, jnp.float64)
        return np.asarray(_mmd2_subsets(x, y, jnp.asarray(idx_x_SxB), jnp.asarray(idx_y_SxB)))


def mmd2_unbiased(x_NxF: np.ndarray, y_MxF: np.ndarray) -> float:
    """The unbiased estimate of MMD^2 with KID's kernel k(x, y) = (x.y / F + 1)^3 (Bińkowski et al. 2018, eq. 3).

    The within-set means leave out the diagonal k(x_i, x_i), so the estimate's
    expectation is 0 for two samples of one distribution (it can be negative).
    Float64.
    """
    n, m = len(x_NxF), len(y_MxF)
    if min(n, m) < 2:
        raise ValueError(f"MMD needs at least 2 feature vectors on each side, got {n} and {m}.")
    return float(_mmd2_estimates(x_NxF, y_MxF, np.arange(n)[None], np.arange(m)[None])[0])


def kid(x_NxF: np.ndarray, y_MxF: np.ndarray, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: (mean, standard deviation) of `mmd2_unbiased` over random subsets of each set.

    Each subset draws `subset_size` vectors of each set without replacement (the
    protocol of Bińkowski et al.: 100 subsets of 1000). The std is the spread of
    one subset's estimate (NumPy's std, ddof 0, as torch-fidelity and clean-fid
    report it), not the standard error of the mean.
    """
    n, m = len(x_NxF), len(y_MxF)
    if not 2 <= subset_size <= min(n, m) or n_subsets < 1:
        raise ValueError(f"KID needs 2 <= subset_size <= {min(n, m)} (the smaller set) and n_subsets >= 1, got {subset_size} and {n_subsets}.")
    rng = np.random.default_rng(seed)
    # Drawn on the host in the order of the original NumPy loop, so the subsets are the same.
    pairs = [(rng.choice(n, subset_size, replace=False), rng.choice(m, subset_size, replace=False)) for _ in range(n_subsets)]
    estimates = _mmd2_estimates(x_NxF, y_MxF, np.stack([i for i, _ in pairs]), np.stack([j for _, j in pairs]))
    return float(np.mean(estimates)), float(np.std(estimates))


def _centred(points_MxD: jax.Array, block: int = 1) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(centre_D, points - centre, their squared norms), padded to whole blocks with points at infinity.

    About the set's mean, ||q||^2 + ||c||^2 - 2 q.c loses less to round-off, and no distance changes.
    """
    centre_D = points_MxD.mean(0)
    c_MxD = points_MxD - centre_D
    pad = -len(c_MxD) % block
    return centre_D, jnp.pad(c_MxD, ((0, pad), (0, 0))), jnp.pad(jnp.sum(c_MxD * c_MxD, 1), (0, pad), constant_values=jnp.inf)


def _sq_distances_M(q_D: jax.Array, c_MxD: jax.Array, c_sq_M: jax.Array) -> jax.Array:
    """Squared distances of one (centred) query to every centred point; vmapped into a matrix product."""
    return jnp.maximum(jnp.sum(q_D * q_D) + c_sq_M - 2.0 * jnp.dot(c_MxD, q_D, precision=_HIGHEST), 0.0)


def _kth_smallest(d_M: jax.Array, k: int) -> jax.Array:
    """The (k+1)-th smallest entry (duplicates counted), from k + 1 min-reductions: XLA:CPU's top_k sorts, 10x slower."""
    value, count = d_M.min(), jnp.sum(d_M <= d_M.min())
    for _ in range(k):
        above = jnp.where(d_M > value, d_M, jnp.inf).min()
        value = jnp.where(count > k, value, above)
        count = jnp.sum(d_M <= value)
    return value


def _block_argmin(d_M: jax.Array, block: int) -> jax.Array:
    """argmin of d_M (len a multiple of `block`): the block of the smallest minimum, then within it.

    Plain min-reductions over the row and an argmin over few entries: XLA:CPU's argmin of a long row is slow.
    """
    d_KxB = d_M.reshape(-1, block)
    best = jnp.argmin(d_KxB.min(1))
    return best * block + jnp.argmin(d_KxB[best])


@functools.partial(jax.jit, static_argnames=("k", "chunk"))
def _knn_radii(x_NxD: jax.Array, k: int, chunk: int) -> jax.Array:
    _, c_NxD, c_sq_N = _centred(x_NxD)
    # Entry k of the sorted distances: entry 0 is the point itself.
    return jax.lax.map(lambda q_D: _kth_smallest(_sq_distances_M(q_D, c_NxD, c_sq_N), k), c_NxD, batch_size=chunk)


@functools.partial(jax.jit, static_argnames="chunk")
def _in_balls(real_NxD: jax.Array, fake_MxD: jax.Array, real_radii_N: jax.Array, fake_radii_M: jax.Array, chunk: int):
    """(fake_in_real_M, real_in_fake_N): whether each point lies in a ball of the other set; one distance matrix serves both."""
    centre_D, c_MxD, c_sq_M = _centred(fake_MxD)
    n, pad = len(real_NxD), -len(real_NxD) % chunk
    q_KxCxD = jnp.pad(real_NxD - centre_D, ((0, pad), (0, 0))).reshape(-1, chunk, real_NxD.shape[1])
    r_KxC = jnp.pad(real_radii_N, (0, pad), constant_values=-1.0).reshape(-1, chunk)  # a padded row's ball holds nothing

    def step(fake_in_real_M, q_and_r):
        q_CxD, r_C = q_and_r
        d_CxM = jax.vmap(_sq_distances_M, (0, None, None))(q_CxD, c_MxD, c_sq_M)
        return fake_in_real_M | jnp.any(d_CxM <= r_C[:, None], 0), jnp.any(d_CxM <= fake_radii_M, 1)

    fake_in_real_M, real_in_fake_KxC = jax.lax.scan(step, jnp.zeros(len(fake_MxD), bool), (q_KxCxD, r_KxC))
    return fake_in_real_M, real_in_fake_KxC.reshape(-1)[:n]


@functools.partial(jax.jit, static_argnames=("chunk", "block"))
def _nearest_distances(x_NxD: jax.Array, y_MxD: jax.Array, chunk: int, block: int = 128) -> jax.Array:
    centre_D, c_MxD, c_sq_M = _centred(y_MxD, block)
    nearest_N = jax.lax.map(lambda q_D: _block_argmin(_sq_distances_M(q_D - centre_D, c_MxD, c_sq_M), block), x_NxD, batch_size=chunk)
    # The distance to the neighbour found, from the difference itself: an exact copy reads 0.
    diff_NxD = x_NxD - y_MxD[nearest_N]
    return jnp.sqrt(jnp.sum(diff_NxD * diff_NxD, 1))


def _f32(x) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def nearest_distances(x_NxD, y_MxD, chunk: int = SEARCH_CHUNK) -> np.ndarray:
    """dist_N: each x's Euclidean distance to its nearest y (NumPy or device arrays), float64.

    The search runs on the device in float32, `chunk` rows of x a step; only the
    distances come back. The centred set `y` is copied once a call: keep it on
    the device when it is searched often.
    """
    return np.asarray(_nearest_distances(_f32(x_NxD), _f32(y_MxD), chunk), np.float64)


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


def _check_k(k: int, n: int) -> None:
    if not 1 <= k < n:
        raise ValueError(f"k = {k} needs more than k points, got {n}.")


def knn_radii(x_NxF, k: int = 3, chunk: int = SEARCH_CHUNK) -> np.ndarray:
    """radii_N: each point's squared distance to its k-th nearest other point of the set (float32 search)."""
    _check_k(k, len(x_NxF))
    return np.asarray(_knn_radii(_f32(x_NxF), k, chunk), np.float64)


def precision_recall(real_NxF, fake_MxF, k: int = 3, chunk: int = SEARCH_CHUNK, real_radii_N=None) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019), searched in float32 on the device.

    precision: the fraction of fake points inside at least one real point's
    k-NN ball (radius: the distance to its k-th nearest real neighbour);
    recall: the fraction of real points inside at least one fake point's ball.
    `real_radii_N`: `knn_radii(real_NxF, k)` when already known (a fixed real set).
    """
    _check_k(k, len(real_NxF))
    _check_k(k, len(fake_MxF))
    real, fake = _f32(real_NxF), _f32(fake_MxF)
    real_radii_N = _knn_radii(real, k, chunk) if real_radii_N is None else _f32(real_radii_N)
    fake_radii_M = _knn_radii(fake, k, chunk)
    fake_in_real_M, real_in_fake_N = _in_balls(real, fake, real_radii_N, fake_radii_M, chunk)
    # Counted on the device, divided in float64 here: a float32 mean would read 0.2 as 0.2000000030.
    return int(fake_in_real_M.sum()) / len(fake_MxF), int(real_in_fake_N.sum()) / len(real_NxF)


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
