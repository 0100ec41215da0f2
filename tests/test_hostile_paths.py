"""Hostile or broken paths around a run (issue 21, items 1, 8, 10 and 11).

- A shared output folder where someone planted links: the run store never writes through one
  (a ``.lock`` linked to another file used to have that file truncated), and refuses store
  paths of the wrong kind, in one line (``OutputError``, exit 3).
- An output location that cannot work (a file, a read-only folder, a full disk): refused
  before Prefect starts, or, found while writing, one line naming the path, ``latest`` kept.
- ``segment assign`` on a full disk: yesterday's pair of files stays as it was.
- Pipes as ``--input``: refused in one line, never a silent hang or "is empty".
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from test_assign import fit_like_a_run

from flows.run_folder import staged_run
from segment.cli.main import EXIT_BAD_INPUT, EXIT_OK, main
from tasks.errors import NOT_A_REGULAR_FILE, InputError, OutputError
from tasks.sample_data import generate_customers, write_sample_csv
from tasks.scoring.assign import assign_file
from tasks.store.run_files import finish_run, latest_run, start_run, write_table, write_text
from tasks.store.snapshots import resolve_input

VICTIM_TEXT = "someone else's file\n"


@pytest.fixture
def victim(tmp_path) -> Path:
    """A file outside the output folder that the run must never touch."""
    path = tmp_path / "elsewhere" / "victim.txt"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    return path


def frame() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ["a", "b"], "x": [1.0, 2.0]})


def published(output: Path, run_id: str) -> Path:
    """A complete run ``run_id`` in ``output`` (a table and its manifest), ``latest`` on it."""
    staging = start_run(output, run_id)
    write_table(frame(), staging / "segments.parquet")
    return finish_run(staging, {"run_id": run_id})


# --- item 1: links and odd files planted in a shared output folder ----------------------------


def test_a_lock_planted_as_a_link_to_another_file_is_refused_and_that_file_kept(tmp_path, victim):
    output = tmp_path / "out"
    output.mkdir()
    (output / ".lock").symlink_to(victim)
    with pytest.raises(OutputError, match=r"out/\.lock: the output folder's lock is a symbolic"):
        start_run(output, "r1")
    assert victim.read_text() == VICTIM_TEXT  # was truncated to 0 bytes
    assert not (output / "runs").exists()


def test_a_lock_linked_to_a_missing_file_creates_nothing_there(tmp_path):
    output, target = tmp_path / "out", tmp_path / "elsewhere.txt"
    output.mkdir()
    (output / ".lock").symlink_to(target)
    with pytest.raises(OutputError, match="is a symbolic link"):
        start_run(output, "r1")
    assert not target.exists()


@pytest.mark.parametrize("kind", ["folder", "fifo", "hard-link"])
def test_a_lock_that_is_not_a_plain_regular_file_is_refused(tmp_path, victim, kind):
    output = tmp_path / "out"
    output.mkdir()
    lock = output / ".lock"
    if kind == "folder":
        lock.mkdir()
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        os.link(victim, lock)
    expected = "2 hard links" if kind == "hard-link" else "lock is not a regular file"
    with pytest.raises(OutputError, match=expected):
        start_run(output, "r1", timeout=1)
    assert victim.read_text() == VICTIM_TEXT


def test_a_runs_folder_or_run_folder_that_is_a_link_is_refused(tmp_path):
    output, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    output.mkdir()
    (output / "runs").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputError, match=r"out/runs: the runs folder is a symbolic link"):
        start_run(output, "r1")
    assert list(elsewhere.iterdir()) == []  # no staging folder built there
    (output / "runs").unlink()
    (output / "runs").mkdir()
    (output / "runs" / "r1").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputError, match=r"runs/r1: the run folder is a symbolic link"):
        start_run(output, "r1")


def test_a_staging_folder_planted_as_a_link_is_removed_not_followed(tmp_path):
    output, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (output / "runs").mkdir(parents=True)
    (output / "runs" / ".r1.partial").symlink_to(elsewhere, target_is_directory=True)
    staging = start_run(output, "r1")
    assert staging.is_dir() and not staging.is_symlink()
    assert (elsewhere / "keep.txt").read_text() == "keep"


def test_a_temporary_file_planted_as_a_link_is_replaced_not_written_through(tmp_path, victim):
    staging = start_run(tmp_path / "out", "r1")
    (staging / ".segments.parquet.tmp").symlink_to(victim)
    (staging / ".report.html.tmp").symlink_to(victim)
    write_table(frame(), staging / "segments.parquet")
    write_text("<html></html>", staging / "report.html")
    assert victim.read_text() == VICTIM_TEXT
    pd.testing.assert_frame_equal(pd.read_parquet(staging / "segments.parquet"), frame())


def test_a_run_with_a_link_planted_in_its_staging_folder_is_not_published(tmp_path, victim):
    output = tmp_path / "out"
    first = published(output, "r1")
    staging = start_run(output, "r2")
    write_table(frame(), staging / "segments.parquet")
    (staging / "model.json").symlink_to(victim)
    with pytest.raises(OutputError, match=r"\.r2\.partial/model\.json: a file of the run being"):
        finish_run(staging, {"run_id": "r2"})
    assert latest_run(output) == first.resolve()


# --- item 11: output locations that cannot work -----------------------------------------------


def _no_prefect(monkeypatch) -> None:
    """Fails the test if Prefect's server or the flow is started: the problem must be found
    before either."""
    import flows.runners

    def started(*args, **kwargs):
        raise AssertionError("Prefect was started before the problem was found")

    monkeypatch.setattr("segment.cli.main.start_early_server", started)
    monkeypatch.setattr("segment.cli.main.configure_prefect", started)
    monkeypatch.setattr(flows.runners, "flow_for", started)


def _plant(output: Path, what: str) -> Path:
    """A broken output location; returns the path the error must name."""
    if what == "output-is-a-file":
        output.write_text("not a folder")
        return output
    if what == "output-below-a-file":
        output.write_text("not a folder")
        return output / "sub"
    output.mkdir()
    if what == "lock-is-a-link":
        (output / ".lock").symlink_to(output.parent / "victim.txt")
        return output / ".lock"
    (output / "latest").mkdir()  # latest-is-a-folder
    return output / "latest"


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("output-is-a-file", "is not a folder; --output names the folder"),
        ("output-below-a-file", "cannot be created or written: Not a directory"),
        ("lock-is-a-link", "the output folder's lock is a symbolic link"),
        ("latest-is-a-folder", "is not a link to a run"),
    ],
)
def test_an_unusable_output_exits_3_in_one_line_before_prefect_starts(
    tmp_path, capsys, monkeypatch, customers_csv, what, message
):
    _no_prefect(monkeypatch)
    named = _plant(tmp_path / "out", what)
    output = named if what == "output-below-a-file" else tmp_path / "out"
    code = main(["run", "--input", str(customers_csv), "--output", str(output), "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert err == f"segment: error: {named}: {message}" + err.split(message, 1)[1]
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_read_only_output_exits_3_naming_it_before_prefect_starts(
    tmp_path, capsys, monkeypatch, customers_csv
):
    """Read-only is simulated (EROFS from the write check): this runs as root in CI, where
    permission bits do not stop writing, and mounting a read-only file system needs privileges
    the tests should not use."""
    import tempfile

    _no_prefect(monkeypatch)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    output = tmp_path / "out"
    code = main(["run", "--input", str(customers_csv), "--output", str(output), "--quiet"])
    assert code == EXIT_BAD_INPUT
    assert capsys.readouterr().err == (
        f"segment: error: {output}: cannot be created or written: Read-only file system\n"
    )


def _disk_full_on(columns: set[str], monkeypatch) -> None:
    """ENOSPC from the Parquet writer when it writes a table with ``columns`` (the segments
    table: customer_id and distance_to_centroid), as a disk that fills during the run."""
    import pyarrow.parquet as pq

    write = pq.ParquetWriter.write_table

    def full(writer, table, *args, **kwargs):
        if columns <= set(writer.schema.names):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(writer, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)


SEGMENTS_TABLE = {"customer_id", "distance_to_centroid"}


def test_a_full_disk_while_staging_names_the_file_and_keeps_latest(tmp_path, monkeypatch):
    output = tmp_path / "out"
    first = published(output, "r1")
    _disk_full_on(SEGMENTS_TABLE, monkeypatch)
    with pytest.raises(OutputError) as raised, staged_run(output, "r2", Path("in.csv")) as staging:
        write_table(frame(), staging / "profiles.parquet")
        write_table(frame().assign(distance_to_centroid=0.5), staging / "segments.parquet")
    assert str(raised.value) == (
        f"{staging / 'segments.parquet'}: cannot be written: No space left on device"
    )
    assert latest_run(output) == first.resolve()
    assert sorted(p.name for p in (output / "runs").iterdir()) == ["r1"]  # no .partial left
    published(output, "r3")  # the lock was released


@pytest.mark.flow
def test_segment_run_on_a_full_disk_exits_3_naming_the_file_and_keeps_latest(
    tmp_path, capsys, monkeypatch, customers_csv, prefect_server
):
    output = tmp_path / "out"
    args = ["run", "--input", str(customers_csv), "--output", str(output), "--k", "3", "--quiet"]
    assert main([*args, "--run-id", "first"]) == EXIT_OK
    capsys.readouterr()
    _disk_full_on(SEGMENTS_TABLE, monkeypatch)
    assert main([*args, "--run-id", "second"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err == (
        f"segment: error: {output}/runs/.second.partial/segments.parquet: cannot be written: "
        "No space left on device\n"
    )
    assert os.readlink(output / "latest") == "runs/first"
    assert sorted(p.name for p in (output / "runs").iterdir()) == ["first"]


# --- item 8: segment assign on a full disk ----------------------------------------------------


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A model fitted on 600 sample customers, and that file."""
    folder = tmp_path_factory.mktemp("small-model")
    source = folder / "customers.csv"
    write_sample_csv(generate_customers(n=600, seed=7), source)
    model, _ = fit_like_a_run(source, folder / "run", k=3)
    return model, source


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_failed_assign_leaves_yesterdays_pair_and_names_the_file(
    small_model, tmp_path, monkeypatch, capsys, suffix
):
    import pyarrow.csv as arrow_csv
    import pyarrow.parquet as pq

    model, source = small_model
    output = tmp_path / f"assigned{suffix}"
    quarantine = tmp_path / f"assigned.quarantine{suffix}"
    lines = source.read_text().splitlines(keepends=True)
    yesterdays_file = tmp_path / "yesterday" / "customers.csv"
    yesterdays_file.parent.mkdir()
    yesterdays_file.write_text("".join(lines[:300]))  # fewer customers, another quarantine
    assign_file(model, yesterdays_file, output)  # yesterday's pair
    yesterday = {p.name: p.read_bytes() for p in (output, quarantine)}
    writer = arrow_csv if suffix == ".csv" else pq
    name = "write_csv" if suffix == ".csv" else "write_table"
    write, calls = getattr(writer, name), []

    def second_call_fills_the_disk(table, where, *args, **kwargs):
        calls.append(where)
        if len(calls) == 2:  # the quarantine is written first, then the assigned customers
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(table, where, *args, **kwargs)

    monkeypatch.setattr(writer, name, second_call_fills_the_disk)
    code = main(["assign", "--model", str(model), "--input", str(source), "--output", str(output)])
    assert code == EXIT_BAD_INPUT
    assert capsys.readouterr().err == (
        f"segment: error: {output}: cannot be written: No space left on device\n"
    )
    assert {p.name: p.read_bytes() for p in (output, quarantine)} == yesterday
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*yesterday, "yesterday"])


# --- item 10: pipes as input ------------------------------------------------------------------


@contextmanager
def unblocked_after(fifo: Path, seconds: float = 3.0) -> Iterator[None]:
    """If something opens ``fifo`` to read and waits for a writer (the hang this guards
    against), open and close it for writing after ``seconds``: the test then fails on its
    assertions instead of hanging."""
    stop = threading.Event()

    def watch() -> None:
        if stop.wait(seconds):
            return
        while not stop.is_set():
            try:
                descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader (yet)
                time.sleep(0.05)
                continue
            os.close(descriptor)
            return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def pipe_holding(data: bytes) -> Iterator[Path]:
    """``/dev/fd/N`` of a pipe holding ``data`` (what a shell's ``<(cat file)`` passes)."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
        os.close(write_end)
        yield Path(f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "customers.csv"
    os.mkfifo(path)
    return path


def test_segment_run_refuses_a_fifo_with_no_writer_in_one_line_before_prefect_starts(
    fifo, tmp_path, capsys, monkeypatch
):
    _no_prefect(monkeypatch)
    with unblocked_after(fifo):
        code = main(["run", "--input", str(fifo), "--output", str(tmp_path / "out")])
    assert code == EXIT_BAD_INPUT
    assert capsys.readouterr().err == f"segment: error: {fifo}: {NOT_A_REGULAR_FILE}\n"


def test_segment_run_refuses_a_process_substitution_instead_of_calling_it_empty(
    customers_csv, tmp_path, capsys, monkeypatch
):
    _no_prefect(monkeypatch)
    with pipe_holding(customers_csv.read_bytes()[:30_000]) as pipe:
        code = main(["run", "--input", str(pipe), "--output", str(tmp_path / "out")])
    assert code == EXIT_BAD_INPUT
    assert capsys.readouterr().err == f"segment: error: {pipe}: {NOT_A_REGULAR_FILE}\n"


def test_segment_assign_refuses_pipes_in_one_line_and_writes_nothing(
    small_model, fifo, tmp_path, capsys
):
    model, source = small_model
    output = tmp_path / "assigned.parquet"
    base = ["assign", "--model", str(model), "--output", str(output), "--input"]
    with unblocked_after(fifo):
        assert main([*base, str(fifo)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == f"segment: error: {fifo}: {NOT_A_REGULAR_FILE}\n"
    with pipe_holding(source.read_bytes()[:30_000]) as pipe:
        assert main([*base, str(pipe)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == f"segment: error: {pipe}: {NOT_A_REGULAR_FILE}\n"
    assert not output.exists()


def test_a_flow_given_a_pipe_refuses_it_when_resolving_the_input(fifo):
    with unblocked_after(fifo), pytest.raises(InputError, match="is not a regular file"):
        resolve_input(fifo)
