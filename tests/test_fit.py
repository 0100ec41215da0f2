"""Tests for tasks.fit: deterministic K-Means with canonical segment numbers."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import read_customers
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

import tasks.fit
from tasks.clean import clean_customers
from tasks.fit import canonical_order, fit_final, fit_segments, row_lengths, sweep_rows
from tasks.scale import scale_features


@pytest.fixture(scope="module")
def blobs():
    X, truth = make_blobs(n_samples=200, centers=4, cluster_std=0.6, random_state=42)
    return X, truth


def test_same_data_and_seed_give_identical_labels_and_centroids(blobs):
    X, _ = blobs
    first, second = fit_segments(X, 4, seed=7, n_init=10), fit_segments(X, 4, seed=7, n_init=10)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.centroids, second.centroids)
    np.testing.assert_array_equal(first.distances, second.distances)
    assert first.inertia == second.inertia


def test_segments_recover_the_blobs(blobs):
    X, truth = blobs
    assert adjusted_rand_score(
        truth, fit_segments(X, 4, seed=42, n_init=10).labels
    ) == pytest.approx(1.0)


def test_shuffled_rows_keep_each_points_segment_and_the_centroids(blobs):
    X, _ = blobs
    original = fit_segments(X, 4, seed=42, n_init=10)
    permutation = np.random.default_rng(0).permutation(len(X))
    shuffled = fit_segments(X[permutation], 4, seed=42, n_init=10)
    # the segment id of a point does not depend on where it sits in the input
    np.testing.assert_array_equal(shuffled.labels, original.labels[permutation])
    np.testing.assert_allclose(shuffled.centroids, original.centroids, atol=1e-9)
    np.testing.assert_allclose(shuffled.distances, original.distances[permutation], atol=1e-9)


def test_segment_ids_are_1_to_k_ordered_by_first_feature_centroid(blobs):
    X, _ = blobs
    segmentation = fit_segments(X, 4, seed=42, n_init=10)
    assert segmentation.k == 4
    assert sorted(np.unique(segmentation.labels)) == [1, 2, 3, 4]
    assert (np.diff(segmentation.centroids[:, 0]) > 0).all()
    # centroid i is the mean of the points of segment i + 1
    for i in range(4):
        members = X[segmentation.labels == i + 1]
        np.testing.assert_allclose(segmentation.centroids[i], members.mean(axis=0), atol=1e-9)


def test_canonical_order_sorts_by_first_then_second_feature():
    centroids = np.array([[2.0, 0.0], [1.0, 5.0], [1.0, -5.0], [0.0, 9.0]])
    assert canonical_order(centroids).tolist() == [3, 2, 1, 0]


def test_distances_are_euclidean_to_own_centroid_which_is_the_nearest(blobs):
    X, _ = blobs
    segmentation = fit_segments(X, 4, seed=42, n_init=10)
    own = segmentation.centroids[segmentation.labels - 1]
    np.testing.assert_allclose(segmentation.distances, np.sqrt(((X - own) ** 2).sum(axis=1)))
    to_all = np.linalg.norm(X[:, None, :] - segmentation.centroids[None, :, :], axis=2)
    np.testing.assert_array_equal(to_all.argmin(axis=1) + 1, segmentation.labels)
    assert segmentation.inertia == pytest.approx((segmentation.distances**2).sum())


def test_k_above_number_of_rows_raises_value_error():
    with pytest.raises(ValueError, match="n_samples=3 should be >= n_clusters=4"):
        fit_segments(np.arange(6.0).reshape(3, 2), 4, seed=42, n_init=10)


def test_sweep_rows_are_all_rows_up_to_the_threshold_then_a_seeded_sample_in_order():
    matrix = np.arange(2_000.0).reshape(1_000, 2)
    assert sweep_rows(matrix, 1_000, 100, seed=1) is matrix  # at the threshold: every row
    sample = sweep_rows(matrix, 999, 100, seed=1)
    assert sample.shape == (100, 2)
    assert (np.diff(sample[:, 0]) > 0).all()  # distinct rows, in the input's order
    assert np.isin(sample[:, 0], matrix[:, 0]).all()
    np.testing.assert_array_equal(sample, sweep_rows(matrix, 999, 100, seed=1))
    assert not np.array_equal(sample, sweep_rows(matrix, 999, 100, seed=2))


def test_fit_final_on_all_rows_as_the_sample_is_one_fit(blobs):
    X, _ = blobs
    final = fit_final(X, X, 4, seed=7, n_init=3)
    plain = fit_segments(X, 4, seed=7, n_init=3)
    np.testing.assert_array_equal(final.labels, plain.labels)
    np.testing.assert_array_equal(final.centroids, plain.centroids)


def test_fit_final_on_a_sample_restarts_on_it_then_fits_all_rows_once(blobs, monkeypatch):
    X, truth = blobs
    calls = []

    def spy(matrix, k, **options):
        calls.append((len(matrix), options.get("init") is not None))
        return fit_segments(matrix, k, **options)

    monkeypatch.setattr(tasks.fit, "fit_segments", spy)
    sample = sweep_rows(X, 100, 60, seed=7)
    final = fit_final(X, sample, 4, seed=7, n_init=3)
    assert calls == [(60, False), (len(X), True)]  # sample with restarts, then all rows from it
    assert len(final.labels) == len(X)
    assert adjusted_rand_score(truth, final.labels) == pytest.approx(1.0)


def test_mall_customers_k5_golden_sizes_and_centroids(shared_data):
    path = shared_data / "mall_customers.csv"
    scaled = scale_features(
        clean_customers(read_customers(path), max_quarantine_share=0.2).customers
    )
    assert scaled.columns == ("annual_income", "spending_score")
    segmentation = fit_segments(scaled.matrix, 5, seed=42, n_init=10)
    sizes = np.bincount(segmentation.labels, minlength=6)[1:]
    assert sizes.tolist() == [22, 23, 81, 39, 35]
    original = np.column_stack(
        [t.invert(segmentation.centroids[:, j]) for j, t in enumerate(scaled.transforms)]
    )
    expected = [(25.7, 79.4), (26.3, 20.9), (55.3, 49.5), (86.5, 82.1), (88.2, 17.1)]
    np.testing.assert_allclose(original, expected, atol=0.5)


def test_distances_stay_finite_when_squares_would_overflow():
    """Robust-scaled huge incomes give rows near 1e300: their squares overflow, their distance
    to the centroid does not (a NaN or inf distance would fail the segments contract)."""
    matrix = np.array([[1e300, 0.0], [0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    fit = fit_segments(matrix, k=1, seed=0, n_init=10)
    assert np.isfinite(fit.distances).all()
    centroid = matrix.mean(axis=0)
    expected = [np.hypot(*(row - centroid)) for row in matrix]
    np.testing.assert_allclose(fit.distances, expected, rtol=1e-15)
    rows = np.array([[3.0, 4.0], [0.1, 0.2], [1e300, 1e300]])
    lengths = row_lengths(rows)  # rows that do not overflow: exactly as np.linalg.norm
    np.testing.assert_array_equal(lengths[:2], np.linalg.norm(rows[:2], axis=1))
    assert lengths[2] == pytest.approx(np.sqrt(2) * 1e300)
