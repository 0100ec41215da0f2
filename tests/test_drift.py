"""tasks.drift: PSI against worked examples computed by hand, the drift table per feature and
segment (its columns, dtypes and contract), the small-sample rule, and the drift in words."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from schemas.outputs import Drift
from tasks.drift import (
    COLUMNS,
    EPSILON,
    MIN_CUSTOMERS,
    bin_edges,
    drift_sentences,
    drift_table,
    psi,
    psi_bins,
    psi_level,
)
from tasks.gates import Gates, gate_breaches

FEATURES = ["age", "annual_income", "spending_score"]


def customers(seed: int = 0, n: int = 3_000, segments: int = 3) -> pd.DataFrame:
    """Mall-like customers with their segment ids 1..segments."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 70, n).astype("float64"),
            "annual_income": rng.gamma(6.0, 10.0, n),
            "spending_score": rng.integers(1, 101, n).astype("float64"),
            "segment_id": rng.integers(1, segments + 1, n),
        }
    )


def row(table: pd.DataFrame, feature: str, segment_id: int | None) -> pd.Series:
    ids = table["segment_id"]
    where = ids.isna() if segment_id is None else ids.eq(segment_id).fillna(False)
    (index,) = table.index[(table["feature"] == feature) & where]
    return table.loc[index]


# --- PSI against worked examples ------------------------------------------------------------


def test_psi_of_two_bins_worked_by_hand():
    # previous 1, 2, 3, 4: its median (inverted CDF) is 2, bins (-inf, 2] and (2, inf) hold
    # 1/2 and 1/2; current 1, 2, 3, 4, 4, 4, 4, 4 puts 2/8 and 6/8 in them:
    # PSI = (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5
    expected = 0.25 * 0.6931471805599453 + 0.25 * 0.4054651081081644
    previous, current = np.array([1, 2, 3, 4]), np.array([1, 2, 3, 4, 4, 4, 4, 4])
    assert bin_edges(previous, 2).tolist() == [2.0]
    assert psi(previous, current, bins=2) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.2746530722, abs=1e-9)


def test_psi_of_a_discrete_feature_worked_by_hand():
    # previous: five 1s, three 2s, two 3s. Its deciles are 1 (x5), 2 (x3), 3: deduplicated
    # edges 1, 2, 3, so the bins are (-inf, 1], (1, 2], (2, 3], (3, inf) with shares
    # 0.5, 0.3, 0.2 and 0 (floored at 1e-4). Current: two 1s, three 2s, four 3s, one 4:
    # 0.2, 0.3, 0.4, 0.1 -- the 4 lands in the open upper bin.
    previous = np.array([1] * 5 + [2] * 3 + [3] * 2)
    current = np.array([1] * 2 + [2] * 3 + [3] * 4 + [4])
    expected = (
        (0.2 - 0.5) * math.log(0.2 / 0.5)  # 0.274887
        + 0.0  # (0.3 - 0.3) ln 1
        + (0.4 - 0.2) * math.log(0.4 / 0.2)  # 0.138629
        + (0.1 - 1e-4) * math.log(0.1 / 1e-4)  # 0.690085: a value the previous run never had
    )
    assert bin_edges(previous, 10).tolist() == [1.0, 2.0, 3.0]
    assert psi(previous, current, bins=10) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(1.103602, abs=1e-6)
    assert EPSILON == 1e-4


def test_a_value_below_the_previous_minimum_lands_in_the_open_lower_bin():
    previous = np.array([10.0, 20.0, 30.0, 40.0])  # median 20: bins (-inf, 20], (20, inf)
    # -1000 and 15 both go to the lower bin: shares 0.5 / 0.5, as before: PSI 0
    assert psi(previous, np.array([-1000.0, 15.0, 35.0, 1000.0]), bins=2) == 0.0
    # a value on an edge belongs to the bin it closes (right-closed): 20 is in the lower bin
    assert psi(previous, np.array([20.0, 20.0, 25.0, 25.0]), bins=2) == 0.0


def test_psi_is_zero_for_identical_samples_and_grows_with_the_shift():
    values = np.random.default_rng(3).normal(50.0, 10.0, 5_000)
    shifts = [psi(values, values + shift) for shift in (0.0, 2.0, 5.0, 10.0)]
    assert shifts[0] == 0.0
    assert shifts == sorted(shifts) and shifts[1] > 0


# --- the small-sample rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "m", "bins"),
    [
        (99, 10_000, 0),  # too few on one side
        (10_000, 99, 0),
        (100, 100, 2),  # 0.025 / 0.02 = 1.25: 1 + 1
        (200, 200, 3),  # 0.025 / 0.01 = 2.5
        (400, 400, 6),  # 0.025 / 0.005 = 5
        (100, 10_000, 3),  # 0.025 / 0.0101 = 2.48
        (800, 800, 10),  # 0.025 / 0.0025 = 10: 11, capped at 10
        (1_000_000, 1_000_000, 10),
    ],
)
def test_the_number_of_bins_follows_the_sample_sizes(n, m, bins):
    assert psi_bins(n, m) == bins


def test_with_the_rule_noise_alone_stays_below_moderate_drift():
    # the reason for the rule: 100 customers a side with 10 bins give PSI ~0.2 from noise alone
    rng = np.random.default_rng(11)
    n = MIN_CUSTOMERS
    draws = [(rng.normal(size=n), rng.normal(size=n)) for _ in range(300)]
    with_rule = [psi(a, b, bins=psi_bins(n, n)) for a, b in draws]
    with_ten_bins = [psi(a, b, bins=10) for a, b in draws]
    assert np.quantile(with_rule, 0.9) < 0.1
    assert np.mean(with_ten_bins) > 0.1  # what the rule avoids


def test_small_segments_get_null_psi_and_ks_but_their_means_and_counts():
    previous, current = customers(1), customers(2)
    # segment 7 has 99 customers this run (one short) and 150 in the previous run;
    # segment 8 exactly 100 on each side
    previous.loc[:149, "segment_id"] = 7
    current.loc[:98, "segment_id"] = 7
    previous.loc[150:249, "segment_id"] = 8
    current.loc[150:249, "segment_id"] = 8
    table = drift_table(previous, current, FEATURES)
    small = row(table, "annual_income", 7)
    assert (small["customers"], small["previous_customers"]) == (99, 150)
    assert pd.isna(small["psi"]) and pd.isna(small["ks"])
    assert small["mean"] == pytest.approx(current.loc[:98, "annual_income"].mean())
    assert small["previous_mean"] == pytest.approx(previous.loc[:149, "annual_income"].mean())
    at_limit = row(table, "annual_income", 8)
    assert (at_limit["customers"], at_limit["previous_customers"]) == (100, 100)
    assert pd.notna(at_limit["psi"]) and pd.notna(at_limit["ks"])


def test_missing_values_do_not_count_towards_the_minimum():
    previous, current = customers(1, n=300, segments=1), customers(2, n=300, segments=1)
    current.loc[:200, "annual_income"] = np.nan  # 99 values left of 300 customers
    overall = row(drift_table(previous, current, ["annual_income"]), "annual_income", None)
    assert overall["customers"] == 300
    assert pd.isna(overall["psi"]) and pd.isna(overall["ks"])
    assert overall["mean"] == pytest.approx(current["annual_income"].mean())  # skips NaN


# --- the drift table -------------------------------------------------------------------------


def test_the_table_has_the_exact_columns_dtypes_and_rows():
    previous, current = customers(1), customers(2)
    current.loc[:299, "segment_id"] = 4  # a segment new in this run
    table = drift_table(previous, current, FEATURES)
    assert list(table.columns) == [
        "feature",
        "segment_id",
        "psi",
        "ks",
        "previous_mean",
        "mean",
        "customers",
        "previous_customers",
    ]
    assert tuple(table.columns) == COLUMNS
    assert table.dtypes.astype(str).to_dict() == {
        "feature": "string",
        "segment_id": "Int64",
        "psi": "float64",
        "ks": "float64",
        "previous_mean": "float64",
        "mean": "float64",
        "customers": "int64",
        "previous_customers": "int64",
    }
    # one row per feature overall, then one per feature and segment id in either run
    assert table["feature"].tolist() == [f for f in FEATURES for _ in range(5)]
    assert table["segment_id"].tolist() == [pd.NA, 1, 2, 3, 4] * 3
    new = row(table, "age", 4)
    assert (new["customers"], new["previous_customers"]) == (300, 0)
    assert pd.isna(new["psi"]) and pd.isna(new["previous_mean"]) and pd.notna(new["mean"])
    overall = row(table, "age", None)
    assert (overall["customers"], overall["previous_customers"]) == (3_000, 3_000)
    Drift.validate(table)


def test_the_contract_refuses_a_wrong_table():
    table = drift_table(customers(1), customers(2), FEATURES)
    with pytest.raises(pa.errors.SchemaError):
        Drift.validate(table.drop(columns="ks"))
    with pytest.raises(pa.errors.SchemaError):
        Drift.validate(table.assign(ks=1.5))
    with pytest.raises(pa.errors.SchemaError):
        Drift.validate(table.astype({"segment_id": "float64"}))
    with pytest.raises(pa.errors.SchemaError):  # a feature and segment twice
        Drift.validate(pd.concat([table, table.head(1)], ignore_index=True))


def test_identical_runs_have_no_drift():
    previous = customers(5)
    table = drift_table(previous, previous.copy(), FEATURES)
    assert (table["psi"] == 0.0).all()
    assert (table["ks"] == 0.0).all()
    assert (table["mean"] == table["previous_mean"]).all()
    assert (table["customers"] == table["previous_customers"]).all()


def test_a_shifted_income_has_the_largest_psi():
    previous, current = customers(1), customers(2)  # same distribution, other customers
    current["annual_income"] *= 1.15
    table = drift_table(previous, current, FEATURES)
    overall = table[table["segment_id"].isna()].set_index("feature")
    assert overall["psi"].idxmax() == "annual_income"
    assert overall.loc["annual_income", "psi"] > 0.1
    assert (overall.drop(index="annual_income")["psi"] < 0.1).all()
    assert overall["ks"].idxmax() == "annual_income"
    assert overall.loc["annual_income", "mean"] == pytest.approx(
        overall.loc["annual_income", "previous_mean"] * 1.15, rel=0.05
    )


def test_drift_within_one_segment_shows_in_that_segment():
    previous, current = customers(1), customers(2)
    current.loc[current["segment_id"] == 2, "spending_score"] = 100.0  # everyone maxes out
    table = drift_table(previous, current, FEATURES)
    within = table[table["feature"] == "spending_score"].set_index("segment_id")["psi"]
    assert within.loc[2] > 1.0
    assert within.loc[1] < 0.1 and within.loc[3] < 0.1


def test_ks_and_psi_of_a_worked_example_through_the_table():
    # 100 customers a side (the minimum: 2 bins). Previous 1, 2, 3, 4 (25 each), current
    # 3, 4, 5, 6: the CDFs differ most at 2 (0.5 vs 0) and at 4 (1 vs 0.5): KS = 0.5.
    # The previous median is 2: shares 0.5 / 0.5 against 0 (floored at 1e-4) / 1:
    # PSI = (1e-4 - 0.5) ln(1e-4 / 0.5) + (1 - 0.5) ln(1 / 0.5)
    previous = pd.DataFrame({"x": np.repeat([1.0, 2.0, 3.0, 4.0], 25), "segment_id": 1})
    current = pd.DataFrame({"x": np.repeat([3.0, 4.0, 5.0, 6.0], 25), "segment_id": 1})
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 0.5 * math.log(2.0)
    overall = row(drift_table(previous, current, ["x"]), "x", None)
    assert overall["ks"] == 0.5
    assert overall["psi"] == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(4.604319, abs=1e-6)
    assert (overall["previous_mean"], overall["mean"]) == (2.5, 4.5)


def test_a_text_feature_is_binned_by_its_values():
    # previous 50 % / 50 %, current 60 % / 40 %:
    # PSI = (0.6 - 0.5) ln(0.6 / 0.5) + (0.4 - 0.5) ln(0.4 / 0.5)
    previous = pd.DataFrame({"gender": ["Female", "Male"] * 100, "segment_id": 1})
    current = pd.DataFrame({"gender": ["Female"] * 120 + ["Male"] * 80, "segment_id": 1})
    expected = 0.1 * math.log(1.2) - 0.1 * math.log(0.8)
    overall = row(drift_table(previous, current, ["gender"]), "gender", None)
    assert overall["psi"] == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.0405465, abs=1e-7)
    assert pd.isna(overall["ks"]) and pd.isna(overall["mean"])


# --- in words --------------------------------------------------------------------------------


def drift_rows(rows: list[tuple]) -> pd.DataFrame:
    """A drift table from (feature, segment_id, psi, previous_mean, mean) tuples."""
    frame = pd.DataFrame(rows, columns=["feature", "segment_id", "psi", "previous_mean", "mean"])
    return frame.assign(ks=0.0, customers=1_000, previous_customers=1_000).astype(
        {"segment_id": "Int64"}
    )[list(COLUMNS)]


def test_sentences_say_the_percent_change_overall_and_within_segments():
    drift = drift_rows(
        [
            ("annual_income", None, 0.41, 50.0, 56.0),  # +12 %
            ("annual_income", 1, 0.05, 30.0, 30.3),  # below the threshold: not named
            ("annual_income", 2, 0.30, 40.0, 52.0),  # +30 %
            ("annual_income", 3, 0.12, 80.0, 76.0),  # -5 %
            ("spending_score", None, 0.02, 50.0, 49.0),
            ("spending_score", 2, 0.09, 50.0, 60.0),
        ]
    )
    sentences = drift_sentences(drift, {"annual_income": "income"}, {2: "Young savers"})
    assert sentences == [
        'Income shifted up 12 % overall (PSI 0.41), 30 % within Segment 2 ("Young savers") '
        "(PSI 0.30), down 5 % within Segment 3 (PSI 0.12)"
    ]


def test_sentences_order_by_psi_and_keep_the_top_features():
    drift = drift_rows(
        [
            ("age", None, 0.15, 40.0, 36.0),  # -10 %
            ("annual_income", None, 0.05, 50.0, 51.0),
            ("annual_income", 1, 0.6, 50.0, 75.0),  # +50 %, only within segment 1
            ("spending_score", None, 0.11, 0.0, 2.5),  # from 0: no percent
        ]
    )
    assert drift_sentences(drift, {}, {1: "Careful"}) == [
        'Annual_income shifted up 50 % within Segment 1 ("Careful") (PSI 0.60)',
        "Age shifted down 10 % overall (PSI 0.15)",
        "Spending_score shifted up from 0 to 2.5 overall (PSI 0.11)",
    ]
    assert len(drift_sentences(drift, {}, {}, top=1)) == 1
    assert drift_sentences(drift, {}, {}, threshold=0.25) == [
        "Annual_income shifted up 50 % within Segment 1 (PSI 0.60)"
    ]


def test_a_shift_with_the_same_mean_is_a_change_of_shape():
    drift = drift_rows([("age", None, 0.3, 40.0, 40.1), ("age", 2, 0.2, 30.0, 33.0)])
    assert drift_sentences(drift, {"age": "age"}, {}) == [
        "Age changed shape overall with its mean about the same (PSI 0.30), shifted up 10 % "
        "within Segment 2 (PSI 0.20)"
    ]


def test_no_sentence_without_drift_or_with_null_psi():
    quiet = drift_rows([("age", None, 0.09, 40.0, 44.0), ("age", 1, np.nan, 40.0, 80.0)])
    assert drift_sentences(quiet, {}, {}) == []
    identical = drift_table(customers(5), customers(5), FEATURES)
    assert drift_sentences(identical, {}, {}) == []


def test_sentences_from_a_real_table_say_what_the_numbers_say():
    previous, current = customers(1), customers(2)
    current["annual_income"] *= 1.3
    table = drift_table(previous, current, FEATURES)
    overall = row(table, "annual_income", None)
    percent = round((overall["mean"] / overall["previous_mean"] - 1) * 100)
    (first, *_) = drift_sentences(table, {"annual_income": "income"}, {})
    assert first.startswith(f"Income shifted up {percent} % overall (PSI {overall['psi']:.2f})")


@pytest.mark.parametrize(
    ("value", "word"),
    [(0.0, None), (0.0999, None), (0.1, "moderate"), (0.2499, "moderate"), (0.25, "large"),
     (np.nan, None)],
)  # fmt: skip
def test_psi_levels(value, word):
    assert psi_level(value) == word


def test_the_drift_gate_stops_a_night_with_a_shifted_income_naming_it():
    previous, current = customers(1), customers(2)
    current["annual_income"] *= 1.3
    table = drift_table(previous, current, FEATURES)
    income = row(table, "annual_income", None)["psi"]
    profiles = pd.DataFrame({"share": [0.5, 0.5]})
    elbow = pd.DataFrame({"k": [2], "silhouette": [0.6]})
    judge = {"profiles": profiles, "elbow": elbow, "k": 2, "changes": None, "drift": table}
    assert gate_breaches(Gates(max_psi=0.25), **judge) == [
        f"max_psi: annual_income has PSI {income:.2f} overall, above 0.25"
    ]
    assert gate_breaches(Gates(), **judge) == []  # off by default
    unchanged = drift_table(previous, customers(2), FEATURES)
    assert gate_breaches(Gates(max_psi=0.25), **{**judge, "drift": unchanged}) == []
