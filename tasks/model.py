"""The fitted model as plain JSON (no pickle): enough to score new customers later.

Light to import (no scikit-learn, no SciPy unless a Yeo-Johnson transform is applied):
``segment assign`` reads a model and scores a file with numpy and pandas alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tasks.scale import FeatureTransform, Projection, ScaledFeatures, apply_transforms
from tasks.table import ColumnPlan, describe_table, mall_table

if TYPE_CHECKING:
    from tasks.fit import Segmentation
    from tasks.identity import Identity

MODEL_FORMAT = "customer-segmentation-model/1"
# A training customer's distance to its own centroid is at most its segment's max_distance;
# recomputed from the file it may differ in the last bits: this much slack is not an outlier.
OUTLIER_SLACK = 1e-9


def build_model(
    scaled: ScaledFeatures,
    segmentation: Segmentation,
    identity: Identity | None,
    names: dict[int, str],
    features: list[str],
    table: ColumnPlan | None = None,
    *,
    fill_values: Mapping[str, object] | None = None,
    max_distances: Mapping[int, float] | None = None,
) -> dict:
    """A JSON-ready description: the table (columns, roles, spec), features, scaler and
    transform parameters, the PCA projection if any, centroids, segment ids and names.

    Also carries the segment-id registry (next free id, retired ids) for the next run, the
    value a missing feature was filled with (``fill_values``: column -> training median or
    most frequent value) and, per segment, ``max_distance``: the largest distance of a
    training customer to its centroid in the clustering space (from ``segmentation``'s
    labels and distances, or ``max_distances`` by stable id when those cover only a sample).
    """
    from tasks.identity import first_identity  # SciPy: not needed to read or score a model

    identity = identity or first_identity(segmentation.k)
    transforms = scaled.transforms
    in_features = scaled.to_feature_space(segmentation.centroids)
    original = np.column_stack([t.invert(in_features[:, j]) for j, t in enumerate(transforms)])
    if max_distances is None:  # provisional segment i + 1 is identity.ids[i]
        largest = pd.Series(segmentation.distances).groupby(segmentation.labels).max()
        max_distances = {stable: largest.get(i + 1, 0.0) for i, stable in enumerate(identity.ids)}
    return {
        "format": MODEL_FORMAT,
        "table": describe_table(table or mall_table()),
        "features": list(features),
        "columns": list(scaled.columns),
        "scaler": scaled.scaler,
        "transforms": [t.to_dict() for t in transforms],
        "projection": None if scaled.projection is None else scaled.projection.to_dict(),
        "fill_values": {  # a numpy scalar as the Python number JSON writes
            name: value.item() if isinstance(value, np.generic) else value
            for name, value in (fill_values or {}).items()
        },
        "segments": sorted(
            (
                {
                    "id": stable_id,
                    "name": names[stable_id],
                    "centroid_scaled": segmentation.centroids[i].tolist(),
                    "centroid": dict(zip(scaled.columns, original[i].tolist(), strict=True)),
                    "max_distance": _finite(max_distances.get(stable_id, 0.0)),
                }
                for i, stable_id in enumerate(identity.ids)
            ),
            key=lambda segment: segment["id"],
        ),
        "next_segment_id": identity.next_id,
        "retired_segment_ids": list(identity.retired_ids),
    }


def _finite(value: float) -> float | None:
    """A distance for JSON: None when it overflowed (values near the float limit), read as
    "no limit" when scoring."""
    value = float(value)
    return value if np.isfinite(value) else None


def model_to_json(model: dict) -> str:
    return json.dumps(model, indent=2, allow_nan=False) + "\n"


def load_model(path: str | Path) -> dict:
    """Read a model written by a run; checks its format marker."""
    model = json.loads(Path(path).read_text(encoding="utf-8"))
    if model.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a {MODEL_FORMAT} model (format={model.get('format')!r})")
    return model


@dataclass(frozen=True)
class Scores:
    """Per customer row: the nearest segment's stable id, the distance to its centroid in the
    model's clustering space, whether it lies beyond every segment's training radius (None:
    a model from before radii were stored), and whether its scaled values are finite."""

    segment_ids: np.ndarray
    distances: np.ndarray
    outlier: np.ndarray | None
    finite: np.ndarray


def score_frame(model: dict, customers: pd.DataFrame) -> Scores:
    """Score clean customers (columns under the model table's names) with the model's
    transforms, scaler parameters and projection: nothing is fitted here."""
    transforms = tuple(FeatureTransform(**t) for t in model["transforms"])
    with np.errstate(invalid="ignore", divide="ignore"):  # log1p(-2): NaN, reported as such
        matrix = apply_transforms(model_features(customers, transforms), transforms)
    if model.get("projection"):
        matrix = Projection.from_dict(model["projection"]).project(matrix)
    segments = model["segments"]
    centroids = np.array([s["centroid_scaled"] for s in segments], dtype="float64")
    ids = np.array([s["id"] for s in segments], dtype="int64")
    squared = squared_distances(matrix, centroids)
    finite = np.all(np.isfinite(squared), axis=0)
    nearest, best = nearest_of(squared)
    best[~finite] = np.inf
    distances = np.sqrt(best)
    outlier = None
    if all("max_distance" in s for s in segments):
        radius = np.array(
            [np.inf if s["max_distance"] is None else s["max_distance"] for s in segments],
            dtype="float64",
        )
        limit = np.square(radius * (1 + OUTLIER_SLACK) + OUTLIER_SLACK)
        outlier = np.all(squared > limit[:, None], axis=0) & finite
    return Scores(ids[nearest], distances, outlier, finite)


def squared_distances(matrix: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared distances of every row of ``matrix`` (n x d) to every centroid (k x d), as k
    rows of n, summed one contiguous column at a time: numpy is slow at reducing a row of a few
    values, fast along long contiguous arrays (1M x 2: ~10x); exact sums of squares, not the
    ``|x|^2 - 2 x.c + |c|^2`` shortcut that loses digits far from the origin."""
    columns = [np.ascontiguousarray(matrix[:, j]) for j in range(matrix.shape[1])]
    squared = np.zeros((len(centroids), len(matrix)), dtype="float64")
    for i, centroid in enumerate(centroids):
        for column, centre in zip(columns, centroid, strict=True):
            squared[i] += np.square(column - centre)
    return squared


def nearest_centroid(matrix: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment (1..k, by the centroids' order) of each row and its distance to that centroid:
    the one nearest-centroid rule of scoring (``score_frame``) and of partitioned runs."""
    nearest, best = nearest_of(squared_distances(matrix, centroids))
    return nearest + 1, np.sqrt(best)


def nearest_of(squared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``squared`` (k x n): the row of the smallest value (the first of equal
    ones, as ``argmin``) and that value, by a running minimum over the k rows."""
    best = squared[0].copy()
    nearest = np.zeros(squared.shape[1], dtype="intp")
    for i in range(1, len(squared)):
        closer = squared[i] < best
        nearest[closer] = i
        np.minimum(best, squared[i], out=best)
    return nearest, best


def model_features(
    customers: pd.DataFrame, transforms: tuple[FeatureTransform, ...]
) -> pd.DataFrame:
    """The matrix columns a model's transforms read, in original units: a numeric feature as
    it is, a one-hot column as 1.0 where the categorical column equals its category."""
    columns = {}
    for t in transforms:
        if t.category is not None:
            columns[t.column] = (customers[t.source] == t.category).astype("float64")
        else:
            columns[t.column] = customers[t.source or t.column].astype("float64")
    return pd.DataFrame(columns, index=customers.index)
