"""Stability per segment (tasks/stability.py): Hennig's bootstrap Jaccard on planted data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from tasks.describe import stability_by_id
from tasks.fit import fit_segments
from tasks.identity import Identity
from tasks.stability import best_jaccard, segment_stability, stability_word


def test_planted_well_separated_groups_are_stable():
    points, _ = make_blobs(n_samples=400, centers=4, cluster_std=1.0, random_state=7)
    fit = fit_segments(points, 4, seed=42, n_init=10)

    scores = segment_stability(points, fit.labels, 4, seed=42)

    assert sorted(scores) == [1, 2, 3, 4]
    assert all(score >= 0.9 for score in scores.values()), scores


@pytest.mark.parametrize("draw", range(4))
def test_a_round_blob_split_in_two_is_doubtful(draw):
    """One round Gaussian blob (4 features) cut in two by a forced k=2: where the cut falls
    depends on which customers are drawn. (How far below 0.75 varies with the draw: over 8
    draws of this size the larger half scored 0.55 to 0.74; in 2 features, where the cut has
    fewer directions to turn in, 0.71 to 0.89.)"""
    blob = np.random.default_rng(draw).normal(size=(300, 4))
    fit = fit_segments(blob, 2, seed=42, n_init=10)

    scores = segment_stability(blob, fit.labels, 2, seed=42)

    assert all(score < 0.75 for score in scores.values()), scores
    assert {stability_word(score) for score in scores.values()} == {"doubtful"}


def test_seeded_scores_repeat_and_large_inputs_are_sampled():
    points, _ = make_blobs(n_samples=3_000, centers=3, cluster_std=4.0, random_state=1)
    fit = fit_segments(points, 3, seed=42, n_init=2)

    first = segment_stability(points, fit.labels, 3, seed=3, max_rows=500)
    again = segment_stability(points, fit.labels, 3, seed=3, max_rows=500)

    assert first == again
    assert all(0.0 <= score <= 1.0 for score in first.values())


def test_a_segment_with_no_customers_scores_zero():
    points, _ = make_blobs(n_samples=200, centers=2, random_state=3)
    labels = fit_segments(points, 2, seed=42, n_init=5).labels  # segments 1 and 2 of k=3

    scores = segment_stability(points, labels, 3, seed=42, resamples=3)

    assert scores[3] == 0.0


def test_best_jaccard_takes_the_best_match_and_skips_absent_segments():
    original = np.array([0, 0, 0, 1, 1])
    new = np.array([1, 1, 0, 0, 0])  # segment 0 -> cluster 1: 2 shared of 3; 1 -> 0: 2 of 3

    best = best_jaccard(original, new, 3)

    assert best[:2] == pytest.approx([2 / 3, 2 / 3])
    assert np.isnan(best[2])


@pytest.mark.parametrize(
    ("score", "word"),
    [
        (1.0, "stable"),
        (0.85, "stable"),
        (0.84, "fairly stable"),
        (0.75, "fairly stable"),
        (0.7499, "doubtful"),
        (0.0, "doubtful"),
    ],
)
def test_stability_words_follow_the_thresholds(score, word):
    assert stability_word(score) == word


def test_stability_is_keyed_by_the_stable_segment_ids():
    """A far, small group stays whole; a large round blob is cut in two by k=3. Stable ids
    that differ from the fit's provisional numbers follow the segments."""
    rng = np.random.default_rng(5)
    points = np.vstack([rng.normal(size=(300, 4)), rng.normal(size=(60, 4)) + 20.0])
    fit = fit_segments(points, 3, seed=42, n_init=10)
    identity = Identity((9, 7, 8), {}, (9, 7, 8), (), 10)
    far_group = identity.relabel(fit.labels)[-1]

    by_id = stability_by_id(points, fit, identity, seed=42)

    assert sorted(by_id) == [7, 8, 9]
    assert by_id.pop(far_group) >= 0.9
    assert all(score < 0.75 for score in by_id.values()), by_id
