"""How stable each segment is: Hennig's clusterboot for K-Means, with plain numpy and sklearn.

For each of ``resamples`` bootstrap resamples of the customers (drawn with replacement), K-Means
is fitted again with the same k on the resample; each original segment, restricted to the
customers in the resample (each counted once), is compared with every new cluster by Jaccard
similarity (shared customers / customers in either), and its best match counts. A segment's
stability is the mean of its best matches over the resamples it has customers in: near 1 when
the same group comes back whatever customers happen to be drawn, low when the fit only cut a
blob where it did by chance (Hennig 2007, "Cluster-wise assessment of cluster stability"; R's
``fpc::clusterboot``). Above ``max_rows`` customers the resamples are drawn from a seeded sample
of that many, so the cost does not grow with the input.
"""

from __future__ import annotations

import warnings

import numpy as np

RESAMPLES = 20  # bootstrap resamples (Hennig: at least 20)
MAX_ROWS = 5_000  # customers the resamples are drawn from (a seeded sample above that)
N_INIT = 2  # k-means++ restarts of each refit
STABLE, FAIRLY_STABLE = 0.85, 0.75  # thresholds of the words (``stability_word``)


def stability_word(score: float) -> str:
    """A stability score in plain words: stable, fairly stable or doubtful."""
    if score >= STABLE:
        return "stable"
    return "fairly stable" if score >= FAIRLY_STABLE else "doubtful"


def stability_note() -> str:
    """What the stability score says, for the report and the run summary."""
    return (
        f"Stability: how well a segment comes back when the fit is repeated on {RESAMPLES} "
        "bootstrap resamples of the customers (the mean Jaccard similarity with its best match, "
        f"0 to 1): stable at {STABLE:g} or more, fairly stable at {FAIRLY_STABLE:g} or more, "
        "doubtful below (a cut the data does not clearly support: act on it with care)."
    )


def segment_stability(
    matrix: np.ndarray,
    labels: np.ndarray,
    k: int,
    *,
    seed: int,
    resamples: int = RESAMPLES,
    max_rows: int = MAX_ROWS,
    n_init: int = N_INIT,
) -> dict[int, float]:
    """Per segment 1..k of ``labels`` (one per row of ``matrix``, the space K-Means works
    in): the mean best Jaccard similarity over bootstrap refits with the same k, in [0, 1];
    0.0 for a segment no resample drew a customer of. Seeded: the same inputs give the same
    scores."""
    rng = np.random.default_rng(seed)
    original = np.asarray(labels, dtype="int64") - 1  # 0..k-1
    if len(matrix) > max_rows:
        rows = np.sort(rng.choice(len(matrix), size=max_rows, replace=False))
        matrix, original = matrix[rows], original[rows]
    total, counted = np.zeros(k), np.zeros(k)
    for b in range(resamples):
        drawn = rng.integers(0, len(matrix), size=len(matrix))
        new = refit_labels(matrix, drawn, k, seed=seed + b, n_init=n_init)
        present = np.unique(drawn)
        best = best_jaccard(original[present], new[present], k)
        seen = ~np.isnan(best)
        total[seen] += best[seen]
        counted[seen] += 1
    scores = np.divide(total, counted, out=np.zeros_like(total), where=counted > 0)
    return {segment + 1: float(score) for segment, score in enumerate(scores)}


def refit_labels(
    matrix: np.ndarray, drawn: np.ndarray, k: int, *, seed: int, n_init: int
) -> np.ndarray:
    """K-Means fitted on the ``drawn`` rows (with repeats); every row's new cluster (0..k-1).
    A resample with fewer distinct rows than k gives fewer clusters: not an error."""
    from sklearn.cluster import KMeans  # ~0.9 s: not for the summaries that only need words
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(matrix[drawn])
    return model.predict(matrix)


def best_jaccard(original: np.ndarray, new: np.ndarray, k: int) -> np.ndarray:
    """For each original segment (0..k-1) the largest Jaccard similarity with a new cluster
    (0..k-1), over the same customers; NaN for a segment with none of them."""
    both = np.zeros((k, k))
    np.add.at(both, (original, new), 1)
    sizes, new_sizes = both.sum(axis=1), both.sum(axis=0)
    union = sizes[:, None] + new_sizes[None, :] - both
    jaccard = np.divide(both, union, out=np.zeros_like(both), where=union > 0)
    return np.where(sizes > 0, jaccard.max(axis=1), np.nan)
