"""Tests for tasks.spec_init: the starter spec `segment init` writes."""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd

from schemas.spec import parse_spec
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
    assert spec.columns["Region"].allowed == ("1", "2", "3")
    assert "# Email: text with 200 different values: not used" in text
    assert text.count("#") > 30  # a comment on each key
