"""What a run will do, decided once before it starts: ``plan_run(settings) -> RunPlan``.

The plan resolves the input (a file, the dated snapshot a folder gives for ``as_of``, or a
folder of Parquet partitions), the mode (a customer table, order lines, or partitions on
Dask), the columns (the customer table's ``ColumnPlan``, or which headers are the order-line
fields) and every check that needs no more than the header, the first rows and the row count.
``segment run`` calls it before Prefect starts, to refuse a hopeless run in a second; the flow
calls it as its first step (a deployment's run has no command line before it). Nothing here
imports Prefect: the plan is unit-tested per mode (tests/test_plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from schemas.spec import TableSpec
from segment.settings import SegmentationSettings
from tasks.errors import NOT_A_REGULAR_FILE, ColumnMappingError, InputError
from tasks.orders.order_columns import OrderColumns
from tasks.table import ColumnPlan

Mode = Literal["customers", "order lines", "partitions"]


@dataclass(frozen=True)
class RunPlan:
    """A run's input, mode and columns, resolved and checked (``plan_run``).

    ``source`` is the file the run reads (for partitions: their folder) and names in its
    manifest; ``files`` the Parquet parts of a partitioned folder (of customers, or of order
    lines derived on Dask). ``columns`` is the customer table's column plan (None for order
    lines: their customer table is derived first, and its columns with it); ``orders`` the
    order-line columns and ``order_spec`` the spec of the table derived from them. ``notes``:
    what was decided and why, one log line each; ``rows``: the input's data rows, when
    counted."""

    mode: Mode
    source: Path
    files: tuple[Path, ...] = ()  # Parquet parts (customers or order lines), in name order
    columns: ColumnPlan | None = None
    orders: OrderColumns | None = None
    order_spec: TableSpec | None = None
    notes: tuple[str, ...] = ()
    rows: int | None = None

    @property
    def partitioned(self) -> bool:
        return self.mode == "partitions"

    @property
    def table_columns(self) -> ColumnPlan:
        """The customer table's columns (a plan of order lines has none before its pre-step)."""
        if self.columns is None:
            raise RuntimeError(f"a plan of {self.mode} has no customer table columns yet")
        return self.columns


def plan_run(settings: SegmentationSettings, *, count_rows: bool = False) -> RunPlan:
    """The plan of a run of ``settings``; the first reason it cannot work as an error:
    ``ColumnMappingError`` for a mistake in the options (an unknown ``--column`` name, a k
    above the input's rows when ``count_rows``: the command line counts them),
    ``InputError`` for the input's own problems (no such file, a column not in the file, a
    text column as a numeric feature, a partitioned folder without Dask ...)."""
    check_options(settings)
    from tasks.store.snapshots import PARTITIONED_NEEDS_DASK, is_partitioned_input

    partitioned = is_partitioned_input(settings.input)
    if settings.transactions:
        plan = _order_lines(settings, partitioned)
    elif partitioned:
        if settings.runner != "dask":
            raise InputError(PARTITIONED_NEEDS_DASK, path=settings.input)
        plan = _partitions(settings, count_rows)
    else:
        plan = _customers(settings, count_rows)
    if plan.rows is not None:
        too_many = settings.k_beyond(plan.rows, "the input has rows", options=True)
        if too_many is not None:
            raise ColumnMappingError(too_many, path=plan.source)
    return plan


def check_options(settings: SegmentationSettings) -> None:
    """The checks that read no file: the input exists and can be read without draining it
    (not a pipe). Run by ``segment run`` before Prefect's server starts."""
    path = settings.input
    if not path.exists():
        raise InputError("no such file", path=path)
    if not (path.is_file() or path.is_dir()):  # a pipe would hang or drain
        raise InputError(NOT_A_REGULAR_FILE, path=path)


def _customers(settings: SegmentationSettings, count_rows: bool) -> RunPlan:
    from tasks.ingest import count_data_rows
    from tasks.store.snapshots import resolve_input
    from tasks.table import columns_line

    source = resolve_input(settings.input, settings.as_of)
    columns = settings.table_for(source)
    rows = count_data_rows(source) if count_rows and _asks_k(settings) else None
    notes = (columns_line(columns, settings.spec), *columns.notes)
    return RunPlan("customers", source, columns=columns, notes=notes, rows=rows)


def _partitions(settings: SegmentationSettings, count_rows: bool) -> RunPlan:
    """A folder of Parquet parts: the columns come from the first file with data rows."""
    from tasks.store.snapshots import first_data_file, partition_files, row_count
    from tasks.table import check_partitioned_table, columns_line

    files = partition_files(settings.input)
    columns = settings.table_for(first_data_file(files))
    check_partitioned_table(columns, settings.input)
    rows = sum(row_count(f) for f in files) if count_rows and _asks_k(settings) else None
    notes = (columns_line(columns, settings.spec), *columns.notes)
    return RunPlan("partitions", settings.input, files, columns, notes=notes, rows=rows)


def _order_lines(settings: SegmentationSettings, partitioned: bool) -> RunPlan:
    """Order lines: which headers are the fields, and the spec of the derived customers. A
    folder of Parquet parts is derived on Dask (its ``files``; the fields from the first file
    with rows); one file or a folder of dated snapshots in memory."""
    from tasks.orders.order_columns import columns_line
    from tasks.orders.order_table import order_columns_for, order_spec
    from tasks.store.snapshots import (
        PARTITIONED_NEEDS_DASK,
        first_data_file,
        partition_files,
        resolve_input,
    )

    files: tuple[Path, ...] = ()
    if partitioned:
        if settings.runner != "dask":
            raise InputError(PARTITIONED_NEEDS_DASK, path=settings.input)
        files = partition_files(settings.input)
        source = settings.input  # as_of is the snapshot date of the lines, not a pick
        header_of = first_data_file(files)
    elif settings.runner == "dask":
        raise InputError(
            "--transactions with --runner dask reads a folder of Parquet parts of order lines; "
            "one file or a folder of dated snapshots runs in memory: leave --runner dask out",
            path=settings.input,
        )
    else:
        # one file of order lines takes as_of as its snapshot date, not as a snapshot to pick
        source = resolve_input(settings.input, settings.as_of if settings.input.is_dir() else None)
        header_of = source
    orders = order_columns_for(header_of, settings.sep, settings.order_fields(), settings.profile)
    spec = order_spec(settings.spec, settings.features, orders.profile)
    return RunPlan(
        "order lines",
        source,
        files,
        orders=orders,
        order_spec=spec,
        notes=(columns_line(orders),),
    )


def _asks_k(settings: SegmentationSettings) -> bool:
    return any(k is not None for k in (settings.k, settings.k_min, settings.k_max))
