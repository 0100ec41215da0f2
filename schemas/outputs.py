"""Contracts for the tables a run writes; each is validated right before it is written."""

from __future__ import annotations

import re

import pandas as pd
import pandera.pandas as pa

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

# Schemas, not DataFrameModels: pandera imports dask.dataframe the first time a model builds
# its schema when Dask is installed (0.5 s of every run, measured 2026-12-06).

Transitions = pa.DataFrameSchema(
    {
        PREVIOUS_SEGMENT_ID: pa.Column(int, pa.Check.ge(1)),
        SEGMENT_ID: pa.Column(int, pa.Check.ge(1)),
        "customers": pa.Column(int, pa.Check.ge(1)),
    },
    strict=True,
    coerce=True,
    unique=[PREVIOUS_SEGMENT_ID, SEGMENT_ID],
    name="Transitions",
    description="Customers present in both runs, counted by previous and current segment.",
)

Elbow = pa.DataFrameSchema(
    {
        "k": pa.Column(int, pa.Check.ge(1), unique=True),
        "inertia": pa.Column(float, pa.Check.ge(0)),
        "silhouette": pa.Column(float, [pa.Check.ge(-1), pa.Check.le(1)], nullable=True),
        "calinski_harabasz": pa.Column(float, pa.Check.ge(0), nullable=True),
        "davies_bouldin": pa.Column(float, pa.Check.ge(0), nullable=True),
        "min_share": pa.Column(
            float, [pa.Check.gt(0), pa.Check.le(1)], description="share of the smallest segment"
        ),
    },
    strict=True,
    coerce=True,
    name="Elbow",
    description="Per-k metrics of the elbow sweep (cluster metrics are NaN for k = 1).",
)


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


Drift = pa.DataFrameSchema(
    {
        "feature": pa.Column(pd.StringDtype(), pa.Check.str_length(min_value=1)),
        SEGMENT_ID: pa.Column(
            pd.Int64Dtype(),
            pa.Check.ge(1),
            nullable=True,
            description="stable segment id; null: all customers",
        ),
        "psi": pa.Column(
            float,
            pa.Check.ge(0),
            nullable=True,
            description="population stability index; null: too few customers",
        ),
        "ks": pa.Column(
            float,
            [pa.Check.ge(0), pa.Check.le(1)],
            nullable=True,
            description="two-sample Kolmogorov-Smirnov statistic",
        ),
        "previous_mean": pa.Column(float, nullable=True, description="in original units"),
        "mean": pa.Column(float, nullable=True, description="in original units"),
        "customers": pa.Column(int, pa.Check.ge(0), description="customers in this run"),
        "previous_customers": pa.Column(
            int, pa.Check.ge(0), description="customers in the previous run"
        ),
    },
    strict=True,
    ordered=True,
    coerce=False,  # built with these dtypes: a wrong one is a bug, not something to fix
    unique=["feature", SEGMENT_ID],
    name="Drift",
    description="Drift of each feature since the previous run (tasks.drift.drift_table): one "
    "row per feature over all customers (segment_id null), then per feature and segment id.",
)


def _changed(frame: pd.DataFrame) -> pd.Series:
    before, after = frame[PREVIOUS_SEGMENT_ID], frame[SEGMENT_ID]
    return (before.isna() != after.isna()) | (before != after).fillna(False)


Moves = pa.DataFrameSchema(
    {
        CUSTOMER_ID: pa.Column(pd.StringDtype(), pa.Check.str_length(min_value=1), unique=True),
        PREVIOUS_SEGMENT_ID: pa.Column(pd.Int64Dtype(), pa.Check.ge(1), nullable=True),
        "previous_segment_name": pa.Column(pd.StringDtype(), nullable=True),
        SEGMENT_ID: pa.Column(pd.Int64Dtype(), pa.Check.ge(1), nullable=True),
        SEGMENT_NAME: pa.Column(pd.StringDtype(), nullable=True),
    },
    checks=pa.Check(_changed, name="moved_joined_or_left", error="an unchanged customer is listed"),
    strict=True,
    ordered=True,
    coerce=False,
    name="Moves",
    description="The customers who moved, joined (previous side null) or left (current side "
    "null) since the previous run (tasks.moves.moves_table); unchanged customers are not listed.",
)


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
