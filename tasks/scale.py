"""Turn clean customers into the matrix K-Means sees, keeping every parameter to redo it.

Per feature: an optional transform from the spec (``log1p``, Yeo-Johnson, clip at quantiles;
``log1p`` also on every column with no negative value under the ``log-standard`` scaler), then
centring and scaling (standard, robust or min-max), then the column's weight. A categorical
feature becomes one 0/1 column per value, centred and scaled together so that the feature as a
whole has variance 1: one categorical feature counts as much as one standard-scaled numeric
feature, however many values it has. Optionally a PCA projection follows (``pca``: components
or share of variance).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from tasks.errors import InputError, shown_value
from tasks.table import ColumnPlan, mall_table, value_order

log = logging.getLogger(__name__)

DEFAULT_FEATURES = ("annual_income", "spending_score")
SCALERS = ("standard", "robust", "minmax", "log-standard")
FIT_SAMPLE = 200_000  # rows a Yeo-Johnson lambda is estimated on (seeded sample above that)
# log1p of the largest float: a centroid of log1p values is at most this, but scaling it back
# (z * scale + center) can round just above it, and expm1 would then give inf
LOG1P_MAX = float(np.log1p(np.finfo("float64").max))


@dataclass(frozen=True)
class FeatureTransform:
    """z = (f(x) - center) / scale for one matrix column.

    f is the identity, ``log1p`` (``log``), Yeo-Johnson with ``lmbda``, or a clip to
    [``low``, ``high``]. A one-hot column of a categorical feature has ``source`` (the table
    column) and ``category`` (the value it is 1 for).
    """

    column: str
    log: bool
    center: float
    scale: float
    source: str | None = None
    category: str | None = None
    kind: str = "none"  # none, log1p, yeo-johnson, clip
    lmbda: float | None = None
    low: float | None = None
    high: float | None = None

    def prepare(self, values: np.ndarray) -> np.ndarray:
        x = values
        if self.kind == "clip":
            x = np.clip(x, self.low, self.high)
        if self.log:
            x = np.log1p(x)
        if self.kind == "yeo-johnson":
            from scipy import stats  # ~1 s to import: only when a column uses it

            x = stats.yeojohnson(x, lmbda=self.lmbda)
        return x

    def apply(self, values: np.ndarray) -> np.ndarray:
        return (self.prepare(values) - self.center) / self.scale

    def invert(self, z: np.ndarray) -> np.ndarray:
        x = z * self.scale + self.center
        if self.kind == "yeo-johnson":
            x = _yeojohnson_inverse(x, float(self.lmbda or 0.0))
        return np.expm1(np.minimum(x, LOG1P_MAX)) if self.log else x

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Projection:
    """A PCA projection of the scaled columns: rows -> (rows - mean) @ components.T."""

    mean: np.ndarray
    components: np.ndarray  # n_components x n_columns
    explained_variance_ratio: np.ndarray

    def project(self, matrix: np.ndarray) -> np.ndarray:
        return (matrix - self.mean) @ self.components.T

    def restore(self, projected: np.ndarray) -> np.ndarray:
        return projected @ self.components + self.mean

    def to_dict(self) -> dict:
        return {
            "mean": self.mean.tolist(),
            "components": self.components.tolist(),
            "explained_variance_ratio": self.explained_variance_ratio.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Projection:
        return cls(
            np.asarray(data["mean"], dtype="float64"),
            np.asarray(data["components"], dtype="float64"),
            np.asarray(data["explained_variance_ratio"], dtype="float64"),
        )


@dataclass(frozen=True)
class ScaledFeatures:
    """The matrix the clustering sees (n x p, float64) and how it was made."""

    matrix: np.ndarray
    columns: tuple[str, ...]
    transforms: tuple[FeatureTransform, ...]
    scaler: str
    projection: Projection | None = field(default=None)

    def to_cluster_space(self, scaled: np.ndarray) -> np.ndarray:
        """Rows in the scaled feature columns -> the space K-Means works in."""
        return scaled if self.projection is None else self.projection.project(scaled)

    def to_feature_space(self, rows: np.ndarray) -> np.ndarray:
        """Rows in the space K-Means works in -> the scaled feature columns."""
        return rows if self.projection is None else self.projection.restore(rows)

    def values(self, customers: pd.DataFrame, table: ColumnPlan) -> pd.DataFrame:
        """``customers``' feature columns in original units, with the one-hot columns of the
        categorical features as this scaling made them (``feature_frame``)."""
        return feature_frame(customers, None, table, self.categories())

    def categories(self) -> dict[str, list[str]]:
        """Each categorical feature's values, in the order of its one-hot columns."""
        categories: dict[str, list[str]] = {}
        for t in self.transforms:
            if t.source is not None and t.category is not None:
                categories.setdefault(t.source, []).append(t.category)
        return categories


@dataclass(frozen=True)
class ClusterSpace:
    """How a partition's customers become rows of the matrix K-Means works in: the table, the
    categorical features' values (the same one-hot columns in every partition), the fitted
    transforms and the PCA projection, if any."""

    table: ColumnPlan
    categories: dict[str, list[str]]
    transforms: tuple[FeatureTransform, ...]
    projection: Projection | None = None

    @classmethod
    def of(cls, scaled: ScaledFeatures, table: ColumnPlan) -> ClusterSpace:
        """The space ``scaled`` (fitted on customers in memory) puts customers in."""
        return cls(table, scaled.categories(), scaled.transforms, scaled.projection)

    def values(self, part: pd.DataFrame) -> pd.DataFrame:
        return feature_frame(part, None, self.table, self.categories)

    def matrix(self, part: pd.DataFrame) -> np.ndarray:
        return project(apply_transforms(self.values(part), self.transforms), self.projection)


def feature_frame(
    customers: pd.DataFrame,
    features: tuple[str, ...] | list[str] | None = None,
    table: ColumnPlan | None = None,
    categories: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Feature columns in original units; a categorical feature becomes one 0/1 column per
    value, named ``<column>_<value>`` (values: ``categories``, else the spec's allowed values,
    else the sorted values present)."""
    table = table or mall_table()
    features = table.feature_names if features is None else tuple(features)
    if not features:
        raise ValueError("at least one feature is needed")
    known = set(table.names)
    unknown = [f for f in features if f not in known]
    if unknown:
        raise ValueError(f"unknown features {unknown}; choose from {sorted(known)}")
    columns = {}
    for feature in features:
        column = table.column(feature)
        if column.numeric:
            columns[feature] = customers[feature].astype("float64")
            continue
        values = (categories or {}).get(feature) or list(column.spec.allowed or ())
        if not values:
            values = value_order(customers[feature].dropna().unique())
        for value in values:
            columns[f"{feature}_{value}"] = (customers[feature] == value).astype("float64")
    return pd.DataFrame(columns, index=customers.index)


def fit_transforms(
    values: pd.DataFrame, scaler: str, table: ColumnPlan | None = None, *, seed: int = 0
) -> tuple[FeatureTransform, ...]:
    """Fit one transform per column of ``feature_frame``'s output for the chosen scaler."""
    shapes = fit_shapes(values, scaler, table, seed=seed)
    ready = prepare_frame(values, shapes)
    return finish_transforms(shapes, Moments.of(ready), ready, scaler, table)


@dataclass(frozen=True)
class Moments:
    """Per column: count, mean, sum of squared deviations, min and max, in units of ``unit``
    (1, or the largest absolute value when squares would overflow). Computed per partition and
    combined exactly (Chan et al.), so the in-memory and the partitioned runs scale alike."""

    columns: tuple[str, ...]
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    low: np.ndarray
    high: np.ndarray
    unit: np.ndarray

    @classmethod
    def of(cls, values: pd.DataFrame) -> Moments:
        stats = np.array([_column_moments(values[c].to_numpy(dtype="float64")) for c in values])
        stats = stats.reshape(len(values.columns), 6)
        return cls(tuple(values.columns), *(stats[:, i].copy() for i in range(6)))

    @staticmethod
    def combine(parts: list[Moments]) -> Moments:
        parts = [p for p in parts if p.count.max(initial=0) > 0] or parts[:1]
        unit = np.max([p.unit for p in parts], axis=0)
        first = parts[0]
        ratio = first.unit / unit
        total = replace(first, mean=first.mean * ratio, m2=first.m2 * ratio**2, unit=unit)
        for part in parts[1:]:
            ratio = part.unit / unit
            mean, m2 = part.mean * ratio, part.m2 * ratio**2
            n = total.count + part.count
            delta = mean - total.mean
            total = Moments(
                total.columns,
                n,
                total.mean + delta * part.count / n,
                total.m2 + m2 + delta**2 * total.count * part.count / n,
                np.minimum(total.low, part.low),
                np.maximum(total.high, part.high),
                unit,
            )
        return total

    def center_and_scale(self, j: int) -> tuple[float, float]:
        """Mean and (population) standard deviation of column ``j``."""
        n = self.count[j]
        return (
            float(self.mean[j] * self.unit[j]),
            float(np.sqrt(self.m2[j] / n) * self.unit[j]) if n else 0.0,
        )


def _column_moments(x: np.ndarray) -> tuple[float, ...]:
    """count, mean, m2, min, max, unit of one column (in units of ``unit``)."""
    if not len(x):
        return (0.0, 0.0, 0.0, np.inf, -np.inf, 1.0)
    size = float(np.abs(x).max())
    unit = size if size > 1e150 else 1.0  # squares of values >= 1e155 overflow: use x / size
    y = x / unit if unit != 1.0 else x
    mean = float(y.mean())
    return (float(len(x)), mean, float(((y - mean) ** 2).sum()), x.min(), x.max(), unit)


def fit_shapes(
    values: pd.DataFrame, scaler: str, table: ColumnPlan | None = None, *, seed: int = 0
) -> tuple[FeatureTransform, ...]:
    """What happens to each matrix column before centring and scaling (clip bounds at the
    spec's quantiles, ``log1p``, a Yeo-Johnson lambda), learnt from ``values`` (all customers,
    or a partitioned run's seeded sample); centre 0 and scale 1 until ``finish_transforms``."""
    if scaler not in SCALERS:
        raise ValueError(f"unknown scaler {scaler!r}; choose from {list(SCALERS)}")
    table = table or mall_table()
    sources = _sources(values.columns, table)
    shapes = []
    for name in values.columns:
        source, category = sources[name]
        column = table.column(source)
        if category is not None:
            shapes.append(FeatureTransform(name, False, 0.0, 1.0, source, category))
            continue
        x = values[name].to_numpy(dtype="float64")
        kind = column.spec.transform
        log_it = kind == "log1p" or (scaler == "log-standard" and _non_negative(x))
        low = high = lmbda = None
        if kind == "clip":
            low, high = (float(q) for q in np.quantile(x, column.spec.clip))
            x = np.clip(x, low, high)
        if log_it:
            x = _log1p_checked(x, column.header)
        if kind == "yeo-johnson":
            from scipy import stats

            lmbda = float(stats.yeojohnson_normmax(_sample(x, seed)))
        shapes.append(
            FeatureTransform(
                name,
                log_it,
                0.0,
                1.0,
                source if source != name else None,
                None,
                "log1p" if log_it and kind == "none" else kind,
                lmbda,
                low,
                high,
            )
        )
    return tuple(shapes)


def prepare_frame(values: pd.DataFrame, shapes: tuple[FeatureTransform, ...]) -> pd.DataFrame:
    """Each column through its shape (clip, ``log1p``, Yeo-Johnson): what gets centred and
    scaled. A value ``log1p`` cannot take is bad input naming the column."""
    prepared = {}
    for t in shapes:
        if not t.log and t.kind in ("none", None):
            prepared[t.column] = values[t.column]  # nothing to do: no copy
            continue
        x = values[t.column].to_numpy(dtype="float64")
        if t.log:
            _log1p_checked(np.clip(x, t.low, t.high) if t.kind == "clip" else x, t.column)
        prepared[t.column] = pd.Series(t.prepare(x), index=values.index)
    return pd.DataFrame(prepared, copy=False)


def finish_transforms(
    shapes: tuple[FeatureTransform, ...],
    moments: Moments,
    quantile_rows: pd.DataFrame,
    scaler: str,
    table: ColumnPlan | None = None,
) -> tuple[FeatureTransform, ...]:
    """Centre and scale of each column from the moments over all customers (the robust
    scaler's quartiles from ``quantile_rows``: all customers, or a partitioned run's sample);
    the one-hot columns of a categorical feature scaled together to variance 1; weights."""
    table = table or mall_table()
    position = {name: j for j, name in enumerate(moments.columns)}
    transforms = []
    for t in shapes:
        j = position[t.column]
        weight = table.column(t.source or t.column).spec.weight
        if t.category is not None:
            group = [s for s in shapes if s.source == t.source and s.category is not None]
            shares = np.array([moments.center_and_scale(position[s.column])[0] for s in group])
            spread = float(np.sqrt(np.sum(shares * (1 - shares))))
            scale = (spread if spread > 0 else 1.0) / weight
            center = moments.center_and_scale(j)[0]
            transforms.append(replace(t, center=center, scale=scale))
            continue
        if scaler == "robust":
            q1, center, q3 = np.percentile(quantile_rows[t.column].to_numpy(), [25, 50, 75])
            scale = q3 - q1
        elif scaler == "minmax":
            center, scale = moments.low[j], moments.high[j] - moments.low[j]
        else:  # standard, log-standard
            center, scale = moments.center_and_scale(j)
        if not np.isfinite(scale) or scale <= 0:  # a constant column: centred, unscaled
            scale = 1.0
        transforms.append(replace(t, center=float(center), scale=float(scale) / weight))
    return tuple(transforms)


def _sources(columns: pd.Index, table: ColumnPlan) -> dict[str, tuple[str, str | None]]:
    """Each matrix column -> (its table column, the category of a one-hot column)."""
    names = set(table.names)
    result: dict[str, tuple[str, str | None]] = {}
    for name in columns:
        if name in names:
            result[name] = (name, None)
            continue
        for column in table.columns:
            prefix = f"{column.name}_"
            if not column.numeric and name.startswith(prefix):
                result[name] = (column.name, name[len(prefix) :])
                break
        else:
            raise ValueError(f"column {name!r} is not a feature of the table")
    return result


def _non_negative(x: np.ndarray) -> bool:
    """Every value at least 0 (amounts, counts): ``log-standard`` takes their ``log1p``."""
    return bool(len(x)) and bool(np.nanmin(x) >= 0)


def _log1p_checked(x: np.ndarray, header: str) -> np.ndarray:
    if len(x) and np.nanmin(x) <= -1:
        raise InputError(
            f"log1p needs values above -1, but {header!r} has {np.nanmin(x):g}: "
            "use another transform for this column",
            column=header,
        )
    return np.log1p(x)


def _sample(x: np.ndarray, seed: int) -> np.ndarray:
    if len(x) <= FIT_SAMPLE:
        return x
    return np.random.default_rng(seed).choice(x, FIT_SAMPLE, replace=False)


def _yeojohnson_inverse(y: np.ndarray, lmbda: float) -> np.ndarray:
    """The inverse of scipy's Yeo-Johnson transform with ``lmbda``."""
    y = np.asarray(y, dtype="float64")
    x = np.empty_like(y)
    positive = y >= 0
    if abs(lmbda) < 1e-12:
        x[positive] = np.expm1(y[positive])
    else:
        x[positive] = np.power(y[positive] * lmbda + 1, 1 / lmbda) - 1
    if abs(lmbda - 2) < 1e-12:
        x[~positive] = 1 - np.exp(-y[~positive])
    else:
        x[~positive] = 1 - np.power(-(2 - lmbda) * y[~positive] + 1, 1 / (2 - lmbda))
    return x


def apply_transforms(values: pd.DataFrame, transforms: tuple[FeatureTransform, ...]) -> np.ndarray:
    """The scaled matrix, row-major float64, columns in the transforms' order."""
    matrix = np.empty((len(values), len(transforms)), dtype="float64")
    for j, transform in enumerate(transforms):
        matrix[:, j] = transform.apply(values[transform.column].to_numpy(dtype="float64"))
    return matrix


def fit_projection(matrix: np.ndarray, pca: float, seed: int) -> Projection:
    """PCA of the scaled matrix: ``pca`` >= 1 components, or the fewest components that
    explain at least that share of the variance (fitted on a seeded sample above 200,000)."""
    from sklearn.decomposition import PCA  # only runs with --pca

    rows = matrix if len(matrix) <= FIT_SAMPLE else _sample_rows(matrix, seed)
    n_components: float | int = int(pca) if pca >= 1 else float(pca)
    if isinstance(n_components, int) and n_components > matrix.shape[1]:
        raise InputError(
            f"--pca {n_components}: more components than the {matrix.shape[1]} scaled columns"
        )
    model = PCA(n_components=n_components, svd_solver="full", random_state=seed).fit(rows)
    return Projection(model.mean_, model.components_, model.explained_variance_ratio_)


def _sample_rows(matrix: np.ndarray, seed: int) -> np.ndarray:
    chosen = np.random.default_rng(seed).choice(len(matrix), FIT_SAMPLE, replace=False)
    return matrix[np.sort(chosen)]


def check_features_vary(customers: pd.DataFrame, table: ColumnPlan) -> None:
    """Refuse a feature with one value for every clean customer: it cannot separate segments."""
    for column in table.features:
        values = customers[column.name]
        if len(values) > 1 and _one_value(values):
            raise InputError(
                f"feature {column.header!r} has one value ({shown_value(values.iloc[0])}) for all "
                f"{len(values)} valid customers: it cannot separate segments; leave it out of "
                "the features",
                column=column.header,
            )


def _one_value(values: pd.Series) -> bool:
    if pd.api.types.is_float_dtype(values):  # no hashing of 10M numbers
        return bool(values.min() == values.max())
    return values.nunique() == 1


def scale_features(
    customers: pd.DataFrame,
    features: tuple[str, ...] | list[str] | None = DEFAULT_FEATURES,
    scaler: str = "standard",
    table: ColumnPlan | None = None,
    *,
    seed: int = 0,
) -> ScaledFeatures:
    """Select the features and scale them (then project them, with the table's ``pca``);
    returns the matrix and the fitted parameters."""
    table = table or mall_table()
    values = feature_frame(customers, features, table)
    transforms = fit_transforms(values, scaler, table, seed=seed)
    return scaled_features(values, transforms, scaler, table, seed=seed)


def scaled_features(
    values: pd.DataFrame,
    transforms: tuple[FeatureTransform, ...],
    scaler: str,
    table: ColumnPlan,
    *,
    seed: int = 0,
) -> ScaledFeatures:
    """``values`` (``feature_frame``'s output) through fitted ``transforms``, then, with the
    table's ``pca``, a projection fitted on the result."""
    matrix = apply_transforms(values, transforms)
    projection = None
    if table.pca is not None:
        projection = fit_projection(matrix, table.pca, seed)
        matrix = project(matrix, projection)
        log.info(
            "PCA: %d components explain %.1f%% of the variance",
            len(projection.components),
            100 * projection.explained_variance_ratio.sum(),
        )
    shaped = [f"{t.kind} on {t.column}" for t in transforms if t.kind not in ("none", None)]
    log.info(
        "Scaled %d customers on %s with the %s scaler%s",
        len(matrix),
        list(values.columns),
        scaler,
        f" ({', '.join(shaped)} first)" if shaped else "",
    )
    return ScaledFeatures(matrix, tuple(values.columns), transforms, scaler, projection)


def project(matrix: np.ndarray, projection: Projection | None) -> np.ndarray:
    """The scaled matrix in the space K-Means works in (row-major)."""
    if projection is None:
        return matrix
    return np.ascontiguousarray(projection.project(matrix))
