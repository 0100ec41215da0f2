"""Order lines out of core (DuckDB, ``tasks.orders.out_of_core``) give exactly what the
in-memory derivation gives: the same customers and R/F/M values, the same customers without a
purchase, the same quarantined lines with the same reasons, the same accounting; also under a
low memory limit (spilling), with every rule's edge, and in a whole run."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as arrow
import pyarrow.parquet as pq
import pytest
from planted_orders import order_lines, write_order_lines

from tasks.errors import InputError
from tasks.ingest import read_file
from tasks.orders.encoded_lines import read_encoded_lines
from tasks.orders.order_columns import find_order_columns
from tasks.orders.out_of_core import derive_lines, derive_out_of_core
from tasks.orders.out_of_core import order_lines as lines_of
from tasks.orders.transactions import Derivation, derive_customers


def assert_same(expected: Derivation, got: Derivation) -> None:
    """Equal in everything a run writes (sums of floats within 1e-12: DuckDB adds exactly,
    numpy in line order)."""
    assert got.accounting == expected.accounting
    assert got.reasons == expected.reasons and list(got.reasons) == list(expected.reasons)
    assert (got.snapshot, got.date_reading) == (expected.snapshot, expected.date_reading)
    pd.testing.assert_frame_equal(got.customers, expected.customers, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(
        got.without_purchases, expected.without_purchases, check_exact=False, rtol=1e-12
    )
    pd.testing.assert_frame_equal(got.quarantine, expected.quarantine)
    record, expected_record = got.manifest_record(), expected.manifest_record()
    assert record.pop("derivation").startswith("out of core in DuckDB")
    assert expected_record.pop("derivation") == "in memory"
    assert record == expected_record


def both(path: Path, profile=(), **options) -> tuple[Derivation, Derivation]:
    """(in memory, out of core) on the same Parquet file."""
    lines = read_encoded_lines(path)
    columns = find_order_columns(lines.headers, {}, list(profile))
    return (
        derive_customers(lines, columns, **options),
        derive_out_of_core(path, columns, **options),
    )


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """Planted order lines with their dirt (no-id lines, cancellations, zero prices,
    duplicates, unparseable quantities) and more: padded and NA-token values, a price that is
    not a number, and lines equal to others only once their padding is stripped."""
    frame = order_lines(400, seed=3).lines.astype({"UnitPrice": "str"})
    rng = np.random.default_rng(5)
    pick = rng.choice(len(frame), 60, replace=False)
    frame.loc[pick[:10], "CustomerID"] = " " + frame.loc[pick[:10], "CustomerID"] + "\t"
    frame.loc[pick[10:15], "CustomerID"] = "NA"
    frame.loc[pick[15:18], "InvoiceNo"] = " n/a "
    frame.loc[pick[18:22], "UnitPrice"] = "free"
    frame.loc[pick[22:25], "InvoiceDate"] = "yesterday"
    frame.loc[pick[25:28], "Country"] = "\u00a0France\u3000"
    copies = frame.loc[pick[28:40]].copy()
    copies["Description"] = "  " + copies["Description"] + " "  # duplicates once stripped
    frame = pd.concat([frame, copies], ignore_index=True)
    path = tmp_path_factory.mktemp("planted") / "orders.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_planted_lines_with_every_rule_match_the_in_memory_derivation(planted):
    expected, got = both(planted, profile=["Country"])
    assert_same(expected, got)
    reasons = set(got.reasons)
    assert {"no customer id", "InvoiceNo: missing value", "UnitPrice: not a number"} <= reasons
    assert "InvoiceDate: not a date" in reasons and got.accounting.duplicates_dropped > 12
    assert got.customers["customer_id"].str.strip().eq(got.customers["customer_id"]).all()
    assert "France" in set(got.customers["Country"])


def test_as_of_and_a_date_format_match_the_in_memory_derivation(tmp_path):
    frame = order_lines(300, seed=9).lines
    when = pd.to_datetime(frame["InvoiceDate"], errors="coerce")
    frame["InvoiceDate"] = when.dt.strftime("%d/%m/%Y %H:%M").fillna("not a date")
    path = tmp_path / "dayfirst.parquet"
    frame.to_parquet(path, index=False)
    cut = date(2026, 9, 1)
    assert_same(*both(path, as_of=cut, date_format="%d/%m/%Y %H:%M"))
    expected, got = both(path, as_of=cut)  # day-first read from the dates
    assert_same(expected, got)
    assert got.date_reading == "day-first" and got.snapshot == cut


def test_numbers_stored_as_numbers_and_an_amount_column(tmp_path):
    frame = order_lines(300, seed=13, dirt=False).lines
    frame = pd.DataFrame(
        {
            "order_id": frame["InvoiceNo"].astype("int64"),
            "client_id": pd.to_numeric(frame["CustomerID"]).astype("float64"),
            "Date": pd.to_datetime(frame["InvoiceDate"]),
            "Amount": frame["Quantity"].astype("float64") * frame["UnitPrice"],
        }
    )
    frame.loc[::97, "client_id"] = np.nan
    frame.loc[::89, "Amount"] = -frame.loc[::89, "Amount"]
    path = tmp_path / "amounts.parquet"
    frame.to_parquet(path, index=False)
    expected, got = both(path)
    assert_same(expected, got)
    assert got.customers["customer_id"].str.fullmatch(r"\d+").all()  # 10017.0 shows as 10017


def test_the_shared_online_retail_sample_matches_as_parquet(shared_data, tmp_path):
    """The real sample (month-first dates, float customer ids with gaps, cancellations): read
    from its CSV in memory, and out of core from Parquet in the types the reader gives and as
    all-text columns."""
    source = shared_data / "online_retail_sample.csv"
    raw = read_file(source, None)
    columns = find_order_columns(list(raw.columns[1:]), {}, ["Country"])
    expected = derive_customers(raw, columns)
    typed, text = tmp_path / "typed.parquet", tmp_path / "text.parquet"
    raw.drop(columns="source_row").to_parquet(typed, index=False)
    pd.read_csv(source, dtype=str, keep_default_na=False).to_parquet(text, index=False)
    for path in (typed, text):
        assert_same(expected, derive_out_of_core(path, columns))
    assert expected.accounting.lines_read == 20_000 and expected.accounting.duplicates_dropped == 7


def test_a_low_memory_limit_spills_and_gives_the_same_result(tmp_path):
    path = write_order_lines(order_lines(6000, seed=17), tmp_path / "orders.parquet")
    lines = read_encoded_lines(path)
    columns = find_order_columns(lines.headers)
    spill = tmp_path / "spill"
    spill.mkdir()
    got = derive_out_of_core(path, columns, memory_limit="40MB", spill_dir=spill)
    assert len(got.customers) > 5000
    assert_same(derive_customers(lines, columns), got)
    assert list(spill.iterdir()) == []  # its working folder is removed


def test_a_limit_too_small_to_work_in_is_one_clear_error(planted):
    columns = find_order_columns(read_encoded_lines(planted).headers)
    with pytest.raises(InputError, match="ran out of --lines-memory-limit 10KB") as error:
        derive_out_of_core(planted, columns, memory_limit="10KB")
    assert error.value.path == str(planted)


def test_the_quarantine_is_capped_with_exact_counts(planted):
    lines = read_encoded_lines(planted)
    columns = find_order_columns(lines.headers)
    full = derive_customers(lines, columns)
    capped = derive_out_of_core(planted, columns, quarantine_cap=25)
    assert len(full.quarantine) > 25 and capped.quarantine_capped
    pd.testing.assert_frame_equal(capped.quarantine, full.quarantine.head(25))
    assert capped.accounting == full.accounting and capped.reasons == full.reasons
    record = capped.manifest_record()
    assert record["quarantine_lines_written"] == 25 and record["quarantine_capped"] is True
    assert full.manifest_record()["quarantine_capped"] is False


def test_refusals_are_those_of_the_in_memory_derivation(tmp_path):
    ambiguous = pd.DataFrame(
        {
            "InvoiceNo": ["1", "2"],
            "CustomerID": ["a", "b"],
            "InvoiceDate": ["01/02/2026", "03/04/2026"],
            "Quantity": [1, 2],
            "UnitPrice": [1.0, 2.0],
        }
    )
    path = tmp_path / "ambiguous.parquet"
    ambiguous.to_parquet(path, index=False)
    columns = find_order_columns(list(ambiguous.columns))
    with pytest.raises(InputError, match="ambiguous dates") as error:
        derive_out_of_core(path, columns)
    assert error.value.column == "InvoiceDate"
    cancelled = ambiguous.assign(InvoiceNo=["C1", "C2"], InvoiceDate=["2026-01-02"] * 2)
    cancelled.to_parquet(path, index=False)
    with pytest.raises(InputError, match="no purchase line left") as expected:
        derive_customers(read_encoded_lines(path), columns)
    with pytest.raises(InputError, match="no purchase line left") as got:
        derive_out_of_core(path, columns)
    assert got.value.message == expected.value.message


def test_hostile_file_names_and_headers(tmp_path):
    """A path with quotes and glob characters is read as itself; headers never reach SQL."""
    frame = order_lines(200, seed=19, dirt=False).lines.rename(
        columns={"StockCode": "x'); DROP TABLE lines; --", "Description": "*"}
    )
    path = tmp_path / "it's [a] *.parquet"
    frame.to_parquet(path, index=False)
    (tmp_path / "it's a b.parquet").write_bytes(b"not parquet")  # would match as a glob
    assert_same(*both(path))


def test_order_lines_keep_parquet_on_disk_and_read_text(tmp_path, planted):
    lines, raw = lines_of(planted, None)
    assert lines == planted and raw is None
    csv = tmp_path / "orders.csv"
    pd.read_parquet(planted).to_csv(csv, index=False)
    in_memory, raw = lines_of(csv, None)
    assert raw is not None and len(in_memory) == len(raw)
    columns = find_order_columns(in_memory.headers)
    # the CSV reader and the Parquet file agree (UnitPrice text in both)
    assert derive_lines(in_memory, columns).accounting == derive_lines(lines, columns).accounting
    empty = tmp_path / "empty.parquet"
    pq.write_table(arrow.table({"a": arrow.array([], arrow.string())}), empty)
    with pytest.raises(InputError, match="no data rows"):
        lines_of(empty, None)
