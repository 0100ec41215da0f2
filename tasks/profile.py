"""Per-segment profiles in original units, for any table, and the words segment names use
(the names themselves come from ``tasks.reporting.explain``'s ranking)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.table import Column, ColumnPlan, mall_table, value_order


def level_words(column: Column) -> tuple[str, str, str]:
    """Words for a segment low / about average / high on a feature (``explain.level``)."""
    if column.spec.words:
        return column.spec.words
    label = column.label
    return (f"low {label}", f"average {label}", f"high {label}")


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or with the first free ``#2``, ``#3``, ... suffix when ``taken`` has it."""
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name} #{n}", n + 1
    return candidate


def share_values(column: Column, distinct) -> list[str] | None:
    """The values whose shares a profile reports for ``column``, given its distinct non-missing
    values: every value of a categorical column; of a numeric profile column only when it is a
    0/1 flag (and its spec allows nothing above 1); else None."""
    if not column.numeric:
        allowed = list(column.spec.allowed or ())
        return allowed + value_order({str(v) for v in distinct} - set(allowed))
    if column.role != "profile" or (column.spec.max is not None and column.spec.max > 1):
        return None  # a feature, or a column whose spec allows more than 0/1
    x = np.asarray(distinct, dtype="float64")
    if len(x) and ((x == 0) | (x == 1)).all():
        return ["0", "1"]
    return None


def distinct_values(frame, name: str) -> np.ndarray:
    """The distinct non-missing values of a column of a pandas or Dask frame."""
    values = frame[name].dropna().unique()
    return np.asarray(values.compute() if hasattr(values, "compute") else values)


def shared_values(frame, table: ColumnPlan) -> dict[str, list[str]]:
    """Column name -> the values its profile reports as shares (see ``share_values``)."""
    shares = {}
    for column in table.columns:
        if column.numeric and share_values(column, [0.0]) is None:
            continue  # never a 0/1 flag: no need to look at its values
        values = share_values(column, distinct_values(frame, column.name))
        if values is not None:
            shares[column.name] = values
    return shares


def segment_statistics(
    labelled, table: ColumnPlan, shares: dict[str, list[str]]
) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Size, means and medians of the numeric columns, and shares of ``shares``' values, per
    ``segment_id``: written once on the operations pandas and Dask frames share (a Dask frame
    gives lazy results for one ``dask.compute``)."""
    indicators = {}
    for name, values in shares.items():
        is_numeric = table.column(name).numeric
        for value in values:
            hit = labelled[name] == (float(value) if is_numeric else value)
            indicators[f"{name}_{value}_share"] = hit.fillna(False).astype("float64")
    grouped = labelled.assign(**indicators).groupby("segment_id")
    numeric = [c.name for c in table.columns if c.numeric]
    return (
        grouped.size(),
        grouped[numeric].mean(),
        grouped[numeric].median(),
        grouped[list(indicators)].mean(),
    )


def profiles_from_statistics(
    size: pd.Series,
    means: pd.DataFrame,
    medians: pd.DataFrame,
    shares: pd.DataFrame,
    table: ColumnPlan,
    values: dict[str, list[str]],
) -> pd.DataFrame:
    """``segment_statistics``' computed results as one frame, ``segment_id`` first (``values``:
    the share values it was given); not yet named (``named_profiles``)."""
    size = size.sort_index()
    columns: dict[str, pd.Series] = {"size": size, "share": size / size.sum()}
    for column in table.columns:
        if column.numeric:
            columns[f"{column.name}_mean"] = means[column.name]
            columns[f"{column.name}_median"] = medians[column.name]
        for value in values.get(column.name, ()):
            columns[f"{column.name}_{value}_share"] = shares[f"{column.name}_{value}_share"]
    return pd.DataFrame(columns).rename_axis("segment_id").reset_index()


def named_profiles(
    statistics: pd.DataFrame,
    names: dict[int, str],
    summaries: dict[int, str] | None = None,
    stability: dict[int, float] | None = None,
) -> pd.DataFrame:
    """The profiles table: the statistics with each segment's name and, when given, its
    ``summary`` (the sentence its report card shows) and ``stability`` (after ``share``;
    ``tasks.stability``). Validated right before it is written (``schemas.outputs``)."""
    profiles = statistics.copy()
    profiles.insert(1, "segment_name", profiles["segment_id"].map(names))
    if summaries is not None:
        profiles.insert(2, "summary", profiles["segment_id"].map(summaries))
    if stability is not None:
        after_share = list(profiles.columns).index("share") + 1
        profiles.insert(after_share, "stability", profiles["segment_id"].map(stability))
    return profiles


def segment_profile_statistics(
    customers: pd.DataFrame, labels: np.ndarray, table: ColumnPlan
) -> pd.DataFrame:
    """Per segment: size and share; mean and median of each numeric column (features and
    profile columns, under their own names: ``<column>_mean``); and the share of each value of
    a categorical or few-valued column (``<column>_<value>_share``)."""
    shares = shared_values(customers, table)
    powers = {
        c.name: overflow_power(customers[c.name].to_numpy("float64"))
        for c in table.columns
        if c.numeric and c.name in customers
    }
    powers = {name: power for name, power in powers.items() if power != 1.0}
    shrunk = {name: customers[name] / power for name, power in powers.items()}
    labelled = customers.assign(**shrunk, segment_id=labels)
    size, means, medians, value_shares = segment_statistics(labelled, table, shares)
    for name, power in powers.items():  # exact: scaling by a power of two only moves exponents
        means[name] *= power
        medians[name] *= power
    return profiles_from_statistics(size, means, medians, value_shares, table, shares)


def profile_segments(
    customers: pd.DataFrame,
    labels: np.ndarray,
    names: dict[int, str],
    table: ColumnPlan | None = None,
) -> pd.DataFrame:
    """The profiles table of ``segment_profile_statistics``, with the segments' ``names``."""
    statistics = segment_profile_statistics(customers, labels, table or mall_table())
    return named_profiles(statistics, names)


def overflow_power(values: np.ndarray) -> float:
    """1.0, or for values so large (> 2**500, ~3e150) that a sum, a square or a median's
    midpoint could overflow to inf (valid if absurd input) a power of two to divide them by
    first: the largest becomes ~2**100, and no digit of any value above 2**-900 changes."""
    largest = float(np.nanmax(np.abs(values), initial=0))
    return 2.0 ** (int(np.ceil(np.log2(largest))) - 100) if largest > 2.0**500 else 1.0


def segment_table(
    customers: pd.DataFrame,
    labels: np.ndarray,
    distances: np.ndarray,
    names: dict[int, str],
    previous_ids: pd.Series | None = None,
) -> pd.DataFrame:
    """Each clean customer with its segment id, previous segment id (if any), name and distance
    to the centroid."""
    if previous_ids is None:
        previous_ids = pd.Series(pd.NA, index=customers.index, dtype="Int64")
    table = customers.assign(
        segment_id=np.asarray(labels, dtype="int64"),
        previous_segment_id=previous_ids.astype("Int64"),
        segment_name=pd.Categorical.from_codes(
            np.searchsorted(sorted(names), labels), categories=[names[i] for i in sorted(names)]
        ),
        distance_to_centroid=np.asarray(distances, dtype="float64"),
    )
    # Validated against the segments contract once, right before it is written: checking
    # 10M ids for uniqueness hashes them all (~2 s, ~0.9 GiB), so it is not done twice.
    return table
