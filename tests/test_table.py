"""Tests for tasks.table and schemas.spec: which columns are the id, features and profile
columns of any customer table, and the one-line errors for choices that cannot work."""

from __future__ import annotations

import pandas as pd
import pytest

from schemas.spec import TableSpec, mall_spec, parse_spec
from tasks.errors import InputError
from tasks.ingest import read_file, table_for_file
from tasks.table import choose_spec, mall_table, resolve_table

CARDS = pd.DataFrame(
    {
        "CUST_ID": ["C10001", "C10002", "C10003", "C10004"],
        "BALANCE": ["40.9", "3202.5", "2495.1", None],
        "PURCHASES": ["95.4", "0", "773.2", "1499"],
        "TENURE": ["12", "12", "12", "12"],
        "SEGMENT_HINT": ["a", "b", "a", "c"],
    }
)
HEADER = list(CARDS.columns)


def resolve(values=CARDS, **choices):
    header = list(values.columns)
    return resolve_table(header, values, choose_spec(header, None, None, **choices))


def test_numeric_features_are_every_numeric_column_but_the_id_and_constant_ones():
    table = resolve()
    assert table.id_header == "CUST_ID"
    assert table.feature_names == ("BALANCE", "PURCHASES")  # TENURE is constant: left out
    assert all(c.kind == "numeric" for c in table.features)
    assert table.profile == ()


def test_numeric_leaves_out_flags_constants_and_id_like_columns_and_says_so(caplog):
    values = CARDS.assign(
        ACTIVE=["1", "0", "1", None],  # a 0/1 flag: a profile column, its rate described
        CHURN_SCORE=["0", "1", "2", "1"],  # three values: a number like any other
        ID=["7", "8", "9", "10"],  # spelled like an id while the id is CUST_ID
    )
    caplog.set_level("INFO", logger="tasks.table")
    table = resolve(values, id_column="CUST_ID")
    assert table.feature_names == ("BALANCE", "PURCHASES", "CHURN_SCORE")
    assert [(c.name, c.role, c.kind) for c in table.profile] == [("ACTIVE", "profile", "numeric")]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("TENURE (one value in every row" in line for line in warned)
    assert any("numeric features: ID (spelled like a customer id" in line for line in warned)
    said = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert any("0/1 flag column(s) described per segment" in line and "ACTIVE" in line
               for line in said)  # fmt: skip
    # named as a feature, a flag is clustered on
    chosen = resolve(values, id_column="CUST_ID", features=["BALANCE", "ACTIVE"])
    assert chosen.feature_names == ("BALANCE", "ACTIVE")


def test_id_column_none_does_not_make_the_files_id_a_numeric_feature():
    values = pd.DataFrame(
        {
            "CustomerID": ["1", "2", "3", "4"],
            "Spend": ["10", "250", "40", "900"],
            "Visits": ["1", "7", "3", "12"],
        }
    )
    table = resolve(values, id_column="none")
    assert table.id_header is None
    assert table.feature_names == ("Spend", "Visits")  # not CustomerID
    assert "CustomerID" not in table.names  # only in raw.parquet
    assert resolve(values, id_column="none", features=["CustomerID", "Spend"]).feature_names == (
        "CustomerID",
        "Spend",
    )  # named explicitly, it is used


def test_profile_columns_are_described_not_clustered_and_keep_the_file_order():
    table = resolve(profile=["SEGMENT_HINT"], features=["PURCHASES", "BALANCE"])
    assert [(c.name, c.role, c.kind) for c in table.columns] == [
        ("BALANCE", "feature", "numeric"),
        ("PURCHASES", "feature", "numeric"),
        ("SEGMENT_HINT", "profile", "categorical"),
    ]


def test_headers_match_without_case_or_punctuation():
    table = resolve(features=["balance", "Purchases"])
    assert [c.header for c in table.features] == ["BALANCE", "PURCHASES"]


def test_mall_file_gets_the_mall_preset_and_its_canonical_names():
    header = ["CustomerID", "Genre", "Age", "Annual Income (k$)", "Spending Score (1-100)"]
    spec = choose_spec(header)
    assert spec.preset == "mall"
    table = resolve_table(header, None, spec)
    assert table.feature_names == ("annual_income", "spending_score")
    assert {c.name: c.role for c in table.profile} == {"gender": "profile", "age": "profile"}
    assert table.column("annual_income").header == "Annual Income (k$)"
    assert table.column("annual_income").titled() == "Annual income (k$)"


def test_mall_preset_features_may_be_named_by_their_headers_or_canonical_names():
    header = ["CustomerID", "Gender", "Age", "Annual Income (k$)", "Spending Score (1-100)"]
    table = resolve_table(header, None, choose_spec(header, features=["Annual Income (k$)", "age"]))
    assert table.feature_names == ("age", "annual_income")
    assert {c.name for c in table.profile} == {"gender", "spending_score"}  # all kept


MALL_HEADER = ["CustomerID", "Gender", "Age", "Annual Income (k$)", "Spending Score (1-100)"]


def test_a_file_with_only_income_and_score_headers_is_not_taken_for_the_mall_file(caplog):
    # a credit table: Income and Score (a credit score of 300-850) and other columns
    values = pd.DataFrame(
        {
            "ID": ["1", "2", "3"],
            "Income": ["52000", "61000", "38000"],
            "Score": ["640", "812", "455"],
            "Tenure": ["3", "9", "1"],
        }
    )
    header = list(values.columns)
    caplog.set_level("INFO", logger="tasks.table")
    spec = choose_spec(header)
    assert spec.preset is None
    assert "Mall preset not used (no gender, age column)" in caplog.text
    table = resolve_table(header, values, spec)
    assert table.feature_names == ("Income", "Score", "Tenure")
    assert table.column("Score").spec.max is None  # no Mall range (score <= 100) on it
    # features named outside the preset: the general defaults, even with every Mall column
    chosen = choose_spec(MALL_HEADER + ["Visits"], features=["Visits", "Annual Income (k$)"])
    assert chosen.preset is None


def test_the_mall_preset_needs_every_preset_column_and_features_within_it():
    assert choose_spec(MALL_HEADER).preset == "mall"
    assert choose_spec(MALL_HEADER, features=["age", "Spending Score (1-100)"]).preset == "mall"
    assert choose_spec(MALL_HEADER + ["Visits"], profile=["Visits"]).preset == "mall"
    # opt-outs: --features numeric, or any spec file
    numeric = choose_spec(MALL_HEADER, features=["numeric"])
    assert numeric.preset is None and numeric.features == ("numeric",)
    assert choose_spec(MALL_HEADER, TableSpec()).preset is None
    # a Mall file without its gender column gets the general defaults
    assert choose_spec([h for h in MALL_HEADER if h != "Gender"]).preset is None
    # --spec with the preset file itself forces the preset (and its required columns)
    forced = choose_spec(MALL_HEADER[1:], mall_spec())
    assert forced.preset == "mall"
    with pytest.raises(InputError, match="missing required column"):
        resolve_table(MALL_HEADER[:1] + MALL_HEADER[2:], None, mall_spec())


def test_mall_table_is_the_preset_on_canonical_names():
    assert mall_table().feature_names == tuple(mall_spec().features)


def test_no_id_column_numbers_customers_by_row_with_a_warning(caplog):
    values = CARDS.drop(columns="CUST_ID")
    table = resolve(values)
    assert table.id_header is None and not table.id_found
    assert "No customer id column found" in caplog.text
    explicit = resolve(values, id_column="none")
    assert explicit.id_header is None and explicit.id_found


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        (
            {"features": ["INCOME"]},
            "feature column 'INCOME' is not in the file; headers found: CUST_ID, BALANCE",
        ),
        ({"profile": ["NOPE"]}, "profile column 'NOPE' is not in the file; headers found"),
        (
            {"features": ["BALANCE"], "profile": ["BALANCE"]},
            "column 'BALANCE' is given two roles: feature and profile",
        ),
        ({"features": ["CUST_ID"]}, "column 'CUST_ID' is the customer id"),
        ({"features": ["TENURE", "BALANCE"]}, "feature 'TENURE' has one value ('12') in every row"),
        ({"id_column": "ACCOUNT"}, "id column 'ACCOUNT' is not in the file"),
    ],
    ids=["unknown-feature", "unknown-profile", "two-roles", "id-as-feature", "constant", "no-id"],
)
def test_choices_that_cannot_work_are_refused_in_one_line(choices, message):
    with pytest.raises(InputError) as caught:
        resolve(**choices)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_text_column_declared_numeric_is_refused_with_an_example():
    spec = parse_spec('features = ["SEGMENT_HINT"]\n[columns.SEGMENT_HINT]\nkind = "numeric"\n')
    with pytest.raises(InputError, match=r"declared numeric but holds text \(e\.g\. 'a'\)"):
        resolve_table(HEADER, CARDS, spec)


def test_categorical_feature_with_many_values_suggests_profile():
    values = pd.DataFrame(
        {"id": [str(i) for i in range(60)], "city": [f"town {i}" for i in range(60)]}
    )
    with pytest.raises(InputError) as caught:
        resolve(values, features=["city"])
    assert str(caught.value) == (
        "column 'city': categorical feature 'city' has 60 different values (more than 50); "
        "describe it with --profile instead"
    )


def test_invalid_spec_names_the_key_and_its_line():
    text = 'features = ["a"]\n\n[columns.a]\nkind = "numeric"\ntransform = "sqrt"\n'
    with pytest.raises(InputError) as caught:
        parse_spec(text, "my.toml")
    message = str(caught.value)
    assert message.startswith("my.toml: line 5, key columns.a.transform:")
    unknown = 'featurs = ["a"]\n'
    with pytest.raises(InputError, match="line 1, key featurs: Extra inputs are not permitted"):
        parse_spec(unknown)
    with pytest.raises(InputError, match="not valid TOML"):
        parse_spec("features = [\n")


def test_a_spec_section_for_a_column_the_file_does_not_have_is_refused():
    spec = parse_spec(
        'features = ["BALANCE"]\n[columns.BALANCE]\nmin = 0\n[columns.BALANSE]\nmin = 0\n'
    )
    with pytest.raises(InputError) as caught:
        resolve_table(HEADER, CARDS, spec)
    assert str(caught.value) == (
        "column 'BALANSE': spec section [columns.BALANSE] names a column that is not in the "
        "file; headers found: CUST_ID, BALANCE, PURCHASES, TENURE, SEGMENT_HINT"
    )
    # found by an alias, or mapped with --column, it is a column of the file
    aliased = parse_spec('[columns.balance_usd]\naliases = ["BALANCE"]\n')
    assert resolve_table(HEADER, CARDS, aliased).column("BALANCE").header == "BALANCE"
    assert resolve_table(HEADER, CARDS, spec, {"BALANSE": "PURCHASES"}).feature_names == (
        "BALANCE",
    )


def test_command_line_choices_override_the_spec():
    spec = parse_spec('features = ["BALANCE"]\nmissing = "quarantine"\n')
    chosen = choose_spec(HEADER, spec, None, features=["PURCHASES"], missing="median")
    assert chosen.features == ("PURCHASES",) and chosen.missing == "median"
    assert choose_spec(HEADER, spec, None, features=None).features == ("BALANCE",)


def test_general_default_spec_clusters_on_every_numeric_column():
    assert TableSpec().features == ("numeric",)


def test_table_for_file_reads_only_a_sample_and_finds_parquet_numbers(tmp_path):
    path = tmp_path / "cards.parquet"
    CARDS.assign(BALANCE=[40.9, 3202.5, 2495.1, None]).to_parquet(path)
    table = table_for_file(path, features=["BALANCE", "PURCHASES"])
    assert table.column("BALANCE").kind == "numeric"
    raw = read_file(path)
    assert list(raw.columns) == ["source_row", *HEADER]  # the file's own headers


def test_numbers_with_decimal_commas_are_refused_with_a_message_that_says_so(tmp_path):
    path = tmp_path / "cards.csv"
    path.write_text(
        "CUST_ID;BALANCE;PURCHASES;CITY\n"
        'C1;40,9;1.095,40;"Lyon, Rhone"\n'
        'C2;3202,5;0;"Paris, IDF"\n'
        'C3;2495,1;773,2;"Nice, PACA"\n'
        "C4;12;1499;Metz\n"
    )
    expected = (
        "column 'BALANCE': numbers with decimal commas (e.g. '40,9') read as text, not numbers: "
        "convert the file to decimal points first"
    )
    for choices in ({}, {"features": ["PURCHASES", "BALANCE"]}):
        with pytest.raises(InputError) as caught:
            table_for_file(path, **choices)
        assert expected in str(caught.value)
    with pytest.raises(
        InputError, match=r"column 'PURCHASES': numbers with decimal commas \(e\.g\. '1\.095,40'\)"
    ):
        table_for_file(path, features=["PURCHASES"])
    # a text column with commas is no number: as a feature it is a category, not refused
    table = table_for_file(path, features=["CITY"])
    assert table.column("CITY").kind == "categorical"


@pytest.mark.parametrize(
    ("keys", "key", "why"),
    [
        ("weight = inf", "columns.a.weight", "finite number"),
        ("weight = nan", "columns.a.weight", "finite number"),
        ("weight = 1e200", "columns.a.weight", "less than or equal to 1000"),
        ("weight = 0.0", "columns.a.weight", "greater than or equal to 0.001"),
        ("min = -inf", "columns.a.min", "finite number"),
        ("max = nan", "columns.a.max", "finite number"),
        ("clip = [0.01, nan]", "columns.a.clip.1", "finite number"),
    ],
)
def test_every_number_of_a_spec_is_finite_and_in_range(keys, key, why):
    text = f'features = ["a"]\n\n[columns.a]\nkind = "numeric"\n{keys}\n'
    with pytest.raises(InputError) as caught:
        parse_spec(text, "my.toml")
    message = str(caught.value)
    assert message.startswith(f"my.toml: line 5, key {key}: "), message
    assert why in message and "\n" not in message


@pytest.mark.parametrize("pca", ["inf", "nan"])
def test_a_spec_pca_is_finite(pca):
    with pytest.raises(InputError, match=r"^my.toml: line 2, key pca: .*finite number"):
        parse_spec(f'features = ["a"]\npca = {pca}\n', "my.toml")


@pytest.mark.parametrize(
    ("sep", "rows", "example", "advice"),
    [
        (",", ['C1,"36,419",12', 'C2,"1,250",3', "C3,512,7"], "36,419", "read_csv(path, thousands"),
        (";", ["C1;1,234,567;12", "C2;2,500,000;3", "C3;512;7"], "1,234,567", "sep=';', thousands"),
        ("\t", ["C1\t1,234.50\t12", "C2\t36,419.00\t3", "C3\t5.5\t7"], "1,234.50", "thousands"),
    ],
    ids=["comma-file", "several-groups", "decimal-point-after"],
)
def test_thousands_separators_get_advice_that_reads_them_as_thousands(
    tmp_path, sep, rows, example, advice
):
    """Issue 21 item 6: '36,419' in a comma-separated file is 36419, not 36.419: the advice
    must not be decimal=','."""
    path = tmp_path / "money.csv"
    path.write_text(sep.join(["CUST_ID", "BALANCE", "TENURE"]) + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError) as caught:
        table_for_file(path)
    message = str(caught.value)
    plain = example.replace(",", "")
    said = f"'BALANCE': numbers with thousands separators (e.g. '{example}', that is {plain})"
    assert said in message
    assert advice in message and "decimal=" not in message


def test_a_lone_digit_group_in_a_semicolon_file_keeps_the_decimal_advice_and_names_both(tmp_path):
    """'36,419' with ';' between fields may be 36.419 (decimal comma): both readings are said."""
    path = tmp_path / "money.csv"
    path.write_text("CUST_ID;BALANCE;TENURE\nC1;36,419;12\nC2;1,250;3\nC3;512;7\n")
    with pytest.raises(InputError) as caught:
        table_for_file(path)
    message = str(caught.value)
    assert "numbers with decimal commas (e.g. '36,419')" in message
    assert "if '36,419' means 36419, the comma separates thousands: use thousands=','" in message
