"""The corpus of bad inputs (issue 5): one test per kind of damaged customer file.

Every file is generated in ``tmp_path`` by the code below, except the real damaged files in
``../shared/data/dirty`` (through the ``shared_data`` fixture, skipped when absent). Each case
has one of two outcomes:

- **bad input**: ``segment run`` exits with ``EXIT_BAD_INPUT`` (3) and writes exactly one line
  to standard error, ``segment: error: <file>[, row N][, column 'X']: <what is wrong>``; no run
  folder is left. Checked end to end through ``segment.cli.main.main``, in-process, under the
  session's throw-away Prefect server (about 1 s a case; Prefect's own log goes to the real stderr).
- **clean run**: the named source rows are quarantined with their exact reasons, and
  ``rows_read = rows_kept + rows_quarantined + duplicates_dropped``, the row accounting the
  manifest records (``CleanResult.accounting()``). Checked on the task functions, except for the
  case that needs the elbow sweep and the fit, which runs the command.

Exit codes (``segment.cli.main``): 0 ok, 1 internal error, 2 usage, 3 bad input, 4 quality gate.

Tested elsewhere, not repeated here: a missing file (exit 3 before Prefect starts,
``test_cli.test_missing_input_file_exits_with_bad_input_code_before_prefect_starts``); the real
merge-conflict file through the installed command (``test_cli``) and through the flow
(``test_flow``); the unit-level messages of ``read_customers`` and ``clean_customers``
(``test_ingest``, ``test_clean``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pyarrow as arrow
import pyarrow.parquet as pq
import pytest
from helpers import MALL_COLUMNS, read_customers

import flows.segmentation  # noqa: F401 - Prefect sets up its log handlers on import: before capsys
from schemas.columns import CUSTOMER_ID, SOURCE_ROW
from schemas.spec import MALL_PRESET
from segment.cli.main import EXIT_BAD_INPUT, EXIT_OK, main
from tasks.clean import CleanResult, clean_customers
from tasks.errors import InputError
from tasks.scale import scale_features
from tasks.store.run_files import latest_run

MALL_HEADER = "CustomerID,Genre,Age,Annual Income (k$),Spending Score (1-100)"
# Four valid, different customers: data rows 1-4 of every generated file below.
GOOD = ["1,Female,30,40,50", "2,Male,40,60,70", "3,Female,25,20,10", "4,Male,50,80,90"]


def csv_bytes(*rows: str, header: str = MALL_HEADER, newline: str = "\n") -> bytes:
    """A customer file: the header, then the rows, as UTF-8."""
    return newline.join([header, *rows, ""]).encode()


def write(tmp_path: Path, data: bytes, name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_and_clean(path: Path) -> tuple[pd.DataFrame, CleanResult]:
    """The file as read, and as cleaned (no limit on the quarantined share)."""
    raw = read_customers(path)
    return raw, clean_customers(raw, source=str(path), max_quarantine_share=1.0)


def quarantined(result: CleanResult) -> list[tuple[int, str]]:
    """(source row, reason) of every quarantined row, in file order."""
    return list(zip(result.quarantine[SOURCE_ROW], result.quarantine["reason"], strict=True))


def accounting(read: int, kept: int, quarantined: int = 0, duplicates: int = 0) -> dict:
    assert read == kept + quarantined + duplicates, "the expectation itself must add up"
    return {
        "rows_read": read,
        "rows_kept": kept,
        "rows_quarantined": quarantined,
        "duplicates_dropped": duplicates,
    }


# --- bad input: exit code 3 and one line naming the file (and row, column) --------------------


def _parquet(tmp_path: Path, name: str, **columns) -> Path:
    path = tmp_path / name
    pq.write_table(arrow.table(columns), path)
    return path


def _directory(tmp_path: Path) -> Path:
    folder = tmp_path / "customers.csv"  # a folder, named like a file
    folder.mkdir()
    return folder


def _truncated_parquet(tmp_path: Path) -> Path:
    whole = _parquet(
        tmp_path,
        "whole.parquet",
        CustomerID=["1", "2"],
        Gender=["Male", "Female"],
        Age=[19, 20],
        Income=[15.0, 16.0],
        Score=[39, 6],
    )
    data = whole.read_bytes()
    return write(tmp_path, data[: len(data) // 2], "customers.parquet")


def _png(tmp_path: Path) -> Path:
    # an image saved as .csv: PNG signature, then the IHDR chunk (its length starts with NULs)
    return write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00")


class BadInput(NamedTuple):
    """A generated bad file, the options of `segment run`, and the exact one-line error."""

    make: Callable[[Path], Path]
    message: str
    options: tuple[str, ...] = ()
    row: int | None = None
    column: str | None = None


BAD_INPUTS = {
    "directory-instead-of-a-file": BadInput(
        _directory,
        "no dated snapshot file (<name>_YYYY-MM-DD.csv, .parquet or .pq) in the folder",
    ),
    "empty-file": BadInput(lambda tmp: write(tmp, b""), "is empty (no header line)"),
    "header-only": BadInput(
        lambda tmp: write(tmp, csv_bytes(newline="\r\n")), "has a header but no data rows"
    ),
    "binary-file": BadInput(_png, "NUL byte at line 3: looks like a binary file, not CSV text"),
    "wrong-separator": BadInput(
        lambda tmp: write(tmp, csv_bytes(*GOOD).replace(b",", b";")),
        "the header is one field when split by ',' but contains ';': "
        "set the separator to ';' (or leave it unset to sniff it)",
        options=("--sep", ","),
    ),
    "mixed-separators": BadInput(
        lambda tmp: write(tmp, csv_bytes(*GOOD[:2], "3;Female;25;20;10", GOOD[3])),
        "mixed separators: the header is split by ',', this row by ';'",
        row=3,
    ),
    "extra-field-in-a-row": BadInput(
        lambda tmp: write(tmp, b"# export\n" + csv_bytes(*GOOD[:2], "3,Female,25,20,10,x")),
        "malformed row at line 5: expected 5 fields, saw 6",
    ),
    "unclosed-quote": BadInput(
        lambda tmp: write(tmp, csv_bytes(GOOD[0], '2,"Male,40,60,70', *GOOD[2:])),
        "unclosed quote: the quoted field starting at line 3 never ends",
    ),
    "merge-conflict-markers": BadInput(
        lambda tmp: write(
            tmp,
            b"<<<<<<< HEAD\n"
            + csv_bytes(*GOOD)
            + b"=======\n"
            + csv_bytes(*GOOD[:3], "4,Male,51,80,90")
            + b">>>>>>> 0123abc\n",
        ),
        "unresolved git merge-conflict markers at lines 1, 7, 13; resolve the conflict and re-run",
    ),
    "missing-required-column": BadInput(
        lambda tmp: write(
            tmp,
            csv_bytes(
                "1,30,40,50", header="CustomerID,Age,Annual Income (k$),Spending Score (1-100)"
            ),
        ),
        "missing required column(s): gender (accepted: Genre, Gender, Sex); headers found: "
        "CustomerID, Age, Annual Income (k$), Spending Score (1-100)",
        # without a gender column the file is not taken for the Mall file: --spec forces it
        options=("--spec", str(MALL_PRESET)),
    ),
    "duplicate-column-names": BadInput(
        lambda tmp: write(tmp, csv_bytes("1,Female,30,40,50,31", header=MALL_HEADER + ",Age")),
        "duplicate column names in the header: ['Age']",
    ),
    "parquet-with-wrong-types": BadInput(
        lambda tmp: _parquet(
            tmp,
            "customers.parquet",
            CustomerID=["1", "2"],
            Gender=["Male", "Female"],
            Age=arrow.array([pd.Timestamp("2001-02-03"), pd.Timestamp("2004-05-06")]),
            Income=[15.0, 16.0],
            Score=[39, 6],
        ),
        "Parquet type timestamp[us] cannot hold age: expected numbers or text",
        column="Age",
    ),
    "truncated-parquet": BadInput(
        _truncated_parquet,
        "not a readable Parquet file: Parquet magic bytes not found in footer. "
        "Either the file is corrupted or this is not a parquet file.",
    ),
    "single-row": BadInput(
        lambda tmp: write(tmp, csv_bytes(GOOD[0])),
        "only 1 valid customer row remains of 1 read: "
        "at least 2 different customers are needed to segment",
    ),
    "all-rows-identical": BadInput(
        lambda tmp: write(tmp, csv_bytes(*[GOOD[0]] * 20)),
        "only 1 valid customer row remains of 20 read: "
        "at least 2 different customers are needed to segment",
    ),
    "all-customers-alike": BadInput(
        lambda tmp: write(tmp, csv_bytes(*[f"{i},Male,30,40,50" for i in range(1, 21)])),
        "all 20 valid customers have the same gender, age, annual income and spending score: "
        "at least 2 different customers are needed to segment",
    ),
    "fewer-distinct-customers-than-k": BadInput(  # 5 customers, 3 distinct feature values
        lambda tmp: write(tmp, csv_bytes(*GOOD[:3], "5,Male,33,40,50", "6,Female,41,60,70")),
        "k=5 cannot be fitted: the sweep covered k=1..3 "
        "(k must not exceed the number of distinct customers)",
        options=("--k", "5"),
    ),
    "fewer-clean-customers-than-k": BadInput(  # 6 rows pass the CLI's row count; 3 customers
        lambda tmp: write(tmp, csv_bytes(*GOOD[:3], *[GOOD[0]] * 3)),
        "k=5 asks for more segments than there are clean customers (3); use at most 3",
        options=("--k", "5"),
    ),
    "fewer-customers-than-the-k-sweep-needs": BadInput(
        lambda tmp: write(tmp, csv_bytes(*GOOD[:3])),
        "cannot sweep k=5..10: the customers have only 3 distinct point(s) in the features, "
        "and k cannot exceed that",
        options=("--sweep", "5-10"),
    ),
}


def run_cli(capsys, path: Path, output: Path, *options: str) -> tuple[int, str]:
    """Run `segment run` in this process; return its exit code and what it wrote to stderr
    (Prefect's log handlers write to the stream they found on import, not to capsys)."""
    code = main(["run", "--input", str(path), "--output", str(output), *options])
    return code, capsys.readouterr().err


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_exits_3_with_one_line_naming_file_row_and_column(case, tmp_path, capsys):
    path = case.make(tmp_path)
    output = tmp_path / "outputs"
    code, err = run_cli(capsys, path, output, *case.options)

    assert code == EXIT_BAD_INPUT, err
    where = ", ".join(
        [str(path)]
        + ([f"row {case.row}"] if case.row is not None else [])
        + ([f"column {case.column!r}"] if case.column is not None else [])
    )
    assert err == f"segment: error: {where}: {case.message}\n"  # one line, nothing else
    assert latest_run(output) is None
    runs = output / "runs"
    assert not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()]


def test_input_error_is_one_line_even_when_it_quotes_a_multi_line_reason():
    error = InputError("cannot be parsed:\n  Expected 5 fields\r\n  saw 6\n", path="c.csv", row=3)
    assert str(error) == "c.csv, row 3: cannot be parsed: Expected 5 fields saw 6"


def test_input_error_found_after_reading_can_be_given_the_file():
    error = InputError("k=5 cannot be fitted", column="age")
    assert str(error.with_path("c.csv")) == "c.csv, column 'age': k=5 cannot be fitted"
    named = InputError("is empty", path="a.csv")
    assert named.with_path("b.csv") is named


# --- clean runs: exact rows quarantined, with their reasons ----------------------------------


def test_latin1_names_are_decoded_as_cp1252_with_a_warning_naming_file_and_line(tmp_path, caplog):
    data = csv_bytes(header=MALL_HEADER + ",Name") + "1,Female,30,40,50,José\n".encode("latin-1")
    data += "2,Male,40,60,70,Müller\n".encode("latin-1")
    path = write(tmp_path, data)
    with caplog.at_level(logging.WARNING, logger="tasks.ingest"):
        raw, result = read_and_clean(path)
    assert raw["Name"].tolist() == ["José", "Müller"]
    assert f"{path} is not valid UTF-8 (invalid continuation byte at line 2)" in caplog.text
    assert result.accounting() == accounting(read=2, kept=2)


def test_utf16_with_byte_order_mark_is_read_like_utf8(tmp_path):
    path = write(tmp_path, csv_bytes(*GOOD, newline="\r\n").decode().encode("utf-16"))
    raw, result = read_and_clean(path)
    assert raw[CUSTOMER_ID].tolist() == ["1", "2", "3", "4"]
    assert result.accounting() == accounting(read=4, kept=4)


def test_utf8_bom_is_not_part_of_the_first_header(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf" + csv_bytes("0001,Male,19,15,39", *GOOD[1:]))
    raw, result = read_and_clean(path)
    assert raw.loc[0, CUSTOMER_ID] == "0001"
    assert result.accounting() == accounting(read=4, kept=4)


def test_extra_columns_are_kept_as_read_but_left_out_of_the_features(tmp_path):
    header = "Region," + MALL_HEADER + ",Visits"
    path = write(
        tmp_path, csv_bytes(*[f"North,{row},{i}" for i, row in enumerate(GOOD)], header=header)
    )
    raw, result = read_and_clean(path)
    assert list(raw.columns) == [SOURCE_ROW, *MALL_COLUMNS, "Region", "Visits"]
    assert list(result.customers.columns) == list(MALL_COLUMNS)
    assert scale_features(result.customers).columns == ("annual_income", "spending_score")
    assert scale_features(result.customers, ["age", "gender"]).columns == (
        "age",
        "gender_Female",
        "gender_Male",
    )
    assert result.accounting() == accounting(read=4, kept=4)


def test_very_wide_file_reads_and_cleans_its_customers(tmp_path):
    extra = 2_000
    header = MALL_HEADER + "," + ",".join(f"x{i}" for i in range(extra))
    rows = [f"{row}," + ",".join(["7"] * extra) for row in GOOD]
    raw, result = read_and_clean(write(tmp_path, csv_bytes(*rows, header=header)))
    assert raw.shape == (4, 1 + len(MALL_COLUMNS) + extra)
    assert list(result.customers.columns) == list(MALL_COLUMNS)
    assert result.accounting() == accounting(read=4, kept=4)


def test_unknown_gender_codes_are_quarantined(tmp_path):
    rows = ["5,U,30,40,50", "6,x,30,40,50", "7,2,30,40,50", "8,FEMALE,30,40,50", "9,,30,40,50"]
    _, result = read_and_clean(write(tmp_path, csv_bytes(*GOOD, *rows)))
    expected = "unknown code, expected one of Female, Male"
    assert quarantined(result) == [
        (5, f"gender='U': {expected}"),
        (6, f"gender='x': {expected}"),
        (7, f"gender='2': {expected}"),
        (9, "gender: missing value"),
    ]
    assert result.customers[CUSTOMER_ID].tolist() == ["1", "2", "3", "4", "8"]
    assert result.accounting() == accounting(read=9, kept=5, quarantined=4)


def test_numbers_with_thousands_separators_or_units_are_quarantined(tmp_path):
    rows = [
        '5,Male,30,"1,500",50',
        "6,Male,30,1 500,50",
        "7,Male,30,1_500,50",
        "8,Male,30,15k,50",
        "9,Male,30,40 k$,50",
        "10,Male,30,$40,50",
        "11,Male,30 years,40,50",
        "12,Male,30,40,50%",
    ]
    _, result = read_and_clean(write(tmp_path, csv_bytes(*GOOD, *rows)))
    assert quarantined(result) == [
        (5, "annual_income='1,500': not a number"),
        (6, "annual_income='1 500': not a number"),
        (7, "annual_income='1_500': not a number"),
        (8, "annual_income='15k': not a number"),
        (9, "annual_income='40 k$': not a number"),
        (10, "annual_income='$40': not a number"),
        (11, "age='30 years': not a number"),
        (12, "spending_score='50%': not a number"),
    ]
    assert result.accounting() == accounting(read=12, kept=4, quarantined=8)


def test_non_numeric_values_are_quarantined_once_per_value(tmp_path):
    rows = ["5,Male,abc,40,50", "6,Female,thirty,n/a?,x"]
    _, result = read_and_clean(write(tmp_path, csv_bytes(*GOOD, *rows)))
    assert quarantined(result) == [
        (5, "age='abc': not a number"),
        (
            6,
            "age='thirty': not a number; annual_income='n/a?': not a number; "
            "spending_score='x': not a number",
        ),
    ]
    assert result.accounting() == accounting(read=6, kept=4, quarantined=2)


def test_negative_huge_infinite_and_nan_values_are_quarantined(tmp_path):
    rows = [
        "5,Male,-5,40,50",
        "6,Male,30,-15,50",
        "7,Male,1e300,40,50",
        "8,Male,30,40,1e300",
        "9,Male,30,inf,50",
        "10,Male,30,-inf,50",
        "11,Male,30,40,Infinity",
        "12,Male,30,NaN,50",
        "13,Male,30,1e400,50",
        "14,Male,30,1e300,50",  # finite and >= 0, but implausible beside incomes of 20-80
    ]
    _, result = read_and_clean(write(tmp_path, csv_bytes(*GOOD, *rows)))
    assert quarantined(result) == [
        (5, "age=-5: must be >= 0"),
        (6, "annual_income=-15: must be >= 0"),
        (7, "age=1e+300: must be <= 120"),
        (8, "spending_score=1e+300: must be <= 100"),
        (9, "annual_income=inf: not a finite number"),
        (10, "annual_income=-inf: not a finite number"),
        (11, "spending_score=inf: must be <= 100"),
        (12, "annual_income: missing value"),
        (13, "annual_income=inf: not a finite number"),  # overflows to inf when parsed
        (
            14,
            "annual_income=1e+300: implausible, beyond 5.5e+07 in magnitude (1e+06 times the "
            "column's upper quartile 55)",
        ),
    ]
    assert result.customers[CUSTOMER_ID].tolist() == ["1", "2", "3", "4"]
    assert result.accounting() == accounting(read=14, kept=4, quarantined=10)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_huge_but_finite_income_is_quarantined_naming_it_not_an_internal_error(tmp_path, capsys):
    rows = [
        *GOOD,
        "5,Female,35,45,55",
        "6,Male,45,65,75",
        "7,Female,28,25,15",
        "8,Male,30,1e300,50",
    ]
    output = tmp_path / "outputs"
    code, err = run_cli(capsys, write(tmp_path, csv_bytes(*rows)), output)

    assert code == EXIT_OK, err
    run = latest_run(output)
    rows = json.loads((run / "manifest.json").read_text())["rows"]
    assert rows == accounting(read=8, kept=7, quarantined=1)
    quarantine = pd.read_parquet(run / "quarantine.parquet")
    assert quarantine[CUSTOMER_ID].tolist() == ["8"]
    assert quarantine["reason"].item().startswith("annual_income=1e+300: implausible, beyond")
    assert "8" not in set(pd.read_parquet(run / "segments.parquet")[CUSTOMER_ID])


def test_duplicate_ids_with_equal_rows_are_dropped_as_duplicates(tmp_path):
    rows = [GOOD[1], "2,male,40,60.0,70", GOOD[3]]  # same values, spelled differently in row 6
    _, result = read_and_clean(write(tmp_path, csv_bytes(*GOOD, *rows)))
    assert quarantined(result) == []
    assert result.customers[CUSTOMER_ID].tolist() == ["1", "2", "3", "4"]
    assert result.accounting() == accounting(read=7, kept=4, duplicates=3)


def test_duplicate_ids_with_conflicting_rows_are_all_quarantined(tmp_path):
    rows = ["2,Male,41,60,70", GOOD[1]]  # row 6 repeats row 2 exactly: a duplicate, not a third
    _, result = read_and_clean(write(tmp_path, csv_bytes(*GOOD, *rows)))
    reason = "customer_id='2': id appears in rows 2, 5 with different values"
    assert quarantined(result) == [(2, reason), (5, reason)]
    assert result.customers[CUSTOMER_ID].tolist() == ["1", "3", "4"]
    assert result.accounting() == accounting(read=6, kept=3, quarantined=2, duplicates=1)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_fewer_customers_than_the_k_sweep_fits_only_the_k_they_allow(tmp_path, capsys):
    # 3 different customers, one exact duplicate, one invalid row (20%, the default limit):
    # the default sweep k=1..10 fits k=1..3 only, and the run succeeds.
    rows = ["1,Female,30,20,20", "2,Male,40,22,21", "3,Female,25,90,90", "1,Female,30,20,20"]
    path = write(tmp_path, csv_bytes(*rows, "4,U,30,40,50"))
    output = tmp_path / "outputs"
    code, err = run_cli(capsys, path, output)

    assert code == EXIT_OK, err
    run = latest_run(output)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["rows"] == accounting(read=5, kept=3, quarantined=1, duplicates=1)
    assert manifest["k"]["chosen"] == 2
    assert pd.read_parquet(run / "elbow.parquet")["k"].tolist() == [1, 2, 3]
    quarantine = pd.read_parquet(run / "quarantine.parquet")
    assert list(zip(quarantine[SOURCE_ROW], quarantine["reason"], strict=True)) == [
        (5, "gender='U': unknown code, expected one of Female, Male")
    ]


# --- the real damaged files in ../shared/data/dirty -------------------------------------------


def test_real_file_with_question_marks_and_duplicates_quarantines_the_missing_values(shared_data):
    raw, result = read_and_clean(shared_data / "dirty" / "mall_customers_qmarks_dupes_812rows.csv")
    assert len(raw) == 812
    assert result.accounting() == accounting(read=812, kept=700, quarantined=100, duplicates=12)
    # customers 701-800 are the file's last 100 rows, 713-812 (12 duplicate rows come before)
    assert quarantined(result) == (
        [(row, "age: missing value") for row in range(713, 723)]
        + [(row, "annual_income: missing value") for row in range(723, 753)]
        + [(row, "spending_score: missing value") for row in range(753, 813)]
    )
    assert result.quarantine[CUSTOMER_ID].tolist() == [str(i) for i in range(701, 801)]


def test_real_file_with_merge_conflict_markers_is_refused_in_one_line(shared_data):
    path = shared_data / "dirty" / "mall_customers_merge_conflict.csv"
    with pytest.raises(InputError) as caught:
        read_customers(path)
    assert str(caught.value) == (
        f"{path}: unresolved git merge-conflict markers at lines 1, 203, 405; "
        "resolve the conflict and re-run"
    )
    assert (caught.value.path, caught.value.row, caught.value.column) == (str(path), None, None)
