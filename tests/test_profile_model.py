"""Tests for tasks.profile (names, profiles, segment table) and tasks.model (JSON model)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import MALL_COLUMNS, MALL_PROFILES, MALL_SEGMENTS
from sklearn.datasets import make_blobs

from schemas.columns import AGE, ANNUAL_INCOME, GENDER, SPENDING_SCORE
from tasks.fit import fit_segments
from tasks.model import MODEL_FORMAT, build_model, load_model, model_to_json, score_frame
from tasks.profile import (
    level_words,
    profile_segments,
    segment_profile_statistics,
    segment_table,
    unique_name,
)
from tasks.reporting import explain
from tasks.scale import scale_features
from tasks.table import mall_table

FEATURES = [ANNUAL_INCOME, SPENDING_SCORE]
# income, score: low/high, mid/mid, high/low
CENTERS = [[20.0, 80.0], [60.0, 50.0], [100.0, 20.0]]


def make_customers(n: int = 90) -> pd.DataFrame:
    X, _ = make_blobs(n_samples=n, centers=CENTERS, cluster_std=3.0, random_state=42)
    rng = np.random.default_rng(42)
    return pd.DataFrame(
        {
            "customer_id": pd.Series([f"C{i:03d}" for i in range(n)], dtype="str"),
            GENDER: pd.Series(rng.choice(["Female", "Male"], size=n), dtype="str"),
            AGE: rng.integers(18, 70, size=n).astype("float64"),
            ANNUAL_INCOME: X[:, 0],
            SPENDING_SCORE: X[:, 1],
        }
    )


@pytest.fixture(scope="module")
def fitted():
    customers = make_customers()
    scaled = scale_features(customers, FEATURES)
    segmentation = fit_segments(scaled.matrix, 3, seed=42, n_init=10)
    names = computed_names(customers, segmentation.labels)
    return customers, scaled, segmentation, names


# --- names: explain's ranking over the profiles ------------------------------------------------


def computed_names(customers: pd.DataFrame, labels: np.ndarray, table=None) -> dict[int, str]:
    """Each segment's name as a run computes it for a new segment (no effects given: z from
    the spread of all customers, as for a plain standard scaling)."""
    table = table or mall_table()
    statistics = segment_profile_statistics(customers, labels, table)
    numeric = [c.name for c in table.columns if c.numeric]
    spread = explain.population_spread(customers, numeric)
    numbers = explain.differences(statistics, spread, table)
    categories = explain.shares(statistics, table)
    words = {c.name: level_words(c) for c in table.features if c.numeric}
    names: dict[int, str] = {}
    for segment_id in statistics["segment_id"]:
        sid = int(segment_id)
        picture = explain.portrait(numbers[sid], categories[sid])
        name = explain.segment_name(picture, words) or f"Segment {sid}"
        names[sid] = unique_name(name, set(names.values()))
    return names


def mall_like(income, score, age=None) -> pd.DataFrame:
    n = len(income)
    return pd.DataFrame(
        {
            "customer_id": pd.Series([f"C{i}" for i in range(n)], dtype="str"),
            GENDER: pd.Series(["Female"] * n, dtype="str"),
            AGE: np.asarray(age if age is not None else [30.0] * n, dtype="float64"),
            ANNUAL_INCOME: np.asarray(income, dtype="float64"),
            SPENDING_SCORE: np.asarray(score, dtype="float64"),
        }
    )


def test_names_describe_segment_levels_against_all_customers():
    customers = mall_like([20, 20, 60, 60, 100, 100], [80, 80, 50, 50, 20, 20])
    assert computed_names(customers, np.array([1, 1, 2, 2, 3, 3])) == {
        1: "Low income, high spending",
        2: "Average income, average spending",
        3: "High income, low spending",
    }


def test_colliding_names_get_a_numbered_suffix():
    customers = mall_like([20, 20, 100, 98, 99, 100], [80, 80, 20, 22, 21, 20])
    names = computed_names(customers, np.array([1, 1, 2, 3, 4, 4]))
    assert names == {
        1: "Low income, high spending",
        2: "High income, low spending",
        3: "High income, low spending #2",
        4: "High income, low spending #3",
    }


def test_unique_name_takes_the_first_free_suffix():
    assert unique_name("A", {"A", "A #2"}) == "A #3"
    assert unique_name("B", {"A"}) == "B"


# --- profile_segments and segment_table ------------------------------------------------------


def test_profile_sizes_and_shares_add_up(fitted):
    customers, _, segmentation, names = fitted
    profiles = profile_segments(customers, segmentation.labels, names)
    assert profiles["segment_id"].tolist() == [1, 2, 3]
    assert profiles["size"].sum() == len(customers)
    assert profiles["share"].sum() == pytest.approx(1.0)
    assert profiles["segment_name"].tolist() == [names[1], names[2], names[3]]
    MALL_PROFILES.validate(profiles)


def test_profile_means_medians_and_gender_shares_match_a_groupby(fitted):
    customers, _, segmentation, names = fitted
    profiles = profile_segments(customers, segmentation.labels, names).set_index("segment_id")
    grouped = customers.assign(segment=segmentation.labels).groupby("segment")
    for column in (AGE, ANNUAL_INCOME, SPENDING_SCORE):
        np.testing.assert_allclose(profiles[f"{column}_mean"], grouped[column].mean())
        np.testing.assert_allclose(profiles[f"{column}_median"], grouped[column].median())
    females = grouped[GENDER].apply(lambda g: (g == "Female").sum()) / grouped.size()
    np.testing.assert_allclose(profiles["gender_Female_share"], females)
    np.testing.assert_allclose(profiles["gender_Female_share"] + profiles["gender_Male_share"], 1.0)
    # original units: the income means sit near the blob centres 20, 60, 100
    np.testing.assert_allclose(profiles[f"{ANNUAL_INCOME}_mean"], [20, 60, 100], atol=2.0)


def test_blob_segments_get_the_expected_names(fitted):
    *_, names = fitted
    assert names == {
        1: "Low income, high spending",
        2: "Average income, average spending",
        3: "High income, low spending",
    }


def test_segment_table_has_one_row_per_customer_and_validates(fitted):
    customers, _, segmentation, names = fitted
    table = segment_table(customers, segmentation.labels, segmentation.distances, names)
    assert len(table) == len(customers)
    assert list(table.columns) == [
        *MALL_COLUMNS,
        "segment_id",
        "previous_segment_id",
        "segment_name",
        "distance_to_centroid",
    ]
    assert table["previous_segment_id"].isna().all()  # no previous run given
    assert table["customer_id"].tolist() == customers["customer_id"].tolist()
    assert table["segment_id"].tolist() == segmentation.labels.tolist()
    assert table["segment_name"].tolist() == [names[i] for i in segmentation.labels]
    pd.testing.assert_frame_equal(MALL_SEGMENTS.validate(table), table)


# --- model JSON -------------------------------------------------------------------------------


def _no_constants(name: str):
    raise AssertionError(f"JSON contains {name}")


def test_model_round_trips_through_a_json_file(fitted, tmp_path):
    _, scaled, segmentation, names = fitted
    model = build_model(scaled, segmentation, None, names, FEATURES)
    path = tmp_path / "model.json"
    path.write_text(model_to_json(model), encoding="utf-8")
    loaded = load_model(path)
    assert loaded == model
    assert loaded["format"] == MODEL_FORMAT
    assert [s["id"] for s in loaded["segments"]] == [1, 2, 3]
    assert [s["name"] for s in loaded["segments"]] == [names[1], names[2], names[3]]


def test_model_json_has_no_nan_and_is_plain_json_text(fitted, tmp_path):
    _, scaled, segmentation, names = fitted
    path = tmp_path / "model.json"
    path.write_text(model_to_json(build_model(scaled, segmentation, None, names, FEATURES)))
    data = path.read_bytes()
    assert not data.startswith(b"\x80")  # pickle protocol 2+ header
    text = data.decode("utf-8")
    json.loads(text, parse_constant=_no_constants)  # NaN / Infinity would raise
    assert "NaN" not in text


def test_model_to_json_refuses_nan():
    with pytest.raises(ValueError):
        model_to_json({"format": MODEL_FORMAT, "x": float("nan")})


def test_model_centroids_are_in_original_units(fitted):
    _, scaled, segmentation, names = fitted
    model = build_model(scaled, segmentation, None, names, FEATURES)
    incomes = [s["centroid"][ANNUAL_INCOME] for s in model["segments"]]
    scores = [s["centroid"][SPENDING_SCORE] for s in model["segments"]]
    np.testing.assert_allclose(incomes, [20, 60, 100], atol=2.0)
    np.testing.assert_allclose(scores, [80, 50, 20], atol=2.0)


def test_scoring_the_training_customers_reproduces_the_fitted_labels(fitted, tmp_path):
    customers, scaled, segmentation, names = fitted
    path = tmp_path / "model.json"
    path.write_text(model_to_json(build_model(scaled, segmentation, None, names, FEATURES)))
    np.testing.assert_array_equal(
        score_frame(load_model(path), customers).segment_ids, segmentation.labels
    )


def test_new_customer_is_assigned_to_the_nearest_centroid(fitted):
    customers, scaled, segmentation, names = fitted
    model = build_model(scaled, segmentation, None, names, FEATURES)
    new = customers.head(3).assign(
        customer_id=pd.Series(["N1", "N2", "N3"], dtype="str"),
        annual_income=[97.0, 24.0, 58.0],
        spending_score=[25.0, 75.0, 47.0],
    )
    assert score_frame(model, new).segment_ids.tolist() == [3, 1, 2]


def test_model_with_gender_feature_scores_the_training_customers():
    customers = make_customers()
    features = [ANNUAL_INCOME, SPENDING_SCORE, GENDER]
    scaled = scale_features(customers, features)
    segmentation = fit_segments(scaled.matrix, 3, seed=42, n_init=10)
    names = {1: "a", 2: "b", 3: "c"}
    model = json.loads(model_to_json(build_model(scaled, segmentation, None, names, features)))
    assert model["columns"] == [ANNUAL_INCOME, SPENDING_SCORE, "gender_Female", "gender_Male"]
    np.testing.assert_array_equal(score_frame(model, customers).segment_ids, segmentation.labels)


@pytest.mark.parametrize(
    "content",
    [{"format": "customer-segmentation-model/0"}, {"features": []}],
    ids=["wrong-marker", "no-marker"],
)
def test_load_model_rejects_a_wrong_format_marker(tmp_path, content):
    path = tmp_path / "model.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="not a customer-segmentation-model/1 model"):
        load_model(path)
