"""Order lines in a folder of Parquet parts, derived on Dask (`segment run --transactions
--runner dask`): the same customers, values, line accounting, quarantine and segments as the
in-memory derivation of the parts concatenated in name order (tasks/orders/partitioned_lines)."""

from __future__ import annotations

import json
from datetime import date

import dask
import numpy as np
import pandas as pd
import pytest
from planted_orders import order_lines

from flows.segmentation import segment_customers
from schemas.columns import SOURCE_ROW
from segment.cli import main as cli
from segment.settings import SegmentationSettings
from tasks.errors import InputError
from tasks.orders.encoded_lines import encode_frame, read_encoded_lines
from tasks.orders.order_columns import find_order_columns
from tasks.orders.partitioned_lines import (
    bucket_of,
    derive_partitioned,
    merge_derivations,
)
from tasks.orders.transactions import DateReading, Derivation, derive_customers
from tasks.store.run_files import latest_run
from tasks.store.snapshots import partition_files


def write_parts(frames: list[pd.DataFrame], folder, lines: pd.DataFrame | None = None) -> tuple:
    """Each frame as part-<i>.parquet, and all of them (or ``lines``) as one Parquet file
    beside the folder."""
    folder.mkdir()
    for i, frame in enumerate(frames):
        frame.to_parquet(folder / f"part-{i}.parquet", index=False)
    whole = folder.parent / f"{folder.name}-whole.parquet"
    lines = pd.concat(frames, ignore_index=True) if lines is None else lines
    lines.to_parquet(whole, index=False)
    return partition_files(folder), whole


def derive_both(files, whole, profile=(), **options) -> tuple[Derivation, Derivation]:
    """(on the parts with Dask's synchronous scheduler, in memory on the whole file)."""
    buckets = options.pop("buckets", None)
    lines = read_encoded_lines(whole)
    columns = find_order_columns(lines.headers, {}, profile)
    expected = derive_customers(lines, columns, **options)
    with dask.config.set(scheduler="sync"):
        got = derive_partitioned(files, columns, buckets=buckets, **options)
    return got, expected


def assert_same(got: Derivation, expected: Derivation) -> None:
    pd.testing.assert_frame_equal(got.customers, expected.customers)  # row order included
    pd.testing.assert_frame_equal(got.quarantine, expected.quarantine)
    pd.testing.assert_frame_equal(got.without_purchases, expected.without_purchases)
    assert got.accounting == expected.accounting
    assert list(got.reasons.items()) == list(expected.reasons.items())  # the order too
    assert got.snapshot == expected.snapshot and got.date_reading == expected.date_reading
    record, expected_record = got.manifest_record(), expected.manifest_record()
    assert record.pop("derivation") == "on the Dask cluster, per bucket of customers"
    assert expected_record.pop("derivation") == "in memory"
    assert record == expected_record


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Planted order lines with day-first dates in 3 parts and an empty one; the last part
    repeats lines of the first (exact duplicates across parts)."""
    lines = order_lines(customers=400, seed=7).lines
    when = pd.to_datetime(lines["InvoiceDate"])
    lines["InvoiceDate"] = when.dt.strftime("%d/%m/%Y %H:%M")
    frames = [lines.iloc[rows] for rows in np.array_split(np.arange(len(lines)), 3)]
    frames[2] = pd.concat([frames[2], frames[0].iloc[:25]], ignore_index=True)
    frames.insert(1, lines.iloc[:0])  # a part with no rows (Spark and Dask write them)
    return write_parts(frames, tmp_path_factory.mktemp("orders") / "parts"), frames


def test_parts_derive_the_customers_of_the_concatenated_file(planted):
    (files, whole), frames = planted
    got, expected = derive_both(files, whole, profile=("Country",))
    assert_same(got, expected)
    # what the parts hold: a customer in several parts, duplicates across parts, every rule
    ids = [set(frame["CustomerID"].dropna()) for frame in frames]
    assert ids[0] & ids[2] & ids[3]
    assert expected.accounting.duplicates_dropped >= 25
    assert expected.accounting.lines_without_customer_id > 0
    assert expected.accounting.cancellation_lines > 0
    assert "Quantity: not a number" in expected.reasons
    assert expected.date_reading == "day-first"
    # more buckets than parts: the same
    more, _ = derive_both(files, whole, profile=("Country",), buckets=7)
    assert_same(more, expected)


def test_parts_with_as_of_quarantine_later_lines_as_the_whole_file(planted):
    (files, whole), _ = planted
    got, expected = derive_both(files, whole, as_of=date(2026, 9, 1), buckets=5)
    assert expected.reasons.get("InvoiceDate: on or after the snapshot date (--as-of)", 0) > 0
    assert_same(got, expected)


def test_parts_with_a_date_format_read_and_refuse_dates_as_the_whole_file(planted):
    (files, whole), _ = planted
    got, expected = derive_both(files, whole, date_format="%d/%m/%Y %H:%M", buckets=3)
    assert expected.date_reading == "--date-format %d/%m/%Y %H:%M"
    assert_same(got, expected)
    # a format no date matches: refused over all parts, naming the date column
    columns = find_order_columns(read_encoded_lines(whole).headers)
    refused = pytest.raises(InputError, match="no date matches --date-format")
    with refused as caught, dask.config.set(scheduler="sync"):
        derive_partitioned(files, columns, date_format="%Y-%m-%d")
    assert caught.value.column == "InvoiceDate"


def test_a_part_without_a_field_or_not_parquet_is_bad_input_naming_it(planted, tmp_path):
    (_, whole), frames = planted
    columns = find_order_columns(read_encoded_lines(whole).headers)
    folder = tmp_path / "parts"
    folder.mkdir()
    frames[0].to_parquet(folder / "a.parquet", index=False)
    frames[2].drop(columns="UnitPrice").to_parquet(folder / "b.parquet", index=False)
    with pytest.raises(InputError, match="UnitPrice") as caught, dask.config.set(scheduler="sync"):
        derive_partitioned(partition_files(folder), columns)
    assert caught.value.path == str(folder / "b.parquet")
    (folder / "b.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file") as caught:
        derive_partitioned(partition_files(folder), columns)
    assert caught.value.path == str(folder / "b.parquet")


def _dated(ids, dates, invoice="5") -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "InvoiceNo": [f"{invoice}{i}" for i in range(n)],
            "InvoiceDate": dates,
            "Quantity": ["2"] * n,
            "UnitPrice": [1.5] * n,
            "CustomerID": [str(i) for i in ids],
        }
    )


@pytest.mark.parametrize(
    ("late", "reading"), [("13/02/2011", "day-first"), ("02/13/2011", "month-first")]
)
def test_the_date_order_is_decided_over_every_part(tmp_path, late, reading):
    # Part 0: 40 customers with dates that read both ways (differently); part 1: one customer
    # whose date reads one way only. Alone, most buckets would stop as ambiguous.
    first = _dated(range(40), [f"0{1 + i % 9}/0{1 + i % 3}/2011" for i in range(40)])
    second = _dated([99], [late], invoice="7")
    files, whole = write_parts([first, second], tmp_path / "parts")
    got, expected = derive_both(files, whole, buckets=8)
    assert expected.date_reading == reading
    assert_same(got, expected)


def test_dates_in_both_orders_across_parts_are_refused_naming_the_date_column(tmp_path):
    files, whole = write_parts(
        [_dated([1], ["13/02/2011"]), _dated([2], ["02/13/2011"], invoice="7")], tmp_path / "p"
    )
    columns = find_order_columns(read_encoded_lines(whole).headers)
    refused = pytest.raises(InputError, match="both day-first and month-first")
    with refused as caught, dask.config.set(scheduler="sync"):
        derive_partitioned(files, columns)
    assert caught.value.column == "InvoiceDate"


def test_no_purchase_line_in_any_part_is_bad_input_as_for_the_whole_file(tmp_path):
    lines = _dated(range(6), ["2011-02-01"] * 6).assign(InvoiceNo=lambda f: "C" + f["InvoiceNo"])
    files, whole = write_parts([lines.iloc[:3], lines.iloc[3:]], tmp_path / "p")
    lines = read_encoded_lines(whole)
    columns = find_order_columns(lines.headers)
    with pytest.raises(InputError) as expected:
        derive_customers(lines, columns)
    with pytest.raises(InputError) as got, dask.config.set(scheduler="sync"):
        derive_partitioned(files, columns, buckets=3)
    assert got.value.message == expected.value.message
    assert "no purchase line left" in got.value.message


def test_ids_stored_as_numbers_in_one_part_and_as_text_in_another_are_one_customer(tmp_path):
    lines = _dated([17850, 17850, 13047, 17850], ["2011-02-01", "2011-03-01", "2011-03-02", "x"])
    lines["Note"] = [None, None, "gift", None]  # a column only the second part has
    numbers = lines.iloc[:2].drop(columns="Note").astype({"CustomerID": "int64"})
    files, whole = write_parts([numbers, lines.iloc[2:]], tmp_path / "p", lines)  # text ids
    got, expected = derive_both(files, whole)
    assert_same(got, expected)
    assert got.customers["customer_id"].tolist() == ["17850", "13047"]
    assert bucket_of(np.array(["17850"]), 7)[0] == bucket_of(np.array(["17850"]), 7)[0]


def test_order_line_parts_without_dask_or_one_file_on_dask_exit_before_prefect(planted, capsys):
    (files, whole), _ = planted
    for args in (
        ["--input", str(files[0].parent)],
        ["--input", str(whole), "--runner", "dask"],
    ):
        assert cli.main(["run", "--transactions", "--quiet", *args]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "add --runner dask" in err and "reads a folder of Parquet parts" in err


# ------------------------------------------------------------------ the merge, on its own


def _frame(rows: list[tuple]) -> pd.DataFrame:
    """Lines as read_file gives them: source_row, then text and float64 columns."""
    frame = pd.DataFrame(
        rows, columns=[SOURCE_ROW, "InvoiceNo", "InvoiceDate", "Qty", "Price", "Customer"]
    )
    return frame.astype(
        {
            "InvoiceNo": "str",
            "InvoiceDate": "str",
            "Qty": "float64",
            "Price": "float64",
            "Customer": "str",
        }
    )


LINES = _frame(
    [
        (1, "1", "2011-01-05 10:00", 2, 1.0, "b"),
        (2, "2", "2011-01-06 10:00", 1, 3.0, "a"),
        (3, "C3", "2011-01-07 10:00", -1, 3.0, "c"),  # c: only a cancellation
        (4, "1", "2011-01-05 10:00", 2, 1.0, "b"),  # a duplicate of line 1
        (5, "4", "nope", 1, 1.0, "a"),  # not a date
        (6, "5", "2011-02-01 09:00", 1, None, None),  # no id and no price
        (7, "6", "2011-03-01 12:00", 4, 2.5, "a"),  # the latest purchase
        (8, "7", "2011-01-09 10:00", 1, 2.0, "d"),
        (9, "8", "2011-01-10 10:00", None, 2.0, "d"),  # no quantity
    ]
)


def _parts(buckets: dict[str, int]) -> list[Derivation]:
    """derive_customers(part=True) on the lines of each bucket (no id: bucket 0)."""
    columns = find_order_columns(list(LINES.columns[1:]))
    reading = DateReading("ISO")
    bucket = LINES["Customer"].map(buckets).fillna(0).astype(int)
    return [
        derive_customers(
            encode_frame(LINES[bucket == b].reset_index(drop=True)),
            columns,
            reading=reading,
            part=True,
        )
        for b in sorted(set(bucket))
    ]


def test_merge_of_buckets_equals_the_derivation_of_all_lines():
    columns = find_order_columns(list(LINES.columns[1:]))
    expected = derive_customers(encode_frame(LINES), columns)
    # a's latest purchase sets the snapshot; b's bucket alone would take an earlier one
    parts = _parts({"b": 1, "c": 1, "a": 2, "d": 3})
    assert parts[1].snapshot < expected.snapshot
    assert [len(p.customers) for p in parts] == [0, 1, 1, 1]  # bucket 0: the no-id line only
    merged = merge_derivations(parts, columns, as_of=None, reading=DateReading("ISO"))
    assert_same(merged, expected)
    assert merged.customers["customer_id"].tolist() == ["b", "a", "d"]  # by first valid line
    assert merged.snapshot == date(2011, 3, 2)
    assert merged.customers["recency_days"].tolist() == [56, 1, 52]
    # the reasons: most frequent first, ties in the order of the checks, whatever the buckets
    assert list(merged.reasons) == list(expected.reasons)
    assert list(expected.reasons) == [
        "no customer id",
        "InvoiceDate: not a date",
        "Qty: missing value",
        "Price: missing value",
    ]
    reversed_parts = merge_derivations(parts[::-1], columns, as_of=None, reading=DateReading("ISO"))
    assert_same(reversed_parts, expected)


def test_merge_takes_derivations_of_parts_only():
    columns = find_order_columns(list(LINES.columns[1:]))
    whole = derive_customers(encode_frame(LINES), columns)
    with pytest.raises(ValueError, match="part=True"):
        merge_derivations([whole], columns, as_of=None, reading=DateReading("ISO"))


# ------------------------------------------------------------------ the run, end to end


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_segment_run_on_parts_with_dask_gives_the_segments_of_the_whole_file(planted, tmp_path):
    """`segment run --transactions --runner dask` on the folder of parts (a LocalCluster of 2
    workers) against `segment run --transactions` on the parts as one file."""
    (files, whole), _ = planted
    common = ["--transactions", "--profile", "Country", "--n-init", "2", "--quiet"]
    local = segment_customers(
        SegmentationSettings(
            input=whole,
            output_dir=tmp_path / "local",
            transactions=True,
            profile=["Country"],
            n_init=2,
        )
    )
    code = cli.main(
        ["run", "--input", str(files[0].parent), "--runner", "dask", "--dask-workers", "2"]
        + ["--output", str(tmp_path / "dask"), *common]
    )
    assert code == 0
    mine, theirs = latest_run(tmp_path / "dask"), latest_run(tmp_path / "local")
    distributed = json.loads((mine / "manifest.json").read_text())

    assert distributed["transactions"].pop("derivation").startswith("on the Dask cluster")
    local["transactions"].pop("derivation")
    assert distributed["transactions"] == local["transactions"]  # lines, customers, reasons
    assert distributed["rows"] == local["rows"] and distributed["k"] == local["k"]
    assert distributed["settings"]["runner"] == "dask"
    assert set(distributed["input"]["files"]) == {f.name for f in files}
    assert "ingest" not in distributed["timings"]  # the parts are read in the derivation
    for name in ("customers", "quarantine_lines", "customers_without_purchases", "segments"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(mine / f"{name}.parquet"), pd.read_parquet(theirs / f"{name}.parquet")
        )
