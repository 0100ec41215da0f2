"""The order-line steps of the segmentation flow (``segment run --transactions``): find the
order-line columns, then derive the per-customer table that the flow segments like any
customer table (tasks/orders/transactions.py, tasks/orders/rfm.py, tasks/orders/order_table.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger

from flows.run_folder import pipeline_task
from flows.settings import SegmentationSettings
from tasks.errors import InputError
from tasks.ingest import PARQUET_SUFFIXES, read_file
from tasks.orders.encoded_lines import EncodedLines, encode_frame, read_encoded_lines
from tasks.orders.order_columns import OrderColumns, columns_line
from tasks.orders.order_table import order_columns_for, order_spec, segmentable_customers
from tasks.orders.transactions import Derivation, derive_customers
from tasks.store.run_files import write_table
from tasks.table import ColumnPlan


@pipeline_task("resolve-order-columns")
def resolve_order_columns(source: Path, settings: SegmentationSettings) -> OrderColumns:
    """Which headers are the customer id, invoice, date, quantity and unit price (or amount)."""
    orders = order_columns_for(source, settings.sep, settings.order_fields(), settings.profile)
    get_run_logger().info(columns_line(orders))
    return orders


def read_order_lines(source: Path, sep: str | None, staging: Path) -> EncodedLines:
    """Order lines as codes into each column's distinct values. A Parquet file is read
    straight into codes in its own types and not copied into the run folder (the manifest
    records its path, size and sha256); a text file is read as text and kept as raw.parquet,
    as a customer file is."""
    if source.suffix.lower() in PARQUET_SUFFIXES:
        return read_encoded_lines(source)
    raw = read_file(source, sep)
    write_table(raw, staging / "raw.parquet")
    return encode_frame(raw)


@pipeline_task("derive-customers")
def derive(
    lines: EncodedLines,
    orders: OrderColumns,
    source: Path,
    settings: SegmentationSettings,
    staging: Path,
) -> tuple[Derivation, pd.DataFrame, ColumnPlan]:
    """Order lines -> one row per customer (R, F, M, extras, RFM scores). Writes
    customers.parquet, quarantine_lines.parquet and customers_without_purchases.parquet;
    returns the derivation, the customers as a customer table to clean, and its ColumnPlan."""
    try:
        derivation = derive_customers(
            lines, orders, as_of=settings.as_of, date_format=settings.date_format
        )
    except InputError as error:
        raise error.with_path(source) from error
    spec = order_spec(settings.spec, settings.features, orders.profile)
    _, frame, table = segmentable_customers(derivation.customers, spec)
    write_table(derivation.customers, staging / "customers.parquet")
    write_table(derivation.quarantine, staging / "quarantine_lines.parquet")
    write_table(derivation.without_purchases, staging / "customers_without_purchases.parquet")
    return derivation, frame, table
