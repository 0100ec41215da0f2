"""What sets each segment apart, in numbers and in words (the segment's name, the sentence of
its card and ``profiles.parquet``'s ``summary``, all from one ranking).

Pure functions over a run's profiles table (per segment: size, share, ``<column>_mean``,
``<column>_median``, ``<column>_<value>_share``), the spread of all customers (median and
standard deviation per numeric column, ``population_spread``) and the features' effect sizes
(``effects``: each segment's distance from all customers on the scale the clustering used).
Works for any table: every numeric column with a mean and median is compared (features and
numeric profile columns such as the Mall's age); every column with shares (a category, a 0/1
flag) is described by the share of each value in the segment and overall.

- **index**: the segment's mean as a percentage of the mean of all customers (100 = average);
  undefined (None) when the overall mean is not positive (a column with negative values), where
  a ratio does not read as "x times".
- **z**: how many standard deviations of all customers the segment lies from them: for a
  feature on the scale the clustering used (``log1p`` for a log-transformed column, where a few
  extreme customers do not dominate), for a profile column (segment mean - overall mean) /
  overall standard deviation; for a value of a category the z of its 0/1 indicator,
  (segment share - overall share) / sqrt(p (1 - p)).
- **level** (the words): "high" when the mean is at least 1.25x the average (index >= 125), or
  at least 10 % above it and z >= 0.5; "low" likewise below (index <= 80, or <= 90 and
  z <= -0.5); else "about average". So "about average" is never said of a mean more than 25 %
  away from the average, and "high" never of a mean below it.
- **ranking**: with up to three numeric features all are named (in table order); with more, the
  three with the largest |z| among those not about average; when every one of them is high (or
  low), the name says "High on every feature" and the sentence names the three most apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.table import ColumnPlan

HIGH_INDEX = 125.0  # a mean at least 1.25x the average is "high"
LOW_INDEX = 80.0  # a mean at most 0.8x the average is "low"
CLEAR_Z = 0.5  # or: this many standard deviations away (on the clustering's scale) ...
CLEAR_INDEX = 10.0  # ... with the mean at least this many percent off the average
TIMES_FROM = 1.5  # ratios from here up read "2.3x the average"; below, in percent
MAX_NAMED = 3  # with more numeric features, the name and the sentence say the most distinctive
MAJORITY = 0.65  # share of one value of a categorical feature to call a segment "mostly ..."
TYPICAL = 5  # typical customers shown per segment
LOW, AVERAGE, HIGH = 0, 1, 2


@dataclass(frozen=True)
class Difference:
    """One numeric column of one segment against all customers."""

    column: str
    label: str  # for reading, e.g. "income"
    feature: bool  # clustered on (else a profile column)
    mean: float
    median: float
    overall_mean: float
    overall_median: float
    index: float | None  # 100 = the average; None when the overall mean is not positive
    z: float
    unit: str | None = None  # e.g. "k$", shown in tables


@dataclass(frozen=True)
class Share:
    """One value of a category or 0/1 flag: its share in the segment and overall."""

    column: str
    label: str
    value: str
    feature: bool
    share: float
    overall: float
    z: float


def population_spread(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Median and population standard deviation (ddof 0) of each numeric column of all
    customers (or of a seeded sample of them), missing values left out; index: column. Column
    by column on NumPy views: a 10M-row frame is not copied."""
    spread = [_median_and_std(frame[c]) for c in columns]
    return pd.DataFrame(spread, columns=["median", "std"], index=pd.Index(columns, dtype=object))


def _median_and_std(values: pd.Series) -> tuple[float, float]:
    x = values.to_numpy(dtype="float64", na_value=np.nan)
    missing = np.isnan(x)
    if missing.any():
        x = x[~missing]
    if not len(x):
        return math.nan, math.nan
    return float(np.median(x)), float(x.std())


def overall_means(profiles: pd.DataFrame, columns: list[str]) -> pd.Series:
    """The mean of all customers from the segments' means, weighted by size (exact)."""
    weights = profiles["size"].to_numpy(dtype="float64")
    return pd.Series(
        {c: _weighted(profiles[c].to_numpy(dtype="float64"), weights) for c in columns},
        dtype="float64",
    )


def _weighted(values: np.ndarray, weights: np.ndarray) -> float:
    present = ~np.isnan(values)
    if not present.any():
        return math.nan
    return float(np.average(values[present], weights=weights[present]))


def compared_columns(profiles: pd.DataFrame, table: ColumnPlan) -> tuple[list[str], list[str]]:
    """(numeric columns compared by mean and median, columns described by shares): a 0/1 flag
    has both a mean and shares in the profiles, and is described by its shares."""
    shared = [c.name for c in table.columns if share_columns(profiles, c.name, table)]
    numeric = [
        c.name
        for c in table.columns
        if c.numeric and c.name not in shared and f"{c.name}_mean" in profiles.columns
    ]
    return numeric, shared


def share_columns(profiles: pd.DataFrame, column: str, table: ColumnPlan) -> list[str]:
    """The profiles' ``<column>_<value>_share`` columns of ``column``. A share column belongs
    to the longest column name it starts with: ``spend_web_1_share`` is a value of
    ``spend_web``, not of ``spend``."""
    prefix = f"{column}_"
    longer = [f"{c}_" for c in table.names if c != column and c.startswith(prefix)]
    return [
        name
        for name in profiles.columns
        if name.startswith(prefix)
        and name.endswith("_share")
        and len(name) > len(prefix) + len("_share")
        and not any(name.startswith(other) for other in longer)
    ]


def differences(
    profiles: pd.DataFrame,
    spread: pd.DataFrame | None,
    table: ColumnPlan,
    effects: pd.DataFrame | None = None,
) -> dict[int, list[Difference]]:
    """Per segment id: every numeric column compared with all customers, in table order.
    ``effects`` (segment id x column): the z of the columns it has (the features, on the
    clustering's scale); other columns get (mean - overall mean) / the spread's std.
    ``spread`` None: only the columns of ``effects`` (overall medians unknown)."""
    numeric, _ = compared_columns(profiles, table)
    if spread is None:
        numeric = [c for c in numeric if effects is not None and c in effects.columns]
    means = overall_means(profiles, [f"{c}_mean" for c in numeric])
    result: dict[int, list[Difference]] = {}
    for row in profiles.to_dict(orient="records"):
        segment_id = int(row["segment_id"])
        rows = []
        for name in numeric:
            column = table.column(name)
            mean, overall = float(row[f"{name}_mean"]), float(means[f"{name}_mean"])
            if effects is not None and name in effects.columns:
                z = float(effects.at[segment_id, name])
            else:
                std = float(spread.at[name, "std"]) if spread is not None else 0.0
                z = (mean - overall) / std if std > 0 and mean == mean else 0.0
            rows.append(
                Difference(
                    column=name,
                    label=column.label,
                    unit=column.unit,
                    feature=column.role == "feature",
                    mean=mean,
                    median=float(row[f"{name}_median"]),
                    overall_mean=overall,
                    overall_median=(
                        float(spread.at[name, "median"]) if spread is not None else math.nan
                    ),
                    index=100.0 * mean / overall if overall > 0 and mean == mean else None,
                    z=z if math.isfinite(z) else 0.0,
                )
            )
        result[segment_id] = rows
    return result


def shares(profiles: pd.DataFrame, table: ColumnPlan) -> dict[int, list[Share]]:
    """Per segment id: the share of every value of every category and 0/1 flag, with the
    share among all customers, in table order."""
    _, shared = compared_columns(profiles, table)
    cells = {name: share_columns(profiles, name, table) for name in shared}
    overall = overall_means(profiles, [cell for names in cells.values() for cell in names])
    result: dict[int, list[Share]] = {}
    for row in profiles.to_dict(orient="records"):
        rows = []
        for name, columns in cells.items():
            column = table.column(name)
            for cell in columns:
                p, q = float(row[cell]), float(overall[cell])
                spread = math.sqrt(q * (1 - q))
                rows.append(
                    Share(
                        column=name,
                        label=column.label,
                        value=cell[len(name) + 1 : -len("_share")],
                        feature=column.role == "feature",
                        share=p,
                        overall=q,
                        z=(p - q) / spread if spread > 0 else 0.0,
                    )
                )
        result[int(row["segment_id"])] = rows
    return result


def level(item: Difference) -> int:
    """``LOW``, ``AVERAGE`` or ``HIGH``: the word for a segment's mean (module docstring)."""
    z, index = item.z, item.index
    if index is None:  # no ratio: standard deviations only
        return LOW if z <= -CLEAR_Z else HIGH if z >= CLEAR_Z else AVERAGE
    if index >= HIGH_INDEX or (index >= 100 + CLEAR_INDEX and z >= CLEAR_Z):
        return HIGH
    if index <= LOW_INDEX or (index <= 100 - CLEAR_INDEX and z <= -CLEAR_Z):
        return LOW
    return AVERAGE


@dataclass(frozen=True)
class Portrait:
    """What sets one segment apart, ranked: the numeric features its name and sentence say,
    and the values of categorical features that hold most of it."""

    numbers: list[Difference]
    majorities: list[Share]
    every_feature_average: bool  # more than MAX_NAMED numeric features, none named
    has_categories: bool
    every_feature: int | None = None  # more than MAX_NAMED numeric features, all HIGH (or LOW)


def portrait(
    numbers: list[Difference], categories: list[Share], max_named: int = MAX_NAMED
) -> Portrait:
    """The segment's ranking (features only: the words explain the clustering)."""
    features = [d for d in numbers if d.feature]
    if len(features) <= max_named:
        named = features
    else:
        apart = [d for d in features if level(d) != AVERAGE]
        named = sorted(apart, key=lambda d: -abs(d.z))[:max_named]
    best: dict[str, Share] = {}
    for share in (s for s in categories if s.feature):
        if share.column not in best or share.share > best[share.column].share:
            best[share.column] = share
    majorities = [s for s in best.values() if s.share >= MAJORITY]
    levels = {level(d) for d in features}
    every = levels.pop() if len(features) > max_named and len(levels) == 1 else None
    return Portrait(
        named,
        majorities,
        bool(features) and not named,
        bool(best),
        every if every != AVERAGE else None,
    )


def segment_name(picture: Portrait, words: dict[str, tuple[str, str, str]]) -> str | None:
    """The name: "Low income, high spending", "High BALANCE, high PURCHASES, mostly PhD";
    ``words`` per column: its low / average / high words. None: nothing to say."""
    parts = [words[d.column][level(d)] for d in picture.numbers]
    if picture.every_feature is not None:  # "High on every feature", not three of them
        parts = [f"{'high' if picture.every_feature == HIGH else 'low'} on every {_which(picture)}"]
    if picture.every_feature_average and not picture.majorities:
        parts = [f"close to average on every {_which(picture)}"]
    for share in picture.majorities:  # "mostly phd"; a code: "mostly Channel 2"
        value = share.value
        parts.append(f"mostly {f'{share.label} {value}' if _is_number(value) else value.lower()}")
    if not parts:
        return None
    name = ", ".join(parts)
    return name[0].upper() + name[1:]


def phrase(item: Difference | Share) -> str:
    """One difference in words, as its level says: "income 2.3x the average", "spending score
    40% below average", "age about average"; a category's value with its numbers: "gender: 80%
    Female (56% overall)", a code's "Channel 2: 90% (30% overall)"."""
    if isinstance(item, Share):
        if _is_number(item.value):  # a code: "Channel 2: 90% (30% overall)"
            return f"{item.label} {item.value}: {item.share:.0%} ({item.overall:.0%} overall)"
        return f"{item.label}: {item.share:.0%} {item.value} ({item.overall:.0%} overall)"
    said = level(item)
    if said == AVERAGE:
        return f"{item.label} about average"
    side = "above" if said == HIGH else "below"
    if item.index is None:  # no ratio: say it in standard deviations
        return f"{item.label} {abs(item.z):.1f} SD {side} average"
    ratio = item.index / 100
    if ratio >= TIMES_FROM:
        return f"{item.label} {ratio:.1f}x the average"
    return f"{item.label} {round(abs(ratio - 1) * 100)}% {side} average"


def summary(picture: Portrait) -> str:
    """The card's sentence: the name's features, in the name's order, with their numbers."""
    items: list[Difference | Share] = [*picture.numbers, *picture.majorities]
    parts = [phrase(item) for item in items]
    if picture.every_feature_average:
        parts.insert(
            0,
            f"close to average on every {_which(picture)} (each mean between "
            f"{LOW_INDEX / 100:g} and {HIGH_INDEX / 100:g} times the average of all customers)",
        )
    if not parts:
        return "No feature to compare."
    text = ", ".join(parts)
    if picture.every_feature is not None:
        side = "high" if picture.every_feature == HIGH else "low"
        text = f"{side} on every {_which(picture)}; most apart: {text}"
    return text[0].upper() + text[1:] + "."


def _which(picture: Portrait) -> str:
    return "numeric feature" if picture.has_categories else "feature"


def how_to_read() -> str:
    """The report's note on the cards' numbers and words (this module's rules, said once)."""
    return (
        "Index: the segment's mean as a percentage of the mean of all customers (100 = "
        "average). z: how many standard deviations of all customers the segment lies from "
        "them; for a feature on the scale the clustering used (after log1p for a skewed "
        "column, so a few extreme customers do not dominate), for a profile column in its "
        f"own units. The words: high when the index is at least {HIGH_INDEX:g}, or at least "
        f"{100 + CLEAR_INDEX:g} with z at least {CLEAR_Z:g}; low when it is at most "
        f"{LOW_INDEX:g}, or at most {100 - CLEAR_INDEX:g} with z at most -{CLEAR_Z:g}; "
        "otherwise about average (so within 25 % of the average). The name and the sentence "
        f"say the same features in the same order: every feature when there are up to "
        f"{MAX_NAMED}, else the {MAX_NAMED} furthest from average (largest |z|) that are not "
        'about average ("high on every feature" when all of them are high, and likewise '
        "low); a categorical feature's value when it holds at least "
        f"{MAJORITY:.0%} of the segment."
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def typical_customers(
    ids: pd.Series | np.ndarray, labels: np.ndarray, distances: np.ndarray, n: int = TYPICAL
) -> dict[int, list[tuple[str, float]]]:
    """Per segment id: the ``n`` customers closest to the centroid (id, distance), closest
    first; ties broken by position. Linear in the number of customers (no full sort), and
    only the chosen ids are read out of ``ids`` (10M text ids are never all converted)."""
    ids = ids if isinstance(ids, pd.Series) else pd.Series(ids)
    labels = np.asarray(labels)
    distances = np.asarray(distances, dtype="float64")
    result: dict[int, list[tuple[str, float]]] = {}
    for segment_id in sorted(pd.unique(labels)):
        where = np.flatnonzero(labels == segment_id)
        if len(where) > n:
            where = where[np.argpartition(distances[where], n - 1)[:n]]
        where = where[np.lexsort((where, distances[where]))]
        chosen = ids.iloc[where]
        result[int(segment_id)] = [
            (str(i), float(d)) for i, d in zip(chosen, distances[where], strict=True)
        ]
    return result
