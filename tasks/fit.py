"""Final K-Means fit with segment numbers that do not depend on the algorithm's label order."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segmentation:
    """Segment per row (1..k), centroids in the scaled space (row i = segment i + 1)."""

    labels: np.ndarray
    centroids: np.ndarray
    distances: np.ndarray
    inertia: float
    n_iter: int

    @property
    def k(self) -> int:
        return len(self.centroids)


def fit_segments(
    matrix: np.ndarray,
    k: int,
    *,
    seed: int,
    n_init: int,
    max_iter: int = 300,
    init: np.ndarray | None = None,
) -> Segmentation:
    """K-Means (k-means++, ``n_init`` restarts, fixed seed), segments numbered canonically.

    With ``init`` (k x p centroids, e.g. from a fit on a sample) Lloyd's iterations start
    there, once: the way a large customer base is fitted on all rows after a sampled sweep.
    """
    if k > len(matrix):
        raise ValueError(f"n_samples={len(matrix)} should be >= n_clusters={k}.")
    start = "k-means++" if init is None else np.asarray(init, dtype="float64")
    model = KMeans(
        n_clusters=k,
        init=start,
        n_init=n_init if init is None else 1,
        max_iter=max_iter,
        random_state=seed,
    ).fit(matrix)
    order = canonical_order(model.cluster_centers_)
    rank = np.empty(k, dtype="int64")
    rank[order] = np.arange(k)
    labels = rank[model.labels_] + 1
    centroids = model.cluster_centers_[order]
    distances = row_lengths(matrix - centroids[labels - 1])
    log.info(
        "Fitted K-Means with k=%d: inertia %.4g after %d iterations",
        k,
        model.inertia_,
        model.n_iter_,
    )
    return Segmentation(labels, centroids, distances, float(model.inertia_), int(model.n_iter_))


def row_lengths(rows: np.ndarray) -> np.ndarray:
    """The Euclidean length of each row. A row whose squares overflow (values above ~1e154,
    which valid but huge inputs give under the robust scaler) is measured with ``hypot``,
    which scales instead of squaring; the others as ``np.linalg.norm`` measures them."""
    with np.errstate(over="ignore"):
        lengths = np.linalg.norm(rows, axis=1)
    overflow = ~np.isfinite(lengths)
    if overflow.any():
        lengths[overflow] = np.hypot.reduce(rows[overflow], axis=1)
    return lengths


def canonical_order(centroids: np.ndarray, decimals: int = 6) -> np.ndarray:
    """Centroid indices sorted by first feature, then the next (rounded, so ties are stable)."""
    rounded = np.round(centroids, decimals)
    return np.lexsort(rounded.T[::-1])


def sweep_rows(matrix: np.ndarray, threshold: int, size: int, seed: int) -> np.ndarray:
    """The rows the elbow sweep fits: all of them, or above ``threshold`` rows a seeded random
    sample of ``size`` rows (in their order; the same sample for the same seed)."""
    if len(matrix) <= max(threshold, size):
        return matrix
    rows = np.random.default_rng(seed).choice(len(matrix), size=size, replace=False)
    return matrix[np.sort(rows)]


def fit_final(
    matrix: np.ndarray, sample: np.ndarray, k: int, *, seed: int, n_init: int
) -> Segmentation:
    """The run's K-Means on all rows; when the sweep's ``sample`` (``sweep_rows``) is fewer
    rows, the ``n_init`` restarts run on it and one fit on all rows starts from its centroids."""
    init = None
    if len(sample) < len(matrix):
        init = fit_segments(sample, k, seed=seed, n_init=n_init).centroids
    return fit_segments(matrix, k, seed=seed, n_init=n_init, init=init)
