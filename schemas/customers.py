"""The contract of clean customer rows (typed, in range), built at run time from a column plan
(``tasks.table.ColumnPlan``): any customer table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from schemas.columns import CUSTOMER_ID

NOT_FINITE = "not a finite number"


def _finite(values: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(values.to_numpy(dtype="float64")), index=values.index)


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
