"""Order lines read straight into codes (tasks/orders/encoded_lines.py) give the values and the
derivation that reading every column as text gives, and the code-based helpers of the
derivation (duplicates, distinct invoices, customer numbering) equal plain pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as arrow
import pyarrow.parquet as pq
import pytest
from planted_orders import order_lines

from tasks.errors import InputError
from tasks.ingest import read_file
from tasks.orders.encoded_lines import encode_frame, read_encoded_lines
from tasks.orders.order_columns import find_order_columns
from tasks.orders.transactions import (
    _distinct_per_group,
    _duplicates,
    _number_by_first_line,
    derive_customers,
)


def decoded(lines, header: str) -> list:
    """The values of one encoded column, line by line (None: missing)."""
    column = lines[header]
    values = column.values.to_numpy(dtype=object)
    return [None if code < 0 else values[code] for code in column.codes]


def as_read(frame: pd.DataFrame, header: str) -> list:
    return [None if pd.isna(v) else v for v in frame[header].to_numpy(dtype=object)]


@pytest.fixture
def awkward_parquet(tmp_path):
    """Padded text, NA tokens, numbers with NaN, integers, a categorical, timestamps, an
    all-null column and a column named source_row, in row groups of 2 lines (one dictionary
    per row group)."""
    table = arrow.table(
        {
            "Invoice": ["1", " 1", "NA", "2 ", None, "", "C3", "1"],
            "Price": [1.5, float("nan"), 2.0, None, 1.5, 3.0, 2.0, 1.5],
            "Qty": arrow.array([1, 2, None, 4, 1, 2, 3, 1], arrow.int64()),
            "Country": arrow.array(
                ["UK", "FR", "UK", "n/a", "UK", "FR", "?", "UK"]
            ).dictionary_encode(),
            "When": arrow.array(
                pd.to_datetime(["2011-01-01 10:00"] * 4 + [None] + ["2011-01-02 00:00"] * 3)
            ),
            "Nothing": arrow.nulls(8),
            "source_row": ["a", "b", "c", "d", "e", "f", "g", "h"],
        }
    )
    path = tmp_path / "lines.parquet"
    pq.write_table(table, path, row_group_size=2)
    return path


def test_parquet_columns_decode_to_the_values_read_file_gives(awkward_parquet):
    frame = read_file(awkward_parquet)
    lines = read_encoded_lines(awkward_parquet)
    assert lines.headers == list(frame.columns[1:])  # source_row_extra: the same renaming
    assert lines.source_row.tolist() == frame["source_row"].tolist()
    for header in lines.headers:
        assert decoded(lines, header) == as_read(frame, header), header
    assert decoded(lines, "Invoice")[:4] == ["1", "1", None, "2"]  # stripped, NA tokens missing
    assert lines["Price"].values.dtype == "float64"  # numbers stay numbers


def test_equal_values_share_one_code_across_row_groups(awkward_parquet):
    codes = read_encoded_lines(awkward_parquet)["Invoice"].codes
    assert codes[0] == codes[1] == codes[7] >= 0  # "1", " 1" and "1" in three row groups
    assert codes[2] == codes[4] == codes[5] == -1


def test_a_parquet_file_with_no_rows_is_bad_input(tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(arrow.table({"Invoice": arrow.array([], arrow.string())}), path)
    with pytest.raises(InputError, match="no data rows"):
        read_encoded_lines(path)


def test_derivation_from_parquet_codes_equals_the_one_from_text(tmp_path):
    orders = order_lines(300, seed=5)  # with every kind of dirt
    path = tmp_path / "orders.parquet"
    pq.write_table(
        arrow.Table.from_pandas(orders.lines, preserve_index=False), path, row_group_size=997
    )
    columns = find_order_columns(list(orders.lines.columns), None, ("Country", "StockCode"))
    from_text = derive_customers(read_file(path), columns)
    from_codes = derive_customers(read_encoded_lines(path), columns)
    pd.testing.assert_frame_equal(from_codes.customers, from_text.customers)
    pd.testing.assert_frame_equal(from_codes.quarantine, from_text.quarantine)
    pd.testing.assert_frame_equal(from_codes.without_purchases, from_text.without_purchases)
    assert from_codes.accounting == from_text.accounting
    assert from_codes.reasons == from_text.reasons
    assert from_codes.accounting.duplicates_dropped > 0 and from_codes.reasons


def test_duplicates_equal_pandas_duplicated_on_every_column():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.integers(0, 3, size=(3000, 5)).astype(str))
    frame.iloc[::7, 2] = None  # missing values are equal to each other
    frame.insert(0, "source_row", np.arange(1, 3001))
    expected = frame.iloc[:, 1:].duplicated().to_numpy()
    assert expected.sum() > 2000  # 3^5 distinct lines at most: mostly duplicates
    np.testing.assert_array_equal(_duplicates(encode_frame(frame)), expected)


def test_distinct_invoices_per_customer_with_an_invoice_shared_by_two_customers():
    customers = np.array([0, 0, 1, 1, 2, 0, 2])
    invoices = np.array([5, 5, 5, 7, 8, 9, 8])  # invoice 5: customers 0 and 1
    expected = pd.DataFrame({"c": customers, "i": invoices}).groupby("c")["i"].nunique()
    assert _distinct_per_group(customers, invoices, 4).tolist() == [*expected.tolist(), 0]


def test_customers_numbered_in_order_of_first_line_like_factorize():
    codes = np.array([4, 2, 4, 0, 2, 5])
    new, old = _number_by_first_line(codes, 7)
    expected_new, expected_old = pd.factorize(codes)
    assert new.tolist() == expected_new.tolist() and old.tolist() == expected_old.tolist()


def test_the_stripped_code_points_are_what_str_strip_strips():
    from tasks.orders.encoded_lines import STRIPPED

    assert set(STRIPPED) == {code for code in range(0x110000) if chr(code).isspace()}
