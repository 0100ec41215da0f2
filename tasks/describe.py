"""Turn a fit into stably numbered, named segments with their tables and the model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.fit import Segmentation
from tasks.identity import (
    Identity,
    PreviousRun,
    change_summary,
    match_segments,
    previous_segments,
    transitions,
)
from tasks.model import build_model
from tasks.profile import name_segments, profile_segments, segment_table, unique_name
from tasks.scale import ScaledFeatures, feature_frame
from tasks.table import Table, mall_table


@dataclass(frozen=True)
class Described:
    """Everything a run reports about its segments (ids are the stable ones)."""

    identity: Identity
    names: dict[int, str]
    centroids: pd.DataFrame  # index: stable segment id; feature columns in original units
    segments: pd.DataFrame | None  # None: written per partition by a partitioned run
    profiles: pd.DataFrame
    transitions: pd.DataFrame  # empty for a first run
    changes: dict | None
    model: dict


def describe_segments(
    customers: pd.DataFrame,
    scaled: ScaledFeatures,
    segmentation: Segmentation,
    previous: PreviousRun | None,
    features: list[str] | tuple[str, ...] | None = None,
    *,
    max_shift: float = 0.5,
    table: Table | None = None,
    fill_values: dict[str, object] | None = None,
) -> Described:
    """Stable ids (matched to the previous run), names, profiles, transitions and the model
    (with the cleaning's ``fill_values``, so new customers are filled alike)."""
    table = table or mall_table()
    features = list(table.feature_names if features is None else features)
    identity = match_segments(segmentation.centroids, scaled, previous, max_shift=max_shift)
    previous, restarted = compared_previous(previous, identity, scaled.columns)
    labels = identity.relabel(segmentation.labels)
    values = feature_frame(customers, features, table)
    centroids, names = named_centroids(values, scaled, segmentation.centroids, identity, table)
    segments = segment_table(
        customers,
        labels,
        segmentation.distances,
        names,
        previous_segments(previous, customers["customer_id"]),
    )
    moved = (
        transitions(previous.assignments, segments)
        if previous is not None
        else pd.DataFrame(
            {"previous_segment_id": [], "segment_id": [], "customers": []}, dtype="int64"
        )
    )
    changes = change_summary(previous, segments, moved, identity) or restarted
    profiles = profile_segments(customers, labels, names, table)
    model = build_model(
        scaled, segmentation, identity, names, features, table, fill_values=fill_values
    )
    return Described(identity, names, centroids, segments, profiles, moved, changes, model)


def named_centroids(
    values: pd.DataFrame,
    scaled: ScaledFeatures,
    centroids: np.ndarray,
    identity: Identity,
    table: Table,
) -> tuple[pd.DataFrame, dict[int, str]]:
    """The centroids in original units (index: stable id) and the segments' names: kept for
    matched segments, computed from where each centroid sits among ``values`` (the feature
    frame of all customers, or of a partitioned run's sample) for new ones."""
    in_features = scaled.to_feature_space(centroids)
    frame = pd.DataFrame(
        {t.column: t.invert(in_features[:, j]) for j, t in enumerate(scaled.transforms)},
        index=pd.Index(identity.ids, name="segment_id"),
    )
    z = transformed_z(values, in_features, scaled, frame.index)
    computed = name_segments(frame, values.loc[:, list(frame.columns)], table, z)
    return frame.sort_index(), _names(identity, computed)


def compared_previous(
    previous: PreviousRun | None, identity: Identity, columns: tuple[str, ...]
) -> tuple[PreviousRun | None, dict | None]:
    """The previous run to compare customers with, or, when it clustered on other columns,
    None and the restart summary (new ids from the registry, nothing "moved")."""
    if previous is not None and not same_features(previous, columns):
        return None, restart_summary(previous, identity)
    return previous, None


def same_features(previous: PreviousRun, columns: tuple[str, ...]) -> bool:
    """Did the previous run cluster on the same columns (in any order)? If not, its segments
    are not comparable: no customer "moved", and its k is not kept."""
    return set(previous.model["columns"]) == set(columns)


def previous_k(previous: PreviousRun | None, columns: tuple[str, ...]) -> int | None:
    """The previous run's k, kept by the k rule unless another k is clearly better: None in a
    first run, or when the previous run clustered on other ``columns``."""
    if previous is None or not same_features(previous, columns):
        return None
    return previous.k


def restart_summary(previous: PreviousRun, identity: Identity) -> dict:
    """What changed when the previous run clustered on other columns: only the ids (new ones
    from the registry, the previous ones retired); customers are not compared."""
    return {
        "previous_run_id": previous.run_id,
        "features_changed": True,
        "new_segment_ids": list(identity.new_ids),
        "retired_segment_ids": sorted(int(s["id"]) for s in previous.model["segments"]),
    }


def transformed_z(
    values: pd.DataFrame, in_features: np.ndarray, scaled: ScaledFeatures, ids: pd.Index
) -> pd.DataFrame:
    """z-scores of the centroids for columns with a non-linear transform (log1p, Yeo-Johnson,
    clip), measured on the transformed scale the clustering saw; other columns are left to
    the names' comparison in original units (the same z for a linear scaling)."""
    z = {}
    for j, t in enumerate(scaled.transforms):
        if t.category is not None or (t.kind == "none" and not t.log):
            continue
        y = t.prepare(values[t.column].to_numpy(dtype="float64"))
        std = float(y.std())
        centre = in_features[:, j] * t.scale + t.center  # back on the transformed scale
        z[t.column] = (centre - float(y.mean())) / std if std > 0 else np.zeros(len(centre))
    return pd.DataFrame(z, index=ids)


def _names(identity: Identity, computed: dict[int, str]) -> dict[int, str]:
    """Kept names for matched segments; computed ones for new segments, made unique."""
    names = dict(identity.kept_names)
    for stable_id in sorted(computed):
        if stable_id not in names:
            names[stable_id] = unique_name(computed[stable_id], set(names.values()))
    return dict(sorted(names.items()))
