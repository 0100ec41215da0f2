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
from tasks.profile import name_segments, profile_segments, segment_table
from tasks.scale import ScaledFeatures, feature_frame


@dataclass(frozen=True)
class Described:
    """Everything a run reports about its segments (ids are the stable ones)."""

    identity: Identity
    names: dict[int, str]
    centroids: pd.DataFrame  # index: stable segment id; feature columns in original units
    segments: pd.DataFrame
    profiles: pd.DataFrame
    transitions: pd.DataFrame  # empty for a first run
    changes: dict | None
    model: dict


def describe_segments(
    customers: pd.DataFrame,
    scaled: ScaledFeatures,
    segmentation: Segmentation,
    previous: PreviousRun | None,
    features: list[str],
    *,
    max_shift: float = 0.5,
) -> Described:
    """Stable ids (matched to the previous run), names, profiles, transitions and the model."""
    identity = match_segments(
        segmentation.centroids, scaled.columns, scaled.transforms, previous, max_shift=max_shift
    )
    labels = identity.relabel(segmentation.labels)
    centroids = pd.DataFrame(
        {t.column: t.invert(segmentation.centroids[:, j]) for j, t in enumerate(scaled.transforms)},
        index=pd.Index(identity.ids, name="segment_id"),
    )
    computed = name_segments(centroids, feature_frame(customers, features))
    names = _names(identity, computed)
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
    profiles = profile_segments(customers, labels, names)
    model = build_model(scaled, segmentation, identity, names, features)
    return Described(
        identity,
        names,
        centroids.sort_index(),
        segments,
        profiles,
        moved,
        change_summary(previous, segments, identity),
        model,
    )


def _names(identity: Identity, computed: dict[int, str]) -> dict[int, str]:
    """Kept names for matched segments; computed ones for new segments, made unique."""
    names = dict(identity.kept_names)
    for stable_id in sorted(computed):
        if stable_id in names:
            continue
        name, n = computed[stable_id], 2
        while name in names.values():
            name, n = f"{computed[stable_id]} #{n}", n + 1
        names[stable_id] = name
    return dict(sorted(names.items()))


def smallest_share(labels: np.ndarray) -> float:
    """Share of customers in the smallest segment."""
    counts = np.unique(labels, return_counts=True)[1]
    return float(counts.min() / counts.sum())
