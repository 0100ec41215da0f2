"""The derived per-customer table of order lines as a customer table the core segments.

``transactions_spec`` is the spec of that table: the built-in ``schemas/presets/rfm.toml``
(K-Means on log1p-scaled recency, frequency and monetary value, the RFM scores and the grid
name as profile columns), with a ``--spec`` file's keys and the command line's choices on top.
``segmentable_customers`` adds the RFM scores and gives the frame and the resolved ``ColumnPlan``
that ``tasks.clean.clean_customers`` and every later step take, as for any customer file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from schemas.columns import CUSTOMER_ID, SOURCE_ROW
from schemas.spec import RFM_PRESET, ColumnSpec, TableSpec, load_spec
from tasks.errors import InputError
from tasks.ingest import read_header
from tasks.orders.order_columns import OrderColumns, find_order_columns
from tasks.orders.rfm import DEFAULT_GRID, rfm_scores
from tasks.orders.transactions import EXTRAS, RFM
from tasks.table import ColumnPlan, resolve_table

log = logging.getLogger(__name__)

NOT_CLUSTERED = ("first_purchase", "last_purchase")  # dates: in customers.parquet only


def order_columns_for(
    source: str | Path,
    sep: str | None,
    mapping: Mapping[str, str],
    profile: Sequence[str] | None,
) -> OrderColumns:
    """The order-line columns of the file ``source`` (from its header)."""
    try:
        return find_order_columns(read_header(source, sep), mapping, profile or ())
    except InputError as error:
        raise error.with_path(source) from error


def order_spec(
    spec_path: str | Path | None, features: Sequence[str] | None, extras: Sequence[str]
) -> TableSpec:
    """``transactions_spec`` for a spec file (or none) and the command line's features; a
    feature that is not a derived column is refused (``InputError``)."""
    spec = transactions_spec(
        load_spec(spec_path) if spec_path else None, features=features, extras=extras
    )
    known = (*RFM, *EXTRAS)
    unknown = [name for name in spec.features if name not in known]
    if unknown:
        raise InputError(
            f"feature(s) {unknown} are not derived from order lines: choose among "
            f"{', '.join(known)}"
        )
    return spec


def transactions_spec(
    user: TableSpec | None = None,
    *,
    features: Sequence[str] | None = None,
    extras: Sequence[str] = (),
) -> TableSpec:
    """The preset, with a user spec's keys on top (its ``[columns.X]`` added to or replacing
    the preset's), then ``features`` from the command line; ``extras`` (order-line columns
    named with ``--profile``) become categorical profile columns (each customer's most frequent
    value)."""
    spec = load_spec(RFM_PRESET)
    if user is not None:
        given = {key: getattr(user, key) for key in user.model_fields_set if key != "columns"}
        spec = spec.model_copy(update={**given, "columns": {**spec.columns, **user.columns}})
        TableSpec.model_validate(spec.model_dump())  # the merged spec is still valid
    if features:
        spec = spec.model_copy(update={"features": tuple(features)})
    columns = dict(spec.columns)
    for name in extras:
        columns.setdefault(name, ColumnSpec(kind="categorical", label=name))
    profile = tuple(dict.fromkeys([*spec.profile, *extras]))
    profile = tuple(name for name in profile if name not in spec.features)
    return spec.model_copy(
        update={"columns": columns, "profile": profile, "id_column": CUSTOMER_ID}
    )


def segmentable_customers(
    customers: pd.DataFrame, spec: TableSpec
) -> tuple[pd.DataFrame, pd.DataFrame, ColumnPlan]:
    """(customers with the RFM scores, the frame for the cleaning step, its ``ColumnPlan``).

    The cleaning frame is ``customer_frame``'s. A feature with one value for every customer
    (every order on one day: one recency) is left out with a warning, as a constant column of a
    customer table is, unless no feature would be left."""
    scored, frame = customer_frame(customers, spec.rfm_grid or DEFAULT_GRID)
    spec = without_constant_features(customers, spec)
    table = resolve_table([CUSTOMER_ID, *frame.columns[2:]], None, spec, {})
    return scored, frame, table


def customer_frame(
    customers: pd.DataFrame, grid: Mapping[str, Sequence[str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(customers with the RFM scores of ``grid``, the frame for the cleaning step): the
    frame has ``source_row`` (the customer's row in ``customers.parquet``), ``customer_id``
    and the derived columns but the purchase dates: numbers as float64, text as text."""
    scores = rfm_scores(customers, grid)
    scored = pd.concat([customers, scores], axis=1)
    columns = [c for c in scored.columns if c not in NOT_CLUSTERED and c != CUSTOMER_ID]
    data = {
        SOURCE_ROW: pd.Series(np.arange(1, len(scored) + 1, dtype="int64")),
        CUSTOMER_ID: scored[CUSTOMER_ID].reset_index(drop=True),
    }
    for name in columns:
        values = scored[name].reset_index(drop=True)
        data[name] = (
            values.astype("float64")
            if pd.api.types.is_numeric_dtype(values)
            else values.astype("str")
        )
    return scored, pd.DataFrame(data)


def order_lines_record(
    orders: OrderColumns, spec: TableSpec, date_format: str | None
) -> dict[str, object]:
    """How a run derived its customers from order lines, for its ``model.json``
    (``order_lines``), so ``segment assign --transactions`` derives new lines the same way:
    which header played which field, the order-line profile columns, the ``--date-format``
    (None: read from the dates) and the RFM grid of ``rfm_segment``."""
    grid = spec.rfm_grid or DEFAULT_GRID
    return {
        "columns": orders.used,
        "profile": list(orders.profile),
        "date_format": date_format,
        "rfm_grid": {name: list(cells) for name, cells in grid.items()},
    }


def without_constant_features(customers: pd.DataFrame, spec: TableSpec) -> TableSpec:
    """``spec`` without the features that have one value for every customer (logged as a
    warning); unchanged when every feature is constant (the cleaning then says why no
    segments can be found)."""
    constant = [
        name
        for name in spec.features
        if name in customers and customers[name].nunique(dropna=True) <= 1
    ]
    kept = tuple(name for name in spec.features if name not in constant)
    if not constant or not kept or len(customers) < 2:
        return spec
    log.warning(
        "Left out of the features: %s (one value for every customer, e.g. every order on one "
        "day: cannot separate segments); clustering on %s",
        ", ".join(constant),
        ", ".join(kept),
    )
    return spec.model_copy(update={"features": kept})
