"""Turn a fit into stably numbered, named segments with their tables and the model."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.elbow import KChoice
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
from tasks.profile import (
    level_words,
    named_profiles,
    segment_profile_statistics,
    segment_table,
    unique_name,
)
from tasks.reporting import explain
from tasks.scale import FeatureTransform, ScaledFeatures, feature_frame
from tasks.stability import segment_stability
from tasks.table import ColumnPlan, mall_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Described:
    """Everything a run reports about its segments (ids are the stable ones)."""

    identity: Identity
    names: dict[int, str]
    centroids: pd.DataFrame  # index: stable segment id; feature columns in original units
    segments: pd.DataFrame | None  # None: written per partition by a partitioned run
    profiles: pd.DataFrame  # with each segment's name and summary (its card's sentence)
    transitions: pd.DataFrame  # empty for a first run
    changes: dict | None
    model: dict
    effects: pd.DataFrame  # segment id x numeric feature: z on the clustering's scale


@dataclass(frozen=True)
class FittedRows:
    """A K-Means fit (``segmentation``) and the scaled rows it labels (``scaled``)."""

    scaled: ScaledFeatures
    segmentation: Segmentation


@dataclass(frozen=True)
class Outcome:
    """What a run's steps made, handed on to its report and manifest: the elbow sweep on the
    scaled rows, the chosen k, the final fit (with the rows it labels) and its description."""

    fitted: FittedRows
    elbow: pd.DataFrame
    choice: KChoice
    described: Described
    drift: dict | None = None  # tasks.drift.drift_record since the previous run, if compared


def describe_segments(
    customers: pd.DataFrame,
    fitted: FittedRows,
    previous: PreviousRun | None,
    features: list[str] | tuple[str, ...] | None = None,
    *,
    max_shift: float,
    table: ColumnPlan | None = None,
    fill_values: dict[str, object] | None = None,
    seed: int,
) -> Described:
    """Stable ids (matched to the previous run), names, profiles (with each segment's
    stability, seeded by ``seed``), transitions and the model (with the cleaning's
    ``fill_values``, so new customers are filled alike)."""
    scaled, segmentation = fitted.scaled, fitted.segmentation
    table = table or mall_table()
    features = list(table.feature_names if features is None else features)
    identity = match_segments(segmentation.centroids, scaled, previous, max_shift=max_shift)
    previous, restarted = compared_previous(previous, identity, clustered_on(scaled.transforms))
    labels = identity.relabel(segmentation.labels)
    values = feature_frame(customers, features, table)
    centroids = centroid_frame(scaled, segmentation.centroids, identity)
    effects = effect_sizes(values, scaled, segmentation.centroids, identity)
    statistics = segment_profile_statistics(customers, labels, table)
    names, summaries = names_and_summaries(statistics, effects, table, identity)
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
    stability = stability_by_id(scaled.matrix, segmentation, identity, seed)
    profiles = named_profiles(statistics, names, summaries, stability)
    model = build_model(
        scaled, segmentation, identity, names, features, table, fill_values=fill_values
    )
    return Described(identity, names, centroids, segments, profiles, moved, changes, model, effects)


def stability_by_id(
    matrix: np.ndarray, segmentation: Segmentation, identity: Identity, seed: int
) -> dict[int, float]:
    """Each segment's stability (``tasks.stability``) by stable id: the bootstrap refits run
    on ``matrix``, the rows ``segmentation.labels`` label (all customers, or a partitioned
    run's sample)."""
    scores = segment_stability(matrix, segmentation.labels, segmentation.k, seed=seed)
    by_id = {identity.ids[label - 1]: score for label, score in scores.items()}
    log.info(
        "Stability per segment (mean best Jaccard over bootstrap refits): %s",
        ", ".join(f"{segment_id} {score:.2f}" for segment_id, score in sorted(by_id.items())),
    )
    return by_id


def centroid_frame(
    scaled: ScaledFeatures, centroids: np.ndarray, identity: Identity
) -> pd.DataFrame:
    """The centroids in original units (index: stable id, sorted)."""
    in_features = scaled.to_feature_space(centroids)
    frame = pd.DataFrame(
        {t.column: t.invert(in_features[:, j]) for j, t in enumerate(scaled.transforms)},
        index=pd.Index(identity.ids, name="segment_id"),
    )
    return frame.sort_index()


def effect_sizes(
    values: pd.DataFrame, scaled: ScaledFeatures, centroids: np.ndarray, identity: Identity
) -> pd.DataFrame:
    """Per segment (index: stable id) and numeric feature: how many standard deviations of
    all customers (``values``: the feature frame of all of them, or of a partitioned run's
    sample) the centroid lies from their mean, on the scale the clustering used: after the
    feature's transform (``log1p``, Yeo-Johnson, clip), where a few extreme customers do not
    dominate the spread."""
    in_features = scaled.to_feature_space(centroids)
    z = {}
    for j, t in enumerate(scaled.transforms):
        if t.category is not None:
            continue
        y = t.prepare(values[t.column].to_numpy(dtype="float64"))
        unit = float(np.nanmax(np.abs(y), initial=0.0))
        unit = unit if unit > 1e150 else 1.0  # squares of values >= 1e155 overflow
        y = y / unit
        mean, std = float(np.nanmean(y)), float(np.nanstd(y))
        centre = (in_features[:, j] * t.scale + t.center) / unit  # on the transformed scale
        z[t.column] = (centre - mean) / std if std > 0 else np.zeros(len(centre))
    return pd.DataFrame(z, index=pd.Index(identity.ids, name="segment_id")).sort_index()


def names_and_summaries(
    statistics: pd.DataFrame, effects: pd.DataFrame, table: ColumnPlan, identity: Identity
) -> tuple[dict[int, str], dict[int, str]]:
    """Each segment's name and the sentence of its card, from one ranking of what sets it
    apart (``explain.portrait``): matched segments keep the previous run's name, new ones get
    a computed one (made unique)."""
    numbers = explain.differences(statistics, None, table, effects)
    categories = explain.shares(statistics, table)
    words = {c.name: level_words(c) for c in table.features if c.numeric}
    computed, summaries = {}, {}
    for segment_id in identity.ids:  # a centroid no customer is closest to has no profile
        if segment_id not in numbers:
            computed[segment_id] = f"Segment {segment_id}"
            continue
        picture = explain.portrait(numbers[segment_id], categories[segment_id])
        summaries[segment_id] = explain.summary(picture)
        computed[segment_id] = explain.segment_name(picture, words) or f"Segment {segment_id}"
    return _names(identity, computed), summaries


def compared_previous(
    previous: PreviousRun | None, identity: Identity, columns: tuple[str, ...]
) -> tuple[PreviousRun | None, dict | None]:
    """The previous run to compare customers with, or, when it clustered on other columns,
    None and the restart summary (new ids from the registry, nothing "moved")."""
    if previous is not None and not same_features(previous, columns):
        return None, restart_summary(previous, identity)
    return previous, None


def same_features(previous: PreviousRun, columns: tuple[str, ...]) -> bool:
    """Did the previous run cluster on the same columns (in any order), each through the same
    transform (``clustered_on``)? If not, its segments are not comparable: no customer
    "moved", and its k is not kept."""
    return set(clustered_on(previous.model["transforms"])) == set(columns)


def clustered_on(transforms: tuple[FeatureTransform, ...] | list[dict]) -> tuple[str, ...]:
    """The clustering's columns with their non-linear transform: ``BALANCE``,
    ``log1p(PURCHASES)``, ``clip(AGE)`` (a run's transforms, or a model's as dicts)."""
    keys = []
    for t in transforms:
        item = t if isinstance(t, dict) else t.to_dict()
        kind = item.get("kind") or "none"
        steps = [kind] if kind != "none" else []
        if item["log"] and kind != "log1p":
            steps.append("log1p")
        column = item["column"]
        keys.append(f"{'+'.join(steps)}({column})" if steps else column)
    return tuple(keys)


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


def _names(identity: Identity, computed: dict[int, str]) -> dict[int, str]:
    """Kept names for matched segments; computed ones for new segments, made unique."""
    names = dict(identity.kept_names)
    for stable_id in sorted(computed):
        if stable_id not in names:
            names[stable_id] = unique_name(computed[stable_id], set(names.values()))
    return dict(sorted(names.items()))
