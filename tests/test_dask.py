"""The Dask path: `--runner dask` on a real LocalCluster (scheduler and worker processes on
127.0.0.1) gives the same segments as the local path; partition logic checked on its own."""

from __future__ import annotations

import json

import dask
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from flows import cli
from flows.runners import dask_task_runner, flow_for, prefect_api_for_workers
from flows.segmentation import segment_customers
from flows.settings import SegmentationSettings
from schemas.outputs import Quarantine, Segments
from tasks import partitioned
from tasks.clean import clean_customers
from tasks.errors import InputError
from tasks.gates import GateError
from tasks.ingest import read_customers
from tasks.report import latest_run
from tasks.sample_data import generate_customers, write_sample_csv
from tasks.snapshots import is_partitioned_input

N_PARTS = 4


@pytest.fixture(scope="module")
def customers(tmp_path_factory):
    """20k generated customers (with planted dirt) as one CSV and as 4 Parquet partition files
    whose rows, read in name order, are the CSV's rows."""
    folder = tmp_path_factory.mktemp("dask-data")
    csv = folder / "customers.csv"
    write_sample_csv(generate_customers(20_000, seed=11), csv)
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    parts = folder / "parts"
    parts.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(raw)), N_PARTS)):
        raw.iloc[rows].to_parquet(parts / f"part-{i}.parquet", index=False)
    return csv, parts


def _settings(**overrides) -> SegmentationSettings:
    # Sample thresholds low enough that 20k customers take the sampled sweep on both paths.
    base = {"sample_threshold": 5_000, "sample_size": 5_000, "n_init": 4, "k_sweep_max": 8}
    return SegmentationSettings(**{**base, **overrides})


def _segments(folder) -> pd.DataFrame:
    files = sorted(folder.glob("segments*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_partitioned_parquet_on_a_local_cluster_gives_the_local_segments(customers, tmp_path):
    csv, parts = customers
    local = segment_customers(_settings(input=csv, output_dir=tmp_path / "local"))
    on_dask = _settings(input=parts, output_dir=tmp_path / "dask", runner="dask")
    with prefect_api_for_workers(on_dask):
        distributed = flow_for(on_dask)(on_dask)

    # Same row accounting and the very same quarantined rows and reasons.
    assert distributed["rows"] == local["rows"]
    local_folder, dask_folder = latest_run(tmp_path / "local"), latest_run(tmp_path / "dask")
    pd.testing.assert_frame_equal(
        pd.read_parquet(dask_folder / "quarantine.parquet"),
        pd.read_parquet(local_folder / "quarantine.parquet"),
    )
    # Same k, inertia within 1%, same segments (ARI >= 0.99) customer by customer.
    assert distributed["k"]["chosen"] == local["k"]["chosen"]
    assert distributed["inertia"] == pytest.approx(local["inertia"], rel=0.01)
    mine, theirs = _segments(dask_folder), _segments(local_folder)
    assert len(mine) == len(theirs) == local["rows"]["rows_kept"]
    assert mine["customer_id"].is_unique
    Segments.validate(mine)
    joined = theirs.merge(mine, on="customer_id", suffixes=("_local", "_dask"))
    assert len(joined) == len(theirs)
    ari = adjusted_rand_score(joined["segment_id_local"], joined["segment_id_dask"])
    assert ari >= 0.99, ari
    # One segments file per partition, every file checksummed in the manifest.
    manifest = json.loads((dask_folder / "manifest.json").read_text())
    assert sum(name.startswith("segments-") for name in manifest["files"]) == N_PARTS
    assert set(manifest["input"]["files"]) == {p.name for p in parts.iterdir()}
    # The inertia is the sum of squared distances over all customers (recomputed here).
    squared = (mine["distance_to_centroid"] ** 2).sum()
    assert distributed["inertia"] == pytest.approx(squared, rel=1e-9)

    # Quality gates hold on this path too: a breached gate fails the run, latest unchanged.
    gated = on_dask.model_copy(update={"gate_min_segment_share": 0.5})
    with prefect_api_for_workers(gated), pytest.raises(GateError, match="min_segment_share"):
        flow_for(gated)(gated)
    assert latest_run(tmp_path / "dask") == dask_folder
    # An in-memory run after a partitioned one into the same folder starts ids afresh.
    after = segment_customers(_settings(input=csv, output_dir=tmp_path / "dask"))
    assert after["rows"] == local["rows"] and after["changes"] is None


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_in_memory_flow_on_dask_fans_the_sweep_out_and_matches_local(customers, tmp_path):
    csv, _ = customers
    local = segment_customers(_settings(input=csv, output_dir=tmp_path / "local"))
    on_dask = _settings(input=csv, output_dir=tmp_path / "dask", runner="dask")
    with prefect_api_for_workers(on_dask):
        distributed = flow_for(on_dask)(on_dask)
    local_elbow = pd.read_parquet(latest_run(tmp_path / "local") / "elbow.parquet")
    dask_elbow = pd.read_parquet(latest_run(tmp_path / "dask") / "elbow.parquet")
    # The same seeded fits, run one k per Dask task instead of in threads: the same numbers.
    pd.testing.assert_frame_equal(dask_elbow, local_elbow)
    assert distributed["k"] == local["k"]
    assert distributed["settings"]["runner"] == "dask"
    mine = pd.read_parquet(latest_run(tmp_path / "dask") / "segments.parquet")
    theirs = pd.read_parquet(latest_run(tmp_path / "local") / "segments.parquet")
    assert (mine["segment_id"].to_numpy() == theirs["segment_id"].to_numpy()).all()


def test_cleaning_partitions_finds_duplicates_and_conflicts_across_files(tmp_path):
    header = "CustomerID,Gender,Age,Annual Income (k$),Spending Score (1-100)\n"
    files = {
        "a.parquet": ["1,Female,30,50,60", "2,Male,40,70,20", "3,Female,22,15,80"],
        "b.parquet": ["1,Female,30,50,60", "2,Male,41,70,20", "4,Male,abc,20,30"],
    }
    folder = tmp_path / "parts"
    folder.mkdir()
    for name, lines in files.items():
        text = tmp_path / f"{name}.csv"
        text.write_text(header + "\n".join(lines) + "\n")
        pd.read_csv(text, dtype=str).to_parquet(folder / name, index=False)
    with dask.config.set(scheduler="sync"):
        parts = partitioned.clean_partitions(partitioned.partition_files(folder), None, 0.9)
        customers = parts.customers.compute()

    # Rows are numbered as in the concatenated file: a.parquet rows 1-3, b.parquet rows 4-6.
    # Row 4 repeats row 1 exactly; id 2 has different values in rows 2 and 5; row 6 has age "abc".
    Quarantine.validate(parts.quarantine)
    reasons = dict(zip(parts.quarantine["source_row"], parts.quarantine["reason"], strict=True))
    assert set(reasons) == {2, 5, 6}
    assert (
        reasons[2] == reasons[5] == "customer_id='2': id appears in rows 2, 5 with different values"
    )
    assert reasons[6].startswith("age='abc'")
    assert sorted(customers["customer_id"]) == ["1", "3"]
    assert parts.accounting() == {
        "rows_read": 6,
        "rows_kept": 2,
        "rows_quarantined": 3,
        "duplicates_dropped": 1,
    }


def test_partitions_with_numbers_as_text_extra_columns_and_empty_files_clean_as_one_file(
    tmp_path,
):
    header = ["CustomerID", "Gender", "Age", "Annual Income (k$)", "Spending Score (1-100)"]
    rows = [
        ["1", "Female", "30", "50", "60"],
        ["2", "Male", "40", "70", "20"],
        ["3", "Female", "abc", "15", "80"],  # age not a number: this file stores ages as text
        ["4", "Male", "22", "20", "30"],
        ["2", "Male", "41", "70", "20"],  # conflicts with row 2, in another file
        ["5", "Female", "35", "", "44"],  # missing income
    ]
    folder = tmp_path / "parts"
    folder.mkdir()
    numbers = pd.DataFrame(rows[:2], columns=header).astype({h: "int64" for h in header[2:]})
    numbers.to_parquet(folder / "a.parquet", index=False)  # numeric columns stored as numbers
    pd.DataFrame(rows[2:4], columns=header).to_parquet(folder / "b.parquet", index=False)
    numbers.iloc[:0].to_parquet(folder / "c.parquet", index=False)  # a file with no rows
    extra = pd.DataFrame(rows[4:], columns=header).assign(notes=["vip", None])
    extra.to_parquet(folder / "d.parquet", index=False)  # an extra column

    whole = tmp_path / "whole.csv"
    whole.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    with dask.config.set(scheduler="sync"):
        parts = partitioned.clean_partitions(partitioned.partition_files(folder), None, 0.9)
    expected = clean_customers(read_customers(whole), max_quarantine_share=0.9)
    assert parts.accounting() == expected.accounting()
    pd.testing.assert_frame_equal(parts.quarantine, expected.quarantine)


def test_a_partition_file_that_is_not_parquet_is_bad_input_naming_it(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.parquet").write_bytes(b"")  # first in name order
    pd.DataFrame({"CustomerID": ["1"]}).to_parquet(folder / "b.parquet", index=False)
    with pytest.raises(InputError, match="not a readable Parquet file") as caught:
        partitioned.clean_partitions(partitioned.partition_files(folder), None, 0.2)
    assert caught.value.path == str(folder / "a.parquet")


def test_cleaning_partitions_equals_cleaning_the_concatenated_file(customers):
    csv, parts = customers
    with dask.config.set(scheduler="sync"):
        result = partitioned.clean_partitions(partitioned.partition_files(parts), None, 0.2)
        clean = result.customers.compute()
    whole = clean_customers(read_customers(csv))
    assert result.accounting() == whole.accounting()
    pd.testing.assert_frame_equal(result.quarantine, whole.quarantine)
    pd.testing.assert_frame_equal(
        clean.sort_values("customer_id", ignore_index=True),
        whole.customers.sort_values("customer_id", ignore_index=True),
    )


def test_nearest_centroid_labels_from_one_and_measures_the_distance():
    matrix = np.array([[0.0, 0.0], [10.0, 0.0], [9.0, 1.0]])
    centroids = np.array([[0.0, 1.0], [10.0, 1.0]])
    labels, distances = partitioned.nearest_centroid(matrix, centroids)
    assert labels.tolist() == [1, 2, 2]
    assert distances == pytest.approx([1.0, 1.0, 1.0])


def test_a_folder_is_partitioned_input_only_with_parquet_files_that_are_not_snapshots(tmp_path):
    assert not is_partitioned_input(tmp_path)  # empty
    (tmp_path / "customers_2026-11-26.parquet").write_bytes(b"")
    assert not is_partitioned_input(tmp_path)  # dated snapshots
    other = tmp_path / "parts"
    other.mkdir()
    (other / "part-0.parquet").write_bytes(b"")
    assert is_partitioned_input(other)
    assert not is_partitioned_input(other / "part-0.parquet")  # a file


def test_partitioned_folder_without_the_dask_runner_is_a_clear_bad_input(customers, capsys):
    _, parts = customers
    with pytest.raises(InputError, match="add --runner dask"):
        flow_for(SegmentationSettings(input=parts))
    assert cli.main(["run", "--input", str(parts), "--quiet"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(parts) in err and "--runner dask" in err


def test_dask_runner_binds_its_local_cluster_to_loopback():
    runner = dask_task_runner(SegmentationSettings(runner="dask"))
    assert runner.cluster_kwargs["host"] == "127.0.0.1"
    assert runner.cluster_kwargs["dashboard_address"] is None
    remote = dask_task_runner(
        SegmentationSettings(runner="dask", dask_address="tcp://10.0.0.5:8786")
    )
    assert remote.address == "tcp://10.0.0.5:8786"
