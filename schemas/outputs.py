"""Contracts for the tables a run writes; each is validated right before it is written."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from schemas.customers import Customers, customers_schema


class Quarantine(pa.DataFrameModel):
    """Input rows set aside, with their values as read and why."""

    source_row: Series[int] = pa.Field(
        ge=1, unique=True, description="1-based data row in the file"
    )
    customer_id: Series[str] = pa.Field(nullable=True, description="id as read")
    gender: Series[str] = pa.Field(nullable=True, description="gender as read")
    age: Series[str] = pa.Field(nullable=True, description="age as read")
    annual_income: Series[str] = pa.Field(nullable=True, description="income as read")
    spending_score: Series[str] = pa.Field(nullable=True, description="score as read")
    reason: Series[str] = pa.Field(
        str_length={"min_value": 1}, description="every failed check: column=value: problem"
    )

    class Config:
        strict = True


class Segments(Customers):
    """One row per clean customer with the segment it belongs to."""

    segment_id: Series[int] = pa.Field(ge=1, description="stable segment id")
    previous_segment_id: Series[pd.Int64Dtype] = pa.Field(
        ge=1, nullable=True, description="segment in the previous run; missing if new"
    )
    segment_name: Series[pd.CategoricalDtype] = pa.Field(
        description="readable segment name (categorical: one copy of each name, not one per row)"
    )
    distance_to_centroid: Series[float] = pa.Field(ge=0, description="in the scaled feature space")

    class Config:
        strict = True
        coerce = False  # built with the right dtypes: coercing 10M rows would copy them


class Transitions(pa.DataFrameModel):
    """Customers present in both runs, counted by previous and current segment."""

    previous_segment_id: Series[int] = pa.Field(ge=1)
    segment_id: Series[int] = pa.Field(ge=1)
    customers: Series[int] = pa.Field(ge=1)

    class Config:
        strict = True
        coerce = True
        unique = ["previous_segment_id", "segment_id"]  # noqa: RUF012 - pandera reads a list


class Profiles(pa.DataFrameModel):
    """One row per segment: size and feature summaries in original units."""

    segment_id: Series[int] = pa.Field(ge=1, unique=True)
    segment_name: Series[str] = pa.Field(unique=True)
    summary: Series[str] | None  # the sentence of the segment's report card (a run writes it)
    size: Series[int] = pa.Field(ge=1)
    share: Series[float] = pa.Field(gt=0, le=1)
    # mean best Jaccard of the segment over bootstrap refits (tasks/stability.py; a run writes it)
    stability: Series[float] | None = pa.Field(ge=0, le=1)
    age_mean: Series[float]
    age_median: Series[float]
    annual_income_mean: Series[float]
    annual_income_median: Series[float]
    spending_score_mean: Series[float]
    spending_score_median: Series[float]
    gender_Female_share: Series[float] = pa.Field(ge=0, le=1)  # <column>_<value>_share
    gender_Male_share: Series[float] = pa.Field(ge=0, le=1)

    class Config:
        strict = True
        coerce = True


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


def segments_schema(table) -> pa.DataFrameSchema:
    """The segments table of a run on ``table`` (``tasks.table.ColumnPlan``): the clean customers'
    columns, then the segment columns (built at run time; ``Segments`` is the Mall case)."""
    columns = {
        **customers_schema(table).columns,
        "segment_id": pa.Column(int, pa.Check.ge(1)),
        "previous_segment_id": pa.Column(pd.Int64Dtype(), pa.Check.ge(1), nullable=True),
        "segment_name": pa.Column(pd.CategoricalDtype()),
        "distance_to_centroid": pa.Column(float, pa.Check.ge(0)),
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
