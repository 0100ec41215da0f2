"""Tests for the quality gates (tasks.gates), k stability (choose_k with previous_k) and the
changes section of the run summary (tasks.reporting.artifacts)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from tasks.elbow import choose_k
from tasks.gates import GateError, Gates, gate_breaches

# Figures that pass every default gate.
GOOD = {"smallest_share": 0.2, "silhouette": 0.6, "moved_share": 0.05}


def breaches_for(gates, *, smallest_share, silhouette, moved_share):
    """gate_breaches of a run with these figures: k=3 chosen from a sweep over k=2..4 (its
    neighbours' silhouettes would pass and fail every floor), moved_share None: a first run."""
    profiles = pd.DataFrame({"share": [smallest_share, 1.0]})
    elbow = pd.DataFrame({"k": [2, 3, 4], "silhouette": [0.99, silhouette, -0.99]})
    changes = None if moved_share is None else {"moved_share": moved_share}
    return gate_breaches(gates, profiles=profiles, elbow=elbow, k=3, changes=changes)


# --- gates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gates", "figure", "at_limit", "beyond", "message"),
    [
        (
            Gates(min_segment_share=0.05),
            "smallest_share",
            0.05,
            0.049,
            "min_segment_share: the smallest segment holds 4.90% of customers, below 5.00%",
        ),
        (
            Gates(silhouette_floor=0.2),
            "silhouette",
            0.2,
            0.15,
            "silhouette_floor: silhouette 0.150 is below 0.2",
        ),
        (
            Gates(max_moved_share=0.25),
            "moved_share",
            0.25,
            0.3,
            "max_moved_share: 30.00% of returning customers changed segment, above 25.00%",
        ),
    ],
    ids=["min-segment-share", "silhouette-floor", "max-moved-share"],
)
def test_gate_passes_at_its_limit_and_fails_beyond_it(gates, figure, at_limit, beyond, message):
    assert breaches_for(gates, **{**GOOD, figure: at_limit}) == []
    breaches = breaches_for(gates, **{**GOOD, figure: beyond})
    assert breaches == [message]
    assert str(GateError(breaches)) == f"quality gate failed: {message}"


def test_every_breached_gate_is_listed():
    breaches = breaches_for(Gates(), smallest_share=0.001, silhouette=0.1, moved_share=0.9)
    assert len(breaches) == 3
    assert [b.split(":")[0] for b in breaches] == [
        "min_segment_share",
        "silhouette_floor",
        "max_moved_share",
    ]
    for breach in breaches:
        assert breach in str(GateError(breaches))


def test_a_gate_set_to_none_is_off():
    off = Gates(min_segment_share=None, silhouette_floor=None, max_moved_share=None)
    assert breaches_for(off, smallest_share=0.0, silhouette=-1.0, moved_share=1.0) == []
    # only the gate turned off stops failing
    only_silhouette_off = Gates(silhouette_floor=None)
    breaches = breaches_for(
        only_silhouette_off, smallest_share=0.0, silhouette=-1.0, moved_share=1.0
    )
    assert [b.split(":")[0] for b in breaches] == ["min_segment_share", "max_moved_share"]


def test_first_run_without_moved_share_never_fails_the_moved_gate():
    strict = Gates(max_moved_share=0.0)
    assert breaches_for(strict, smallest_share=0.2, silhouette=0.6, moved_share=None) == []


def test_missing_silhouette_does_not_fail_the_silhouette_gate():
    # k=1 has no silhouette; the gate cannot judge it
    assert breaches_for(Gates(), smallest_share=1.0, silhouette=None, moved_share=None) == []


def test_the_silhouette_gate_judges_the_chosen_k_and_skips_a_k_not_in_the_sweep():
    profiles = pd.DataFrame({"share": [0.5, 0.5]})
    elbow = pd.DataFrame({"k": [2, 3], "silhouette": [0.1, 0.6]})
    judged = {k: gate_breaches(Gates(), profiles=profiles, elbow=elbow, k=k, changes=None)
              for k in (2, 3, 7)}  # fmt: skip
    assert judged == {2: ["silhouette_floor: silhouette 0.100 is below 0.2"], 3: [], 7: []}


def test_gate_error_survives_pickling_with_its_breaches():
    error = GateError(["silhouette_floor: silhouette 0.150 is below 0.2", "other: x"])
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, GateError)
    assert copy.breaches == error.breaches
    assert str(copy) == str(error)


def drift_of(psi: dict[str, float], within: float = 0.0) -> pd.DataFrame:
    """A drift table (tasks.drift.drift_table's columns) with these overall PSIs by feature and
    ``within`` as every feature's PSI within segment 1."""
    rows = [(f, None, v) for f, v in psi.items()] + [(f, 1, within) for f in psi]
    table = pd.DataFrame(rows, columns=["feature", "segment_id", "psi"])
    return table.astype({"segment_id": "Int64"}).assign(
        ks=0.0, previous_mean=1.0, mean=1.0, customers=500, previous_customers=500
    )


def drift_breaches(gates: Gates, drift: pd.DataFrame | None) -> list[str]:
    profiles = pd.DataFrame({"share": [0.5, 0.5]})
    elbow = pd.DataFrame({"k": [2], "silhouette": [0.6]})
    return gate_breaches(gates, profiles=profiles, elbow=elbow, k=2, changes=None, drift=drift)


def test_the_drift_gate_is_off_by_default():
    assert Gates().max_psi is None
    assert drift_breaches(Gates(), drift_of({"annual_income": 5.0})) == []


def test_the_drift_gate_names_the_feature_and_its_overall_psi():
    gates = Gates(max_psi=0.25)
    assert drift_breaches(gates, drift_of({"annual_income": 0.25, "age": 0.1})) == []
    breaches = drift_breaches(gates, drift_of({"age": 0.1, "annual_income": 0.41}))
    assert breaches == ["max_psi: annual_income has PSI 0.41 overall, above 0.25"]
    assert "annual_income has PSI 0.41" in str(GateError(breaches))


def test_the_drift_gate_lists_every_feature_above_the_limit_largest_first():
    drift = drift_of({"age": 0.3, "annual_income": 0.41, "spending_score": 0.2})
    assert drift_breaches(Gates(max_psi=0.25), drift) == [
        "max_psi: annual_income has PSI 0.41 overall, above 0.25 (also age 0.30)"
    ]


def test_the_drift_gate_judges_overall_psi_only_and_skips_a_null_or_missing_table():
    gates = Gates(max_psi=0.25)
    assert drift_breaches(gates, drift_of({"age": 0.1}, within=3.0)) == []  # one segment only
    assert drift_breaches(gates, drift_of({"age": np.nan})) == []  # too few customers to judge
    assert drift_breaches(gates, None) == []  # a first run: nothing to compare with
    # the other gates still work with and without a drift table
    profiles = pd.DataFrame({"share": [0.001, 1.0]})
    elbow = pd.DataFrame({"k": [2], "silhouette": [0.6]})
    both = gate_breaches(
        gates, profiles=profiles, elbow=elbow, k=2, changes=None, drift=drift_of({"age": 0.5})
    )
    assert [b.split(":")[0] for b in both] == ["min_segment_share", "max_psi"]


def test_the_drift_limit_is_not_negative():
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Gates(max_psi=-0.1)


# --- choose_k with the previous run's k -------------------------------------------------------


def elbow_table(silhouette, min_share) -> pd.DataFrame:
    """k = 1..8 with a knee at k=3 (the curve of tests/test_elbow.py)."""
    n = len(silhouette)
    return pd.DataFrame(
        {
            "k": range(1, n + 1),
            "inertia": [100.0, 40.0, 12.0, 10.0, 8.5, 7.5, 6.8, 6.2][:n],
            "silhouette": silhouette,
            "calinski_harabasz": [np.nan] + [1.0] * (n - 1),
            "davies_bouldin": [np.nan] + [1.0] * (n - 1),
            "min_share": min_share,
        }
    )


# silhouettes chosen exactly representable so the margin comparisons are not float-fragile
CURVE = elbow_table(
    silhouette=[np.nan, 0.5, 0.75, 0.5, 0.625, 0.375, 0.25, 0.125],
    min_share=[1.0, 0.5, 0.3, 0.2, 0.15, 0.1, 0.1, 0.05],
)


def test_without_previous_k_the_elbow_picks_the_knee():
    assert (
        choose_k(CURVE, min_segment_share=0.0, k_margin=0.05).k,
        choose_k(CURVE, min_segment_share=0.0, k_margin=0.05).rule,
    ) == (3, "elbow")


def test_previous_k_is_kept_when_the_rule_k_is_not_better_by_the_margin():
    # knee k=3 has silhouette 0.75, previous k=5 has 0.625: better by 0.125 < 0.25
    choice = choose_k(CURVE, previous_k=5, k_margin=0.25, min_segment_share=0.0)
    assert (choice.k, choice.rule, choice.knee) == (5, "previous-k", 3)
    assert "k=3" in choice.reason
    assert "previous k=5" in choice.reason


def test_previous_k_is_replaced_when_the_rule_k_is_clearly_better():
    choice = choose_k(
        CURVE, previous_k=5, k_margin=0.125, min_segment_share=0.0
    )  # exactly the margin: replaced
    assert (choice.k, choice.rule, choice.knee) == (3, "elbow", 3)
    assert "replaces the previous k=5" in choice.reason
    assert "0.750 vs 0.625" in choice.reason


def test_previous_k_equal_to_the_rule_k_is_the_rule_choice():
    assert choose_k(CURVE, previous_k=3, min_segment_share=0.0, k_margin=0.05) == choose_k(
        CURVE, min_segment_share=0.0, k_margin=0.05
    )


def test_fixed_k_ignores_previous_k():
    choice = choose_k(CURVE, fixed_k=6, previous_k=5, k_margin=1.0, min_segment_share=0.0)
    assert (choice.k, choice.rule) == (6, "fixed")


@pytest.mark.parametrize(
    ("settings", "previous_k"),
    [
        ({"k_max": 6}, 8),
        ({"k_min": 3}, 2),
        ({"min_segment_share": 0.2}, 5),  # k=5 has a 15% segment
        ({}, 1),  # k=1 is never allowed
        ({}, 12),  # not even in the sweep
    ],
    ids=["above-k_max", "below-k_min", "segment-too-small", "k1", "not-swept"],
)
def test_previous_k_that_is_not_allowed_does_not_block_the_rule(settings, previous_k):
    rule = {"min_segment_share": 0.0, "k_margin": 0.05} | settings
    choice = choose_k(CURVE, **(rule | {"previous_k": previous_k, "k_margin": 1.0}))
    assert choice == choose_k(CURVE, **rule)
    assert (choice.k, choice.rule) == (3, "elbow")


def test_previous_k_is_kept_when_the_rule_k_has_no_silhouette():
    # no silhouette anywhere: the rule falls back to the smallest allowed k, which cannot be
    # shown to beat the previous k
    curve = CURVE.assign(silhouette=np.nan)
    choice = choose_k(curve, k_min=4, previous_k=6, min_segment_share=0.0, k_margin=0.05)
    assert (choice.k, choice.rule) == (6, "previous-k")
    assert "n/a" in choice.reason
