"""The whole flow under a throw-away Prefect server (prefect_test_harness)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import MALL_PROFILES, MALL_QUARANTINE, MALL_SEGMENTS
from sklearn.metrics import adjusted_rand_score

from flows.segmentation import segment_customers
from schemas.outputs import Elbow
from segment.settings import DEFAULT_INPUT, SegmentationSettings
from tasks.errors import InputError
from tasks.reporting import plots
from tasks.sample_data import generate_customers
from tasks.store.run_files import file_checksums, latest_run

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

RUN_FILES = {
    "raw.parquet",
    "segments.parquet",
    "profiles.parquet",
    "elbow.parquet",
    "quarantine.parquet",
    "model.json",
    "manifest.json",
    "elbow.png",
    "segments.png",
    "profiles.png",
    "eda.png",
    "transitions.parquet",
    "transitions.png",
    "report.html",
}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """One flow run on the embedded default customers, shared by the tests below."""
    output = tmp_path_factory.mktemp("outputs")
    manifest = segment_customers(SegmentationSettings(output_dir=output))
    return manifest, output


def test_default_run_writes_every_file_and_points_latest_at_it(default_run):
    manifest, output = default_run
    folder = latest_run(output)
    assert folder is not None and folder.name == manifest["run_id"]
    assert {p.name for p in folder.iterdir()} == RUN_FILES
    assert not [p for p in (output / "runs").iterdir() if p.name.startswith(".")]


def test_default_run_plots_are_pngs_of_the_documented_size(default_run):
    from PIL import Image

    _, output = default_run
    folder = latest_run(output)
    sizes = {
        "elbow.png": plots.ELBOW_SIZE,
        "segments.png": plots.SEGMENTS_SIZE,
        "profiles.png": plots.PROFILES_SIZE,
        "eda.png": plots.EDA_SIZE,
    }
    for name, (width, height) in sizes.items():
        with Image.open(folder / name) as image:
            assert image.format == "PNG"
            assert image.size == (round(width * plots.PNG_DPI), round(height * plots.PNG_DPI))


def test_default_run_tables_read_back_and_validate(default_run):
    _, output = default_run
    folder = latest_run(output)
    MALL_SEGMENTS.validate(pd.read_parquet(folder / "segments.parquet"))
    MALL_PROFILES.validate(pd.read_parquet(folder / "profiles.parquet"))
    Elbow.validate(pd.read_parquet(folder / "elbow.parquet"))
    MALL_QUARANTINE.validate(pd.read_parquet(folder / "quarantine.parquet"))


def test_default_run_recovers_the_planted_segments(default_run):
    _, output = default_run
    segments = pd.read_parquet(latest_run(output) / "segments.parquet")
    truth = generate_customers().truth.set_index("customer_id")["planted_segment"]
    planted = truth.loc[segments["customer_id"]].to_numpy()
    assert adjusted_rand_score(planted, segments["segment_id"]) >= 0.9


def test_default_run_accounts_for_every_input_row(default_run):
    manifest, output = default_run
    folder = latest_run(output)
    rows = manifest["rows"]
    # every row of the committed file is segmented, quarantined or a dropped duplicate
    assert rows["rows_read"] == len(pd.read_csv(DEFAULT_INPUT, dtype=str))
    assert rows["rows_read"] == (
        rows["rows_kept"] + rows["rows_quarantined"] + rows["duplicates_dropped"]
    )
    assert rows["rows_kept"] == len(pd.read_parquet(folder / "segments.parquet"))
    assert rows["rows_quarantined"] == len(pd.read_parquet(folder / "quarantine.parquet"))
    assert rows["rows_quarantined"] > 0 and rows["duplicates_dropped"] > 0  # the planted dirt


def test_manifest_on_disk_matches_files_and_records_the_run(default_run):
    _manifest, output = default_run
    folder = latest_run(output)
    on_disk = json.loads((folder / "manifest.json").read_text())
    # the manifest lists every other file with its checksum, and they still match
    others = {name: v for name, v in file_checksums(folder).items() if name != "manifest.json"}
    assert on_disk["files"] == others
    assert set(on_disk["files"]) == RUN_FILES - {"manifest.json"}
    assert on_disk["k"]["chosen"] == len(on_disk["segments"]) == 5
    assert on_disk["k"]["rule"] == "elbow"
    assert set(on_disk["timings"]) >= {
        "ingest",
        "clean",
        "scale",
        "elbow",
        "fit",
        "report",
        "total",
    }
    assert on_disk["input"]["sha256"] and on_disk["versions"]["prefect"].startswith("3.")
    assert on_disk["settings"]["features"] is None  # not given: the Mall preset's
    columns = on_disk["columns"]
    assert columns["preset"] == "mall" and columns["id_header"] == "CustomerID"
    features = [c["name"] for c in columns["columns"] if c["role"] == "feature"]
    assert features == ["annual_income", "spending_score"] == on_disk["features"]


def test_bad_input_fails_the_flow_and_leaves_no_run_folder(tmp_path, shared_data):
    output = tmp_path / "outputs"
    settings = SegmentationSettings(
        input=shared_data / "dirty" / "mall_customers_merge_conflict.csv", output_dir=output
    )
    with pytest.raises(InputError, match="merge-conflict"):
        segment_customers(settings)
    runs = output / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []  # refused before a run folder
    assert latest_run(output) is None


def test_mall_file_reproduces_the_tutorial_segments(tmp_path, shared_data):
    manifest = segment_customers(
        SegmentationSettings(input=shared_data / "mall_customers.csv", output_dir=tmp_path)
    )
    assert manifest["k"]["chosen"] == 5
    assert [s["size"] for s in manifest["segments"]] == [22, 23, 81, 39, 35]
    profiles = pd.read_parquet(latest_run(tmp_path) / "profiles.parquet")
    expected = [(25.7, 79.4), (26.3, 20.9), (55.3, 49.5), (86.5, 82.1), (88.2, 17.1)]
    for row, (income, score) in zip(profiles.itertuples(), expected, strict=True):
        assert row.annual_income_mean == pytest.approx(income, abs=0.5)
        assert row.spending_score_mean == pytest.approx(score, abs=0.5)


def test_run_publishes_summary_and_profile_artifacts(default_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    manifest, _ = default_run
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[manifest["flow_run_id"]])
            )
        )
    from tasks.reporting.artifacts import artifact_key

    by_key = {a.key: a for a in artifacts}
    output = manifest["settings"]["output_dir"]  # an ad-hoc run: keys of its output folder
    summary_key, profiles_key = (
        artifact_key(base, output, deployment=False)
        for base in ("segmentation-summary", "segment-profiles")
    )
    assert {summary_key, profiles_key} <= set(by_key)
    assert "segmentation-summary" not in by_key  # the plain key is the nightly deployment's
    profiles = by_key[profiles_key].data
    assert "%" in profiles  # shares as percentages
    summary = by_key[summary_key].data
    assert manifest["run_id"] in summary and "5 segments" in summary
    for segment in manifest["segments"]:
        assert segment["name"] in summary


def test_a_run_records_its_process_for_the_next_run_to_check(default_run):
    """The flow run names this process (``host:pid``, as Prefect's workers do): if it is
    killed, the next run sees the process is gone and marks the run Crashed."""
    from prefect.client.orchestration import get_client

    from flows.killed_runs import this_process

    manifest, _ = default_run
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(manifest["flow_run_id"])
    assert run.infrastructure_pid == this_process()
    assert run.state is not None and run.state.is_completed()


def test_dirty_mall_copy_runs_with_its_bad_rows_quarantined(tmp_path, shared_data):
    settings = SegmentationSettings(
        input=shared_data / "dirty" / "mall_customers_qmarks_dupes_812rows.csv", output_dir=tmp_path
    )
    manifest = segment_customers(settings)
    assert manifest["rows"] == {
        "rows_read": 812,
        "rows_kept": 700,
        "rows_quarantined": 100,
        "duplicates_dropped": 12,
    }
    quarantine = pd.read_parquet(latest_run(tmp_path) / "quarantine.parquet")
    assert quarantine["reason"].str.endswith("missing value").all()
