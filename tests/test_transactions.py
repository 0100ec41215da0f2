"""Order lines -> RFM per customer: column discovery, dates, each line rule, the accounting,
and an independent plain-pandas recomputation on the UCI Online Retail sample."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from tasks.errors import ColumnMappingError, InputError
from tasks.ingest import read_file
from tasks.orders.encoded_lines import EncodedColumn
from tasks.orders.order_columns import OrderColumns, find_order_columns
from tasks.orders.transactions import NO_CUSTOMER_ID, derive_customers, parse_dates

HEADER = ["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
COLUMNS = OrderColumns(
    customer_id="CustomerID",
    invoice="InvoiceNo",
    date="InvoiceDate",
    quantity="Quantity",
    price="UnitPrice",
)


def lines(*rows: tuple) -> pd.DataFrame:
    """Order lines as ``read_file`` gives them: source_row, then text columns."""
    frame = pd.DataFrame(list(rows), columns=HEADER, dtype="str")
    frame.insert(0, "source_row", np.arange(1, len(frame) + 1, dtype="int64"))
    return frame


def dates(*texts: str, date_format: str | None = None) -> tuple[pd.Series, str]:
    """Date texts (one line each) parsed as ``derive_customers`` parses its date column."""
    column = EncodedColumn(np.arange(len(texts)), pd.Series(texts, dtype="str"))
    parsed, reading = parse_dates(column, date_format)
    return pd.Series(parsed), reading


def line(invoice, quantity, when, price, customer, stock="A", country="UK") -> tuple:
    return (invoice, stock, quantity, when, price, customer, country)


# ---------------------------------------------------------------- columns


def test_columns_found_by_common_spellings():
    found = find_order_columns(["Invoice", "Customer ID", "order_date", "Qty", "Price", "X"])
    assert (found.customer_id, found.invoice, found.date) == (
        "Customer ID",
        "Invoice",
        "order_date",
    )
    assert (found.quantity, found.price, found.amount) == ("Qty", "Price", None)


def test_amount_column_instead_of_quantity_and_price():
    found = find_order_columns(["order_id", "client_id", "Date", "Amount"])
    assert found.by_amount and found.amount == "Amount"


def test_column_mapping_wins_and_unknown_field_is_a_mapping_error():
    found = find_order_columns(
        ["Bon", "Kunde", "Datum", "Menge", "Preis"],
        {"invoice": "Bon", "customer_id": "Kunde", "date": "Datum", "quantity": "Menge",
         "price": "Preis"},
    )  # fmt: skip
    assert found.used == {
        "customer_id": "Kunde", "invoice": "Bon", "date": "Datum", "quantity": "Menge",
        "price": "Preis",
    }  # fmt: skip
    with pytest.raises(ColumnMappingError, match="takes one of: customer_id, invoice"):
        find_order_columns(["a"], {"client": "a"})


def test_missing_column_names_what_is_accepted_and_the_headers():
    with pytest.raises(InputError, match=r"need column\(s\) date .*headers found: InvoiceNo"):
        find_order_columns(["InvoiceNo", "CustomerID", "Quantity", "UnitPrice"])


def test_profile_column_must_exist():
    with pytest.raises(InputError, match="profile column 'Region' is not in the file"):
        find_order_columns(HEADER, profile=["Region"])


# ---------------------------------------------------------------- dates


def test_iso_dates_parse():
    parsed, reading = dates("2011-12-09 12:50:00", "2010-12-01", "soon")
    assert reading == "ISO"
    assert parsed[0] == pd.Timestamp("2011-12-09 12:50")
    assert parsed[1] == pd.Timestamp("2010-12-01") and pd.isna(parsed[2])


def test_day_first_found_from_a_day_above_12():
    parsed, reading = dates("13/01/2011 08:26", "02/03/2011 10:00")
    assert reading == "day-first"
    assert parsed[1] == pd.Timestamp("2011-03-02 10:00")


def test_month_first_found_from_a_day_above_12():
    parsed, reading = dates("12/13/2010 8:26", "1/2/2011")
    assert reading == "month-first"
    assert parsed[1] == pd.Timestamp("2011-01-02")


def test_a_date_format_no_date_matches_is_named_with_an_example():
    """A wrong --date-format is the user's setting, not bad lines: one message saying so,
    rather than every line quarantined as "not a date"."""
    with pytest.raises(InputError, match=r"no date matches --date-format %d/%m/%Y \(e\.g\. "):
        dates("2011-12-09 08:26:00", "2011-12-10 09:00:00", date_format="%d/%m/%Y")
    parsed, _ = dates("09/12/2011", "2011-12-10", date_format="%d/%m/%Y")  # some match: kept
    assert parsed.notna().tolist() == [True, False]


def test_ambiguous_dates_stop_and_ask_for_date_format():
    values = ("01/02/2011", "03/04/2011 10:00", "05/06/2011")
    with pytest.raises(InputError, match=r"ambiguous dates.*--date-format"):
        dates(*values)
    parsed, _ = dates(*values, date_format="%d/%m/%Y")  # explicit: parsed as told, odd ones NaT
    assert parsed[0] == pd.Timestamp("2011-02-01") and pd.isna(parsed[1])


def test_dates_mixing_both_orders_stop():
    with pytest.raises(InputError, match="both day-first and month-first"):
        dates("13/01/2011", "01/13/2011")


def test_dates_equal_either_way_are_not_ambiguous():
    parsed, _ = dates("01/01/2011", "02/02/2011")
    assert parsed[1] == pd.Timestamp("2011-02-02")


# ---------------------------------------------------------------- line rules


def test_each_line_rule_and_the_accounting():
    frame = lines(
        line("1", "2", "2011-01-10 10:00", "5", "A"),  # used: 10
        line("1", "1", "2011-01-10 10:00", "3", "A", stock="B"),  # used, same invoice: 3
        line("2", "1", "2011-03-01 09:00", "4", "A"),  # used: 4
        line("2", "1", "2011-03-01 09:00", "4", "A"),  # exact duplicate: dropped
        line("C3", "-1", "2011-03-02 09:00", "4", "A"),  # cancellation: returned 4
        line("4", "0", "2011-03-02 09:00", "4", "A"),  # quantity 0: not a purchase
        line("5", "1", "2011-03-02 09:00", "-2", "A"),  # price < 0: not a purchase
        line("6", "3", "2011-02-01 12:00", "2", None),  # no customer id: quarantined
        line("7", "x", "2011-02-01 12:00", "2", "B"),  # quantity not a number
        line("8", "1", "someday", "2", "B"),  # date not a date
        line("9", "1", "2011-02-01 12:00", None, "B"),  # price missing
        line("10", "1", "2011-02-05 12:00", "7", "B"),  # used
        line("C11", "-2", "2011-02-06 12:00", "1.5", "Z"),  # Z: only cancellations
    )
    derived = derive_customers(frame, COLUMNS)
    a = derived.accounting
    assert (a.lines_read, a.lines_used, a.lines_not_purchases) == (13, 4, 4)
    assert (a.lines_quarantined, a.duplicates_dropped) == (4, 1)
    assert a.lines_without_customer_id == 1 and a.cancellation_lines == 2
    reasons = dict(zip(derived.quarantine["source_row"], derived.quarantine["reason"], strict=True))
    assert reasons[8] == NO_CUSTOMER_ID
    assert reasons[9] == "Quantity='x': not a number"
    assert reasons[10] == "InvoiceDate='someday': not a date"
    assert reasons[11] == "UnitPrice: missing value"

    customers = derived.customers.set_index("customer_id")
    assert list(customers.index) == ["A", "B"]
    assert derived.snapshot == date(2011, 3, 2)  # the day after the latest purchase
    assert customers.loc["A", "frequency"] == 2 and customers.loc["A", "monetary"] == 17
    assert customers.loc["A", "recency_days"] == 1 and customers.loc["A", "tenure_days"] == 51
    assert customers.loc["A", "returned_value"] == 4
    assert customers.loc["A", "average_order_value"] == 8.5
    assert customers.loc["B", "recency_days"] == (date(2011, 3, 2) - date(2011, 2, 5)).days
    assert customers.loc["B", "monetary"] == 7 and customers.loc["B", "returned_value"] == 0

    without = derived.without_purchases
    assert list(without["customer_id"]) == ["Z"]
    assert without["reason"].iloc[0] == "no purchase line: only cancellations"
    assert without["returned_value"].iloc[0] == 3
    record = derived.manifest_record()
    assert record["customers"] == {
        "customers_with_lines": 3, "customers": 2, "customers_without_purchases": 1
    }  # fmt: skip


def test_as_of_sets_the_snapshot_and_quarantines_later_lines():
    frame = lines(
        line("1", "1", "2011-01-01 10:00", "5", "A"),
        line("2", "1", "2011-01-20 10:00", "5", "A"),
        line("3", "1", "2011-02-01 00:00", "5", "A"),  # on the as-of date: after the snapshot
    )
    derived = derive_customers(frame, COLUMNS, as_of=date(2011, 2, 1))
    assert derived.snapshot == date(2011, 2, 1)
    row = derived.customers.iloc[0]
    assert row["recency_days"] == 12 and row["frequency"] == 2 and row["monetary"] == 10
    assert derived.accounting.lines_quarantined == 1
    assert "on or after the snapshot date 2011-02-01" in derived.quarantine["reason"].iloc[0]


def test_amount_column_lines():
    frame = pd.DataFrame(
        {
            "source_row": [1, 2, 3],
            "order_id": ["1", "2", "3"],
            "customer": ["A", "A", "A"],
            "order_date": ["2011-01-01", "2011-01-02", "2011-01-03"],
            "amount": [10.0, -3.0, 5.0],  # as a Parquet file stores numbers
        }
    )
    columns = find_order_columns(list(frame.columns[1:]))
    derived = derive_customers(frame, columns)
    assert derived.customers["monetary"].iloc[0] == 15
    assert derived.accounting.lines_not_purchases == 1


def test_numeric_customer_ids_stay_text_without_decimals():
    frame = lines(line("1", "1", "2011-01-01", "5", "12345"))
    frame["CustomerID"] = frame["CustomerID"].astype("float64")  # a Parquet float id column
    derived = derive_customers(frame, COLUMNS)
    assert derived.customers["customer_id"].tolist() == ["12345"]
    assert pd.api.types.is_string_dtype(derived.customers["customer_id"])


def test_no_purchase_line_left_is_bad_input():
    frame = lines(line("C1", "-1", "2011-01-01", "5", "A"), line("2", "1", "2011-01-01", "5", None))
    with pytest.raises(InputError, match=r"no purchase line left.*1 not purchases"):
        derive_customers(frame, COLUMNS)


def test_profile_column_is_each_customers_most_frequent_value():
    frame = lines(
        line("1", "1", "2011-01-01", "5", "A", country="France"),
        line("2", "1", "2011-01-02", "5", "A", country="Spain"),
        line("3", "1", "2011-01-03", "5", "A", country="Spain"),
        line("4", "1", "2011-01-03", "5", "B", country="Spain"),
    )
    columns = OrderColumns(**{**COLUMNS.__dict__, "profile": ("Country",)})
    derived = derive_customers(frame, columns)
    assert derived.customers["Country"].tolist() == ["Spain", "Spain"]


def test_profile_column_missing_on_every_purchase_line_is_missing_not_a_crash():
    frame = lines(
        line("1", "1", "2011-01-01", "5", "A", country=None),
        line("C2", "-1", "2011-01-02", "5", "A", country="Spain"),  # a cancellation only
    )
    columns = OrderColumns(**{**COLUMNS.__dict__, "profile": ("Country",)})
    assert derive_customers(frame, columns).customers["Country"].isna().tolist() == [True]


# ---------------------------------------------------------------- the real sample


@pytest.fixture(scope="module")
def retail(shared_data):
    return read_file(shared_data / "online_retail_sample.csv")


def test_online_retail_rfm_equals_an_independent_pandas_recomputation(shared_data, retail):
    columns = find_order_columns(list(retail.columns[1:]))
    derived = derive_customers(retail, columns)

    # The plain recipe, written independently from the raw CSV with pandas defaults.
    df = pd.read_csv(shared_data / "online_retail_sample.csv", dtype={"CustomerID": "str"})
    df = df.drop_duplicates()
    no_id = int(df["CustomerID"].isna().sum())
    df = df[df["CustomerID"].notna()]
    df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"])
    df["InvoiceNo"] = df["InvoiceNo"].astype(str)
    purchases = df[
        ~df["InvoiceNo"].str.startswith("C") & (df["Quantity"] > 0) & (df["UnitPrice"] > 0)
    ].copy()
    purchases["value"] = purchases["Quantity"] * purchases["UnitPrice"]
    snapshot = purchases["InvoiceDate"].max().normalize() + pd.Timedelta(days=1)
    expected = purchases.groupby("CustomerID").agg(
        last=("InvoiceDate", "max"),
        frequency=("InvoiceNo", "nunique"),
        monetary=("value", "sum"),
    )
    expected["recency_days"] = (snapshot - expected["last"].dt.normalize()).dt.days

    got = derived.customers.set_index("customer_id").sort_index()
    expected = expected.sort_index()
    assert derived.snapshot == date(2011, 12, 10)
    assert list(got.index) == list(expected.index)
    assert len(got) == 3017
    np.testing.assert_array_equal(got["recency_days"], expected["recency_days"])
    np.testing.assert_array_equal(got["frequency"], expected["frequency"])
    np.testing.assert_allclose(got["monetary"], expected["monetary"], rtol=1e-12)

    a = derived.accounting
    assert a.lines_read == 20_000 and a.duplicates_dropped == 7
    assert a.lines_used + a.lines_not_purchases + a.lines_quarantined + 7 == 20_000
    assert a.lines_without_customer_id == a.lines_quarantined == no_id
    assert derived.reasons == {NO_CUSTOMER_ID: a.lines_quarantined}
    assert (derived.quarantine["reason"] == NO_CUSTOMER_ID).all()


def test_iso_dates_with_a_utc_offset_are_taken_in_utc():
    parsed, _ = dates("2011-01-01T10:00:00+02:00", "2011-01-01 09:00")
    assert parsed.tolist() == [
        pd.Timestamp("2011-01-01 08:00"), pd.Timestamp("2011-01-01 09:00")
    ]  # fmt: skip


def test_ambiguous_dates_in_order_lines_name_the_date_column():
    frame = lines(line("1", "1", "01/02/2011", "5", "A"), line("2", "1", "03/04/2011", "5", "B"))
    with pytest.raises(InputError, match="column 'InvoiceDate': ambiguous dates"):
        derive_customers(frame, COLUMNS)
    derived = derive_customers(frame, COLUMNS, date_format="%m/%d/%Y")
    assert derived.customers["last_purchase"].tolist() == [
        pd.Timestamp("2011-01-02"), pd.Timestamp("2011-03-04")
    ]  # fmt: skip
