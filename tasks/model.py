"""The fitted model as plain JSON (no pickle): enough to score new customers later."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import pairwise_distances_argmin

from tasks.fit import Segmentation
from tasks.identity import Identity, first_identity
from tasks.scale import FeatureTransform, Projection, ScaledFeatures, apply_transforms
from tasks.table import Table, describe_table, mall_table

MODEL_FORMAT = "customer-segmentation-model/1"


def build_model(
    scaled: ScaledFeatures,
    segmentation: Segmentation,
    identity: Identity | None,
    names: dict[int, str],
    features: list[str],
    table: Table | None = None,
) -> dict:
    """A JSON-ready description: the table (columns, roles, spec), features, scaler and
    transform parameters, the PCA projection if any, centroids, segment ids and names.

    Also carries the segment-id registry (next free id, retired ids) for the next run.
    """
    identity = identity or first_identity(segmentation.k)
    transforms = scaled.transforms
    in_features = scaled.to_feature_space(segmentation.centroids)
    original = np.column_stack([t.invert(in_features[:, j]) for j, t in enumerate(transforms)])
    return {
        "format": MODEL_FORMAT,
        "table": describe_table(table or mall_table()),
        "features": list(features),
        "columns": list(scaled.columns),
        "scaler": scaled.scaler,
        "transforms": [t.to_dict() for t in transforms],
        "projection": None if scaled.projection is None else scaled.projection.to_dict(),
        "segments": sorted(
            (
                {
                    "id": stable_id,
                    "name": names[stable_id],
                    "centroid_scaled": segmentation.centroids[i].tolist(),
                    "centroid": dict(zip(scaled.columns, original[i].tolist(), strict=True)),
                }
                for i, stable_id in enumerate(identity.ids)
            ),
            key=lambda segment: segment["id"],
        ),
        "next_segment_id": identity.next_id,
        "retired_segment_ids": list(identity.retired_ids),
    }


def model_to_json(model: dict) -> str:
    return json.dumps(model, indent=2, allow_nan=False) + "\n"


def load_model(path: str | Path) -> dict:
    """Read a model written by a run; checks its format marker."""
    model = json.loads(Path(path).read_text(encoding="utf-8"))
    if model.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a {MODEL_FORMAT} model (format={model.get('format')!r})")
    return model


def score_customers(model: dict, customers: pd.DataFrame) -> np.ndarray:
    """Segment id of each clean customer row (columns under the model table's names): its
    nearest centroid in the model's scaled (and projected) space."""
    transforms = tuple(FeatureTransform(**t) for t in model["transforms"])
    matrix = apply_transforms(model_features(customers, transforms), transforms)
    if model.get("projection"):
        matrix = Projection.from_dict(model["projection"]).project(matrix)
    centroids = np.array([s["centroid_scaled"] for s in model["segments"]], dtype="float64")
    ids = np.array([s["id"] for s in model["segments"]])
    return ids[pairwise_distances_argmin(matrix, centroids)]


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
