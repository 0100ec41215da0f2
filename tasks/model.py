"""The fitted model as plain JSON (no pickle): enough to score new customers later."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import pairwise_distances_argmin

from tasks.fit import Segmentation
from tasks.identity import Identity, first_identity
from tasks.scale import FeatureTransform, ScaledFeatures, apply_transforms, feature_frame

MODEL_FORMAT = "customer-segmentation-model/1"


def build_model(
    scaled: ScaledFeatures,
    segmentation: Segmentation,
    identity: Identity | None,
    names: dict[int, str],
    features: list[str],
) -> dict:
    """A JSON-ready description: features, scaler parameters, centroids, segment ids and names.

    Also carries the segment-id registry (next free id, retired ids) for the next run.
    """
    identity = identity or first_identity(segmentation.k)
    transforms = scaled.transforms
    original = np.column_stack(
        [t.invert(segmentation.centroids[:, j]) for j, t in enumerate(transforms)]
    )
    return {
        "format": MODEL_FORMAT,
        "features": list(features),
        "columns": list(scaled.columns),
        "scaler": scaled.scaler,
        "transforms": [t.to_dict() for t in transforms],
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
    """Segment id (1..k) of each clean customer row: its nearest centroid in the scaled space."""
    transforms = tuple(FeatureTransform(**t) for t in model["transforms"])
    matrix = apply_transforms(feature_frame(customers, model["features"]), transforms)
    centroids = np.array([s["centroid_scaled"] for s in model["segments"]], dtype="float64")
    ids = np.array([s["id"] for s in model["segments"]])
    return ids[pairwise_distances_argmin(matrix, centroids)]
