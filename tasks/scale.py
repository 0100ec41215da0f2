"""Turn clean customers into a scaled feature matrix, keeping the scaler's parameters."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from schemas.customers import AGE, ANNUAL_INCOME, GENDER, GENDERS, SPENDING_SCORE

log = logging.getLogger(__name__)

FEATURES = (ANNUAL_INCOME, SPENDING_SCORE, AGE, GENDER)
DEFAULT_FEATURES = (ANNUAL_INCOME, SPENDING_SCORE)
SCALERS = ("standard", "robust", "minmax", "log-standard")
MONEY_COLUMNS = (ANNUAL_INCOME,)  # right-skewed amounts: log1p first under "log-standard"


@dataclass(frozen=True)
class FeatureTransform:
    """z = (f(x) - center) / scale, with f = log1p when ``log`` else identity."""

    column: str
    log: bool
    center: float
    scale: float

    def apply(self, values: np.ndarray) -> np.ndarray:
        x = np.log1p(values) if self.log else values
        return (x - self.center) / self.scale

    def invert(self, z: np.ndarray) -> np.ndarray:
        x = z * self.scale + self.center
        return np.expm1(x) if self.log else x

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ScaledFeatures:
    """The matrix the clustering sees (n x p, float64) and how it was made."""

    matrix: np.ndarray
    columns: tuple[str, ...]
    transforms: tuple[FeatureTransform, ...]
    scaler: str


def feature_frame(customers: pd.DataFrame, features: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Numeric feature columns in original units; ``gender`` becomes one 0/1 column per gender."""
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ValueError(f"unknown features {unknown}; choose from {list(FEATURES)}")
    if not features:
        raise ValueError("at least one feature is needed")
    columns = {}
    for feature in features:
        if feature == GENDER:
            for gender in GENDERS:
                columns[f"{GENDER}_{gender}"] = (customers[GENDER] == gender).astype("float64")
        else:
            columns[feature] = customers[feature].astype("float64")
    return pd.DataFrame(columns, index=customers.index)


def fit_transforms(values: pd.DataFrame, scaler: str) -> tuple[FeatureTransform, ...]:
    """Fit one transform per column for the chosen scaler."""
    if scaler not in SCALERS:
        raise ValueError(f"unknown scaler {scaler!r}; choose from {list(SCALERS)}")
    transforms = []
    for column in values.columns:
        log_it = scaler == "log-standard" and column in MONEY_COLUMNS
        x = values[column].to_numpy(dtype="float64")
        if log_it:
            x = np.log1p(x)
        center, scale = _center_and_scale(x, scaler)
        transforms.append(FeatureTransform(column, log_it, center, scale))
    return tuple(transforms)


def _center_and_scale(x: np.ndarray, scaler: str) -> tuple[float, float]:
    if scaler == "robust":
        q1, median, q3 = np.percentile(x, [25, 50, 75])
        center, scale = median, q3 - q1
    elif scaler == "minmax":
        center, scale = x.min(), x.max() - x.min()
    else:  # standard, log-standard
        size = float(np.abs(x).max()) if len(x) else 0.0
        if size > 1e150:  # squares of values >= 1e155 overflow: compute on x / size
            center, scale = (x / size).mean() * size, (x / size).std() * size
        else:
            center, scale = x.mean(), x.std()
    if not np.isfinite(scale) or scale <= 0:  # a constant column: leave it centred, unscaled
        scale = 1.0
    return float(center), float(scale)


def apply_transforms(values: pd.DataFrame, transforms: tuple[FeatureTransform, ...]) -> np.ndarray:
    """The scaled matrix, row-major float64, columns in the transforms' order."""
    matrix = np.empty((len(values), len(transforms)), dtype="float64")
    for j, transform in enumerate(transforms):
        matrix[:, j] = transform.apply(values[transform.column].to_numpy(dtype="float64"))
    return matrix


def scale_features(
    customers: pd.DataFrame,
    features: tuple[str, ...] | list[str] = DEFAULT_FEATURES,
    scaler: str = "standard",
) -> ScaledFeatures:
    """Select the features and scale them; returns the matrix and the fitted parameters."""
    values = feature_frame(customers, tuple(features))
    transforms = fit_transforms(values, scaler)
    matrix = apply_transforms(values, transforms)
    log.info(
        "Scaled %d customers on %s with the %s scaler", len(matrix), list(values.columns), scaler
    )
    return ScaledFeatures(matrix, tuple(values.columns), transforms, scaler)
