"""All writing of a run's files: a staging folder, atomic writes, the manifest last, then `latest`.

A run is built in ``<output>/runs/.<run-id>.partial/``. Each file is written to a temporary
name and renamed into place; the manifest (with every file's checksum) is written last; then
the folder is renamed to ``<output>/runs/<run-id>/`` and ``<output>/latest`` is switched to it.
A crash at any point leaves either no run folder or a ``.partial`` one that is never taken as
complete.

**One run at a time.** ``start_run`` first takes the output folder's lock
(``tasks.store.runlock.RunLock``: a second run waits for it) and holds it until ``finish_run`` or
``abandon_run``. Only the holder stages anything, so whatever staging debris the holder finds
(``.partial`` folders, ``.latest.<run-id>.tmp`` links) was left by a crashed run, and
``start_run`` removes it. The kernel drops the lock when its process dies, SIGKILL included.

**Hostile or broken folders.** An output folder may be shared, and whoever can write in it can
plant links. No path of the store is followed through a symbolic link when it is written:
the lock is opened with ``O_NOFOLLOW``, ``runs`` and a run folder that are links (or not
folders) are refused, every temporary file is created anew (``O_EXCL | O_NOFOLLOW``) and
renamed over, and a staging folder holding anything but regular files is not published. A
failure to create or write (a read-only file system, a full disk) names the path. All of these
raise ``OutputError`` (the CLI's exit 3); ``latest`` is switched only after everything is
written, so it stays on the previous run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypedDict

import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from schemas.outputs import Elbow, Transitions, profiles_schema, quarantine_schema
from tasks.describe import Described
from tasks.errors import cannot_write
from tasks.model import model_to_json
from tasks.reporting.plots import figure_to_png
from tasks.store.paths import (
    LATEST,
    MANIFEST,
    RUNS,
    check_store_paths,
    not_regular,
    open_new_file,
    refused_link,
)
from tasks.store.runlock import RunLock
from tasks.table import ColumnPlan

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
# A run folder name: one path component, no separators, not "." or "..", not hidden.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_locks: dict[Path, RunLock] = {}  # staging folder -> the output folder's lock, held


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a plain folder name that stays inside ``<output>/runs/``."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or len(run_id) > 200:
        raise ValueError(
            f"run id {run_id!r} is not a plain folder name (letters, digits, '.', '_', '-'; "
            "starting with a letter or digit)"
        )
    return run_id


def start_run(output_dir: str | Path, run_id: str, *, timeout: float | None = None) -> Path:
    """Take the output folder's lock (waiting for a run in progress, at most ``timeout``
    seconds if given: TimeoutError), remove crashed runs' debris, and create and return the
    staging folder of a new run. The lock is held until ``finish_run`` or ``abandon_run``.
    A store path that is a link or of the wrong kind, or a folder that cannot be created,
    raises ``OutputError`` naming it."""
    check_run_id(run_id)
    output_dir = Path(output_dir)
    check_store_paths(output_dir)  # found now, not after the run is published
    lock = RunLock(output_dir)
    lock.acquire(run_id, timeout=timeout)
    try:
        runs = output_dir / RUNS
        check_store_paths(output_dir)  # again, now that no other run of ours changes them
        if (runs / run_id).is_symlink():
            raise refused_link(runs / run_id, "the run folder")
        if (runs / run_id).exists():
            raise FileExistsError(f"run {run_id} already exists in {output_dir}")
        staging = runs / f".{run_id}{PARTIAL_SUFFIX}"
        try:
            runs.mkdir(parents=True, exist_ok=True)
            remove_debris(output_dir)
            staging.mkdir()  # never follows a link: a link left there was removed as debris
        except OSError as error:
            raise cannot_write(staging, error) from error
    except BaseException:
        lock.release()
        raise
    _locks[staging] = lock
    return staging


def run_id_of(staging: Path) -> str:
    """The run id of a staging folder (``runs/.<run-id>.partial``)."""
    return staging.name.removeprefix(".").removesuffix(PARTIAL_SUFFIX)


def release_run(staging: Path) -> None:
    """Let the next run in: release the lock ``start_run`` took for ``staging`` (a no-op
    after ``finish_run`` or ``abandon_run``, which call it)."""
    lock = _locks.pop(staging, None)
    if lock is not None:
        lock.release()


def remove_debris(output_dir: str | Path) -> list[Path]:
    """Remove what crashed runs left in ``output_dir``: staging folders and half-switched
    ``latest`` links; return the removed paths. Only the holder of the output folder's lock
    may call it (``start_run`` does): then no other run is staging anything."""
    output_dir = Path(output_dir)
    removed: list[Path] = []
    for staging in sorted((output_dir / RUNS).glob(f".*{PARTIAL_SUFFIX}")):
        if staging.is_symlink() or not staging.is_dir():
            staging.unlink(missing_ok=True)  # the link itself, never what it points to
        else:
            shutil.rmtree(staging, ignore_errors=True)
        removed.append(staging)
    for link in sorted(output_dir.glob(f".{LATEST}.*.tmp")):
        link.unlink(missing_ok=True)
        removed.append(link)
    if removed:
        log.info("Removed debris of crashed runs: %s", ", ".join(p.name for p in removed))
    return removed


def write_table(
    frame: pd.DataFrame,
    path: Path,
    schema: type[pa.DataFrameModel] | pa.DataFrameSchema | None = None,
) -> Path:
    """Validate ``frame`` against ``schema`` (if given), then write it as Parquet atomically:
    zstd-compressed row groups of ``ROW_GROUP`` rows, converted to Arrow one group at a time
    (10M customers are never all copied into Arrow at once). Validation coerces ``frame`` in
    place rather than copying it."""
    if schema is not None:
        frame = schema.validate(frame, inplace=True)
    return _atomic_write(path, lambda handle: _write_parquet(frame, handle))


ROW_GROUP = 1_000_000


def _write_parquet(frame: pd.DataFrame, handle: BinaryIO) -> None:
    first = arrow.Table.from_pandas(frame.iloc[:ROW_GROUP], preserve_index=False)
    with pq.ParquetWriter(handle, first.schema, compression="zstd") as writer:
        writer.write_table(first)
        del first
        for start in range(ROW_GROUP, len(frame), ROW_GROUP):
            part = frame.iloc[start : start + ROW_GROUP]
            writer.write_table(
                arrow.Table.from_pandas(part, schema=writer.schema, preserve_index=False)
            )


def write_bytes(data: bytes, path: Path) -> Path:
    return _atomic_write(path, lambda handle: handle.write(data))


def write_text(text: str, path: Path) -> Path:
    return _atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json(data: dict, path: Path) -> Path:
    return write_text(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n", path)


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` through ``write(handle)`` into a new temporary file beside it, flush it
    to disk and rename it into place. An OS error (disk full, read-only) is an
    ``OutputError`` naming ``path``; the temporary file is removed whatever happens."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open_new_file(tmp) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # replaces a link at ``path`` itself, never its target
    except OSError as error:
        raise cannot_write(path, error) from error
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (best effort: not every OS allows it)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class FileRecord(TypedDict):
    """A file of a run folder in its manifest."""

    sha256: str
    bytes: int


def file_checksums(folder: Path, suffixes: tuple[str, ...] | None = None) -> dict[str, FileRecord]:
    """sha256 and size of every (non-hidden) file in a folder, by name; only those ending in
    one of ``suffixes`` if given."""
    return {
        path.name: {"sha256": sha256_of(path), "bytes": path.stat().st_size}
        for path in sorted(folder.iterdir())
        if path.is_file()
        and not path.name.startswith(".")
        and (suffixes is None or path.suffix.lower() in suffixes)
    }


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def finish_run(staging: Path, manifest: dict) -> Path:
    """Write the manifest (with checksums) last, publish the folder, point ``latest`` at it.
    A staging folder holding anything but regular files (a link planted by someone else) is
    not published: ``OutputError`` naming it."""
    check_only_regular_files(staging)
    manifest = {**manifest, "files": file_checksums(staging)}
    write_json(manifest, staging / MANIFEST)
    runs = staging.parent
    run_id = run_id_of(staging)
    final = runs / run_id
    try:
        os.replace(staging, final)
    except OSError as error:
        raise cannot_write(final, error) from error
    _fsync_dir(runs)
    try:
        _point_latest(runs.parent, final)
    except OSError as error:  # the run folder is there, but latest still names the previous one
        raise cannot_write(runs.parent / LATEST, error) from error
    release_run(staging)
    log.info("Run %s complete: %s", run_id, final)
    return final


def check_only_regular_files(staging: Path) -> None:
    """``OutputError`` naming the first entry of ``staging`` that is a link or not a regular
    file: a run writes only regular files there."""
    for entry in sorted(staging.iterdir()):
        if entry.is_symlink():
            raise refused_link(entry, "a file of the run being published")
        if not entry.is_file():
            raise not_regular(entry, "a file of the run being published")


def _point_latest(output_dir: Path, final: Path) -> None:
    """Atomically make ``<output>/latest`` a relative symlink to the finished run."""
    link = output_dir / LATEST
    tmp = output_dir / f".{LATEST}.{final.name}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(Path(RUNS) / final.name, tmp, target_is_directory=True)
    os.replace(tmp, link)
    _fsync_dir(output_dir)


def abandon_run(staging: Path) -> None:
    """Remove a staging folder after a failed run (best effort)."""
    shutil.rmtree(staging, ignore_errors=True)
    release_run(staging)


def latest_run(output_dir: str | Path) -> Path | None:
    """The folder ``latest`` names, if it is a complete run (has a manifest)."""
    link = Path(output_dir) / LATEST
    if not link.exists():
        return None
    target = link.resolve()
    return target if (target / MANIFEST).is_file() else None


def write_run_files(
    staging: Path,
    described: Described,
    elbow: pd.DataFrame,
    quarantine: pd.DataFrame,
    figures: dict[str, Figure],
    table: ColumnPlan,
) -> dict[str, bytes]:
    """The tables (each validated by its contract for ``table``'s columns), model and plots
    every run writes, whichever runner; the segments table(s) are written by the runner.
    Returns the plots' PNG bytes by file name (for report.html: each figure is rendered once)."""
    write_table(described.profiles, staging / "profiles.parquet", profiles_schema(table))
    write_table(elbow, staging / "elbow.parquet", Elbow)
    write_table(quarantine, staging / "quarantine.parquet", quarantine_schema(table))
    write_table(described.transitions, staging / "transitions.parquet", Transitions)
    write_text(model_to_json(described.model), staging / "model.json")
    images = {name: figure_to_png(figure) for name, figure in figures.items()}
    for name, png in images.items():
        write_bytes(png, staging / name)
    return images
