"""Tests for tasks.describe: a run's segments described end to end (ids, names, profiles,
transitions, model) after a previous run."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import (
    MALL_PROFILES,
    MALL_SEGMENTS,
    A,
    B,
    C,
    E,
    as_previous,
    ids_by_customer,
    ids_by_tag,
    population,
    run,
)

from schemas.outputs import Transitions
from tasks.describe import Described, previous_k
from tasks.model import load_model, model_to_json, score_frame


@pytest.fixture(scope="module")
def second_run(abc_run) -> Described:
    """Run 2: A, B, C again plus a new blob E whose computed name is A's name."""
    return run(population(A=A, B=B, C=C, E=E), 4, as_previous(abc_run))


def test_matched_segments_keep_their_names_and_a_colliding_new_name_is_made_unique(
    abc_run, second_run
):
    before, after = ids_by_tag(abc_run), ids_by_tag(second_run)
    assert {tag: after[tag] for tag in "ABC"} == before
    for tag in "ABC":
        assert second_run.names[after[tag]] == abc_run.names[before[tag]]
    a_name = abc_run.names[before["A"]]
    assert a_name == "Low income, high spending"
    new_name = second_run.names[after["E"]]
    assert new_name != a_name
    assert new_name.startswith(a_name)  # the computed name, suffixed
    assert len(set(second_run.names.values())) == 4
    MALL_PROFILES.validate(second_run.profiles)


def test_second_run_segment_table_carries_previous_ids_and_transitions(abc_run, second_run):
    segments = MALL_SEGMENTS.validate(second_run.segments)
    returning = segments["customer_id"].str[0].isin(list("ABC"))
    assert segments.loc[~returning, "previous_segment_id"].isna().all()
    previous = ids_by_customer(abc_run)
    got = segments.loc[returning].set_index("customer_id")["previous_segment_id"]
    assert got.astype("int64").loc[previous.index].tolist() == previous.tolist()
    table = Transitions.validate(second_run.transitions)
    assert (table["previous_segment_id"] == table["segment_id"]).all()  # nobody moved
    assert table["customers"].sum() == 90
    assert second_run.changes["customers_moved"] == 0
    assert second_run.changes["customers_joined"] == 30
    assert second_run.changes["new_segment_ids"] == [ids_by_tag(second_run)["E"]]


def test_second_model_json_round_trips_and_scores_customers_with_stable_ids(second_run, tmp_path):
    path = tmp_path / "model.json"
    path.write_text(model_to_json(second_run.model), encoding="utf-8")
    loaded = load_model(path)
    assert loaded == second_run.model
    assert loaded["next_segment_id"] == 5
    assert loaded["retired_segment_ids"] == []
    assert [s["id"] for s in loaded["segments"]] == [1, 2, 3, 4]
    customers = population(A=A, B=B, C=C, E=E)
    scored = pd.Series(score_frame(loaded, customers).segment_ids, index=customers["customer_id"])
    expected = ids_by_customer(second_run)
    assert scored.loc[expected.index].tolist() == expected.tolist()


def test_the_previous_k_is_kept_only_from_a_run_on_the_same_columns(abc_run):
    previous = as_previous(abc_run)
    columns = tuple(abc_run.model["columns"])
    assert previous_k(previous, columns) == previous.k == 3  # blobs A, B and C
    assert previous_k(previous, columns[::-1]) == previous.k  # the same columns, in any order
    assert previous_k(previous, (*columns, "age")) is None  # other columns: its k says nothing
    assert previous_k(None, columns) is None  # a first run


def test_every_segment_has_a_stability_score_in_its_profile(abc_run):
    stability = abc_run.profiles.set_index("segment_id")["stability"]
    assert stability.index.tolist() == sorted(abc_run.names)
    assert (stability >= 0.9).all(), stability  # three planted, far-apart blobs
    assert abc_run.profiles.columns.tolist()[:6] == [
        "segment_id",
        "segment_name",
        "summary",
        "size",
        "share",
        "stability",
    ]
