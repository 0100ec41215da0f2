"""Drift since the previous run, per feature and per segment (issue 24): plain numpy and scipy.

``drift_table`` compares the previous run's customers with this run's, feature by feature, in
original units (the clean values a run folder's ``segments.parquet`` holds, before any log1p or
scaling), once over all customers (``segment_id`` null) and once within each segment id present
in either run (ids are stable from run to run, so an id is the same segment on both sides).

**PSI** (population stability index): ``sum((c - p) * ln(c / p))`` over bins, where ``p`` and
``c`` are the shares of the previous and current customers in each bin. The bins are cut at the
previous side's quantiles (deciles by default: 9 inner edges, each a previous value), duplicate
edges removed (a discrete feature gets one bin per value rather than empty bins), the outer bins
open-ended (a current value below the previous minimum or above the previous maximum still lands
in a bin), each bin closed on the right (``(e[i-1], e[i]]``). A text feature is binned by its values
instead (one bin per value seen on either side), with no KS statistic and no means. Missing
values are left out of every figure but the customer counts.

**KS**: the two-sample Kolmogorov-Smirnov statistic (``scipy.stats.ks_2samp``), the largest gap
between the two empirical distribution functions, 0 to 1.

**The small-sample rule.** PSI is biased upwards when nothing changed: two samples of ``n``
and ``m`` customers from the same distribution give about ``(bins - 1) * (1/n + 1/m)`` on
average (measured on seeded normal samples, 10 bins: 0.50 at 50 customers a side, 0.20 at 100,
0.09 at 200: "moderate" to "large" drift from noise alone). So:

- each side needs at least ``MIN_CUSTOMERS`` (100) customers with a value, else ``psi`` and
  ``ks`` are null (the means and counts are still given);
- the number of bins is ``min(10, 1 + floor(0.025 / (1/n + 1/m)))``, at least 2: as many as
  keep the expected PSI of pure noise near ``NOISE_PSI`` (0.025), a quarter of the "moderate"
  threshold (100 customers a side: 2 bins, 200: 3, 400: 6, 720 or more: 10);
- a bin share is floored at ``EPSILON`` (1e-4) before the logarithm, so a bin empty on one side
  counts as a large but finite change (a bin empty on both sides counts 0).

Measured with this rule on seeded normal samples (1,000 draws each): with no change, PSI is
0.020 on average at 100 and 200 customers a side (95th percentile 0.070 and 0.058) and 0.019 at
1,000 (0.037), all below the "moderate" 0.1; a shift of the mean by half a standard deviation
gives 0.18, 0.23 and 0.26 on average.

**Words** (``drift_sentences``): PSI of 0.1 or more is a "moderate" shift and 0.25 or more a
"large" one (the usual PSI conventions). Only features whose PSI reaches the threshold (0.1 by
default), overall or within a segment, are described, the largest PSI first; the size of a
shift in words is the percent change of the mean (against the previous mean's absolute value).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from schemas.columns import SEGMENT_ID

BINS = 10  # deciles of the previous run
MIN_CUSTOMERS = 100  # customers with a value on each side, below which psi and ks are null
NOISE_PSI = 0.025  # the expected PSI of pure noise the number of bins is chosen to stay near
EPSILON = 1e-4  # floor of a bin share before the logarithm
MODERATE_PSI, LARGE_PSI = 0.1, 0.25  # the usual PSI conventions
TOP_FEATURES, TOP_SEGMENTS = 3, 2  # features described, segments named per feature
# customers compared a side, at most: above it a seeded sample, whose sampling moves PSI by about
# 9 * 2 / 200,000 = 0.0001 and KS by under 0.005 (95 %), and keeps the step under a second at 10M
DRIFT_SAMPLE = 200_000
# what the summaries say when no sentence passes: true of groups too small to judge as well
NO_DRIFT = (
    "none (no feature reaches PSI 0.1 overall or within a segment; a segment under "
    f"{MIN_CUSTOMERS} customers on either side is not judged)"
)

COLUMNS = (
    "feature",
    SEGMENT_ID,
    "psi",
    "ks",
    "previous_mean",
    "mean",
    "customers",
    "previous_customers",
)


def psi_bins(previous_count: int, current_count: int, *, bins: int = BINS) -> int:
    """How many bins PSI uses for samples of these sizes: 0 when they are too small to judge
    (fewer than ``MIN_CUSTOMERS`` on a side), else at most ``bins``, fewer for small samples so
    that noise alone gives a PSI near ``NOISE_PSI`` on average."""
    if min(previous_count, current_count) < MIN_CUSTOMERS:
        return 0
    noise_per_bin = 1 / previous_count + 1 / current_count
    return max(2, min(bins, 1 + math.floor(NOISE_PSI / noise_per_bin)))


def bin_edges(previous: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The inner edges of ``bins`` bins at the previous values' quantiles, duplicates removed.

    The quantiles are values of the previous run (the empirical distribution's inverse, no
    interpolation): with bins closed on the right, the bins up to the edge of quantile q hold at
    least a share q of the previous customers, and a discrete feature's edges are its values."""
    values = np.asarray(previous, dtype="float64")
    quantiles = np.quantile(values, np.arange(1, bins) / bins, method="inverted_cdf")
    return np.unique(quantiles)


def psi(
    previous: np.ndarray, current: np.ndarray, *, bins: int = BINS, epsilon: float = EPSILON
) -> float:
    """The population stability index of ``current`` against ``previous`` (numbers, no
    missing values), binned on the previous values' quantiles (``bin_edges``)."""
    edges = bin_edges(previous, bins)
    return _psi_of_counts(_bin_counts(previous, edges), _bin_counts(current, edges), epsilon)


def category_psi(previous: pd.Series, current: pd.Series, *, epsilon: float = EPSILON) -> float:
    """The population stability index of a text feature: one bin per value seen on a side."""
    values = sorted(set(previous.dropna().unique()) | set(current.dropna().unique()), key=str)
    counts = [
        s.value_counts().reindex(values, fill_value=0).to_numpy() for s in (previous, current)
    ]
    return _psi_of_counts(counts[0], counts[1], epsilon)


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # bin i is (edges[i-1], edges[i]]: searchsorted(side="left") puts a value equal to an edge
    # in the bin that edge closes; below the first edge is bin 0, above the last the last bin
    positions = np.searchsorted(edges, np.asarray(values, dtype="float64"), side="left")
    return np.bincount(positions, minlength=len(edges) + 1)


def _psi_of_counts(previous: np.ndarray, current: np.ndarray, epsilon: float) -> float:
    p = np.maximum(previous / previous.sum(), epsilon)
    c = np.maximum(current / current.sum(), epsilon)
    return float(np.sum((c - p) * np.log(c / p)))


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _compare(previous: pd.Series, current: pd.Series) -> dict:
    """One row of the drift table (without feature and segment) from the two sides' values."""
    row: dict = {
        "customers": len(current),
        "previous_customers": len(previous),
        "psi": np.nan,
        "ks": np.nan,
        "previous_mean": np.nan,
        "mean": np.nan,
    }
    before, after = previous.dropna(), current.dropna()
    bins = psi_bins(len(before), len(after))
    if not (_is_numeric(previous) and _is_numeric(current)):
        if bins:
            row["psi"] = category_psi(before, after)
        return row
    p, c = before.to_numpy(dtype="float64"), after.to_numpy(dtype="float64")
    row["previous_mean"] = float(p.mean()) if len(p) else np.nan
    row["mean"] = float(c.mean()) if len(c) else np.nan
    if bins:
        row["psi"] = psi(p, c, bins=bins)
        # only the statistic is used: the asymptotic method skips the exact p-value's cost
        row["ks"] = float(ks_2samp(p, c, method="asymp").statistic)
    return row


def drift_table(
    previous: pd.DataFrame, current: pd.DataFrame, features: Sequence[str]
) -> pd.DataFrame:
    """Drift of each feature between the previous run's customers and this run's.

    Both frames hold one row per customer with the ``features`` (original units) and
    ``segment_id``: this run's segments table, and the previous run's ``segments.parquet`` read
    with those columns (``PreviousRun.assignments`` has no features). Every feature must be a
    column of both (runs whose features changed are not compared, as in ``tasks.identity``).

    One row per feature over all customers (``segment_id`` null), then one per feature and
    segment id present in either run, ids ascending. Columns ``COLUMNS``: feature (text),
    segment_id (Int64), psi, ks, previous_mean, mean (float, NaN when not computed: see the
    module's small-sample rule), customers, previous_customers (int64, the customers of that
    segment in each run).
    """
    ids = sorted(set(previous[SEGMENT_ID].dropna()) | set(current[SEGMENT_ID].dropna()))
    groups: list[tuple[int | None, pd.Series, pd.Series]] = [
        (None, pd.Series(True, index=previous.index), pd.Series(True, index=current.index))
    ]
    groups += [(int(i), previous[SEGMENT_ID] == i, current[SEGMENT_ID] == i) for i in ids]
    rows = [
        {
            "feature": feature,
            SEGMENT_ID: segment,
            **_compare(previous.loc[before, feature], current.loc[after, feature]),
        }
        for feature in features
        for segment, before, after in groups
    ]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.astype(
        {
            "feature": pd.StringDtype(),
            SEGMENT_ID: "Int64",
            "psi": "float64",
            "ks": "float64",
            "previous_mean": "float64",
            "mean": "float64",
            "customers": "int64",
            "previous_customers": "int64",
        }
    )


def psi_level(value: float) -> str | None:
    """A PSI in words: "large" from ``LARGE_PSI``, "moderate" from ``MODERATE_PSI``, else None."""
    if pd.isna(value) or value < MODERATE_PSI:
        return None
    return "large" if value >= LARGE_PSI else "moderate"


def _change(previous_mean: float, mean: float) -> tuple[str, str]:
    """(direction, size) of a change of mean in words: ("up", "12 %"), ("down", "from 0 to 3.2"),
    or ("", "") when the mean is about the same (under 0.5 %) or unknown."""
    if pd.isna(previous_mean) or pd.isna(mean) or mean == previous_mean:
        return "", ""
    direction = "up" if mean > previous_mean else "down"
    if previous_mean == 0:
        return direction, f"from 0 to {mean:.3g}"
    percent = abs(mean - previous_mean) / abs(previous_mean) * 100
    if round(percent) == 0:
        return "", ""
    return direction, f"{percent:.0f} %"


def _where(segment_id: int | None, names: Mapping[int, str]) -> str:
    if segment_id is None:
        return "overall"
    name = names.get(segment_id)
    return f'within Segment {segment_id} ("{name}")' if name else f"within Segment {segment_id}"


def _clause(row: pd.Series, names: Mapping[int, str], said: str | None) -> tuple[str, str | None]:
    """One clause of a feature's sentence and the direction it said. ``said``: the previous
    clause's direction ("up", "down"), None for the first clause or after one with none; the
    direction (and "shifted") is not repeated when it is the same."""
    segment = None if pd.isna(row[SEGMENT_ID]) else int(row[SEGMENT_ID])
    where, figure = _where(segment, names), f"(PSI {row['psi']:.2f})"
    direction, size = _change(row["previous_mean"], row["mean"])
    if direction:
        if direction == said:
            return f"{size} {where} {figure}", direction
        verb = "shifted " if said is None else ""
        return f"{verb}{direction} {size} {where} {figure}", direction
    if pd.isna(row["previous_mean"]) and pd.isna(row["mean"]):
        return f"changed its mix of values {where} {figure}", None
    return f"changed shape {where} with its mean about the same {figure}", None


def drift_sentences(
    drift: pd.DataFrame,
    labels: Mapping[str, str],
    names: Mapping[int, str],
    *,
    threshold: float = MODERATE_PSI,
    top: int = TOP_FEATURES,
) -> list[str]:
    """The features that drifted most since the previous run, in words, one sentence each:
    "Income shifted up 12 % overall (PSI 0.41), 30 % within Segment 2 ("Young savers")
    (PSI 0.30)".

    ``drift`` is a ``drift_table``; ``labels`` the features' readable names (default: the
    column name), ``names`` the segment names by id. A feature is described when its PSI is at
    least ``threshold`` overall or within a segment; the ``top`` features with the largest such
    PSI, largest first, each with its overall change (when it passes) and its ``TOP_SEGMENTS``
    segments of largest PSI. The size of a change is the percent change of the mean.
    """
    passing = drift[drift["psi"].ge(threshold).fillna(False)]
    if passing.empty:
        return []
    order = passing.groupby("feature", sort=False)["psi"].max().sort_values(ascending=False)
    sentences = []
    for feature in order.index[:top]:
        rows = passing[passing["feature"] == feature]
        overall = rows[rows[SEGMENT_ID].isna()]
        within = rows[rows[SEGMENT_ID].notna()].sort_values("psi", ascending=False)
        clauses, said = [], None
        for _, row in pd.concat([overall, within.head(TOP_SEGMENTS)]).iterrows():
            clause, said = _clause(row, names, said)
            clauses.append(clause)
        label = labels.get(feature, feature)
        sentences.append(f"{label[:1].upper()}{label[1:]} {', '.join(clauses)}")
    return sentences


def drift_record(
    drift: pd.DataFrame, labels: Mapping[str, str], names: Mapping[int, str]
) -> dict[str, Any]:
    """What a run's manifest, summaries and report say of its drift: the sentences
    (``drift_sentences``) and each feature's figures over all customers, largest PSI first."""
    overall = drift[drift[SEGMENT_ID].isna()].sort_values("psi", ascending=False)
    features = [
        {
            "feature": str(row.feature),
            "label": labels.get(str(row.feature), str(row.feature)),
            **{
                key: None if pd.isna(value) else round(float(value), 6)
                for key, value in (
                    ("psi", row.psi),
                    ("ks", row.ks),
                    ("previous_mean", row.previous_mean),
                    ("mean", row.mean),
                )
            },
        }
        for row in overall.itertuples()
    ]
    return {"sentences": drift_sentences(drift, labels, names), "features": features}
