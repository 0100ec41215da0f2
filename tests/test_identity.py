"""Tests for stable segment identity: tasks.identity and the id registry in tasks.model
(ids and names end to end: test_describe.py; the previous run: test_history.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import (
    FEATURES,
    A,
    B,
    C,
    D,
    as_previous,
    blob,
    ids_by_customer,
    ids_by_tag,
    population,
    run,
)

from schemas.columns import AGE
from schemas.outputs import Transitions
from tasks.fit import fit_segments
from tasks.identity import (
    Identity,
    PreviousRun,
    change_summary,
    first_identity,
    match_segments,
    moved_words,
    previous_segments,
    transitions,
)
from tasks.model import build_model
from tasks.scale import FeatureTransform, ScaledFeatures, scale_features

# Blob centres (income k$, spending score), far apart in the scaled space.

# --- first run and same data twice -------------------------------------------------------------


def test_first_run_numbers_segments_1_to_k_with_nothing_retired(abc_run):
    identity = abc_run.identity
    assert identity.ids == (1, 2, 3)
    assert identity.new_ids == (1, 2, 3)
    assert identity.next_id == 4
    assert identity.retired_ids == ()
    assert identity.kept_names == {}
    assert abc_run.model["next_segment_id"] == 4
    assert abc_run.model["retired_segment_ids"] == []
    assert first_identity(5) == Identity((1, 2, 3, 4, 5), {}, (1, 2, 3, 4, 5), (), 6)


def test_same_data_twice_keeps_every_id_and_name_with_zero_shift(abc_run):
    again = run(population(A=A, B=B, C=C), 3, as_previous(abc_run))
    identity = again.identity
    assert identity.ids == (1, 2, 3)
    assert identity.new_ids == ()
    assert identity.retired_ids == ()
    assert identity.next_id == 4
    assert identity.kept_names == abc_run.names
    assert again.names == abc_run.names
    assert set(identity.shift) == {1, 2, 3}
    assert max(identity.shift.values()) == pytest.approx(0.0, abs=1e-9)
    pd.testing.assert_series_equal(ids_by_customer(again), ids_by_customer(abc_run))


def test_shuffled_rows_and_another_seed_give_each_customer_the_same_id(abc_run):
    shuffled = population(A=A, B=B, C=C).sample(frac=1.0, random_state=7).reset_index(drop=True)
    again = run(shuffled, 3, as_previous(abc_run), seed=7)
    assert again.identity.new_ids == ()
    assert again.identity.retired_ids == ()
    before = ids_by_customer(abc_run)
    after = ids_by_customer(again)
    pd.testing.assert_series_equal(after.loc[before.index], before)


# --- ids that are not 1..k, registry ---------------------------------------------------------


@pytest.fixture(scope="module")
def registry_previous() -> PreviousRun:
    """A previous run on blobs A, B, C whose ids are 9, 2, 5 (not in canonical order), with
    ids 1 and 3 retired long ago and 12 the next free id."""
    customers = population(A=A, B=B, C=C)
    scaled = scale_features(customers, FEATURES)
    segmentation = fit_segments(scaled.matrix, 3, n_init=5, seed=42)
    identity = Identity((9, 2, 5), {}, (), (1, 3), 12)  # provisional 1, 2, 3 = A, B, C
    names = {9: "nine", 2: "two", 5: "five"}
    model = build_model(scaled, segmentation, identity, names, FEATURES)
    assignments = pd.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "segment_id": identity.relabel(segmentation.labels),
        }
    )
    return PreviousRun("run-9-2-5", model, assignments)


def test_matched_segments_keep_non_sequential_ids_and_a_new_one_gets_the_next_free_id(
    registry_previous,
):
    # D sorts first, so provisional numbering is D, A, B, C: the matching must undo that
    customers = population(A=A, B=B, C=C, D=D).sample(frac=1.0, random_state=3)
    described = run(customers, 4, registry_previous, seed=11)
    assert ids_by_tag(described) == {"A": 9, "B": 2, "C": 5, "D": 12}
    identity = described.identity
    assert identity.new_ids == (12,)
    assert identity.next_id == 13
    assert identity.retired_ids == (1, 3)
    assert identity.kept_names == {9: "nine", 2: "two", 5: "five"}
    assert described.model["next_segment_id"] == 13
    assert described.model["retired_segment_ids"] == [1, 3]


def test_unmatched_previous_id_is_retired_and_a_retired_id_is_never_reused(registry_previous):
    second = run(population(A=A, B=B, D=D), 3, registry_previous)  # C left, D arrived
    assert ids_by_tag(second) == {"A": 9, "B": 2, "D": 12}
    assert second.identity.retired_ids == (1, 3, 5)
    assert second.identity.next_id == 13
    # C comes back: its old id 5 is retired, so it gets a fresh id
    third = run(population(A=A, B=B, C=C, D=D), 4, as_previous(second, "run-2"))
    assert ids_by_tag(third) == {"A": 9, "B": 2, "C": 13, "D": 12}
    assert third.identity.new_ids == (13,)
    assert third.identity.retired_ids == (1, 3, 5)
    assert third.identity.next_id == 14


# --- k grows and shrinks ----------------------------------------------------------------------


def test_k_grows_three_segments_keep_their_ids_and_the_new_blob_gets_a_new_id(abc_run):
    grown = run(population(A=A, B=B, C=C, D=D), 4, as_previous(abc_run))
    before = ids_by_tag(abc_run)
    after = ids_by_tag(grown)
    assert {tag: after[tag] for tag in "ABC"} == before
    assert after["D"] == 4
    assert grown.identity.new_ids == (4,)
    assert grown.identity.retired_ids == ()
    assert grown.identity.next_id == 5


def test_k_shrinks_the_dropped_segment_is_retired():
    four = run(population(A=A, B=B, C=C, D=D), 4)
    three = run(population(A=A, B=B, C=C), 3, as_previous(four))
    before = ids_by_tag(four)
    assert {tag: before[tag] for tag in "ABC"} == ids_by_tag(three)
    assert three.identity.retired_ids == (before["D"],)
    assert three.identity.new_ids == ()
    assert three.identity.next_id == 5


# --- max_shift --------------------------------------------------------------------------------


def unit_transforms(columns: list[str]) -> tuple[FeatureTransform, ...]:
    return tuple(FeatureTransform(column, False, 0.0, 1.0) for column in columns)


def hand_made_previous(centroids: list[tuple[float, float]], ids: list[int]) -> PreviousRun:
    model = {
        "columns": FEATURES,
        "segments": [
            {"id": i, "name": f"name {i}", "centroid": dict(zip(FEATURES, c, strict=True))}
            for i, c in zip(ids, centroids, strict=True)
        ],
        "next_segment_id": max(ids) + 1,
        "retired_segment_ids": [],
    }
    assignments = pd.DataFrame({"customer_id": pd.Series([], dtype="str"), "segment_id": []})
    return PreviousRun("hand-made", model, assignments)


def unit_scaled(features) -> ScaledFeatures:
    """How a hand-made fit was scaled: identity transforms, no projection."""
    transforms = unit_transforms(features)
    return ScaledFeatures(np.empty((0, len(features))), tuple(features), transforms, "standard")


@pytest.mark.parametrize(("max_shift", "third_id"), [(0.5, 4), (1.5, 3)])
def test_centroid_farther_than_max_shift_gets_a_new_id_even_when_paired(max_shift, third_id):
    previous = hand_made_previous([(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)], [1, 2, 3])
    # the third centroid moved by 1.0; the Hungarian assignment still pairs it with id 3
    current = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 11.0]])
    identity = match_segments(current, unit_scaled(FEATURES), previous, max_shift=max_shift)
    assert identity.ids == (1, 2, third_id)
    if third_id == 4:
        assert identity.new_ids == (4,)
        assert identity.retired_ids == (3,)
        assert 3 not in identity.shift
    else:
        assert identity.new_ids == ()
        assert identity.shift[3] == pytest.approx(1.0)


def test_hungarian_matching_is_optimal_not_greedy():
    # greedy nearest-first would pair x=0.9 with id 1 (0.9 away) and leave x=-1.1 3.1 away
    # from id 2; the optimal pairing moves each by 1.1 (total 2.2 instead of 4.0)
    previous = hand_made_previous([(0.0, 0.0), (2.0, 0.0)], [1, 2])
    current = np.array([[0.9, 0.0], [-1.1, 0.0]])
    identity = match_segments(current, unit_scaled(FEATURES), previous, max_shift=1.5)
    assert identity.ids == (2, 1)
    assert identity.shift == pytest.approx({1: 1.1, 2: 1.1})


# --- matching in today's scaled space ---------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "scaler"),
    [({"c": C, "d": C, "e": C, "f": C, "g": C}, "standard"), ({}, "minmax")],
    ids=["population-shift", "scaler-change"],
)
def test_matching_works_in_todays_scaled_space_when_the_scaler_changed(abc_run, extra, scaler):
    customers = pd.concat(
        [population(A=A, B=B, C=C), *(blob(tag, center) for tag, center in extra.items())],
        ignore_index=True,
    )
    today = run(customers, 3, as_previous(abc_run), scaler=scaler)
    # the set-up matters: yesterday's stored scaled centroids are far from today's
    stored = np.array([s["centroid_scaled"] for s in abc_run.model["segments"]])
    current = np.array([s["centroid_scaled"] for s in today.model["segments"]])
    assert np.linalg.norm(stored - current, axis=1).max() > 0.5
    # but in today's space each group sits where it was
    assert today.identity.ids == (1, 2, 3)
    assert today.identity.new_ids == ()
    assert max(today.identity.shift.values()) < 0.1
    before = ids_by_customer(abc_run)
    pd.testing.assert_series_equal(ids_by_customer(today).loc[before.index], before)


def test_changed_features_give_every_segment_a_new_id_and_retire_the_old_ones(abc_run):
    today = run(population(A=A, B=B, C=C), 3, as_previous(abc_run), features=[*FEATURES, AGE])
    assert today.identity.ids == (4, 5, 6)
    assert today.identity.new_ids == (4, 5, 6)
    assert today.identity.retired_ids == (1, 2, 3)
    assert today.identity.kept_names == {}
    assert today.identity.next_id == 7
    assert today.model["retired_segment_ids"] == [1, 2, 3]  # the registry carries on
    # another segmentation: not compared with the previous run (nobody "moved", no gate)
    assert today.changes == {
        "previous_run_id": today.changes["previous_run_id"],
        "features_changed": True,
        "new_segment_ids": [4, 5, 6],
        "retired_segment_ids": [1, 2, 3],
    }
    assert today.transitions.empty
    assert today.segments["previous_segment_id"].isna().all()


def test_listing_the_same_features_in_another_order_keeps_every_id(abc_run):
    today = run(population(A=A, B=B, C=C), 3, as_previous(abc_run), features=FEATURES[::-1])
    assert ids_by_tag(today) == ids_by_tag(abc_run)
    assert today.identity.new_ids == ()


def test_a_model_without_a_registry_never_reuses_a_retired_id(abc_run):
    model = {k: v for k, v in abc_run.model.items() if k != "next_segment_id"}
    model["retired_segment_ids"] = [7]
    previous = PreviousRun("old", model, abc_run.segments[["customer_id", "segment_id"]])
    today = run(population(A=A, B=B, C=C, D=(80.0, 20.0)), 4, previous)
    assert today.identity.new_ids == (8,)


# --- transitions, previous_segments, change_summary -------------------------------------------


def assignments(pairs: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series(list(pairs), dtype="str"),
            "segment_id": np.array(list(pairs.values()), dtype="int64"),
        }
    )


PREVIOUS = assignments({"a": 1, "b": 1, "c": 2, "d": 2, "e": 3, "gone": 3})
CURRENT = assignments({"a": 1, "b": 2, "c": 2, "d": 2, "e": 4, "new1": 1, "new2": 4})


def test_transitions_count_customers_present_in_both_runs():
    table = transitions(PREVIOUS, CURRENT)
    Transitions.validate(table)
    got = {(r.previous_segment_id, r.segment_id): r.customers for r in table.itertuples()}
    assert got == {(1, 1): 1, (1, 2): 1, (2, 2): 2, (3, 4): 1}
    assert table["customers"].sum() == 5  # a, b, c, d, e: not "gone", "new1", "new2"
    assert not table.duplicated(["previous_segment_id", "segment_id"]).any()


def test_previous_segments_are_the_previous_ids_and_na_for_new_customers():
    previous = PreviousRun("r", {"segments": []}, PREVIOUS)
    customer_ids = pd.Series(["new1", "c", "a", "e"], index=[10, 11, 12, 13], dtype="str")
    result = previous_segments(previous, customer_ids)
    assert result.dtype == "Int64"
    assert result.index.tolist() == [10, 11, 12, 13]
    assert result.isna().tolist() == [True, False, False, False]
    assert result.iloc[1:].tolist() == [2, 1, 3]


def test_previous_segments_without_a_previous_run_are_all_na():
    result = previous_segments(None, pd.Series(["a", "b"], dtype="str"))
    assert result.dtype == "Int64"
    assert result.isna().all()


def summary_previous() -> PreviousRun:
    model = {"segments": [{"id": i} for i in (1, 2, 3)]}
    return PreviousRun("run-prev", model, PREVIOUS)


def test_change_summary_counts_moves_arrivals_departures_and_sizes():
    identity = Identity((1, 2, 4), {}, (4,), (3,), 5, {1: 0.1234567, 2: 0.0})
    changes = change_summary(summary_previous(), CURRENT, transitions(PREVIOUS, CURRENT), identity)
    assert changes["previous_run_id"] == "run-prev"
    assert changes["customers_in_both"] == 5
    assert changes["customers_moved"] == 2  # b 1->2, e 3->4
    assert changes["moved_share"] == pytest.approx(0.4)
    assert changes["customers_joined"] == 2
    assert changes["customers_left"] == 1
    assert 0.0 <= changes["adjusted_rand_index"] < 1.0
    # previous sizes 1:2 2:2 3:2; current 1:2 2:3 4:2; retired 3 and new 4 included
    assert changes["size_change"] == {1: 0, 2: 1, 3: -2, 4: 2}
    assert changes["centroid_shift"] == {1: 0.123457, 2: 0.0}
    assert changes["new_segment_ids"] == [4]
    assert changes["retired_segment_ids"] == [3]
    # 3 is retired and its one returning customer (e) is in the new 4: it continues as 4, so e
    # changed id, not group; b changed group
    assert changes["continued_as"] == {3: 4} and changes["customers_changed_group"] == 1
    assert moved_words(changes) == (
        "2 of 5 returning customers changed segment (40.0%), 1 (20.0%) changed group: segment 3 "
        "moved beyond --identity-max-shift and continues as 4 (the other 1 changed id only)"
    )
    json.dumps(changes, allow_nan=False)  # goes into the manifest as is


def test_a_retired_segment_split_between_segments_does_not_continue():
    previous = assignments({"a": 3, "b": 3, "c": 3, "d": 3, "x": 1})
    current = assignments({"a": 4, "b": 4, "c": 1, "d": 1, "x": 1})  # half to new 4, half to 1
    identity = Identity((1, 4), {}, (4,), (3,), 5, {1: 0.0})
    model = {"segments": [{"id": 1}, {"id": 3}]}
    changes = change_summary(
        PreviousRun("p", model, previous), current, transitions(previous, current), identity
    )
    assert changes["continued_as"] == {}
    assert changes["customers_changed_group"] == changes["customers_moved"] == 4
    assert moved_words(changes) == "4 of 5 returning customers changed segment (80.0%)"


def test_change_summary_when_nothing_moved_has_ari_one_and_zero_moves():
    same = PREVIOUS[PREVIOUS["customer_id"] != "gone"]
    identity = Identity((1, 2, 3), {}, (), (), 4, {1: 0.0, 2: 0.0, 3: 0.0})
    changes = change_summary(summary_previous(), same, transitions(PREVIOUS, same), identity)
    assert changes["customers_moved"] == 0
    assert changes["moved_share"] == 0.0
    assert changes["adjusted_rand_index"] == pytest.approx(1.0)
    assert changes["customers_left"] == 1
    assert changes["customers_joined"] == 0
    assert changes["size_change"] == {1: 0, 2: 0, 3: -1}
    assert changes["new_segment_ids"] == []
    assert changes["retired_segment_ids"] == []


def test_change_summary_is_none_for_a_first_run(abc_run):
    assert change_summary(None, CURRENT, CURRENT.iloc[:0], first_identity(3)) is None
    assert abc_run.changes is None
    assert abc_run.transitions.empty
    assert abc_run.segments["previous_segment_id"].isna().all()


# --- describe_segments end to end -------------------------------------------------------------


# --- tasks.store.history ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_adjusted_rand_index_from_the_transitions_table_equals_scikit_learns(seed):
    from sklearn.metrics import adjusted_rand_score

    from tasks.identity import adjusted_rand_index

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    before = rng.integers(1, int(rng.integers(2, 6)), n)
    after = np.where(rng.random(n) < 0.7, before, rng.integers(1, 7, n))
    if seed == 0:
        after = before.copy()  # identical segments: 1.0
    moves = (
        pd.DataFrame({"previous_segment_id": before, "segment_id": after})
        .groupby(["previous_segment_id", "segment_id"])
        .size()
        .rename("customers")
        .reset_index()
    )
    assert adjusted_rand_index(moves) == pytest.approx(adjusted_rand_score(before, after))
