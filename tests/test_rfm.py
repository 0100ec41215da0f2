"""RFM quintile scores, the recency x frequency grid, and the grid kept in the spec file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from schemas.spec import RFM_PRESET, load_spec, parse_spec
from tasks.errors import InputError
from tasks.ingest import read_file, read_header
from tasks.orders.order_columns import find_order_columns
from tasks.orders.order_table import (
    segmentable_customers,
    transactions_spec,
    without_constant_features,
)
from tasks.orders.rfm import CELLS, DEFAULT_GRID, check_grid, quintile_scores, rfm_scores
from tasks.orders.transactions import derive_customers


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


def test_equal_values_get_equal_scores_and_the_lowest_scores_1():
    scores = quintile_scores(pd.Series([1] * 10))  # all tied: one score, not 1 to 5
    assert scores.tolist() == [1] * 10
    scores = quintile_scores(pd.Series([1, 1, 1, 1, 1, 1, 2, 2, 3, 4]))
    assert scores.tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]  # 1 + 5 x share strictly below


def test_seven_customers_who_bought_the_same_day_get_the_same_r_score():
    customers = pd.DataFrame(
        {
            "recency_days": [3] * 7 + [1, 40, 90],
            "frequency": [1, 2, 3, 4, 5, 6, 7, 1, 2, 3],
            "monetary": [10.0] * 10,
        }
    )
    scores = rfm_scores(customers)
    assert scores["r_score"].iloc[:7].nunique() == 1
    assert scores["r_score"].tolist() == [5] * 7 + [5, 1, 1]  # 1 of 10 more recent: still 5
    assert scores["m_score"].nunique() == 1  # equal spend, equal M


def test_customers_of_the_latest_purchase_day_are_never_hibernating():
    # every order on one day: one recency, R = 5 for all; one-time buyers are new customers
    customers = pd.DataFrame(
        {"recency_days": [1] * 6, "frequency": [1, 1, 2, 3, 5, 8], "monetary": [1.0] * 6}
    )
    scores = rfm_scores(customers)
    assert scores["r_score"].tolist() == [5] * 6
    assert scores["rfm_segment"].tolist()[:2] == ["new customers"] * 2
    assert "hibernating" not in set(scores["rfm_segment"])


def test_equal_r_f_and_m_give_the_same_grid_name():
    # one-time buyers on the same day, same spend: one name, whatever their order in the file
    customers = pd.DataFrame(
        {
            "recency_days": [5, 5, 5, 5, 5, 60, 60, 2, 200, 5],
            "frequency": [1, 1, 1, 1, 1, 4, 4, 9, 2, 1],
            "monetary": [20.0, 20.0, 20.0, 20.0, 20.0, 300.0, 300.0, 900.0, 50.0, 20.0],
        }
    )
    scores = rfm_scores(customers)
    same = customers["recency_days"].eq(5) & customers["frequency"].eq(1)
    assert scores.loc[same, "rfm_segment"].nunique() == 1
    assert scores.loc[same, ["r_score", "f_score", "m_score"]].drop_duplicates().shape[0] == 1


@pytest.mark.parametrize("one_time", [2, 18], ids=["few one-time buyers", "most"])
def test_a_one_time_buyer_is_never_a_champion_or_loyal_customer(one_time):
    n = 20
    frequency = [1] * one_time + list(range(2, n - one_time + 2))
    customers = pd.DataFrame(
        {"recency_days": [1] * n, "frequency": frequency, "monetary": [1.0] * n}
    )  # all bought yesterday: the one-time buyers would otherwise be the likeliest champions
    scores = rfm_scores(customers)
    once = scores[customers["frequency"].eq(1)]
    assert (once["f_score"] == 1).all()
    assert not once["rfm_segment"].isin(["champions", "loyal customers"]).any()


def test_equal_values_equal_scores_and_names_on_the_online_retail_sample(shared_data):
    source = shared_data / "online_retail_sample.csv"
    columns = find_order_columns(read_header(source, None))
    customers = derive_customers(read_file(source, None), columns).customers
    scored = pd.concat([customers, rfm_scores(customers)], axis=1)
    for value, score in [
        ("recency_days", "r_score"), ("frequency", "f_score"), ("monetary", "m_score")
    ]:  # fmt: skip
        assert scored.groupby(value)[score].nunique().max() == 1, value
    by_scores = scored.groupby(["r_score", "f_score", "m_score"])["rfm_segment"].nunique()
    assert by_scores.max() == 1
    by_values = scored.groupby(["recency_days", "frequency", "monetary"])["rfm_segment"]
    assert by_values.nunique().max() == 1
    once = scored[scored["frequency"] == 1]
    assert len(once) > 1000 and (once["f_score"] == 1).all()
    assert not once["rfm_segment"].isin(["champions", "loyal customers"]).any()


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


def test_a_constant_derived_feature_is_left_out_with_a_warning(caplog):
    # every order on one day: one recency for all customers; the others still separate them
    customers = pd.DataFrame(
        {
            "customer_id": pd.array(["a", "b", "c", "d", "e", "f"], dtype="str"),
            "first_purchase": pd.to_datetime(["2011-12-09"] * 6),
            "last_purchase": pd.to_datetime(["2011-12-09"] * 6),
            "recency_days": [1] * 6,
            "frequency": [1, 1, 2, 3, 5, 8],
            "monetary": [5.0, 9.0, 30.0, 80.0, 200.0, 650.0],
            "tenure_days": [1] * 6,
            "average_order_value": [5.0, 9.0, 15.0, 26.7, 40.0, 81.3],
            "returned_value": [0.0] * 6,
        }
    )
    caplog.set_level("WARNING", logger="tasks.orders.order_table")
    *_, table = segmentable_customers(customers, transactions_spec())
    assert table.feature_names == ("frequency", "monetary")
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("Left out of the features: recency_days (one value" in line for line in warned)


def test_no_feature_is_left_out_when_every_one_is_constant():
    customers = pd.DataFrame({"recency_days": [1, 1], "frequency": [2, 2], "monetary": [3.0, 3.0]})
    spec = transactions_spec()
    assert without_constant_features(customers, spec).features == spec.features
