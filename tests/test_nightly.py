"""Seven nights of re-segmentation over drifting snapshots: ids persist, gates hold `latest`."""

from __future__ import annotations

import pandas as pd
import pytest

from flows.segmentation import segment_customers
from segment.settings import SegmentationSettings
from tasks.gates import GateError
from tasks.sample_data import generate_snapshots, write_snapshots
from tasks.store.run_files import latest_run

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

NIGHTS = 7


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    """Seven dated snapshots, segmented night after night into one output folder."""
    snapshots = generate_snapshots(NIGHTS)
    folder = tmp_path_factory.mktemp("snapshots")
    write_snapshots(snapshots, folder)
    output = tmp_path_factory.mktemp("outputs")
    manifests = [
        segment_customers(SegmentationSettings(input=folder, as_of=s.day, output_dir=output))
        for s in snapshots
    ]
    return snapshots, folder, output, manifests


def _segments(manifest: dict) -> pd.DataFrame:
    return pd.read_parquet(f"{manifest['output_folder']}/segments.parquet")


def test_each_night_reads_its_own_snapshot(week):
    snapshots, _, _, manifests = week
    for snapshot, manifest in zip(snapshots, manifests, strict=True):
        assert manifest["input"]["path"].endswith(f"customers_{snapshot.day}.csv")
        assert manifest["rows"]["rows_read"] == len(snapshot.sample.frame)


def test_segment_ids_and_names_persist_from_night_to_night(week):
    _, _, _, manifests = week
    first = {s["id"]: s["name"] for s in manifests[0]["segments"]}
    for manifest in manifests[1:]:
        assert {s["id"]: s["name"] for s in manifest["segments"]} == first
        assert manifest["k"]["chosen"] == len(first)
        assert manifest["changes"]["new_segment_ids"] == []
        assert manifest["changes"]["retired_segment_ids"] == []


def test_customers_who_stay_in_their_planted_segment_keep_their_segment_id(week):
    snapshots, _, _, manifests = week
    for night in range(1, NIGHTS):
        before, now = _segments(manifests[night - 1]), _segments(manifests[night])
        truth_before = snapshots[night - 1].sample.truth.set_index("customer_id")["planted_segment"]
        truth_now = snapshots[night].sample.truth.set_index("customer_id")["planted_segment"]
        both = before.merge(now, on="customer_id", suffixes=("_before", ""))
        stayed = both[
            truth_before.loc[both["customer_id"]].to_numpy()
            == truth_now.loc[both["customer_id"]].to_numpy()
        ]
        same_id = (stayed["segment_id_before"] == stayed["segment_id"]).mean()
        assert same_id >= 0.99, f"night {night}: only {same_id:.1%} kept their id"
        # the column written by the flow agrees with the previous run's table
        assert (stayed["previous_segment_id"] == stayed["segment_id_before"]).all()


def test_transitions_add_up_to_the_customers_in_both_snapshots(week):
    _, _, _, manifests = week
    for night in range(1, NIGHTS):
        before, now = _segments(manifests[night - 1]), _segments(manifests[night])
        transitions = pd.read_parquet(f"{manifests[night]['output_folder']}/transitions.parquet")
        in_both = now["customer_id"].isin(before["customer_id"]).sum()
        assert transitions["customers"].sum() == in_both
        assert manifests[night]["changes"]["customers_in_both"] == in_both


def test_the_growing_segment_grows_and_latest_names_the_last_night(week):
    _, _, output, manifests = week
    sizes = [{s["id"]: s["size"] for s in m["segments"]} for m in manifests]
    growing = max(sizes[-1], key=lambda i: sizes[-1][i] - sizes[0][i])
    assert sizes[-1][growing] - sizes[0][growing] > 150  # 18% -> ~25% of ~3,000 customers
    assert (
        next(s["name"] for s in manifests[-1]["segments"] if s["id"] == growing)
        == "High income, high spending"
    )
    assert latest_run(output).name == manifests[-1]["run_id"]


def test_rerunning_the_same_snapshot_gives_the_same_segments(week, tmp_path):
    snapshots, folder, output, manifests = week
    again = segment_customers(
        SegmentationSettings(input=folder, as_of=snapshots[-1].day, output_dir=output)
    )
    first, second = _segments(manifests[-1]), _segments(again)
    columns = ["customer_id", "segment_id", "segment_name", "distance_to_centroid"]
    pd.testing.assert_frame_equal(first[columns], second[columns])
    assert again["changes"]["customers_moved"] == 0


def test_a_breached_gate_fails_the_run_and_latest_stays_on_the_previous_good_run(week):
    snapshots, folder, output, _ = week
    good = latest_run(output)
    runs_before = sorted(p.name for p in (output / "runs").iterdir())
    settings = SegmentationSettings(
        input=folder, as_of=snapshots[-1].day, output_dir=output, gates={"silhouette_floor": 0.99}
    )
    with pytest.raises(GateError, match=r"silhouette_floor: silhouette 0\.\d+ is below 0\.99"):
        segment_customers(settings)
    assert latest_run(output) == good
    assert sorted(p.name for p in (output / "runs").iterdir()) == runs_before
