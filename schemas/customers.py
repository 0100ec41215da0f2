"""Contracts for customer rows: as read (all text) and after cleaning (typed, in range)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from schemas.columns import ANNUAL_INCOME, CUSTOMER_ID


def _finite(values: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(values.to_numpy(dtype="float64")), index=values.index)


class Customers(pa.DataFrameModel):
    """A clean customer: unique id, known gender, numbers in range."""

    customer_id: Series[str] = pa.Field(
        unique=True, str_length={"min_value": 1}, description="customer id, kept as text"
    )
    gender: Series[str] = pa.Field(isin=["Female", "Male"], description="Female or Male")
    age: Series[float] = pa.Field(ge=0, le=120, description="age in years, 0-120")
    annual_income: Series[float] = pa.Field(ge=0, description="annual income in k$, >= 0")
    spending_score: Series[float] = pa.Field(ge=1, le=100, description="spending score, 1-100")

    @pa.check(ANNUAL_INCOME, name="is_finite", error="not a finite number")
    @classmethod
    def _is_finite(cls, values: pd.Series) -> pd.Series:
        return _finite(values)

    class Config:
        strict = "filter"
        coerce = True


# --------------------------------------------------------------------------------------------
# Contracts built at run time from a resolved table (tasks.table.ColumnPlan): any customer table.
# --------------------------------------------------------------------------------------------

NOT_FINITE = "not a finite number"


def column_checks(column) -> list[pa.Check]:
    """The value checks of one table column (``tasks.table.Column``) from its spec."""
    spec = column.spec
    if column.numeric:
        checks = []
        if spec.min is not None:
            checks.append(pa.Check.ge(spec.min))
        if spec.max is not None:
            checks.append(pa.Check.le(spec.max))
        if spec.min is None or spec.max is None:  # inf passes a one-sided bound
            checks.append(pa.Check(_finite, name="is_finite", error=NOT_FINITE))
        return checks
    return [pa.Check.isin(list(spec.allowed))] if spec.allowed else []


def customers_schema(table) -> pa.DataFrameSchema:
    """Clean customers of ``table``: a unique text id, then each used column typed and checked."""
    columns = {
        CUSTOMER_ID: pa.Column(
            str, unique=True, checks=pa.Check.str_length(min_value=1), description="customer id"
        )
    }
    for column in table.columns:
        columns[column.name] = pa.Column(
            float if column.numeric else str,
            checks=column_checks(column),
            nullable=column.nullable,
            description=f"{column.label} ({column.role}, {column.kind})",
        )
    return pa.DataFrameSchema(columns, strict="filter", coerce=True, name="Customers")
