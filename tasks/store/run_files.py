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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import TypedDict

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from schemas.outputs import Elbow, Transitions
from tasks.describe import Described
from tasks.model import model_to_json
from tasks.reporting.plots import figure_to_png
from tasks.store.runlock import RunLock

log = logging.getLogger(__name__)

RUNS = "runs"
LATEST = "latest"
MANIFEST = "manifest.json"
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
    staging folder of a new run. The lock is held until ``finish_run`` or ``abandon_run``."""
    check_run_id(run_id)
    output_dir = Path(output_dir)
    latest = output_dir / LATEST
    if latest.exists() and not latest.is_symlink():  # found now, not after the run is published
        raise FileExistsError(f"{latest} is not a link to a run; move it away and re-run")
    lock = RunLock(output_dir)
    lock.acquire(run_id, timeout=timeout)
    try:
        runs = output_dir / RUNS
        if (runs / run_id).exists():
            raise FileExistsError(f"run {run_id} already exists in {output_dir}")
        runs.mkdir(parents=True, exist_ok=True)
        remove_debris(output_dir)
        staging = runs / f".{run_id}{PARTIAL_SUFFIX}"
        staging.mkdir()
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
    return _atomic_write(path, lambda tmp: _write_parquet(frame, tmp))


ROW_GROUP = 1_000_000


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    first = pa_arrow.Table.from_pandas(frame.iloc[:ROW_GROUP], preserve_index=False)
    with pq.ParquetWriter(path, first.schema, compression="zstd") as writer:
        writer.write_table(first)
        del first
        for start in range(ROW_GROUP, len(frame), ROW_GROUP):
            part = frame.iloc[start : start + ROW_GROUP]
            writer.write_table(
                pa_arrow.Table.from_pandas(part, schema=writer.schema, preserve_index=False)
            )


def write_bytes(data: bytes, path: Path) -> Path:
    return _atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(text: str, path: Path) -> Path:
    return _atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(data: dict, path: Path) -> Path:
    return write_text(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n", path)


def _atomic_write(path: Path, write) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
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
    """Write the manifest (with checksums) last, publish the folder, point ``latest`` at it."""
    manifest = {**manifest, "files": file_checksums(staging)}
    write_json(manifest, staging / MANIFEST)
    runs = staging.parent
    run_id = run_id_of(staging)
    final = runs / run_id
    os.replace(staging, final)
    _fsync_dir(runs)
    _point_latest(runs.parent, final)
    release_run(staging)
    log.info("Run %s complete: %s", run_id, final)
    return final


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
) -> dict[str, bytes]:
    """The tables (profiles and quarantine validated when built), model and plots every run
    writes, whichever runner; the segments table(s) are written by the runner. Returns the
    plots' PNG bytes by file name (for report.html: each figure is rendered once)."""
    write_table(described.profiles, staging / "profiles.parquet")
    write_table(elbow, staging / "elbow.parquet", Elbow)
    write_table(quarantine, staging / "quarantine.parquet")
    write_table(described.transitions, staging / "transitions.parquet", Transitions)
    write_text(model_to_json(described.model), staging / "model.json")
    images = {name: figure_to_png(figure) for name, figure in figures.items()}
    for name, png in images.items():
        write_bytes(png, staging / name)
    return images
