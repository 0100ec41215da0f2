"""`segment run --transactions` on the command line: wrong columns stop before Prefect starts
(exit 3 for the file's problem, 2 for an unknown --column field), --date-format needs
--transactions, --as-of is a snapshot date for one order file."""

from __future__ import annotations

import pytest

from segment.cli.main import EXIT_BAD_INPUT, EXIT_USAGE, check_input, main, order_lines_summary
from segment.settings import SegmentationSettings

ORDERS = (
    "InvoiceNo,Quantity,InvoiceDate,UnitPrice,CustomerID\n"
    "1,2,2011-01-01 10:00,3.5,A\n"
    "2,1,2011-01-02 10:00,2.0,B\n"
)


@pytest.fixture
def orders(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS)
    return path


def settings(path, **given) -> SegmentationSettings:
    return SegmentationSettings(input=path, transactions=True, **given)


def test_order_lines_with_their_columns_pass_the_check(orders):
    assert check_input(settings(orders)) is None


def test_as_of_with_one_order_file_is_a_snapshot_date_not_an_error(orders):
    assert check_input(settings(orders, as_of="2011-02-01")) is None


def test_a_missing_order_column_is_bad_input_naming_the_file(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("InvoiceNo,Quantity,UnitPrice,CustomerID\n1,2,3.5,A\n")
    code, message = check_input(settings(path))
    assert code == EXIT_BAD_INPUT
    assert str(path) in message and "need column(s) date" in message


def test_an_unknown_column_field_is_a_usage_error(orders):
    code, message = check_input(settings(orders, columns={"client": "CustomerID"}))
    assert code == EXIT_USAGE and "takes one of: customer_id, invoice" in message


def test_a_feature_that_is_not_derived_is_refused(orders):
    code, message = check_input(settings(orders, features=["Quantity"]))
    assert code == EXIT_BAD_INPUT and "not derived from order lines" in message


@pytest.mark.parametrize("option", [["--date-format", "%d/%m/%Y"], ["--lines-memory-limit", "2GB"]])
def test_order_line_options_without_transactions_are_a_usage_error(orders, capsys, option):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--input", str(orders), *option])
    assert exit_.value.code == EXIT_USAGE
    assert "use it with --transactions" in capsys.readouterr().err


def test_a_memory_limit_that_is_not_a_size_is_a_usage_error(orders, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--input", str(orders), "--transactions", "--lines-memory-limit", "lots"])
    assert exit_.value.code == EXIT_USAGE
    assert "--lines-memory-limit" in capsys.readouterr().err


def test_summary_lines_of_the_order_accounting():
    record = {
        "lines": {
            "lines_read": 100, "lines_used": 60, "lines_not_purchases": 5,
            "lines_quarantined": 30, "duplicates_dropped": 5, "lines_without_customer_id": 25,
            "cancellation_lines": 4,
        },
        "customers": {
            "customers_with_lines": 11, "customers": 10, "customers_without_purchases": 1,
        },
        "snapshot_date": "2011-12-10",
        "date_reading": "ISO",
        "quarantine_reasons": {"no customer id": 25, "Quantity: not a number": 5},
    }  # fmt: skip
    text = "\n".join(order_lines_summary(record))
    assert "Lines: 100 read = 60 used + 5 not purchases + 30 quarantined + 5 duplicates" in text
    assert "25 of the 100 lines (25.0%) had no customer id" in text
    assert "Other quarantined lines: Quantity: not a number (5)" in text
    assert order_lines_summary(None) == []


def test_id_column_and_column_mappings_name_the_order_fields(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("Bon,Kunde,Datum,Betrag\n1,A,2011-01-01,5\n")
    given = settings(path, id_column="Kunde", columns={"invoice": "Bon", "date": "Datum"})
    assert given.order_fields() == {"customer_id": "Kunde", "invoice": "Bon", "date": "Datum"}
    code, message = check_input(given)  # no amount spelling matches "Betrag"
    assert code == EXIT_BAD_INPUT and "need column(s) quantity" in message
    assert "or one amount column instead of quantity and price" in message
    given = settings(path, id_column="Kunde", columns={"invoice": "Bon", "date": "Datum",
                                                       "amount": "Betrag"})  # fmt: skip
    assert check_input(given) is None


def test_a_folder_of_dated_order_snapshots_is_checked_on_the_one_picked(tmp_path):
    folder = tmp_path / "orders"
    folder.mkdir()
    (folder / "orders_2011-01-01.csv").write_text(ORDERS)
    (folder / "orders_2011-02-01.csv").write_text("no,order,columns\n1,2,3\n")
    assert check_input(settings(folder, as_of="2011-01-15")) is None  # picks 2011-01-01
    code, message = check_input(settings(folder))  # the newest has no order columns
    assert code == EXIT_BAD_INPUT and "orders_2011-02-01.csv" in message
