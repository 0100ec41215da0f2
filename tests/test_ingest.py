"""Tests for tasks.ingest: reading raw customer files into canonical text columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as arrow
import pyarrow.parquet as pq
import pytest
from helpers import MALL_COLUMNS, read_customers

from schemas.columns import AGE, ANNUAL_INCOME, CUSTOMER_ID, GENDER, SOURCE_ROW, SPENDING_SCORE
from schemas.spec import ID_SPELLINGS, mall_spec
from tasks.errors import InputError

# The Mall preset's accepted headers per canonical column, the id first.
DEFAULT_ALIASES = {CUSTOMER_ID: ID_SPELLINGS} | {
    n: c.aliases for n, c in mall_spec().columns.items()
}

MALL_HEADER = b"CustomerID,Genre,Age,Annual Income (k$),Spending Score (1-100)"


def _write(tmp_path: Path, data: bytes, name: str = "customers.csv") -> Path:
    """Write ``data`` byte for byte to ``tmp_path / name`` and return the path."""
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _mall(tmp_path: Path, *rows: bytes, header: bytes = MALL_HEADER) -> pd.DataFrame:
    """Write a Mall-style CSV with LF endings and read it back."""
    return read_customers(_write(tmp_path, b"\n".join([header, *rows]) + b"\n"))


# --- headers and column mapping ---------------------------------------------------------------


def test_mall_header_gives_source_row_then_canonical_columns(tmp_path):
    frame = _mall(tmp_path, b"0001,Male,19,15,39")
    assert list(frame.columns) == [SOURCE_ROW, *MALL_COLUMNS]
    assert frame.iloc[0].tolist() == [1, "0001", "Male", "19", "15", "39"]


def test_output_dtypes_are_int64_source_row_and_text_values(tmp_path):
    frame = _mall(tmp_path, b"0001,Male,19,15,39")
    assert frame[SOURCE_ROW].dtype == "int64"
    for column in MALL_COLUMNS:
        assert pd.api.types.is_string_dtype(frame[column].dtype), column


@pytest.mark.parametrize(
    "header",
    [
        b"CustomerID,Gender,Age,Annual Income (k$),Spending Score (1-100)",
        b"customer_id,Sex,age,Annual_Income,Spending_Score",
        b"Customer ID,Gender,Age,Annual Income,Spending Score",
        b"ID,gender,AGE,Income,Score",
    ],
)
def test_common_header_renamings_are_accepted(tmp_path, header):
    frame = _mall(tmp_path, b"7,Female,30,40,50", header=header)
    assert frame.loc[0, list(MALL_COLUMNS)].tolist() == ["7", "Female", "30", "40", "50"]


@pytest.mark.parametrize(
    ("column", "alias"),
    [(column, alias) for column, aliases in DEFAULT_ALIASES.items() for alias in aliases],
)
def test_every_default_alias_is_accepted(tmp_path, column, alias):
    headers = {canon: spellings[0] for canon, spellings in DEFAULT_ALIASES.items()}
    headers[column] = alias
    path = _write(tmp_path, ",".join(headers.values()).encode() + b"\n1,Male,19,15,39\n")
    assert read_customers(path).loc[0, list(MALL_COLUMNS)].tolist() == [
        "1",
        "Male",
        "19",
        "15",
        "39",
    ]


def test_quoted_header_names_are_unquoted(tmp_path):
    header = b'"CustomerID","Gender","Age","Annual Income (k$)","Spending Score (1-100)"'
    frame = _mall(tmp_path, b'"1","Male","19","15","39"', header=header)
    assert frame.loc[0, GENDER] == "Male"


def test_explicit_mapping_overrides_aliases(tmp_path):
    path = _write(tmp_path, b"Kunde,Geschlecht,Alter,Einkommen,Wert,ID\n1,Male,19,15,39,X9\n")
    mapping = {
        CUSTOMER_ID: "Kunde",
        GENDER: "Geschlecht",
        AGE: "Alter",
        ANNUAL_INCOME: "Einkommen",
        SPENDING_SCORE: "Wert",
    }
    frame = read_customers(path, columns=mapping)
    assert frame.loc[0, CUSTOMER_ID] == "1"
    assert frame.loc[0, "ID"] == "X9"


def test_partial_explicit_mapping_uses_aliases_for_the_rest(tmp_path):
    path = _write(tmp_path, b"Client,Gender,Age,Income,Score\nC1,Male,19,15,39\n")
    frame = read_customers(path, columns={CUSTOMER_ID: "Client"})
    assert frame.loc[0, list(MALL_COLUMNS)].tolist() == ["C1", "Male", "19", "15", "39"]


def test_explicit_mapping_to_absent_header_raises(tmp_path):
    path = _write(tmp_path, MALL_HEADER + b"\n1,Male,19,15,39\n")
    with pytest.raises(InputError, match=r"'Kunde'.*headers found"):
        read_customers(path, columns={CUSTOMER_ID: "Kunde"})


def test_explicit_mapping_with_unknown_canonical_name_raises(tmp_path):
    path = _write(tmp_path, MALL_HEADER + b"\n1,Male,19,15,39\n")
    with pytest.raises(InputError, match="unknown canonical column"):
        read_customers(path, columns={"shoe_size": "Age"})


def test_missing_column_message_names_file_column_spellings_and_headers(tmp_path):
    path = _write(
        tmp_path, b"CustomerID,Age,Annual Income (k$),Spending Score (1-100)\n1,19,15,39\n"
    )
    with pytest.raises(InputError) as caught:
        read_customers(path)
    message = str(caught.value)
    assert str(path) in message
    assert "missing required column(s): gender" in message
    assert "Genre, Gender, Sex" in message
    assert "headers found: CustomerID, Age, Annual Income (k$), Spending Score (1-100)" in message


def test_duplicate_header_names_raise(tmp_path):
    path = _write(tmp_path, MALL_HEADER + b",Age\n1,Male,19,15,39,20\n")
    with pytest.raises(InputError, match=r"duplicate column names in the header: \['Age'\]"):
        read_customers(path)


def test_two_headers_matching_one_column_raise(tmp_path):
    path = _write(tmp_path, b"CustomerID,ID,Gender,Age,Income,Score\n1,2,Male,19,15,39\n")
    with pytest.raises(InputError, match="several headers match 'customer_id'"):
        read_customers(path)


def test_extra_columns_are_kept_after_canonical_columns(tmp_path):
    header = b"Region,CustomerID,Genre,Age,Annual Income (k$),Spending Score (1-100),Note"
    frame = _mall(tmp_path, b"North,1,Male,19,15,39, vip ", header=header)
    assert list(frame.columns) == [SOURCE_ROW, *MALL_COLUMNS, "Region", "Note"]
    assert frame.loc[0, ["Region", "Note"]].tolist() == ["North", "vip"]


def test_extra_column_clashing_with_a_canonical_name_is_renamed(tmp_path):
    path = _write(tmp_path, b"Client,customer_id,Gender,Age,Income,Score\nC1,old,Male,19,15,39\n")
    frame = read_customers(path, columns={CUSTOMER_ID: "Client"})
    assert frame.loc[0, CUSTOMER_ID] == "C1"
    assert frame.loc[0, "customer_id_extra"] == "old"


def test_blank_header_name_becomes_unnamed_with_position(tmp_path):
    frame = _mall(tmp_path, b"1,Male,19,15,39,x", header=MALL_HEADER + b",")
    assert frame.loc[0, "unnamed_6"] == "x"


# --- values -------------------------------------------------------------------------------------


def test_ids_keep_leading_zeros(tmp_path):
    frame = _mall(tmp_path, b"0001,Male,19,15,39", b"0200,Female,20,16,6")
    assert frame[CUSTOMER_ID].tolist() == ["0001", "0200"]


def test_crlf_without_final_newline_is_read(tmp_path):
    path = _write(tmp_path, MALL_HEADER + b"\r\n1,Male,19,15,39\r\n2,Female,20,16,6")
    frame = read_customers(path)
    assert frame[SPENDING_SCORE].tolist() == ["39", "6"]
    assert frame[CUSTOMER_ID].tolist() == ["1", "2"]


def test_carriage_return_only_line_endings_are_read(tmp_path):
    path = _write(
        tmp_path, b"# old Mac export\r" + MALL_HEADER + b"\r1,Male,19,15,39\r2,F,20,16,6\r"
    )
    assert read_customers(path)[CUSTOMER_ID].tolist() == ["1", "2"]


def test_quoted_field_with_embedded_comma_stays_one_value(tmp_path):
    frame = _mall(tmp_path, b'"1","Male, probably",19,15,39')
    assert frame.loc[0, GENDER] == "Male, probably"


@pytest.mark.parametrize(
    "token",
    [b"?", b"NA", b"", b"N/A", b"n/a", b"null", b"Null", b"NULL", b"nan", b"-", b" ? ", b"#N/A"],
)
def test_missing_value_tokens_become_na(tmp_path, token):
    frame = _mall(tmp_path, b"1,Male," + token + b",15,39")
    assert pd.isna(frame.loc[0, AGE])


def test_negative_number_is_kept_while_lone_dash_is_na(tmp_path):
    frame = _mall(tmp_path, b"1,Male,-5,-,39")
    assert frame.loc[0, AGE] == "-5"
    assert pd.isna(frame.loc[0, ANNUAL_INCOME])


def test_values_are_stripped_of_whitespace(tmp_path):
    frame = _mall(tmp_path, b" 1 ,  Male ,19 , 15,39\t")
    assert frame.loc[0, list(MALL_COLUMNS)].tolist() == ["1", "Male", "19", "15", "39"]


def test_non_numeric_text_is_kept_for_cleaning_to_judge(tmp_path):
    frame = _mall(tmp_path, b"1,Male,abc,15,39")
    assert frame.loc[0, AGE] == "abc"


def test_too_few_fields_are_padded_with_na(tmp_path):
    frame = _mall(tmp_path, b"1,Male,19")
    assert frame.loc[0, AGE] == "19"
    assert frame[[ANNUAL_INCOME, SPENDING_SCORE]].isna().all(axis=None)


# --- layout: comments, blank lines, separators, row numbers ---------------------------------------


def test_comment_lines_before_header_are_skipped(tmp_path):
    path = _write(
        tmp_path, b"# exported 2024-01-01\n#source: mall\n" + MALL_HEADER + b"\n1,M,19,15,39\n"
    )
    frame = read_customers(path)
    assert frame[CUSTOMER_ID].tolist() == ["1"]


def test_hash_at_start_of_a_data_row_is_data(tmp_path):
    frame = _mall(tmp_path, b"#7,Male,19,15,39")
    assert frame.loc[0, CUSTOMER_ID] == "#7"


def test_blank_lines_are_skipped(tmp_path):
    frame = _mall(tmp_path, b"", b"1,Male,19,15,39", b"", b"   ", b"2,Female,20,16,6")
    assert frame[CUSTOMER_ID].tolist() == ["1", "2"]


def test_source_row_counts_data_rows_only(tmp_path):
    data = (
        b"# comment\n\n" + MALL_HEADER + b"\n1,Male,19,15,39\n\n2,Female,20,16,6\n3,Male,21,17,7\n"
    )
    frame = read_customers(_write(tmp_path, data))
    assert frame[SOURCE_ROW].tolist() == [1, 2, 3]
    assert frame[CUSTOMER_ID].tolist() == ["1", "2", "3"]


@pytest.mark.parametrize("sep", [b";", b"\t", b"|"])
def test_separator_is_sniffed_from_the_header(tmp_path, sep):
    header = sep.join([b"CustomerID", b"Gender", b"Age", b"Annual Income (k$)", b"Spending Score"])
    row = sep.join([b"1", b"Male", b"19", b"15,5", b"39"])
    frame = read_customers(_write(tmp_path, header + b"\n" + row + b"\n", name="customers.txt"))
    assert frame.loc[0, ANNUAL_INCOME] == "15,5"


def test_explicit_sep_overrides_sniffing(tmp_path):
    header = b"CustomerID;Gender;Age;Annual Income (k$, a, b, c, d);Spending Score"
    path = _write(tmp_path, header + b"\n1;Male;19;15;39\n")
    mapping = {ANNUAL_INCOME: "Annual Income (k$, a, b, c, d)"}
    frame = read_customers(path, columns=mapping, sep=";")
    assert frame.loc[0, list(MALL_COLUMNS)].tolist() == ["1", "Male", "19", "15", "39"]


# --- file-level problems ------------------------------------------------------------------------


def test_merge_conflict_markers_raise_with_line_numbers(tmp_path):
    data = b"\n".join(
        [
            b"<<<<<<< HEAD",
            MALL_HEADER,
            b"1,Male,19,15,39",
            b"=======",
            MALL_HEADER,
            b"1,Male,19,15,40",
            b">>>>>>> 0123abc",
        ]
    )
    with pytest.raises(InputError, match="merge-conflict markers at lines 1, 4, 7; resolve"):
        read_customers(_write(tmp_path, data))


def test_merge_markers_inside_crlf_file_are_found(tmp_path):
    data = MALL_HEADER + b"\r\n1,Male,19,15,39\r\n=======\r\n2,Male,19,15,39\r\n"
    with pytest.raises(InputError, match="markers at lines 3;"):
        read_customers(_write(tmp_path, data))


def test_missing_file_raises(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_customers(tmp_path / "nope.csv")


def test_directory_raises(tmp_path):
    with pytest.raises(InputError, match="is a directory, expected a CSV or Parquet file"):
        read_customers(tmp_path)


@pytest.mark.parametrize("data", [b"", b"  \r\n\n", b"# only a comment\n\n"])
def test_empty_file_raises(tmp_path, data):
    with pytest.raises(InputError, match="is empty"):
        read_customers(_write(tmp_path, data))


def test_header_without_data_rows_raises(tmp_path):
    with pytest.raises(InputError, match="has a header but no data rows"):
        read_customers(_write(tmp_path, MALL_HEADER + b"\r\n\r\n"))


def test_nul_bytes_raise_binary_file_error_naming_the_line(tmp_path):
    data = MALL_HEADER + b"\n1,Male\x00,19,15,39\n"
    with pytest.raises(InputError, match="NUL byte at line 2: looks like a binary file, not CSV"):
        read_customers(_write(tmp_path, data))


def test_a_row_of_one_field_without_another_separator_is_padded_not_refused(tmp_path):
    frame = _mall(tmp_path, b"1,Male,19,15,39", b"2")
    assert frame[CUSTOMER_ID].tolist() == ["1", "2"]
    assert frame.loc[1, [GENDER, AGE]].isna().all()


def test_separator_given_for_a_file_split_by_another_is_refused(tmp_path):
    path = _write(tmp_path, MALL_HEADER.replace(b",", b"\t") + b"\n1\tMale\t19\t15\t39\n")
    with pytest.raises(InputError, match=r"one field when split by ';' but contains '\\t'"):
        read_customers(path, sep=";")


def test_row_with_too_many_fields_raises_with_file_line(tmp_path):
    data = b"# comment\n" + MALL_HEADER + b"\n1,Male,19,15,39\n2,Male,19,15,39,oops\n"
    with pytest.raises(InputError, match="line 4") as caught:
        read_customers(_write(tmp_path, data))
    assert str(tmp_path) in str(caught.value)


# --- Parquet ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet_ids_and_text_as_text_numbers_stay_numbers(tmp_path, suffix):
    table = arrow.table(
        {
            "CustomerID": arrow.array([1, 2], arrow.int64()),
            "Gender": ["Male", "Female"],
            "Age": arrow.array([19, 20], arrow.int32()),
            "Annual Income (k$)": [15.5, 16.0],
            "Spending Score (1-100)": [39.0, 6.0],
        }
    )
    path = tmp_path / f"customers{suffix}"
    pq.write_table(table, path)
    frame = read_customers(path)
    assert frame[CUSTOMER_ID].tolist() == ["1", "2"]  # integer ids become text, no ".0"
    assert pd.api.types.is_string_dtype(frame[CUSTOMER_ID].dtype)
    assert frame[GENDER].tolist() == ["Male", "Female"]
    # Numbers stored as numbers are not printed as text to be parsed back: float64.
    assert frame[AGE].dtype == "float64" and frame[AGE].tolist() == [19.0, 20.0]
    assert frame[ANNUAL_INCOME].tolist() == [15.5, 16.0]
    assert frame[SPENDING_SCORE].dtype == "float64"


def test_parquet_nan_and_null_become_na(tmp_path):
    table = arrow.table(
        {
            "CustomerID": ["0001", None],
            "Gender": ["Male", "Female"],
            "Age": arrow.array([19, None], arrow.int64()),
            "Annual Income": [float("nan"), 16.0],
            "Spending Score": [39.0, None],
        }
    )
    pq.write_table(table, tmp_path / "c.parquet")
    frame = read_customers(tmp_path / "c.parquet")
    assert frame[CUSTOMER_ID].isna().tolist() == [False, True]
    assert frame[AGE].isna().tolist() == [False, True]
    assert frame[ANNUAL_INCOME].isna().tolist() == [True, False]
    assert frame[SPENDING_SCORE].isna().tolist() == [False, True]


def test_parquet_dictionary_columns_and_undecodable_extra_bytes_are_read(tmp_path):
    table = arrow.table(
        {
            "CustomerID": arrow.array(["1", "2"]).dictionary_encode(),
            "Gender": arrow.array(["Male", "Female"]).dictionary_encode(),
            "Age": arrow.array([19, 20], arrow.int8()),
            "Annual Income": arrow.array([15.5, None]),
            "Spending Score": arrow.array(["39", "6"]),
            "Photo": arrow.array([b"\xff\xd8", None]),
        }
    )
    pq.write_table(table, tmp_path / "c.parquet")
    frame = read_customers(tmp_path / "c.parquet")
    assert frame.loc[0, list(MALL_COLUMNS)].tolist() == ["1", "Male", 19.0, 15.5, "39"]
    assert frame["Photo"].tolist()[0] == "b'\\xff\\xd8'"


@pytest.mark.parametrize(
    ("header", "values", "expected"),
    [
        ("CustomerID", arrow.array([1.0, 2.0]), "double cannot hold customer_id: expected text or"),
        ("Gender", arrow.array([0, 1]), "int64 cannot hold gender: expected text"),
        ("Age", arrow.array([True, False]), "bool cannot hold age: expected numbers or text"),
        ("Spending Score", arrow.array([b"39", b"6"]), "binary cannot hold spending_score"),
    ],
)
def test_parquet_column_of_a_type_that_cannot_hold_its_values_is_refused(
    tmp_path, header, values, expected
):
    columns = {
        "CustomerID": ["1", "2"],
        "Gender": ["Male", "Female"],
        "Age": [19, 20],
        "Annual Income": [15.0, 16.0],
        "Spending Score": [39, 6],
    }
    columns[header] = values
    pq.write_table(arrow.table(columns), tmp_path / "c.parquet")
    with pytest.raises(InputError, match=f"Parquet type {expected}") as caught:
        read_customers(tmp_path / "c.parquet")
    assert caught.value.column == header


def test_truncated_parquet_raises_not_readable(tmp_path):
    table = arrow.table({"CustomerID": ["1"], "Gender": ["Male"], "Age": ["19"]})
    pq.write_table(table, tmp_path / "full.parquet")
    data = (tmp_path / "full.parquet").read_bytes()
    path = _write(tmp_path, data[: len(data) // 2], name="broken.parquet")
    with pytest.raises(InputError, match=r"broken\.parquet: not a readable Parquet file: "):
        read_customers(path)


# --- real shared files --------------------------------------------------------------------------


def test_real_mall_file_reads_200_customers_with_padded_ids(shared_data):
    frame = read_customers(shared_data / "mall_customers.csv")
    assert len(frame) == 200
    assert frame[CUSTOMER_ID].tolist() == [f"{number:04d}" for number in range(1, 201)]
    assert frame[SOURCE_ROW].tolist() == list(range(1, 201))


def test_real_mall_file_maps_genre_to_gender(shared_data):
    frame = read_customers(shared_data / "mall_customers.csv")
    assert frame[GENDER].value_counts().to_dict() == {"Female": 112, "Male": 88}


def test_real_wholesale_file_raises_missing_columns(shared_data):
    path = shared_data / "wholesale_customers.csv"
    with pytest.raises(InputError, match=r"missing required column.*headers found: Channel"):
        read_customers(path)


def test_real_online_retail_transactions_raise_missing_customer_columns(shared_data):
    # transactions, not customers: the message lists what is missing and what was found
    path = shared_data / "online_retail_sample.csv"
    with pytest.raises(InputError, match=r"missing required column.*headers found: InvoiceNo"):
        read_customers(path)
