"""The contract of ``model.json`` as ``segment assign`` reads it: every field typed and every
number finite, checked whole before any customer is scored.

A defect (a centroid as text, a NaN centre, a transform with scale 0, a projection of the
wrong shape) is found here and named by its field, instead of surfacing later as every row
quarantined for something the input did not do. Keys a newer run may add are ignored; those
older models lack (``fill_values``, ``max_distance``, the id registry, ``order_lines``) are
optional.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tasks.orders.order_columns import FIELDS
from tasks.orders.rfm import check_grid
from tasks.table import ColumnPlan

Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(allow_inf_nan=False, gt=0)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TransformFile(_Part):
    """One matrix column's ``tasks.scale.FeatureTransform``: z = (f(x) - center) / scale."""

    column: str
    log: bool
    center: Finite
    scale: Positive  # a run never writes 0: a constant column gets scale 1
    source: str | None = None
    category: str | None = None
    kind: Literal["none", "log1p", "yeo-johnson", "clip"] = "none"
    lmbda: Finite | None = None
    low: Finite | None = None
    high: Finite | None = None


class ProjectionFile(_Part):
    """A PCA projection: rows -> (rows - mean) @ components.T."""

    mean: list[Finite]
    components: list[list[Finite]] = Field(min_length=1)
    explained_variance_ratio: list[Finite]


class SegmentFile(_Part):
    id: int = Field(ge=1)
    name: str
    centroid_scaled: list[Finite]
    centroid: dict[str, Finite] = {}
    max_distance: Annotated[float, Field(allow_inf_nan=False, ge=0)] | None = None


class OrderLinesFile(_Part):
    """How a run on order lines derived its customers (``order_table.order_lines_record``):
    field -> header, the order-line profile columns, its ``--date-format`` and RFM grid."""

    columns: dict[str, str] = Field(min_length=3)
    profile: list[str] = []
    date_format: str | None = None
    rfm_grid: dict[str, list[str]] | None = None

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown order-line field(s) {unknown}; known: {', '.join(FIELDS)}")
        return columns

    @field_validator("rfm_grid")
    @classmethod
    def _every_cell_once(cls, grid: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if grid is not None:
            check_grid(grid)
        return grid


class ModelFile(_Part):
    """``model.json`` as ``tasks.model.build_model`` writes it."""

    format: str  # read_model checks it first: MODEL_FORMAT
    table: ColumnPlan
    features: list[str] = []
    columns: list[str] = []
    scaler: str | None = None
    transforms: list[TransformFile] = Field(min_length=1)
    projection: ProjectionFile | None = None
    fill_values: dict[str, str | Finite] | None = None
    segments: list[SegmentFile] = Field(min_length=1)
    next_segment_id: int | None = Field(None, ge=1)
    retired_segment_ids: list[int] = []
    order_lines: OrderLinesFile | None = None  # a run on order lines (absent before 2026-12)

    @model_validator(mode="after")
    def _shapes_agree(self) -> ModelFile:
        """Transforms of the table's columns; a projection and centroids of matching sizes;
        one segment per id."""
        names = set(self.table.names)
        unknown = [t.column for t in self.transforms if (t.source or t.column) not in names]
        if unknown:
            raise ValueError(f"transforms of columns not in the model's table: {unknown}")
        size = len(self.transforms)
        if self.projection is not None:
            projection = self.projection
            if len(projection.mean) != size or any(len(c) != size for c in projection.components):
                raise ValueError(f"projection: mean and components need {size} values each")
            size = len(projection.components)
        for position, segment in enumerate(self.segments):
            if len(segment.centroid_scaled) != size:
                raise ValueError(
                    f"segments[{position}].centroid_scaled: {len(segment.centroid_scaled)} "
                    f"values, expected {size}"
                )
        ids = [segment.id for segment in self.segments]
        if len(set(ids)) != len(ids):
            raise ValueError(f"segments: an id appears twice ({ids})")
        return self


def first_defect(error: ValidationError) -> str:
    """The first problem of a failed validation as ``field: what is wrong``, the field spelled
    as in the JSON (``segments[0].centroid_scaled[1]``)."""
    first = error.errors(include_url=False)[0]
    where = ""
    for part in first["loc"]:
        where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
