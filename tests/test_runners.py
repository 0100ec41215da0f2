"""Tests for flows.runners: which flow and task runner a run's settings choose."""

from __future__ import annotations

import pytest

from flows.runners import dask_task_runner
from segment.cli import main as cli
from segment.plan import plan_run
from segment.settings import SegmentationSettings
from tasks.errors import InputError
from tasks.sample_data import generate_customers


@pytest.fixture
def parts(tmp_path):
    """A folder of two Parquet partitions of sample customers."""
    raw = generate_customers(200, seed=3).frame.astype(str)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, rows in enumerate((raw.iloc[:100], raw.iloc[100:])):
        rows.to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder


def test_partitioned_folder_without_the_dask_runner_is_a_clear_bad_input(parts, capsys):
    with pytest.raises(InputError, match="add --runner dask"):
        plan_run(SegmentationSettings(input=parts))
    assert cli.main(["run", "--input", str(parts), "--quiet"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(parts) in err and "--runner dask" in err


def test_dask_runner_binds_its_local_cluster_to_loopback():
    """--runner dask without an address starts a LocalCluster: scheduler and workers on the
    loopback interface, and no dashboard (whose default would listen on every interface)."""
    runner = dask_task_runner(SegmentationSettings(runner="dask"))
    assert runner.cluster_kwargs["host"] == "127.0.0.1"
    assert runner.cluster_kwargs["dashboard_address"] is None
    remote = dask_task_runner(
        SegmentationSettings(runner="dask", dask={"address": "tcp://10.0.0.5:8786"})
    )
    assert remote.address == "tcp://10.0.0.5:8786"
