"""Tests for tasks.reporting.explain: what sets a segment apart, in numbers and in one sentence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from schemas.spec import ColumnSpec
from tasks.profile import profile_segments
from tasks.reporting import explain
from tasks.table import Column, ColumnPlan


def table_of(*columns: Column) -> ColumnPlan:
    return ColumnPlan(id_header="id", columns=columns)


def numeric(name: str, role: str = "feature", label: str | None = None, unit=None) -> Column:
    spec = ColumnSpec(label=label, unit=unit)
    return Column(name=name, header=name, role=role, kind="numeric", spec=spec)


def categorical(name: str, role: str = "feature") -> Column:
    return Column(name=name, header=name, role=role, kind="categorical")


# Two segments of 2 and 4 customers: spend 10, 10 | 1, 1, 1, 1; income 5, 5 | 4, 6, 4, 6.
CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["a", "b", "c", "d", "e", "f"],
        "spend": [10.0, 10.0, 1.0, 1.0, 1.0, 1.0],
        "income": [5.0, 5.0, 4.0, 6.0, 4.0, 6.0],
        "age": [20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
        "channel": ["web", "web", "web", "shop", "shop", "shop"],
        "response": [1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
    }
)
LABELS = np.array([1, 1, 2, 2, 2, 2])
TABLE = table_of(
    numeric("spend", label="spending"),
    numeric("income", unit="k$"),
    numeric("age", role="profile"),
    categorical("channel", role="profile"),
    numeric("response", role="profile"),
)


@pytest.fixture(scope="module")
def profiles() -> pd.DataFrame:
    return profile_segments(CUSTOMERS, LABELS, {1: "big spenders", 2: "the rest"}, TABLE)


@pytest.fixture(scope="module")
def spread() -> pd.DataFrame:
    return explain.population_spread(CUSTOMERS, ["spend", "income", "age"])


def test_flags_and_categories_are_shares_other_numbers_are_compared(profiles):
    numbers, shared = explain.compared_columns(profiles, TABLE)
    assert numbers == ["spend", "income", "age"]
    assert shared == ["channel", "response"]  # the 0/1 flag by its rate, not its mean


def test_index_and_z_against_all_customers(profiles, spread):
    by_column = {d.column: d for d in explain.differences(profiles, spread, TABLE)[1]}
    spend = by_column["spend"]
    # all customers: mean 4, population std sqrt(((6^2)*2 + (3^2)*4) / 6) = sqrt(18)
    assert spend.overall_mean == pytest.approx(4.0)
    assert spend.mean == spend.median == 10.0
    assert spend.index == pytest.approx(250.0)
    assert spend.z == pytest.approx(6 / np.sqrt(18))
    assert spend.overall_median == pytest.approx(1.0)
    assert spend.label == "spending" and spend.feature
    income = by_column["income"]
    assert income.index == pytest.approx(100.0) and income.z == pytest.approx(0.0)
    assert income.label == "income" and income.unit == "k$"
    assert not by_column["age"].feature


def test_overall_mean_is_the_size_weighted_mean_of_the_segments(profiles):
    means = explain.overall_means(profiles, ["spend_mean", "age_mean"])
    assert means["spend_mean"] == pytest.approx(CUSTOMERS["spend"].mean())
    assert means["age_mean"] == pytest.approx(CUSTOMERS["age"].mean())


def test_index_is_undefined_when_the_average_is_not_positive():
    frame = CUSTOMERS.assign(spend=[-1.0, -1.0, 1.0, 1.0, 1.0, -1.0])
    profiles = profile_segments(frame, LABELS, {1: "a", 2: "b"}, TABLE)
    spread = explain.population_spread(frame, ["spend", "income", "age"])
    spend = explain.differences(profiles, spread, TABLE)[1][0]
    assert spend.overall_mean == pytest.approx(0.0) and spend.index is None
    assert spend.z < 0
    assert explain.phrase(spend) == f"spending {abs(spend.z):.1f} SD below average"


def test_shares_per_value_with_the_overall_share(profiles):
    shares = explain.shares(profiles, TABLE)[1]
    channel = {s.value: s for s in shares if s.column == "channel"}
    assert channel["web"].share == pytest.approx(1.0)
    assert channel["web"].overall == pytest.approx(0.5)
    assert channel["web"].z == pytest.approx(1.0)  # (1 - 0.5) / sqrt(0.25)
    response = {s.value: s for s in shares if s.column == "response"}
    assert response["1"].share == pytest.approx(1.0)
    assert response["1"].overall == pytest.approx(2 / 6)


def test_summary_says_the_features_only_in_table_order(profiles, spread):
    numbers = explain.differences(profiles, spread, TABLE)[1]
    categories = explain.shares(profiles, TABLE)[1]
    # age (a profile column) differs a lot too, but the words explain the clustering
    picture = explain.portrait(numbers, categories)
    assert explain.summary(picture) == "Spending 2.5x the average, income about average."
    words = {
        "spend": ("low spending", "average spending", "high spending"),
        "income": ("low income", "average income", "high income"),
    }
    assert explain.segment_name(picture, words) == "High spending, average income"


@pytest.mark.parametrize(
    ("index", "z", "said"),
    [
        (230.0, 2.0, "spend 2.3x the average"),
        (150.0, 1.0, "spend 1.5x the average"),
        (135.0, 0.9, "spend 35% above average"),
        (60.0, -1.2, "spend 40% below average"),
        (104.0, 0.1, "spend about average"),
        (None, 0.8, "spend 0.8 SD above average"),
    ],
    ids=["times", "times-at-1.5", "above", "below", "about", "no-ratio"],
)
def test_phrase(index, z, said):
    item = explain.Difference("spend", "spend", True, 1.0, 1.0, 1.0, 1.0, index, z)
    assert explain.phrase(item) == said


def diff(column: str, index: float | None, z: float, feature: bool = True):
    return explain.Difference(column, column, feature, 1, 1, 1, 1, index, z)


@pytest.mark.parametrize(
    ("index", "z", "word"),
    [
        (125.0, 0.1, explain.HIGH),  # 1.25x the average: high whatever the spread
        (124.0, 0.4, explain.AVERAGE),
        (112.0, 0.6, explain.HIGH),  # 12 % above and half a standard deviation
        (108.0, 2.0, explain.AVERAGE),  # under 10 % off: about average even if z is large
        (80.0, -0.1, explain.LOW),
        (88.0, -0.7, explain.LOW),
        (95.0, -3.0, explain.AVERAGE),
        (22.0, -0.3, explain.LOW),  # RFM: a mean of 23 against 105 is never "about average"
        (None, 0.6, explain.HIGH),
        (None, -0.4, explain.AVERAGE),
    ],
)
def test_level_about_average_only_within_25_percent(index, z, word):
    assert explain.level(diff("a", index, z)) == word


def test_portrait_names_the_three_most_distinctive_features_not_about_average():
    numbers = [
        diff("a", 300.0, 3.0),
        diff("b", 110.0, 0.3),  # about average: never named
        diff("c", 40.0, -1.5),
        diff("d", 130.0, 0.9),
        diff("e", 150.0, 1.0),
        diff("p", 900.0, 9.0, feature=False),  # a profile column: left out
    ]
    values = [
        explain.Share("edu", "education", "PhD", True, 0.8, 0.2, 1.5),
        explain.Share("edu", "education", "Basic", True, 0.2, 0.8, -1.5),
        explain.Share("x", "x", "1", False, 1.0, 0.1, 3.0),  # a profile column: left out
    ]
    picture = explain.portrait(numbers, values)
    assert [d.column for d in picture.numbers] == ["a", "c", "e"]
    assert [s.value for s in picture.majorities] == ["PhD"]
    words = {c: (f"low {c}", f"average {c}", f"high {c}") for c in "abcde"}
    assert explain.segment_name(picture, words) == "High a, low c, high e, mostly phd"
    assert explain.summary(picture) == (
        "A 3.0x the average, c 60% below average, e 1.5x the average, "
        "education: 80% PhD (20% overall)."
    )


def test_close_to_average_on_every_feature_only_when_every_feature_is():
    numbers = [diff(c, 100.0 + i, 0.1) for i, c in enumerate("abcd")]
    picture = explain.portrait(numbers, [])
    assert picture.every_feature_average
    words = {c: (f"low {c}", f"average {c}", f"high {c}") for c in "abcd"}
    assert explain.segment_name(picture, words) == "Close to average on every feature"
    assert explain.summary(picture).startswith("Close to average on every feature")
    one_off = explain.portrait([*numbers[:3], diff("d", 70.0, -0.2)], [])
    assert not one_off.every_feature_average
    assert explain.segment_name(one_off, words) == "Low d"


def test_a_segment_high_on_every_feature_is_named_so_not_after_three_of_them():
    numbers = [
        diff("a", 150.0, 1.0),
        diff("b", 130.0, 0.8),
        diff("c", 200.0, 2.0),
        diff("d", 126.0, 0.3),
    ]
    picture = explain.portrait(numbers, [])
    words = {c: (f"low {c}", f"average {c}", f"high {c}") for c in "abcd"}
    assert explain.segment_name(picture, words) == "High on every feature"
    assert explain.summary(picture) == (
        "High on every feature; most apart: c 2.0x the average, a 1.5x the average, "
        "b 30% above average."
    )
    mixed = explain.portrait([*numbers[:3], diff("d", 100.0, 0.0)], [])
    assert explain.segment_name(mixed, words) == "High c, high a, high b"


def test_a_code_value_is_named_with_its_column():
    values = [explain.Share("Channel", "Channel", "2", True, 0.9, 0.3, 1.3)]
    picture = explain.portrait([], values)
    assert explain.segment_name(picture, {}) == "Mostly Channel 2"
    assert explain.phrase(values[0]) == "Channel 2: 90% (30% overall)"


def test_no_feature_to_compare_gives_no_name():
    picture = explain.portrait([], [explain.Share("g", "g", "x", True, 0.5, 0.5, 0.0)])
    assert explain.segment_name(picture, {}) is None


def test_share_columns_belong_to_the_longest_matching_column():
    table = table_of(categorical("spend"), categorical("spend_web"))
    profiles = pd.DataFrame(
        columns=["segment_id", "size", "share", "spend_a_share", "spend_web_b_share"]
    )
    assert explain.share_columns(profiles, "spend", table) == ["spend_a_share"]
    assert explain.share_columns(profiles, "spend_web", table) == ["spend_web_b_share"]


def test_typical_customers_are_the_closest_to_the_centroid_closest_first():
    ids = np.array([f"c{i}" for i in range(10)])
    labels = np.array([1, 1, 1, 1, 1, 1, 1, 2, 2, 3])
    distances = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.05, 2.0, 1.0, 0.0])
    typical = explain.typical_customers(ids, labels, distances, n=5)
    assert [i for i, _ in typical[1]] == ["c6", "c1", "c5", "c3", "c2"]
    assert [i for i, _ in typical[2]] == ["c8", "c7"]  # fewer customers than n: all of them
    assert typical[3] == [("c9", 0.0)]


def test_typical_customers_take_ids_by_position_not_by_index_label():
    ids = pd.Series(["x", "y", "z"], index=[10, 3, 7], dtype="string")  # gaps: rows quarantined
    typical = explain.typical_customers(ids, np.array([1, 1, 1]), np.array([0.3, 0.1, 0.2]))
    assert typical == {1: [("y", 0.1), ("z", 0.2), ("x", 0.3)]}


def test_population_spread_leaves_missing_values_out():
    frame = pd.DataFrame({"age": [20.0, np.nan, 40.0, 60.0], "none": [np.nan] * 4})
    spread = explain.population_spread(frame, ["age", "none"])
    assert spread.at["age", "median"] == 40.0
    assert spread.at["age", "std"] == pytest.approx(np.std([20.0, 40.0, 60.0]))
    assert np.isnan(spread.at["none", "median"]) and np.isnan(spread.at["none", "std"])
