"""Any customer table, end to end: the flow on tables that are not the Mall file (the shared
wholesale file, and generated tables of each shape with planted segments)."""

from __future__ import annotations

import json
import tomllib

import pandas as pd
import pytest
from planted_tables import (
    mixed_marketing_table,
    wholesale_like_table,
    wide_behaviour_table,
    write_planted_table,
)
from sklearn.metrics import adjusted_rand_score

from flows.segmentation import segment_customers
from segment.settings import SegmentationSettings
from tasks.ingest import read_file
from tasks.spec_init import starter_spec
from tasks.store.run_files import latest_run

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


def run(tmp_path, source, **settings):
    output = tmp_path / "outputs"
    manifest = segment_customers(SegmentationSettings(input=source, output_dir=output, **settings))
    folder = latest_run(output)
    assert folder is not None and folder.name == manifest["run_id"]
    return manifest, folder


def planted_ari(planted, segments: pd.DataFrame, id_column: str | None) -> float:
    """Agreement of the run's segments with the planted groups, by customer id."""
    frame = planted.frame
    ids = frame[id_column].astype(str) if id_column else pd.Series(range(1, len(frame) + 1))
    truth = pd.Series(planted.labels, index=ids.astype(str).to_numpy())
    found = segments.set_index("customer_id")["segment_id"]
    return adjusted_rand_score(truth.loc[found.index], found)


def assert_accounting(manifest: dict) -> None:
    rows = manifest["rows"]
    kept = rows["rows_kept"] + rows["rows_quarantined"] + rows["duplicates_dropped"]
    assert rows["rows_read"] == kept
    assert sum(s["size"] for s in manifest["segments"]) == rows["rows_kept"]


def test_wholesale_file_with_its_starter_spec_runs_unchanged(shared_data, tmp_path):
    source = shared_data / "wholesale_customers.csv"
    spec = tmp_path / "wholesale.toml"
    spec.write_text(starter_spec(read_file(source), str(source)))
    assert tomllib.loads(spec.read_text())["id_column"] == "none"  # no id in this file
    manifest, folder = run(tmp_path, source, spec=spec)
    assert_accounting(manifest)
    assert manifest["rows"]["rows_kept"] == 440
    features = ["Fresh", "Milk", "Grocery", "Frozen", "Detergents_Paper", "Delicassen"]
    assert manifest["features"] == features
    names = " ".join(s["name"] for s in manifest["segments"])
    assert any(feature in names for feature in features)  # named after real columns
    assert "income" not in names.lower() and "spending" not in names.lower()
    # raw.parquet is the audit copy under the file's own headers
    assert list(pd.read_parquet(folder / "raw.parquet").columns)[1:] == [
        "Channel",
        "Region",
        *features,
    ]
    profiles = pd.read_parquet(folder / "profiles.parquet")
    assert {"Channel_1_share", "Channel_2_share", "Fresh_mean", "Fresh_median"} <= set(
        profiles.columns
    )
    segments = pd.read_parquet(folder / "segments.parquet")
    assert segments["customer_id"].tolist()[:3] == ["1", "2", "3"]  # data row numbers
    model = json.loads((folder / "model.json").read_text())
    assert {t["kind"] for t in model["transforms"]} == {"log1p"}  # as the spec suggested


def test_wide_behaviour_table_with_missing_values_finds_the_planted_segments(tmp_path):
    planted = wide_behaviour_table(n=3000, seed=7)
    source = write_planted_table(planted, tmp_path / "cards.csv")
    spec = tmp_path / "cards.toml"
    spec.write_text(starter_spec(read_file(source), str(source)))
    manifest, folder = run(tmp_path, source, spec=spec)
    assert_accounting(manifest)
    assert manifest["rows"]["rows_quarantined"] == 0
    assert manifest["missing_filled"] == {"CREDIT_LIMIT": 15, "MINIMUM_PAYMENTS": 90}
    segments = pd.read_parquet(folder / "segments.parquet")
    assert planted_ari(planted, segments, "CUST_ID") >= 0.9
    names = [s["name"] for s in manifest["segments"]]
    # named after the features that set it apart, or "High/Low on every feature"
    words = ("BALANCE", "PURCHASES", "CASH", "PAYMENTS", "CREDIT", "on every feature")
    assert all(any(w in name for w in words) for name in names), names


def test_wide_table_with_only_command_line_options_quarantines_or_fills_missing(tmp_path):
    planted = wide_behaviour_table(n=1500, seed=3)
    source = write_planted_table(planted, tmp_path / "cards.csv")
    # no transform: the 0.3 % extreme spenders pull K-Means towards a tiny segment; the k rule
    # respects the smallest-segment gate, so the run picks a k the gate accepts
    manifest, _ = run(tmp_path, source, features=["numeric"], missing="median")
    assert min(s["size"] for s in manifest["segments"]) >= 0.01 * 1500
    assert_accounting(manifest)
    assert manifest["rows"]["rows_quarantined"] == 0
    assert set(manifest["missing_filled"]) == {"CREDIT_LIMIT", "MINIMUM_PAYMENTS"}
    quarantined, _ = run(tmp_path / "q", source, features=["numeric"])
    missing_rows = int(planted.frame[["CREDIT_LIMIT", "MINIMUM_PAYMENTS"]].isna().any(axis=1).sum())
    assert quarantined["rows"]["rows_quarantined"] == missing_rows


def test_mixed_tab_separated_table_with_categories_and_flags(tmp_path):
    planted = mixed_marketing_table(n=2000, seed=11)
    source = write_planted_table(planted, tmp_path / "marketing.tsv")
    spec = tmp_path / "marketing.toml"
    spec.write_text(starter_spec(read_file(source), str(source)))
    parsed = tomllib.loads(spec.read_text())
    assert parsed["id_column"] == "ID"
    assert {"Education", "Marital_Status", "Response"} <= set(parsed["profile"])
    manifest, folder = run(tmp_path, source, spec=spec)
    assert_accounting(manifest)
    segments = pd.read_parquet(folder / "segments.parquet")
    assert planted_ari(planted, segments, "ID") >= 0.9
    profiles = pd.read_parquet(folder / "profiles.parquet")
    for column in ("Education_PhD_share", "Marital_Status_Single_share", "Response_1_share"):
        assert profiles[column].between(0, 1).all()
    # the flag's share per segment is its rate among that segment's customers
    joined = segments.merge(profiles[["segment_id", "Response_1_share"]], on="segment_id")
    rates = joined.groupby("segment_id")["Response"].mean()
    expected = profiles.set_index("segment_id")["Response_1_share"]
    pd.testing.assert_series_equal(rates, expected, check_names=False)


def test_categorical_feature_counts_as_one_feature(tmp_path):
    planted = mixed_marketing_table(n=1200, seed=5)
    source = write_planted_table(planted, tmp_path / "marketing.tsv")
    features = ["Income", "MntWines", "MntMeatProducts", "NumStorePurchases", "Education"]
    manifest, folder = run(tmp_path, source, features=features, missing="median", k=3)
    model = json.loads((folder / "model.json").read_text())
    one_hot = [t for t in model["transforms"] if t["source"] == "Education"]
    assert len(one_hot) == 5
    segments = pd.read_parquet(folder / "segments.parquet")
    # the education columns together weigh as one standard-scaled feature: segments still
    # follow the planted spending groups rather than the five education levels
    assert planted_ari(planted, segments, "ID") >= 0.8
    names = [s["name"] for s in manifest["segments"]]
    assert not all("mostly" in name for name in names)


def test_wholesale_like_table_without_id_finds_the_planted_segments(tmp_path):
    planted = wholesale_like_table(n=440, seed=3)
    source = write_planted_table(planted, tmp_path / "wholesale.csv")
    spec = tmp_path / "wholesale.toml"
    spec.write_text(starter_spec(read_file(source), str(source)))
    manifest, folder = run(tmp_path, source, spec=spec)
    assert manifest["columns"]["id_header"] is None
    segments = pd.read_parquet(folder / "segments.parquet")
    assert planted_ari(planted, segments, None) >= 0.9


def test_pca_records_the_explained_variance_and_keeps_names_in_original_columns(tmp_path):
    planted = wide_behaviour_table(n=1500, seed=9)
    source = write_planted_table(planted, tmp_path / "cards.csv")
    manifest, folder = run(tmp_path, source, features=["numeric"], missing="median", pca=0.9)
    pca = manifest["pca"]
    assert pca["explained_variance"] >= 0.9
    assert pca["components"] == len(pca["explained_variance_ratio"]) < 14
    model = json.loads((folder / "model.json").read_text())
    assert len(model["segments"][0]["centroid_scaled"]) == pca["components"]
    assert set(model["segments"][0]["centroid"]) == set(model["columns"])  # original columns


def test_changing_the_features_between_runs_starts_afresh_instead_of_failing_a_gate(
    shared_data, tmp_path
):
    source = shared_data / "wholesale_customers.csv"
    first, _ = run(tmp_path, source, profile=["Channel", "Region"], id_column="none")
    # the same output folder, other features: not comparable, so no "moved" customers
    second, folder = run(tmp_path, source, features=["Fresh", "Milk", "Grocery"], id_column="none")
    assert second["changes"]["features_changed"] is True
    assert "moved_share" not in second["changes"]  # so the moved-customers gate cannot fire
    first_ids = {s["id"] for s in first["segments"]}
    assert not first_ids & {s["id"] for s in second["segments"]}  # ids never reused
    assert pd.read_parquet(folder / "transitions.parquet").empty
