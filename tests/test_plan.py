"""segment.plan: one plan per run, decided before it starts, for each mode (a customer file, a
folder of dated snapshots, a folder of Parquet partitions, order lines), and every early check
as the error the command line maps to its exit code. Plain functions: no Prefect."""

from __future__ import annotations

import os
from datetime import date

import pandas as pd
import pytest

from segment.plan import RunPlan, check_options, plan_run
from segment.settings import DEFAULT_INPUT, SegmentationSettings
from tasks.errors import NOT_A_REGULAR_FILE, ColumnMappingError, InputError
from tasks.sample_data import generate_customers, generate_snapshots, write_snapshots

ORDERS = (
    "InvoiceNo,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "1,2,2011-01-01 10:00,3.5,A,France\n"
    "2,1,2011-01-02 10:00,2.0,B,Spain\n"
)


@pytest.fixture
def parts(tmp_path):
    """A folder of two Parquet partitions of sample customers, the first one empty."""
    raw = generate_customers(200, seed=3).frame.astype(str)
    folder = tmp_path / "parts"
    folder.mkdir()
    raw.iloc[:0].to_parquet(folder / "part-0.parquet", index=False)
    raw.to_parquet(folder / "part-1.parquet", index=False)
    return folder


@pytest.fixture
def orders(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS)
    return path


def test_a_customer_file_is_planned_with_its_columns_and_why():
    plan = plan_run(SegmentationSettings(input=DEFAULT_INPUT))
    assert plan.mode == "customers" and not plan.partitioned
    assert plan.source == DEFAULT_INPUT and plan.files == ()
    assert plan.orders is None and plan.rows is None  # rows counted only when asked
    assert plan.table_columns.preset == "mall"
    assert plan.table_columns.feature_names == ("annual_income", "spending_score")
    assert plan.notes[0].startswith("Mall preset")


def test_a_snapshot_folder_is_planned_on_the_snapshot_as_of_picks(tmp_path):
    paths = write_snapshots(generate_snapshots(days=3, n=200), tmp_path)
    newest = plan_run(SegmentationSettings(input=tmp_path))
    assert newest.mode == "customers" and newest.source == paths[-1]
    picked = plan_run(SegmentationSettings(input=tmp_path, as_of=date(2026, 11, 21)))
    assert picked.source == paths[1]


def test_partitions_are_planned_on_dask_with_their_files_and_first_data_file_columns(parts):
    plan = plan_run(SegmentationSettings(input=parts, runner="dask"))
    assert plan.mode == "partitions" and plan.partitioned
    assert plan.source == parts
    assert plan.files == (parts / "part-0.parquet", parts / "part-1.parquet")
    assert plan.table_columns.preset == "mall"  # from part-1: part-0 has no rows
    counted = plan_run(SegmentationSettings(input=parts, runner="dask", k=3), count_rows=True)
    assert counted.rows == len(generate_customers(200, seed=3).frame)  # from the footers


def test_partitions_without_dask_or_with_a_median_fill_are_bad_input(parts):
    with pytest.raises(InputError, match="add --runner dask"):
        plan_run(SegmentationSettings(input=parts))
    with pytest.raises(InputError, match="median") as refused:
        plan_run(SegmentationSettings(input=parts, runner="dask", missing="median"))
    assert not isinstance(refused.value, ColumnMappingError)  # the input's problem: exit 3


def test_order_lines_are_planned_with_their_fields_and_no_customer_columns_yet(orders):
    plan = plan_run(SegmentationSettings(input=orders, transactions=True))
    assert plan.mode == "order lines" and plan.source == orders
    assert plan.columns is None and plan.orders is not None and plan.order_spec is not None
    assert plan.orders.used["customer_id"] == "CustomerID"
    assert "CustomerID" in plan.notes[0]
    with pytest.raises(RuntimeError, match="no customer table columns"):
        _ = plan.table_columns


def test_order_lines_take_as_of_as_their_date_and_one_file_is_refused_on_dask(orders):
    dated = plan_run(SegmentationSettings(input=orders, transactions=True, as_of="2011-02-01"))
    assert dated.source == orders  # one file: as_of is the snapshot date, not a pick
    with pytest.raises(InputError, match="reads a folder of Parquet parts"):
        plan_run(SegmentationSettings(input=orders, transactions=True, runner="dask"))


def test_order_lines_in_parquet_parts_are_planned_on_dask_with_their_files(orders, tmp_path):
    lines = pd.read_csv(orders, dtype=str)
    folder = tmp_path / "lines"
    folder.mkdir()
    lines.iloc[:0].to_parquet(folder / "part-0.parquet", index=False)  # no rows: skipped
    lines.to_parquet(folder / "part-1.parquet", index=False)
    on_dask = SegmentationSettings(
        input=folder, transactions=True, runner="dask", as_of="2011-02-01"
    )
    plan = plan_run(on_dask)
    assert plan.mode == "order lines" and not plan.partitioned  # the rest runs in memory
    assert plan.source == folder and plan.files == tuple(sorted(folder.iterdir()))
    assert plan.orders is not None and plan.orders.used["customer_id"] == "CustomerID"
    with pytest.raises(InputError, match="add --runner dask"):
        plan_run(SegmentationSettings(input=folder, transactions=True))


def test_order_lines_with_a_feature_not_derived_from_them_are_refused(orders):
    with pytest.raises(InputError, match="not derived from order lines"):
        plan_run(SegmentationSettings(input=orders, transactions=True, features=["Quantity"]))


def test_mistakes_in_the_options_are_usage_errors_naming_the_option(tmp_path):
    with pytest.raises(ColumnMappingError, match="nosuch"):
        plan_run(SegmentationSettings(input=DEFAULT_INPUT, columns={"nosuch": "Age"}))
    rows = len(DEFAULT_INPUT.read_text().splitlines()) - 1
    assert plan_run(SegmentationSettings(input=DEFAULT_INPUT, k=rows), count_rows=True).rows == rows
    with pytest.raises(ColumnMappingError, match=f"--k {rows + 1} asks for more segments"):
        plan_run(SegmentationSettings(input=DEFAULT_INPUT, k=rows + 1), count_rows=True)
    # not counted, not refused here: the flow refuses it after the cleaning
    assert isinstance(plan_run(SegmentationSettings(input=DEFAULT_INPUT, k=rows + 1)), RunPlan)


def test_an_input_that_is_missing_or_a_pipe_is_refused_before_reading(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        check_options(SegmentationSettings(input=tmp_path / "nope.csv"))
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as refused:
        plan_run(SegmentationSettings(input=fifo))  # never opened: it would block or drain
    assert str(refused.value) == f"{fifo}: {NOT_A_REGULAR_FILE}"
