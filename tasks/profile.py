"""Readable segment names and per-segment profiles in original units."""

from __future__ import annotations

import numpy as np
import pandas as pd

from schemas.customers import AGE, ANNUAL_INCOME, GENDER, GENDERS, NUMERIC_COLUMNS, SPENDING_SCORE
from schemas.outputs import Profiles

# Words for a centroid below / near / above the population mean of a feature.
LEVEL_WORDS = {
    ANNUAL_INCOME: ("low income", "average income", "high income"),
    SPENDING_SCORE: ("low spending", "average spending", "high spending"),
    AGE: ("younger", "middle-aged", "older"),
}
LEVEL_CUTOFF = 0.5  # in population standard deviations
GENDER_MAJORITY = 0.65  # share of one gender in a segment to call it "mostly ..."


def name_segments(centroids: pd.DataFrame, population: pd.DataFrame) -> dict[int, str]:
    """Name each segment by where its centroid sits relative to the whole population.

    ``centroids``: one row per segment id, feature columns in original units (gender as 0/1
    share columns ``gender_Female`` ...). ``population``: the same columns, one row per customer.
    Names are unique; a repeated name gets a ``#2`` suffix.
    """
    names: dict[int, str] = {}
    for segment_id, centroid in centroids.iterrows():
        parts = []
        for column, words in LEVEL_WORDS.items():
            if column in centroid.index:
                parts.append(words[_level(centroid[column], population[column])])
        for gender in GENDERS:
            share_column = f"{GENDER}_{gender}"
            if share_column in centroid.index and centroid[share_column] >= GENDER_MAJORITY:
                parts.append(f"mostly {gender.lower()}")
        name = ", ".join(parts) if parts else f"segment {segment_id}"
        name = name[0].upper() + name[1:]
        names[int(segment_id)] = _unique(name, set(names.values()))
    return names


def _level(value: float, values: pd.Series) -> int:
    x = values.to_numpy(dtype="float64")
    size = float(np.abs(x).max()) if len(x) else 0.0
    if size > 1e150:  # squares of values >= 1e155 overflow: compare on x / size
        x, value = x / size, value / size
    std = float(x.std())
    z = 0.0 if std == 0 else (value - float(x.mean())) / std
    return 0 if z < -LEVEL_CUTOFF else 2 if z > LEVEL_CUTOFF else 1


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name} #{n}", n + 1
    return candidate


def profile_segments(
    customers: pd.DataFrame, labels: np.ndarray, names: dict[int, str]
) -> pd.DataFrame:
    """Size, share, mean and median of each numeric column, and gender mix, per segment."""
    frame = customers.assign(segment_id=labels)
    grouped = frame.groupby("segment_id", sort=True)
    profiles = pd.DataFrame({"size": grouped.size()})
    profiles["share"] = profiles["size"] / len(frame)
    for column in NUMERIC_COLUMNS:
        profiles[f"{column}_mean"] = grouped[column].mean()
        profiles[f"{column}_median"] = grouped[column].median()
    for gender in GENDERS:
        profiles[f"{gender.lower()}_share"] = grouped[GENDER].agg(
            lambda g, v=gender: (g == v).mean()
        )
    profiles = profiles.reset_index()
    profiles.insert(1, "segment_name", profiles["segment_id"].map(names))
    return Profiles.validate(profiles)


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
    # Validated against schemas.outputs.Segments once, right before it is written: checking
    # 10M ids for uniqueness hashes them all (~2 s, ~0.9 GiB), so it is not done twice.
    return table
