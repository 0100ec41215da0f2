"""Contracts for customer rows: as read (all text) and after cleaning (typed, in range)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

# Canonical column names, used everywhere instead of string literals.
CUSTOMER_ID = "customer_id"
GENDER = "gender"
AGE = "age"
ANNUAL_INCOME = "annual_income"
SPENDING_SCORE = "spending_score"
SOURCE_ROW = "source_row"  # 1-based data row in the input file (row 1 = first row after the header)

COLUMNS = (CUSTOMER_ID, GENDER, AGE, ANNUAL_INCOME, SPENDING_SCORE)
NUMERIC_COLUMNS = (AGE, ANNUAL_INCOME, SPENDING_SCORE)
GENDERS = ("Female", "Male")


class RawCustomers(pa.DataFrameModel):
    """Customer rows as read from the input: text values, missing as NA, extra columns allowed."""

    source_row: Series[int] = pa.Field(
        ge=1, unique=True, description="1-based data row in the file"
    )
    customer_id: Series[str] = pa.Field(nullable=True, description="customer id, kept as text")
    gender: Series[str] = pa.Field(nullable=True, description="gender code as written")
    age: Series[str] = pa.Field(nullable=True, description="age in years")
    annual_income: Series[str] = pa.Field(nullable=True, description="annual income in k$")
    spending_score: Series[str] = pa.Field(nullable=True, description="spending score 1-100")

    @pa.check(AGE, ANNUAL_INCOME, SPENDING_SCORE, name="is_number", error="not a number")
    @classmethod
    def _is_number_or_missing(cls, values: pd.Series) -> pd.Series:
        return pd.to_numeric(values, errors="coerce").notna() | values.isna()

    class Config:
        strict = False


class Customers(pa.DataFrameModel):
    """A clean customer: unique id, known gender, numbers in range."""

    customer_id: Series[str] = pa.Field(
        unique=True, str_length={"min_value": 1}, description="customer id, kept as text"
    )
    gender: Series[str] = pa.Field(isin=list(GENDERS), description="Female or Male")
    age: Series[float] = pa.Field(ge=0, le=120, description="age in years, 0-120")
    annual_income: Series[float] = pa.Field(ge=0, description="annual income in k$, >= 0")
    spending_score: Series[float] = pa.Field(ge=1, le=100, description="spending score, 1-100")

    @pa.check(ANNUAL_INCOME, name="is_finite", error="not a finite number")
    @classmethod
    def _is_finite(cls, values: pd.Series) -> pd.Series:
        return pd.Series(np.isfinite(values.to_numpy(dtype="float64")), index=values.index)

    class Config:
        strict = "filter"
        coerce = True
