"""Elbow sweep over k and the rule that picks k (Kneedle knee, bounds, or a fixed k)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from threadpoolctl import threadpool_limits

from schemas.outputs import Elbow
from tasks.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KChoice:
    """The chosen k, the rule that chose it and why, and where the knee was (if any)."""

    k: int
    rule: str
    reason: str
    knee: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def sweep_k(
    matrix: np.ndarray,
    k_values: range | list[int],
    *,
    seed: int,
    n_init: int,
    silhouette_sample: int,
    n_jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Fit K-Means for each k and record inertia and cluster-quality metrics.

    k values above the number of distinct points are skipped (K-Means cannot fit them).
    Silhouette is computed on a seeded sample of at most ``silhouette_sample`` rows.
    ``n_jobs != 1`` fits k values in parallel threads (-1: all cores), one OpenMP thread each.
    ``progress(done, total)`` is called after each k is fitted.
    """
    ks = sweepable_k_values(matrix, k_values)
    fits = (
        delayed(metrics_for_k)(
            matrix, k, seed=seed, n_init=n_init, silhouette_sample=silhouette_sample
        )
        for k in ks
    )
    rows = []
    with threadpool_limits(1 if n_jobs != 1 else None):
        for row in Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(fits):
            rows.append(row)
            if progress is not None:
                progress(len(rows), len(ks))
    elbow = elbow_table(rows)
    log.info("Elbow sweep over k=%d..%d on %d customers", ks[0], ks[-1], len(matrix))
    return elbow


def _count_distinct(matrix: np.ndarray, cap: int = 1_000) -> int:
    """Number of distinct rows, counted exactly up to ``cap`` (enough to bound k)."""
    head = matrix[: cap * 100]
    distinct = len(np.unique(head, axis=0))
    if distinct >= cap or len(head) == len(matrix):
        return distinct
    return len(np.unique(matrix, axis=0))


def metrics_for_k(
    matrix: np.ndarray, k: int, *, seed: int, n_init: int, silhouette_sample: int
) -> dict[str, float]:
    """One k of the sweep: K-Means inertia, silhouette (on a sample) and the other scores."""
    model = KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed).fit(matrix)
    labels = model.labels_
    counts = np.bincount(labels, minlength=k)
    row = {
        "k": k,
        "inertia": float(model.inertia_),
        "silhouette": np.nan,
        "calinski_harabasz": np.nan,
        "davies_bouldin": np.nan,
        "min_share": float(counts.min() / len(labels)),
    }
    if 2 <= len(np.unique(labels)) < len(matrix):
        sample = min(silhouette_sample, len(matrix))
        row["silhouette"] = float(
            silhouette_score(matrix, labels, sample_size=sample, random_state=seed)
        )
        row["calinski_harabasz"] = float(calinski_harabasz_score(matrix, labels))
        row["davies_bouldin"] = float(davies_bouldin_score(matrix, labels))
    return row


def find_knee(elbow: pd.DataFrame) -> int | None:
    """The knee of the inertia curve by Kneedle, or None if there is none.

    Kneedle runs on log(inertia): the knee is where the *relative* drop in within-segment
    variance levels off. On raw inertia Kneedle favours small k whenever the first splits are
    large (make_blobs with 4 or 5 centres gives 3); on the log curve it finds them, and the Mall
    data and the default customers still give 5. A "knee" at either end of the swept range is
    no knee (a curve with no bend, like a straight line, puts it there).
    """
    if len(elbow) < 3:
        return None
    inertia = elbow["inertia"].to_numpy(dtype="float64")
    floor = max(float(inertia.max()) * 1e-12, np.finfo("float64").tiny)
    ks = elbow["k"].to_numpy()
    knee = kneedle(ks, np.log(np.maximum(inertia, floor)))
    if knee is None or knee in (ks.min(), ks.max()):
        return None
    return int(knee)


def kneedle(x: np.ndarray, y: np.ndarray, sensitivity: float = 1.0) -> float | None:
    """The knee of a convex, decreasing curve by Kneedle (Satopaa et al., 2011), offline, on
    the points as given: the x of the first local maximum of the difference curve after which
    the difference drops below that maximum minus ``sensitivity`` times the mean x step (all
    normalised to [0, 1]), before a local minimum resets the search; None if there is none.

    The same result as ``kneed.KneeLocator(x, y, S=sensitivity, curve="convex",
    direction="decreasing", interp_method="interp1d").knee`` (a test compares them on random
    curves), without its imports: kneed pulls in ``scipy.signal`` and ``matplotlib.pyplot``,
    about half the time ``segment run`` spent importing."""
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):  # a flat curve has no knee: NaNs
        x_norm = _normalise(x)
        y_norm = _normalise(y)
    difference = (y_norm.max() - y_norm) - x_norm  # flipped to concave, increasing
    before = np.concatenate([difference[:1], difference[:-1]])  # edges compare to themselves
    after = np.concatenate([difference[1:], difference[-1:]])
    maxima = np.flatnonzero((difference >= before) & (difference >= after))
    minima = set(np.flatnonzero((difference <= before) & (difference <= after)).tolist())
    if maxima.size == 0:
        return None
    thresholds = difference[maxima] - sensitivity * abs(np.diff(x_norm).mean())
    peaks = dict(zip(maxima.tolist(), thresholds.tolist(), strict=True))
    threshold, peak, searching = 0.0, int(maxima[0]), True
    for i in range(int(maxima[0]), len(x) - 1):
        if i in peaks:
            threshold, peak, searching = peaks[i], i, True
        if i in minima:
            threshold, searching = 0.0, False
        if searching and difference[i + 1] < threshold:
            return float(x[peak])
    return None


def _normalise(values: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1] by the smallest and largest value as Python's ``min``/``max`` see them
    (as kneed does): with a NaN among the values (an inertia that overflowed) they skip it
    unless it comes first, where numpy's would make every value NaN."""
    low, high = min(values), max(values)  # kneed's semantics, on purpose
    return (values - low) / (high - low)


def choose_k(
    elbow: pd.DataFrame,
    *,
    fixed_k: int | None = None,
    k_min: int | None = None,
    k_max: int | None = None,
    min_segment_share: float,
    previous_k: int | None = None,
    k_margin: float,
    share_name: str = "min_segment_share",
) -> KChoice:
    """Pick k: a fixed k if set; else the knee if it is allowed; else the best allowed silhouette.

    Allowed k: 2 <= k_min <= k <= k_max, with every segment at least ``min_segment_share``
    of the customers at that k. With ``previous_k`` (the previous run's k) the rule's k
    replaces it only when its silhouette is higher by at least ``k_margin``, so k does not
    flip from night to night on noise. ``share_name``: the setting ``min_segment_share``
    comes from, named in the reason when it rules the knee out.
    """
    choice = _rule_choice(elbow, fixed_k, k_min, k_max, min_segment_share, share_name)
    if choice.rule == "fixed" or previous_k is None or previous_k == choice.k:
        return choice
    return _keep_previous_unless_better(
        elbow, choice, previous_k, k_min, k_max, min_segment_share, k_margin
    )


def choose_k_within_gate(
    elbow: pd.DataFrame,
    *,
    gate_min_segment_share: float | None,
    min_segment_share: float,
    **rule: object,
) -> KChoice:
    """``choose_k`` that also respects the smallest-segment quality gate, so the rule never
    picks a k the gate then rejects. When no k meets the gate, the rule runs on its own bounds
    and the gate reports the breach (exit 4, naming the gate) rather than the rule. The
    reason names the gate when its threshold, not the rule's own, ruled the knee out."""
    share = max(min_segment_share, gate_min_segment_share or 0.0)
    name = "the min_segment_share gate" if share > min_segment_share else "min_segment_share"
    try:
        return choose_k(elbow, min_segment_share=share, share_name=name, **rule)  # type: ignore[arg-type]
    except InputError:
        if share == min_segment_share:
            raise
    return choose_k(elbow, min_segment_share=min_segment_share, **rule)  # type: ignore[arg-type]


def _keep_previous_unless_better(
    elbow: pd.DataFrame,
    choice: KChoice,
    previous_k: int,
    k_min: int | None,
    k_max: int | None,
    min_segment_share: float,
    k_margin: float,
) -> KChoice:
    allowed = _allowed(elbow, k_min, k_max, min_segment_share)
    if previous_k not in set(allowed["k"]):
        return choice
    silhouette = elbow.set_index("k")["silhouette"]
    new, old = silhouette.get(choice.k), silhouette.get(previous_k)
    if pd.notna(new) and pd.notna(old) and new - old >= k_margin - 1e-9:
        return KChoice(
            choice.k,
            choice.rule,
            f"{choice.reason}; replaces the previous k={previous_k} (silhouette {new:.3f} vs "
            f"{old:.3f}, margin {k_margin})",
            choice.knee,
        )
    return KChoice(
        previous_k,
        "previous-k",
        f"{choice.rule} rule suggests k={choice.k}, but its silhouette ({_fmt(new)}) does not "
        f"beat the previous k={previous_k} ({_fmt(old)}) by the margin {k_margin}",
        choice.knee,
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.3f}"


def _allowed(
    elbow: pd.DataFrame, k_min: int | None, k_max: int | None, min_segment_share: float
) -> pd.DataFrame:
    low, high = _bounds(elbow, k_min, k_max)
    return elbow[
        (elbow["k"] >= low) & (elbow["k"] <= high) & (elbow["min_share"] >= min_segment_share)
    ]


def _bounds(elbow: pd.DataFrame, k_min: int | None, k_max: int | None) -> tuple[int, int]:
    return max(2, k_min or 2), (k_max if k_max is not None else int(elbow["k"].max()))


def _rule_choice(
    elbow: pd.DataFrame,
    fixed_k: int | None,
    k_min: int | None,
    k_max: int | None,
    min_segment_share: float,
    share_name: str = "min_segment_share",
) -> KChoice:
    knee = find_knee(elbow)
    if fixed_k is not None:
        if fixed_k not in set(elbow["k"]):
            raise InputError(
                f"k={fixed_k} cannot be fitted: the sweep covered k={_span(elbow['k'])} "
                "(k must not exceed the number of distinct customers)"
            )
        return KChoice(fixed_k, "fixed", f"k={fixed_k} fixed by settings", knee)

    low, high = _bounds(elbow, k_min, k_max)
    allowed = _allowed(elbow, k_min, k_max, min_segment_share)
    span = f"k >= {low}" if k_max is None else f"k in {low}..{high}"
    limits = f"{span} with every segment >= {min_segment_share:.0%} of customers"
    if allowed.empty:
        raise InputError(
            f"no k satisfies the settings ({limits}); the sweep could fit only "
            f"k={_span(elbow['k'])} (k cannot exceed the number of distinct customers)"
        )
    if knee is not None and knee in set(allowed["k"]):
        return KChoice(knee, "elbow", f"Kneedle knee of the inertia curve at k={knee}", knee)

    scored = allowed.dropna(subset=["silhouette"])
    if scored.empty:
        k = int(allowed["k"].min())
        return KChoice(
            k, "smallest-allowed", f"no knee or silhouette; smallest allowed k={k}", knee
        )
    best = scored.loc[scored["silhouette"].idxmax()]
    k = int(best["k"])
    why = (
        "no knee in the inertia curve"
        if knee is None
        else _why_not(knee, elbow, low, high, min_segment_share, share_name)
    )
    return KChoice(
        k, "silhouette", f"{why}; best silhouette {best['silhouette']:.3f} at k={k}", knee
    )


def _why_not(
    knee: int, elbow: pd.DataFrame, low: int, high: int, threshold: float, share_name: str
) -> str:
    """Why the knee is not an allowed k: outside the bounds, or a segment too small (below
    the setting ``share_name``, at ``threshold``)."""
    if not low <= knee <= high:
        return f"knee k={knee} is outside k={low}..{high}"
    share = float(elbow.loc[elbow["k"] == knee, "min_share"].iloc[0])
    return (
        f"knee k={knee} has a segment of {share:.1%} of customers, below "
        f"{share_name} ({threshold:.1%})"
    )


def _span(ks: pd.Series) -> str:
    return f"{int(ks.min())}..{int(ks.max())}" if len(ks) else "(none)"


def sweepable_k_values(matrix: np.ndarray, k_values: range | list[int]) -> list[int]:
    """The k values K-Means can fit on ``matrix`` (at most its number of distinct points)."""
    distinct = _count_distinct(matrix)
    ks = [k for k in k_values if 1 <= k <= distinct]
    if not ks:
        raise InputError(
            f"cannot sweep k={_span(pd.Series(list(k_values)))}: the customers have only "
            f"{distinct} distinct point(s) in the features, and k cannot exceed that"
        )
    return ks


def elbow_table(rows: list[dict[str, float]]) -> pd.DataFrame:
    """The sweep's rows (one per k, from fits run anywhere) as a validated Elbow table."""
    return Elbow.validate(pd.DataFrame(rows).sort_values("k", ignore_index=True))
