"""`segment assign --transactions`: new order lines -> customers, derived exactly as the
model's run derived its own, then scored into its segments.

A run on order lines records in its ``model.json`` how it derived its customers
(``order_lines``: which header played which field, the order-line profile columns, its
``--date-format`` and the RFM grid). The new lines are read and derived by the run's own
functions (``tasks.orders``): the same rules, reasons and accounting; the snapshot date is
``as_of``, else the day after the latest purchase in the new file, as in ``segment run``. The
derived customers are then cleaned and scored as any customer table (``assign_customers``).

Nothing is lost: customers with only cancellations or non-positive lines go to the quarantine
with their reason (after the derived customers, numbered on), and the quarantined lines, with
every reason, to a file of their own beside it. A profile column of the model that the new
lines lack is left empty in the output and listed (the model was not fitted on it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from schemas.columns import CUSTOMER_ID, REASON, SOURCE_ROW
from tasks.errors import InputError
from tasks.ingest import numbers_as_text
from tasks.orders.order_columns import OrderColumns, find_order_columns
from tasks.orders.order_table import customer_frame
from tasks.orders.out_of_core import derive_lines, order_headers, order_lines
from tasks.orders.rfm import DEFAULT_GRID
from tasks.orders.transactions import Derivation
from tasks.scoring.assign import (
    AssignedFiles,
    Assignment,
    Model,
    ModelError,
    assign_customers,
    read_model,
    table_for_header,
    write_files,
)
from tasks.scoring.export import check_output_path
from tasks.scoring.model_file import OrderLinesFile
from tasks.table import ColumnPlan


@dataclass(frozen=True)
class LineOptions:
    """The new lines' own settings: their snapshot date (None: the day after their latest
    purchase) and their dates' format (None: the run's ``--date-format``, else read from the
    dates)."""

    as_of: date | None = None
    date_format: str | None = None


@dataclass(frozen=True)
class NewOrderLines:
    """New order lines derived into customers: the frame and columns the cleaning takes, the
    derivation (accounting, quarantined lines, customers without purchases) and the model's
    profile columns the lines lack."""

    frame: pd.DataFrame
    table: ColumnPlan
    derivation: Derivation
    missing_profile: tuple[str, ...]


def order_recipe(model: Model) -> OrderLinesFile:
    """How the model's run derived its customers; a ``ModelError`` when it did not (a
    customer table, or a run from before the recipe was stored in ``model.json``)."""
    if model.order_lines is None:
        raise ModelError(
            f"{model.path}: no order_lines in the model: its run segmented a customer table, "
            "or ran on order lines before model.json recorded how (run segment run "
            "--transactions again); --transactions needs a model of a run on order lines"
        )
    return model.order_lines


def read_new_order_lines(
    path: str | Path, model: Model, sep: str | None = None, options: LineOptions | None = None
) -> NewOrderLines:
    """Read the order lines of ``path`` and derive their customers as the model's run did;
    ``InputError`` naming the file for what the run would refuse too."""
    recipe, options, path = order_recipe(model), options or LineOptions(), Path(path)
    lines, _ = order_lines(path, sep)
    try:
        orders = _order_columns(order_headers(lines), recipe)
        derivation = derive_lines(
            lines,
            orders,
            as_of=options.as_of,
            date_format=options.date_format or recipe.date_format,
        )
    except InputError as error:
        raise error.with_path(path) from error
    _, frame = customer_frame(derivation.customers, recipe.rfm_grid or DEFAULT_GRID)
    missing = tuple(name for name in recipe.profile if name not in orders.profile)
    table = table_for_header(model, list(frame.columns[1:]), optional=missing)
    return NewOrderLines(frame, table, derivation, missing)


def _order_columns(headers: Sequence[str], recipe: OrderLinesFile) -> OrderColumns:
    """The run's header of each field when the new file has it, else the common spellings;
    the run's order-line profile columns that the file has."""
    mapping = {field: header for field, header in recipe.columns.items() if header in headers}
    profile = [name for name in recipe.profile if name in headers]
    run = ", ".join(f"{field}={header!r}" for field, header in recipe.columns.items())
    advice = f"the run read its lines as {run}: give the new file those headers"
    return find_order_columns(headers, mapping, profile, advice=advice)


def assign_order_lines(
    new: NewOrderLines,
    model: Model,
    *,
    source: str = "input",
    max_quarantine_share: float | None = None,
) -> Assignment:
    """Score the derived customers (``assign_customers``, its quarantine share over them, as
    the run's) and account for the rest: customers without a purchase line quarantined with
    their reason, the quarantined lines, the line accounting, missing profile columns empty."""
    scored = assign_customers(
        new.frame, model, new.table, source=source, max_quarantine_share=max_quarantine_share
    )
    derivation = new.derivation
    left_out = _without_purchases(derivation.without_purchases, first_row=len(new.frame) + 1)
    quarantine = pd.concat([scored.quarantine, left_out], ignore_index=True)
    return replace(
        scored,
        customers=_with_empty(scored.customers, model.table, new.missing_profile),
        quarantine=quarantine.astype({REASON: "str"}),
        rows_read=scored.rows_read + len(left_out),
        order_lines=derivation.manifest_record(),
        quarantine_lines=derivation.quarantine,
        missing_profile=new.missing_profile,
    )


def _without_purchases(without: pd.DataFrame, first_row: int) -> pd.DataFrame:
    """Customers with only cancellations or non-positive lines as quarantine rows, numbered
    on after the derived customers: their id, ``returned_value`` as text and the reason."""
    return pd.DataFrame(
        {
            SOURCE_ROW: np.arange(first_row, first_row + len(without), dtype="int64"),
            CUSTOMER_ID: without[CUSTOMER_ID].to_numpy(),
            "returned_value": numbers_as_text(without["returned_value"]).to_numpy(),
            REASON: without[REASON].to_numpy(),
        }
    )


def _with_empty(customers: pd.DataFrame, table: ColumnPlan, names: Sequence[str]) -> pd.DataFrame:
    """``customers`` with each column of ``names`` empty, in the model table's order."""
    if not names:
        return customers
    empty = {
        column.name: pd.Series(
            np.nan if column.kind == "numeric" else pd.NA,
            index=customers.index,
            dtype="float64" if column.kind == "numeric" else "str",
        )
        for column in table.columns
        if column.name in names
    }
    added = customers.assign(**empty)
    order = [CUSTOMER_ID, *(c.name for c in table.columns if c.name in added.columns)]
    return added[[*order, *(c for c in added.columns if c not in order)]]


def assign_lines_file(
    model_path: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    sep: str | None = None,
    max_quarantine_share: float | None = None,
    options: LineOptions | None = None,
) -> AssignedFiles:
    """``assign_file`` for order lines: read the model and the lines, derive and assign the
    customers, write them, their quarantine and the quarantined lines
    (``<stem>.quarantine_lines.<suffix>``) beside them. Raises as ``assign_file``."""
    output = check_output_path(output_path)
    model = read_model(model_path)
    new = read_new_order_lines(input_path, model, sep, options)
    assignment = assign_order_lines(
        new, model, source=str(input_path), max_quarantine_share=max_quarantine_share
    )
    return write_files(model, Path(input_path), output, assignment)
