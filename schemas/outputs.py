"""Contracts for the tables a run writes; each is validated right before it is written."""

from __future__ import annotations

import re

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from schemas.columns import (
    CUSTOMER_ID,
    DISTANCE,
    PREVIOUS_SEGMENT_ID,
    REASON,
    SEGMENT_ID,
    SEGMENT_NAME,
    SOURCE_ROW,
)
from schemas.customers import customers_schema


class Transitions(pa.DataFrameModel):
    """Customers present in both runs, counted by previous and current segment."""

    previous_segment_id: Series[int] = pa.Field(ge=1)
    segment_id: Series[int] = pa.Field(ge=1)
    customers: Series[int] = pa.Field(ge=1)

    class Config:
        strict = True
        coerce = True
        unique = ["previous_segment_id", "segment_id"]  # noqa: RUF012 - pandera reads a list


class Elbow(pa.DataFrameModel):
    """Per-k metrics of the elbow sweep (cluster metrics are NaN for k = 1)."""

    k: Series[int] = pa.Field(ge=1, unique=True)
    inertia: Series[float] = pa.Field(ge=0)
    silhouette: Series[float] = pa.Field(ge=-1, le=1, nullable=True)
    calinski_harabasz: Series[float] = pa.Field(ge=0, nullable=True)
    davies_bouldin: Series[float] = pa.Field(ge=0, nullable=True)
    min_share: Series[float] = pa.Field(gt=0, le=1, description="share of the smallest segment")

    class Config:
        strict = True
        coerce = True


def quarantine_schema(table) -> pa.DataFrameSchema:
    """Quarantined rows of ``table`` (``tasks.table.ColumnPlan``): the values as read (text)
    and every reason."""
    text = {name: pa.Column(str, nullable=True) for name in (CUSTOMER_ID, *table.names)}
    return pa.DataFrameSchema(
        {
            SOURCE_ROW: pa.Column(int, pa.Check.ge(1), unique=True),
            **text,
            REASON: pa.Column(str, pa.Check.str_length(min_value=1)),
        },
        strict=True,
        name="Quarantine",
    )


def segments_schema(table) -> pa.DataFrameSchema:
    """The segments table of a run on ``table``: the clean customers' columns, then the
    segment columns."""
    columns = {
        **customers_schema(table).columns,
        SEGMENT_ID: pa.Column(int, pa.Check.ge(1)),
        PREVIOUS_SEGMENT_ID: pa.Column(pd.Int64Dtype(), pa.Check.ge(1), nullable=True),
        SEGMENT_NAME: pa.Column(pd.CategoricalDtype()),
        DISTANCE: pa.Column(float, pa.Check.ge(0)),
    }
    return pa.DataFrameSchema(columns, strict=True, coerce=False, name="Segments")


class Drift(pa.DataFrameModel):
    """Drift of each feature since the previous run (``tasks.drift.drift_table``): one row per
    feature over all customers (segment_id null), then per feature and segment id."""

    feature: Series[pd.StringDtype] = pa.Field(str_length={"min_value": 1})
    segment_id: Series[pd.Int64Dtype] = pa.Field(
        ge=1, nullable=True, description="stable segment id; null: all customers"
    )
    psi: Series[float] = pa.Field(
        ge=0, nullable=True, description="population stability index; null: too few customers"
    )
    ks: Series[float] = pa.Field(
        ge=0, le=1, nullable=True, description="two-sample Kolmogorov-Smirnov statistic"
    )
    previous_mean: Series[float] = pa.Field(nullable=True, description="in original units")
    mean: Series[float] = pa.Field(nullable=True, description="in original units")
    customers: Series[int] = pa.Field(ge=0, description="customers in this run")
    previous_customers: Series[int] = pa.Field(ge=0, description="customers in the previous run")

    class Config:
        strict = True
        ordered = True
        coerce = False  # built with these dtypes: a wrong one is a bug, not something to fix
        unique = ["feature", "segment_id"]  # noqa: RUF012 - pandera reads a list


class Moves(pa.DataFrameModel):
    """The customers who moved, joined (previous side null) or left (current side null) since
    the previous run (``tasks.moves.moves_table``); unchanged customers are not listed."""

    customer_id: Series[pd.StringDtype] = pa.Field(unique=True, str_length={"min_value": 1})
    previous_segment_id: Series[pd.Int64Dtype] = pa.Field(ge=1, nullable=True)
    previous_segment_name: Series[pd.StringDtype] = pa.Field(nullable=True)
    segment_id: Series[pd.Int64Dtype] = pa.Field(ge=1, nullable=True)
    segment_name: Series[pd.StringDtype] = pa.Field(nullable=True)

    @pa.dataframe_check(name="moved_joined_or_left", error="an unchanged customer is listed")
    @classmethod
    def _changed(cls, frame: pd.DataFrame) -> pd.Series:
        before, after = frame["previous_segment_id"], frame["segment_id"]
        return (before.isna() != after.isna()) | (before != after).fillna(False)

    class Config:
        strict = True
        ordered = True
        coerce = False


def profiles_schema(table) -> pa.DataFrameSchema:
    """The profiles of a run on ``table``, one row per segment: its size and share, each numeric
    column's mean and median, and the shares of a column's values (``<column>_<value>_share``:
    every allowed value; the values found of a column without allowed values or of a 0/1 flag);
    a run adds each segment's summary and stability."""
    share = pa.Check.in_range(0, 1)
    columns = {
        SEGMENT_ID: pa.Column(int, pa.Check.ge(1), unique=True),
        SEGMENT_NAME: pa.Column(str, unique=True),
        "summary": pa.Column(str, required=False),
        "size": pa.Column(int, pa.Check.ge(1)),
        "share": pa.Column(float, [pa.Check.gt(0), pa.Check.le(1)]),
        "stability": pa.Column(float, share, required=False),
    }
    for column in table.columns:
        if column.numeric:  # missing when a segment has no value of a nullable column
            for statistic in ("mean", "median"):
                columns[f"{column.name}_{statistic}"] = pa.Column(float, nullable=column.nullable)
        if column.spec.allowed:
            for value in column.spec.allowed:
                columns[f"{column.name}_{value}_share"] = pa.Column(float, share)
        elif not column.numeric or _may_be_flag(column):  # the values found; 0 and 1
            found = rf"(?s)^{re.escape(column.name)}_.+_share\Z"  # values may hold line breaks
            columns[found] = pa.Column(float, share, regex=True, required=False)
    return pa.DataFrameSchema(columns, strict=True, coerce=True, name="Profiles")


def _may_be_flag(column) -> bool:
    """A numeric profile column whose spec allows nothing above 1: its profile may give the
    shares of 0 and 1 (``tasks.profile.share_values``)."""
    return column.role == "profile" and (column.spec.max is None or column.spec.max <= 1)
