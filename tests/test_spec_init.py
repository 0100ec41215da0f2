"""Tests for tasks.spec_init: the starter spec `segment init` writes."""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd

from schemas.spec import parse_spec
from tasks.clean import clean_customers
from tasks.ingest import canonical_frame, expected_types, read_file, table_for_file
from tasks.spec_init import infer_columns, starter_spec


def frame() -> pd.DataFrame:
    """Values as read (text), like tasks.ingest.read_file gives them."""
    rng = np.random.default_rng(0)
    n = 200
    spend = rng.lognormal(6, 1.2, n).round(2)
    return pd.DataFrame(
        {
            "source_row": np.arange(1, n + 1),
            "Customer ID": [f"C{i:04d}" for i in range(n)],
            "Age (years)": rng.integers(18, 80, n).astype(str),
            "Spend ($)": spend.astype(str),
            "Visits": rng.normal(10, 2, n).round(1).astype(str),
            "Region": rng.choice(["1", "2", "3"], n),
            "Segment": rng.choice(["gold", "silver"], n),
            "Responded": rng.choice(["0", "1"], n),
            "Email": [f"user{i}@example.com" for i in range(n)],
            "Country": ["PT"] * n,
        }
    ).astype({c: "str" for c in ["Customer ID", "Age (years)", "Region", "Segment"]})


def test_roles_kinds_and_suggestions_are_inferred():
    raw = frame()
    raw.loc[3, "Visits"] = None
    found = {c.header: c for c in infer_columns(raw.drop(columns="source_row"))}
    assert found["Customer ID"].role == "id"
    assert (found["Spend ($)"].role, found["Spend ($)"].transform) == ("feature", "log1p")
    assert (found["Spend ($)"].label, found["Spend ($)"].unit) == ("Spend", "$")
    assert (found["Visits"].role, found["Visits"].transform) == ("feature", "none")
    assert found["Visits"].missing == 1
    assert (found["Region"].kind, found["Region"].role) == ("categorical", "profile")
    assert found["Region"].allowed == ("1", "2", "3")
    assert (found["Segment"].kind, found["Segment"].allowed) == ("categorical", ("gold", "silver"))
    assert found["Responded"].role == "profile" and "0/1 flag" in found["Responded"].note
    assert found["Email"].role == "unused"  # free text: 200 different values
    assert found["Country"].role == "unused"  # one value
    age = found["Age (years)"]
    assert (age.minimum, age.maximum) == (
        float(raw["Age (years)"].astype(int).min()),
        float(raw["Age (years)"].astype(int).max()),
    )


def test_written_spec_parses_and_names_every_choice():
    raw = frame()
    raw.loc[3, "Visits"] = None
    text = starter_spec(raw, "customers.csv")
    spec = parse_spec(text)
    data = tomllib.loads(text)
    assert data["id_column"] == "Customer ID"
    assert data["features"] == ["Age (years)", "Spend ($)", "Visits"]
    assert data["profile"] == ["Region", "Segment", "Responded"]
    assert spec.columns["Spend ($)"].transform == "log1p"
    assert spec.columns["Visits"].missing == "median"  # it has a missing value
    # what this file holds is a comment, not a check (tomorrow may hold more)
    assert spec.columns["Region"].allowed is None and spec.columns["Segment"].allowed is None
    assert '# allowed = ["1", "2", "3"]' in text
    assert spec.columns["Spend ($)"].max is None and spec.columns["Age (years)"].max is None
    assert spec.columns["Spend ($)"].min == 0  # the natural bound of an amount is kept
    assert spec.columns["Visits"].min == 0
    assert "# Email: text with 200 different values: not used" in text
    assert text.count("#") > 30  # a comment on each key


def _clean_with(spec_path, data_path):
    spec = parse_spec(spec_path.read_text())
    table = table_for_file(data_path, spec=spec)
    raw = read_file(data_path, expected=expected_types(table))
    return clean_customers(canonical_frame(raw, table), max_quarantine_share=None, table=table)


def test_the_starter_spec_runs_on_its_file_and_does_not_quarantine_a_new_days_values(tmp_path):
    today = frame().drop(columns="source_row")
    today_csv = tmp_path / "today.csv"
    today.to_csv(today_csv, index=False)
    spec = tmp_path / "spec.toml"
    spec.write_text(starter_spec(read_file(today_csv), str(today_csv)))
    assert _clean_with(spec, today_csv).rows_quarantined == 0  # runs unchanged on its file

    # tomorrow: larger amounts, older customers, a new region code and a new segment name
    tomorrow = today.copy()
    tomorrow.loc[0, "Spend ($)"] = str(float(today["Spend ($)"].astype(float).max()) * 3)
    tomorrow.loc[1, "Age (years)"] = "97"
    tomorrow.loc[2, "Region"] = "4"
    tomorrow.loc[3, "Segment"] = "bronze"
    tomorrow.loc[4, "Visits"] = "0"
    tomorrow.loc[5, "Spend ($)"] = "-20"  # a negative amount is still refused
    tomorrow_csv = tmp_path / "tomorrow.csv"
    tomorrow.to_csv(tomorrow_csv, index=False)
    result = _clean_with(spec, tomorrow_csv)
    assert result.rows_quarantined == 1
    assert result.quarantine["source_row"].tolist() == [6]


HOSTILE_HEADERS = ["inc\nome", 'sp"end', "back\\slash", "t\tab", "del\x7fete"]


def test_any_header_is_written_escaped_and_reads_back_as_it_was():
    rng = np.random.default_rng(1)
    raw = pd.DataFrame(
        {"id": [str(i) for i in range(100)]}
        | {header: rng.normal(50, 10, 100).round(1).astype(str) for header in HOSTILE_HEADERS}
    )
    text = starter_spec(raw, "a\nfolder/customers.csv")  # a path with a line break too
    spec = parse_spec(text)
    assert spec.features == tuple(HOSTILE_HEADERS)
    assert set(spec.columns) == set(HOSTILE_HEADERS)
    assert spec.columns["inc\nome"].label == "inc\nome"
    assert "# inc\\nome: numeric: clustered on" in text  # the comment stays one line
