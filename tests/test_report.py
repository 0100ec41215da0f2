"""Tests for tasks.store.run_files (run folders, atomic writes), tasks.store.manifest and
tasks.reporting.artifacts."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal

import numpy as np
import pandas as pd
import pandera.errors
import pyarrow.parquet as pq
import pytest
from matplotlib.figure import Figure

from schemas.outputs import Elbow
from tasks.errors import OutputError
from tasks.reporting.plots import figure_to_png
from tasks.store.run_files import (
    _atomic_write,
    abandon_run,
    finish_run,
    latest_run,
    start_run,
    write_bytes,
    write_table,
    write_text,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def elbow_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "k": [1, 2, 3],
            "inertia": [10.0, 4.0, 2.0],
            "silhouette": [np.nan, 0.6, 0.5],
            "calinski_harabasz": [np.nan, 12.0, 9.0],
            "davies_bouldin": [np.nan, 0.4, 0.5],
            "min_share": [1.0, 0.5, 0.25],
        }
    )


def tiny_figure() -> Figure:
    figure = Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    return figure


def all_names(folder) -> set[str]:
    return {path.name for path in folder.iterdir()}


# --- staging and writing ----------------------------------------------------------------------


def test_start_run_creates_a_hidden_partial_staging_folder(tmp_path):
    staging = start_run(tmp_path, "r1")
    assert staging == tmp_path / "runs" / ".r1.partial"
    assert staging.is_dir()
    assert not (tmp_path / "runs" / "r1").exists()


def test_start_run_for_an_existing_run_id_raises(tmp_path):
    finish_run(start_run(tmp_path, "r1"), {"run_id": "r1"})
    with pytest.raises(FileExistsError, match="run r1 already exists"):
        start_run(tmp_path, "r1")


def test_write_table_writes_parquet_that_reads_back_equal(tmp_path):
    staging = start_run(tmp_path, "r1")
    frame = elbow_frame()
    path = write_table(frame, staging / "elbow.parquet", Elbow)
    assert path == staging / "elbow.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
    assert pq.read_table(path).column_names == list(frame.columns)


def test_write_table_round_trips_text_columns(tmp_path):
    frame = pd.DataFrame({"id": pd.Series(["0001", None, "x"], dtype="str"), "n": [1, 2, 3]})
    path = write_table(frame, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


def test_write_table_schema_violation_raises_and_leaves_no_file(tmp_path):
    staging = start_run(tmp_path, "r1")
    bad = elbow_frame().assign(k=[1, 1, 2])  # k must be unique
    with pytest.raises(pandera.errors.SchemaError):
        write_table(bad, staging / "elbow.parquet", Elbow)
    assert all_names(staging) == set()


def test_a_rendered_figure_is_written_as_a_png_file(tmp_path):
    path = write_bytes(figure_to_png(tiny_figure()), tmp_path / "plot.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_writes_leave_no_temporary_files(tmp_path):
    staging = start_run(tmp_path, "r1")
    write_table(elbow_frame(), staging / "elbow.parquet", Elbow)
    write_bytes(figure_to_png(tiny_figure()), staging / "elbow.png")
    write_text("hello\n", staging / "notes.txt")
    assert all_names(staging) == {"elbow.parquet", "elbow.png", "notes.txt"}


# --- finishing a run --------------------------------------------------------------------------


def test_finish_run_writes_manifest_with_checksums_of_every_other_file(tmp_path):
    staging = start_run(tmp_path, "r1")
    write_table(elbow_frame(), staging / "elbow.parquet", Elbow)
    write_bytes(figure_to_png(tiny_figure()), staging / "elbow.png")
    write_text("hello\n", staging / "notes.txt")
    final = finish_run(staging, {"run_id": "r1", "status": "complete"})

    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["run_id"] == "r1"
    assert manifest["status"] == "complete"
    others = sorted(all_names(final) - {"manifest.json"})
    assert sorted(manifest["files"]) == others == ["elbow.parquet", "elbow.png", "notes.txt"]
    for name in others:
        data = (final / name).read_bytes()
        assert manifest["files"][name] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
    # written last: no other file is newer than the manifest
    manifest_time = (final / "manifest.json").stat().st_mtime_ns
    assert all((final / name).stat().st_mtime_ns <= manifest_time for name in others)
    assert not any(name.endswith(".tmp") for name in all_names(final))


def test_finish_run_publishes_the_folder_and_points_latest_at_it(tmp_path):
    staging = start_run(tmp_path, "r1")
    write_text("x\n", staging / "a.txt")
    final = finish_run(staging, {"run_id": "r1"})
    assert final == tmp_path / "runs" / "r1"
    assert not staging.exists()
    assert (tmp_path / "latest").resolve() == final.resolve()
    assert os.readlink(tmp_path / "latest") == os.path.join("runs", "r1")  # relative link
    assert latest_run(tmp_path) == final.resolve()
    assert not any(name.endswith(".tmp") for name in all_names(tmp_path))


def test_second_finished_run_moves_latest(tmp_path):
    first = finish_run(start_run(tmp_path, "r1"), {"run_id": "r1"})
    second = finish_run(start_run(tmp_path, "r2"), {"run_id": "r2"})
    assert latest_run(tmp_path) == second.resolve()
    assert (first / "manifest.json").is_file()  # the older run stays as it was
    assert all_names(tmp_path / "runs") == {"r1", "r2"}


def test_latest_run_ignores_a_folder_without_manifest(tmp_path):
    incomplete = tmp_path / "runs" / "broken"
    incomplete.mkdir(parents=True)
    (incomplete / "segments.parquet").write_bytes(b"not finished")
    os.symlink(os.path.join("runs", "broken"), tmp_path / "latest")
    assert latest_run(tmp_path) is None


def test_latest_run_is_none_before_any_run(tmp_path):
    assert latest_run(tmp_path) is None


def test_abandon_run_removes_the_staging_folder(tmp_path):
    staging = start_run(tmp_path, "r1")
    write_text("x\n", staging / "a.txt")
    abandon_run(staging)
    assert not staging.exists()
    assert latest_run(tmp_path) is None
    assert all_names(tmp_path / "runs") == set()


# --- tasks.store.manifest -----------------------------------------------------------------


def test_start_run_refuses_a_latest_that_is_not_a_link(tmp_path):
    # caught before any work, not after the run folder has been published
    (tmp_path / "latest").mkdir()
    with pytest.raises(OutputError, match="latest: is not a link to a run"):
        start_run(tmp_path, "r1")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_failed_write_leaves_no_temporary_file_and_names_the_path(tmp_path):
    def explode(handle):
        handle.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "table.parquet"
    with pytest.raises(OutputError, match=f"^{target}: cannot be written: No space left"):
        _atomic_write(target, explode)
    assert list(tmp_path.iterdir()) == []


# --- crashed runs' debris, run ids, published files -------------------------------------------


def _run_in_child(output, run_id: str, *, stay_alive: bool):
    """Fork a process that starts run ``run_id`` and writes a file, then dies (SIGKILL, no
    cleanup) or, with ``stay_alive``, waits until the returned pipe is closed."""
    ready_read, ready_write = os.pipe()
    hold_read, hold_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(ready_read)
            os.close(hold_write)
            staging = start_run(output, run_id)
            (staging / "segments.parquet").write_bytes(b"half-written")
            os.write(ready_write, b"x")
            if stay_alive:
                os.read(hold_read, 1)  # until the parent closes its end
                os._exit(0)
            os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)
    os.close(ready_write)
    os.close(hold_read)
    assert os.read(ready_read, 1) == b"x", "child did not start its run"
    os.close(ready_read)
    if not stay_alive:
        os.waitpid(pid, 0)
    return pid, hold_write


@pytest.mark.process
def test_start_run_removes_the_debris_of_a_killed_run(tmp_path):
    _run_in_child(tmp_path, "killed", stay_alive=False)
    runs = tmp_path / "runs"
    assert all_names(runs) == {".killed.partial"}  # what a SIGKILL leaves
    os.symlink(os.path.join("runs", "killed"), tmp_path / ".latest.killed.tmp")  # mid-switch
    assert latest_run(tmp_path) is None  # debris is never taken as a run

    staging = start_run(tmp_path, "next")
    assert all_names(runs) == {".next.partial"}
    assert ".latest.killed.tmp" not in all_names(tmp_path)
    finish_run(staging, {"run_id": "next"})
    assert all_names(runs) == {"next"}


@pytest.mark.process
def test_a_run_waits_for_a_run_in_progress_and_leaves_its_folder_alone(tmp_path):
    pid, hold = _run_in_child(tmp_path, "alive", stay_alive=True)
    try:
        with pytest.raises(TimeoutError, match="still locked by run alive"):
            start_run(tmp_path, "other", timeout=0.3)
        assert all_names(tmp_path / "runs") == {".alive.partial"}
        assert (tmp_path / "runs" / ".alive.partial" / "segments.parquet").is_file()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(hold)
    finish_run(start_run(tmp_path, "other"), {"run_id": "other"})  # its lock died with it
    assert all_names(tmp_path / "runs") == {"other"}


def test_the_same_run_id_cannot_be_built_twice(tmp_path):
    staging = start_run(tmp_path, "r1")
    with pytest.raises(TimeoutError):  # the first one holds the folder's lock
        start_run(tmp_path, "r1", timeout=0.2)
    assert staging.is_dir()  # the first one's folder is untouched
    finish_run(staging, {"run_id": "r1"})
    with pytest.raises(FileExistsError, match="already exists"):
        start_run(tmp_path, "r1")
    assert all_names(tmp_path / "runs") == {"r1"}
    finish_run(start_run(tmp_path, "r2"), {"run_id": "r2"})  # the refusal released the lock


def test_abandoning_a_run_removes_its_folder_and_lets_the_next_run_in(tmp_path):
    staging = start_run(tmp_path, "r1")
    abandon_run(staging)
    assert not staging.exists()
    finish_run(start_run(tmp_path, "r2", timeout=0.2), {"run_id": "r2"})
    assert all_names(tmp_path / "runs") == {"r2"}


@pytest.mark.parametrize("run_id", ["../x", "..", ".", "/tmp/x", "a/b", "a\\b", ".hidden", ""])
def test_start_run_refuses_a_run_id_that_is_not_a_plain_folder_name(tmp_path, run_id):
    with pytest.raises(ValueError, match="not a plain folder name"):
        start_run(tmp_path / "out", run_id)
    assert list(tmp_path.iterdir()) == []  # refused before anything is created


def test_write_table_writes_compressed_row_groups_that_read_back_whole(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from tasks.store import run_files as report

    monkeypatch.setattr(report, "ROW_GROUP", 4)
    frame = pd.DataFrame(
        {
            "customer_id": [f"{i:04d}" for i in range(10)],
            "segment_name": pd.Categorical(list("abcabcabca")),
            "distance": [float(i) / 3 for i in range(10)],
        }
    )
    path = report.write_table(frame, tmp_path / "t.parquet")
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_row_groups == 3  # 4 + 4 + 2 rows
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
