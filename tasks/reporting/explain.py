"""What sets each segment apart, in numbers and in one sentence (for the HTML report).

Pure functions over a run's profiles table (per segment: size, share, ``<column>_mean``,
``<column>_median``, ``<column>_<value>_share``) and the spread of all customers (median and
standard deviation per numeric column, ``population_spread``). Works for any table: every
numeric column with a mean and median is compared (features and numeric profile columns such
as the Mall's age); every column with shares (a category, a 0/1 flag) is described by the share
of each value in the segment and overall.

- **index**: the segment's mean as a percentage of the mean of all customers (100 = average);
  undefined (None) when the overall mean is not positive (a column with negative values), where
  a ratio does not read as "x times".
- **z**: (segment mean - overall mean) / overall standard deviation; for a value of a category
  the z of its 0/1 indicator, (segment share - overall share) / sqrt(p (1 - p)), so numbers
  and categories are ranked on one scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.table import Table

ABOUT_AVERAGE_Z = 0.25  # |z| below this reads "about average"
TIMES_FROM = 1.5  # ratios from here up read "2.3x the average"; below, in percent
LARGEST = 3  # differences said in the sentence
TYPICAL = 5  # typical customers shown per segment


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


def compared_columns(profiles: pd.DataFrame, table: Table) -> tuple[list[str], list[str]]:
    """(numeric columns compared by mean and median, columns described by shares): a 0/1 flag
    has both a mean and shares in the profiles, and is described by its shares."""
    shared = [c.name for c in table.columns if share_columns(profiles, c.name, table)]
    numeric = [
        c.name
        for c in table.columns
        if c.numeric and c.name not in shared and f"{c.name}_mean" in profiles.columns
    ]
    return numeric, shared


def share_columns(profiles: pd.DataFrame, column: str, table: Table) -> list[str]:
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
    profiles: pd.DataFrame, spread: pd.DataFrame, table: Table
) -> dict[int, list[Difference]]:
    """Per segment id: every numeric column compared with all customers, in table order."""
    numeric, _ = compared_columns(profiles, table)
    means = overall_means(profiles, [f"{c}_mean" for c in numeric])
    result: dict[int, list[Difference]] = {}
    for row in profiles.to_dict(orient="records"):
        rows = []
        for name in numeric:
            column = table.column(name)
            mean, overall = float(row[f"{name}_mean"]), float(means[f"{name}_mean"])
            std = float(spread.at[name, "std"])
            rows.append(
                Difference(
                    column=name,
                    label=column.label,
                    unit=column.unit,
                    feature=column.role == "feature",
                    mean=mean,
                    median=float(row[f"{name}_median"]),
                    overall_mean=overall,
                    overall_median=float(spread.at[name, "median"]),
                    index=100.0 * mean / overall if overall > 0 and mean == mean else None,
                    z=(mean - overall) / std if std > 0 and mean == mean else 0.0,
                )
            )
        result[int(row["segment_id"])] = rows
    return result


def shares(profiles: pd.DataFrame, table: Table) -> dict[int, list[Share]]:
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


def largest(
    numbers: list[Difference], categories: list[Share], n: int = LARGEST
) -> list[Difference | Share]:
    """The ``n`` features that set a segment apart most (largest |z|): numeric features, and
    per categorical feature its value with the largest |z|. Profile columns are left out: the
    sentence explains the clustering."""
    by_column: dict[str, Share] = {}
    for share in (s for s in categories if s.feature):
        if share.column not in by_column or abs(share.z) > abs(by_column[share.column].z):
            by_column[share.column] = share
    candidates = [d for d in numbers if d.feature] + list(by_column.values())
    return sorted(candidates, key=lambda item: -abs(item.z))[:n]


def phrase(item: Difference | Share) -> str:
    """One difference in words: "income 2.3x the average", "spending score 40% below
    average", "age about average", "gender: 80% Female (56% overall)", "gender as among all
    customers"."""
    if isinstance(item, Share):
        if abs(item.z) < ABOUT_AVERAGE_Z:
            return f"{item.label} as among all customers"
        return f"{item.label}: {item.share:.0%} {item.value} ({item.overall:.0%} overall)"
    if abs(item.z) < ABOUT_AVERAGE_Z:
        return f"{item.label} about average"
    if item.index is None:  # no ratio: say it in standard deviations
        side = "above" if item.z > 0 else "below"
        return f"{item.label} {abs(item.z):.1f} SD {side} average"
    ratio = item.index / 100
    if ratio >= TIMES_FROM:
        return f"{item.label} {ratio:.1f}x the average"
    percent = round(abs(ratio - 1) * 100)
    if percent == 0:
        return f"{item.label} about average"
    return f"{item.label} {percent}% {'above' if ratio > 1 else 'below'} average"


def sentence(numbers: list[Difference], categories: list[Share], n: int = LARGEST) -> str:
    """The ``n`` largest differences of a segment said in one sentence."""
    parts = [phrase(item) for item in largest(numbers, categories, n)]
    if not parts:
        return "No feature to compare."
    text = ", ".join(parts)
    return text[0].upper() + text[1:] + "."


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
