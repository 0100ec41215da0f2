"""RFM quintile scores, the recency x frequency grid, and the grid kept in the spec file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from schemas.spec import RFM_PRESET, load_spec, parse_spec
from tasks.errors import InputError
from tasks.orders.order_table import segmentable_customers, transactions_spec
from tasks.orders.rfm import CELLS, DEFAULT_GRID, check_grid, quintile_scores, rfm_scores


def test_default_grid_maps_every_cell_once_with_ten_names():
    assert len(DEFAULT_GRID) == 10
    cells = [c for cs in DEFAULT_GRID.values() for c in cs]
    assert sorted(cells) == sorted(CELLS) and len(cells) == 25


def test_the_preset_file_holds_the_default_grid():
    assert load_spec(RFM_PRESET).rfm_grid == DEFAULT_GRID


@pytest.mark.parametrize(
    "change, message",
    [
        ({"champions": ("54",)}, "cells not mapped: 55"),
        ({"champions": ("54", "55", "11")}, "cells mapped twice: 11"),
        ({"champions": ("54", "55", "66")}, "unknown cells '66'"),
    ],
    ids=["missing", "repeated", "unknown"],
)
def test_a_grid_that_does_not_map_each_cell_once_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        check_grid({**DEFAULT_GRID, **change})


def test_an_invalid_grid_in_the_spec_file_names_the_key():
    text = '[rfm_grid]\nchampions = ["55"]\n'
    with pytest.raises(InputError, match="cells not mapped"):
        parse_spec(text)


def test_quintiles_are_filled_even_with_ties():
    scores = quintile_scores(pd.Series([1] * 10))  # all tied: broken by rank
    assert np.bincount(scores, minlength=6)[1:].tolist() == [2, 2, 2, 2, 2]


def test_quintile_scores_order():
    values = pd.Series(np.arange(100))
    up, down = quintile_scores(values), quintile_scores(values, ascending=False)
    assert up[0] == 1 and up[-1] == 5 and down[0] == 5 and down[-1] == 1
    assert np.all(np.diff(up) >= 0)


def test_scores_and_grid_names():
    # 5 customers: the most recent and most frequent is a champion, the oldest one-off hibernates
    customers = pd.DataFrame(
        {
            "recency_days": [1, 10, 100, 200, 300],
            "frequency": [20, 10, 5, 2, 1],
            "monetary": [50, 500, 40, 30, 10],
        }
    )
    scores = rfm_scores(customers)
    assert scores["r_score"].tolist() == [5, 4, 3, 2, 1]
    assert scores["f_score"].tolist() == [5, 4, 3, 2, 1]
    assert scores["m_score"].tolist() == [4, 5, 3, 2, 1]
    assert scores["rfm_segment"].tolist() == [
        "champions", "loyal customers", "need attention", "hibernating", "hibernating"
    ]  # fmt: skip


def test_an_edited_grid_renames_cells():
    grid = {**DEFAULT_GRID, "champions": ("54",), "stars": ("55",)}
    customers = pd.DataFrame({"recency_days": [1], "frequency": [1], "monetary": [1]})
    customers = pd.concat([customers] * 5, ignore_index=True)
    customers["recency_days"] = [1, 2, 3, 4, 5]
    customers["frequency"] = [9, 8, 7, 6, 5]
    assert rfm_scores(customers, grid)["rfm_segment"].iloc[0] == "stars"


def test_transactions_spec_and_table():
    spec = transactions_spec(None, extras=["Country"])
    customers = pd.DataFrame(
        {
            "customer_id": pd.array(["a", "b", "c", "d", "e"], dtype="str"),
            "first_purchase": pd.to_datetime(["2011-01-01"] * 5),
            "last_purchase": pd.to_datetime(["2011-02-01"] * 5),
            "recency_days": [1, 2, 3, 4, 50],
            "frequency": [1, 2, 3, 4, 5],
            "monetary": [1.0, 2.0, 3.0, 4.0, 500.0],
            "tenure_days": [40, 40, 40, 40, 40],
            "average_order_value": [1.0, 1.0, 1.0, 1.0, 100.0],
            "returned_value": [0.0] * 5,
            "Country": pd.array(["UK", "UK", "FR", "UK", "DE"], dtype="str"),
        }
    )
    scored, frame, table = segmentable_customers(customers, spec)
    assert table.feature_names == ("recency_days", "frequency", "monetary")
    assert {c.spec.transform for c in table.features} == {"log1p"}
    assert table.id_header == "customer_id"
    profile = {c.name: c.kind for c in table.profile}
    assert profile["rfm_segment"] == "categorical" and profile["Country"] == "categorical"
    assert profile["r_score"] == "numeric"
    assert list(frame.columns[:2]) == ["source_row", "customer_id"]
    assert "first_purchase" not in frame.columns and "first_purchase" in scored.columns


def test_user_spec_keeps_the_preset_columns_and_overrides_the_grid():
    user = parse_spec(
        'features = ["recency_days", "monetary"]\n[rfm_grid]\n'
        + "\n".join(
            f'"{name}" = [{", ".join(f"{chr(34)}{c}{chr(34)}" for c in cells)}]'
            for name, cells in {**DEFAULT_GRID, "champions": ("54",), "stars": ("55",)}.items()
        )
    )
    spec = transactions_spec(user)
    assert spec.features == ("recency_days", "monetary")
    assert spec.columns["monetary"].transform == "log1p"
    assert spec.rfm_grid["stars"] == ("55",)
    assert "frequency" not in spec.features
