"""Tests for tasks.elbow: the k sweep and the rule that picks k."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import read_customers
from sklearn.datasets import make_blobs

from schemas.outputs import Elbow
from tasks.clean import clean_customers
from tasks.elbow import choose_k, choose_k_within_gate, find_knee, sweep_k
from tasks.errors import InputError
from tasks.scale import scale_features

K_RANGE = range(1, 11)


def blobs(centers, n_per_center: int = 60, cluster_std: float = 0.5) -> np.ndarray:
    X, _ = make_blobs(
        n_samples=n_per_center * (centers if isinstance(centers, int) else len(centers)),
        centers=centers,
        cluster_std=cluster_std,
        random_state=42,
    )
    return X


def circle_centers(count: int, radius: float = 10.0) -> np.ndarray:
    """Equally spaced, well-separated centres (make_blobs' random centres may nearly touch)."""
    angles = 2 * np.pi * np.arange(count) / count
    return np.column_stack([radius * np.cos(angles), radius * np.sin(angles)])


def table(inertia, silhouette, min_share) -> pd.DataFrame:
    """A hand-made elbow table for k = 1..len(inertia)."""
    n = len(inertia)
    return pd.DataFrame(
        {
            "k": range(1, n + 1),
            "inertia": inertia,
            "silhouette": silhouette,
            "calinski_harabasz": [np.nan] + [1.0] * (n - 1),
            "davies_bouldin": [np.nan] + [1.0] * (n - 1),
            "min_share": min_share,
        }
    )


# The knee of this curve is at k=3 (checked in test_hand_made_curve_has_its_knee_at_3).
CURVE = table(
    inertia=[100.0, 40.0, 12.0, 10.0, 8.5, 7.5, 6.8, 6.2],
    silhouette=[np.nan, 0.5, 0.7, 0.6, 0.65, 0.4, 0.3, 0.2],
    min_share=[1.0, 0.5, 0.3, 0.2, 0.15, 0.1, 0.1, 0.05],
)


@pytest.fixture(scope="module")
def four_blob_sweep() -> pd.DataFrame:
    return sweep_k(blobs(4, cluster_std=1.0), K_RANGE, seed=42, n_init=10, silhouette_sample=1_000)


# --- sweep_k ----------------------------------------------------------------------------------


def test_sweep_has_one_row_per_k_and_validates(four_blob_sweep):
    assert four_blob_sweep["k"].tolist() == list(K_RANGE)
    Elbow.validate(four_blob_sweep)


def test_sweep_inertia_decreases_with_k(four_blob_sweep):
    assert (np.diff(four_blob_sweep["inertia"].to_numpy()) < 0).all()


def test_sweep_cluster_metrics_are_nan_at_k1_only(four_blob_sweep):
    metrics = four_blob_sweep[["silhouette", "calinski_harabasz", "davies_bouldin"]]
    assert metrics.iloc[0].isna().all()
    assert metrics.iloc[1:].notna().all().all()


def test_sweep_min_share_is_a_share(four_blob_sweep):
    shares = four_blob_sweep["min_share"]
    assert ((shares > 0) & (shares <= 1)).all()
    assert shares.iloc[0] == 1.0
    # a share of customers: the smallest segment's size over the 240 rows
    counts = shares.to_numpy() * 240
    np.testing.assert_allclose(counts, np.round(counts))


@pytest.mark.parametrize("centers", [4, 5])
def test_knee_is_found_when_the_first_splits_dominate_the_inertia(centers):
    # make_blobs' random centres: raw-inertia Kneedle says 3 for both; the log curve does not
    points, _ = make_blobs(n_samples=600, centers=centers, random_state=42)
    elbow = sweep_k(points, K_RANGE, n_init=10, seed=42, silhouette_sample=1_000)
    assert find_knee(elbow) == centers


@pytest.mark.parametrize("centers", [3, 4, 5])
def test_knee_is_found_at_the_true_number_of_well_separated_blobs(centers):
    elbow = sweep_k(
        blobs(circle_centers(centers)), K_RANGE, n_init=3, seed=42, silhouette_sample=1_000
    )
    assert find_knee(elbow) == centers
    choice = choose_k(elbow, min_segment_share=0.0, k_margin=0.05)
    assert (choice.k, choice.rule) == (centers, "elbow")


def test_sweep_skips_k_above_the_number_of_distinct_points():
    points = np.repeat([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]], 4, axis=0)
    elbow = sweep_k(points, K_RANGE, seed=42, n_init=10, silhouette_sample=1_000)
    assert elbow["k"].tolist() == [1, 2, 3]
    assert elbow["inertia"].iloc[-1] == pytest.approx(0.0)


def test_all_identical_rows_give_only_k1_and_no_choice():
    elbow = sweep_k(np.ones((10, 2)), K_RANGE, seed=42, n_init=10, silhouette_sample=1_000)
    assert elbow["k"].tolist() == [1]
    with pytest.raises(InputError) as caught:
        choose_k(elbow, min_segment_share=0.0, k_margin=0.05)
    assert str(caught.value) == (
        "no k satisfies the settings (k >= 2 with every segment >= 0% of customers); the sweep "
        "could fit only k=1..1 (k cannot exceed the number of distinct customers)"
    )


def test_sweep_without_any_fittable_k_raises_input_error():
    with pytest.raises(InputError) as caught:
        sweep_k(
            np.array([[0.0], [1.0], [2.0]]),
            range(5, 8),
            seed=42,
            n_init=10,
            silhouette_sample=1_000,
        )
    assert str(caught.value) == (
        "cannot sweep k=5..7: the customers have only 3 distinct point(s) in the features, "
        "and k cannot exceed that"
    )


def test_parallel_sweep_equals_serial_sweep(four_blob_sweep):
    parallel = sweep_k(
        blobs(4, cluster_std=1.0), K_RANGE, n_jobs=2, seed=42, n_init=10, silhouette_sample=1_000
    )
    pd.testing.assert_frame_equal(parallel, four_blob_sweep)


# --- choose_k ---------------------------------------------------------------------------------


def test_hand_made_curve_has_its_knee_at_3():
    assert find_knee(CURVE) == 3


def test_fixed_k_is_honoured():
    choice = choose_k(CURVE, fixed_k=6, min_segment_share=0.0, k_margin=0.05)
    assert (choice.k, choice.rule, choice.knee) == (6, "fixed", 3)


def test_knee_inside_bounds_is_chosen_by_elbow_rule():
    choice = choose_k(CURVE, k_min=2, k_max=6, min_segment_share=0.0, k_margin=0.05)
    assert (choice.k, choice.rule, choice.knee) == (3, "elbow", 3)


def test_knee_below_k_min_falls_back_to_best_allowed_silhouette():
    # best silhouette overall is k=3 (0.7), but k=3 is below k_min; best of 4..8 is k=5
    choice = choose_k(CURVE, k_min=4, min_segment_share=0.0, k_margin=0.05)
    assert (choice.k, choice.rule, choice.knee) == (5, "silhouette", 3)
    assert "knee k=3 is outside" in choice.reason


def test_knee_above_k_max_falls_back_to_best_allowed_silhouette():
    choice = choose_k(CURVE, k_max=2, min_segment_share=0.0, k_margin=0.05)
    assert (choice.k, choice.rule) == (2, "silhouette")


def test_min_segment_share_excludes_k_with_tiny_segments():
    # k=3 is the knee and k=5 the best other silhouette, but both have a 1% segment
    curve = CURVE.assign(min_share=[1.0, 0.5, 0.01, 0.2, 0.01, 0.1, 0.1, 0.05])
    choice = choose_k(curve, min_segment_share=0.1, k_margin=0.05)
    assert (choice.k, choice.rule) == (4, "silhouette")
    assert "knee k=3 has a segment of 1.0% of customers" in choice.reason
    assert choose_k(curve, min_segment_share=0.0, k_margin=0.05).k == 3


def test_straight_line_inertia_has_no_knee_and_uses_silhouette():
    line = table(
        inertia=[80.0, 70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 10.0],
        silhouette=[np.nan, 0.3, 0.2, 0.55, 0.2, 0.1, 0.1, 0.1],
        min_share=[1.0, 0.5, 0.3, 0.2, 0.15, 0.1, 0.1, 0.05],
    )
    assert find_knee(line) is None
    choice = choose_k(line, min_segment_share=0.0, k_margin=0.05)
    assert (choice.k, choice.rule, choice.knee) == (4, "silhouette", None)
    assert "no knee" in choice.reason


def test_no_silhouette_among_allowed_picks_the_smallest_allowed_k():
    curve = CURVE.assign(silhouette=np.nan)
    choice = choose_k(curve, k_min=5, min_segment_share=0.0, k_margin=0.05)
    assert (choice.k, choice.rule) == (5, "smallest-allowed")


@pytest.mark.parametrize(
    "settings",
    [{"k_min": 9}, {"k_min": 5, "k_max": 4}, {"min_segment_share": 0.6}],
    ids=["k_min-above-sweep", "empty-bounds", "share-too-high"],
)
def test_nothing_allowed_raises_input_error(settings):
    with pytest.raises(InputError, match="no k satisfies the settings"):
        choose_k(CURVE, **({"min_segment_share": 0.0, "k_margin": 0.05} | settings))


def test_fixed_k_above_distinct_points_raises_input_error():
    points = np.repeat([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]], 4, axis=0)
    elbow = sweep_k(points, K_RANGE, seed=42, n_init=10, silhouette_sample=1_000)
    with pytest.raises(InputError, match=r"k=5 cannot be fitted: the sweep covered k=1\.\.3"):
        choose_k(elbow, fixed_k=5, min_segment_share=0.0, k_margin=0.05)


# --- golden -----------------------------------------------------------------------------------


def test_mall_customers_default_recipe_picks_k5_by_elbow(shared_data):
    path = shared_data / "mall_customers.csv"
    scaled = scale_features(
        clean_customers(read_customers(path), max_quarantine_share=0.2).customers
    )
    choice = choose_k(
        sweep_k(scaled.matrix, K_RANGE, seed=42, n_init=10, silhouette_sample=1_000),
        min_segment_share=0.0,
        k_margin=0.05,
    )
    assert (choice.k, choice.rule, choice.knee) == (5, "elbow", 5)


def test_the_rule_respects_the_smallest_segment_gate_and_leaves_an_unmeetable_one_to_the_gate():
    # the knee k=3 has a segment of 0.5 %: the gate (1 %) would reject it, so the rule skips it
    curve = CURVE.assign(min_share=[1.0, 0.5, 0.005, 0.2, 0.15, 0.1, 0.1, 0.05])
    assert choose_k(curve, min_segment_share=0.0, k_margin=0.05).k == 3
    choice = choose_k_within_gate(
        curve, gate_min_segment_share=0.01, min_segment_share=0.0, k_margin=0.05
    )
    assert choice.k == 5 and choice.rule == "silhouette"  # best silhouette of the others
    # the gate's threshold ruled the knee out, so the reason names the gate, not the rule's own
    assert "below the min_segment_share gate (1.0%)" in choice.reason
    own = choose_k_within_gate(
        curve, gate_min_segment_share=0.01, min_segment_share=0.1, k_margin=0.05
    )
    assert "below min_segment_share (10.0%)" in own.reason  # the stricter bound is the rule's
    assert (
        choose_k_within_gate(
            curve, gate_min_segment_share=None, min_segment_share=0.0, k_margin=0.05
        ).k
        == 3
    )
    # no k >= 2 meets a 60 % gate: the rule ignores it, and the gate will report the breach
    assert (
        choose_k_within_gate(
            curve, gate_min_segment_share=0.6, min_segment_share=0.0, k_margin=0.05
        ).k
        == 3
    )
    with pytest.raises(InputError):  # the rule's own bound still fails as before
        choose_k_within_gate(
            curve, gate_min_segment_share=0.01, min_segment_share=0.6, k_margin=0.05
        )


def _curves(count: int, seed: int = 7):
    """Random convex-ish decreasing curves like log(inertia) over k = 1..n, with plateaus,
    straight stretches, ties and noise, and a few flat ones."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        n = int(rng.integers(3, 16))
        ks = np.arange(1, n + 1)
        kind = i % 5
        if kind == 0:  # a clean elbow at a random k
            bend = rng.integers(2, n + 1)
            y = np.where(ks < bend, 10 - 3 * ks, 10 - 3 * bend - 0.2 * (ks - bend))
        elif kind == 1:  # noisy decreasing
            y = np.cumsum(-rng.exponential(1.0, n))
        elif kind == 2:  # sorted noise with ties (rounded)
            y = np.sort(np.round(rng.normal(0, 1, n), 1))[::-1]
        elif kind == 3:  # 1/k with noise
            y = np.log(1.0 / ks + rng.normal(0, 0.02, n) ** 2)
        else:  # a straight line, or flat
            y = -rng.uniform(0, 2) * ks
        y = y.astype(float)
        if i % 7 == 0:  # an inertia that overflowed: NaN or inf somewhere
            y[int(rng.integers(0, n))] = np.nan if i % 2 else np.inf
        yield ks, y


def test_kneedle_gives_the_knee_kneed_gives_on_random_curves():
    """tasks.elbow.kneedle against the reference implementation (kneed, a dev dependency)."""
    kneed = pytest.importorskip("kneed", reason="kneed (dev dependency) is the reference")
    from tasks.elbow import kneedle

    found = 0
    for ks, y in _curves(600):
        with warnings.catch_warnings():  # kneed warns on flat curves and curves with no knee
            warnings.simplefilter("ignore")
            expected = kneed.KneeLocator(
                ks, y, curve="convex", direction="decreasing", interp_method="interp1d"
            ).knee
        got = kneedle(ks, y)
        assert (got is None) == (expected is None), (ks, y, got, expected)
        if expected is not None:
            assert got == float(expected), (ks, y, got, expected)
            found += 1
    assert found > 300  # most curves have a knee: the comparison is not between Nones


def test_the_sweeps_progress_is_reported_at_most_once_a_second_and_always_at_the_end():
    from flows.steps import throttled

    now = [0.0]
    calls = []
    report = throttled(lambda done, total: calls.append(done), every=1.0, clock=lambda: now[0])
    for done, at in [(1, 0.2), (2, 0.5), (3, 1.1), (4, 2.0), (5, 2.2), (6, 2.5)]:
        now[0] = at
        report(done, 10)
    assert calls == [3, 5]  # 1.1 s after the start; 0.9 s later not yet, 1.1 s later yes
    now[0] = 2.6
    report(10, 10)
    assert calls == [3, 5, 10]  # the end is always reported

    quick = []
    report = throttled(lambda done, total: quick.append(done), every=1.0, clock=lambda: 0.0)
    for done in range(1, 11):
        report(done, 10)
    assert quick == [10]  # a sweep of under a second: one update, at 100 %
