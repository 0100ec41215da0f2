"""All writing of a run's files: a staging folder, atomic writes, the manifest last, then `latest`.

A run is built in ``<output>/runs/.<run-id>.partial/``. Each file is written to a temporary
name and renamed into place; the manifest (with every file's checksum) is written last; then
the folder is renamed to ``<output>/runs/<run-id>/`` and ``<output>/latest`` is switched to it.
A crash at any point leaves either no run folder or a ``.partial`` one that is never taken as
complete.

**Debris.** While a process builds a run it holds an exclusive ``flock`` on
``<output>/runs/.<run-id>.owner`` (taken before the staging folder exists, dropped after the
run is published or abandoned; the kernel drops it when the process dies, SIGKILL included).
``start_run`` first removes what crashed runs left behind: each ``.partial`` folder, ``.owner``
file and ``.latest.<run-id>.tmp`` link whose owner lock it can take, i.e. whose process is gone.
A run still in progress holds its lock, so its folder is never touched. A ``.partial`` folder
with no ``.owner`` file (left by an older version) is ignored with a warning.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from schemas.outputs import Elbow, Transitions
from tasks.describe import Described
from tasks.model import model_to_json
from tasks.plots import figure_to_png
from tasks.runlock import try_lock

log = logging.getLogger(__name__)

RUNS = "runs"
LATEST = "latest"
MANIFEST = "manifest.json"
PARTIAL_SUFFIX = ".partial"
OWNER_SUFFIX = ".owner"
# A run folder name: one path component, no separators, not "." or "..", not hidden.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_owners: dict[Path, int] = {}  # staging folder -> open descriptor holding its owner lock


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a plain folder name that stays inside ``<output>/runs/``."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or len(run_id) > 200:
        raise ValueError(
            f"run id {run_id!r} is not a plain folder name (letters, digits, '.', '_', '-'; "
            "starting with a letter or digit)"
        )
    return run_id


def start_run(output_dir: str | Path, run_id: str) -> Path:
    """Create and return the staging folder of a new run (after removing crashed runs' debris)."""
    check_run_id(run_id)
    runs = Path(output_dir) / RUNS
    staging = runs / f".{run_id}{PARTIAL_SUFFIX}"
    if (runs / run_id).exists():
        raise FileExistsError(f"run {run_id} already exists in {output_dir}")
    latest = Path(output_dir) / LATEST
    if latest.exists() and not latest.is_symlink():  # found now, not after the run is published
        raise FileExistsError(f"{latest} is not a link to a run; move it away and re-run")
    runs.mkdir(parents=True, exist_ok=True)
    remove_debris(output_dir)
    owner, descriptor = _claim_owner(runs, run_id)
    try:
        staging.mkdir(exist_ok=False)
    except BaseException:
        _drop_owner(owner, descriptor)
        raise
    _owners[staging] = descriptor
    return staging


def _claim_owner(runs: Path, run_id: str) -> tuple[Path, int]:
    """Create ``runs/.<run-id>.owner`` already locked; return it and its open descriptor.

    The file is made and locked under a private name, then hard-linked into place, so a
    ``remove_debris`` running at the same moment never sees an owner file that is not locked.
    """
    owner = _owner_path(runs, run_id)
    claim = runs / f".{run_id}{OWNER_SUFFIX}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    descriptor = os.open(claim, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)  # not inheritable
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: free
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        try:
            os.link(claim, owner)
        except FileExistsError:
            raise FileExistsError(f"run {run_id} is being built by another process") from None
    except BaseException:
        os.close(descriptor)
        raise
    finally:
        claim.unlink(missing_ok=True)
    return owner, descriptor


def _owner_path(runs: Path, run_id: str) -> Path:
    return runs / f".{run_id}{OWNER_SUFFIX}"


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(descriptor), os.stat(path))
    except FileNotFoundError:
        return False


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop_owner(owner: Path, descriptor: int) -> None:
    """Remove the owner file, then release its lock (in that order: see ``remove_debris``)."""
    try:
        owner.unlink(missing_ok=True)
    finally:
        os.close(descriptor)


def run_id_of(staging: Path) -> str:
    """The run id of a staging folder (``runs/.<run-id>.partial``)."""
    return staging.name.removeprefix(".").removesuffix(PARTIAL_SUFFIX)


def _release_owner(staging: Path) -> None:
    descriptor = _owners.pop(staging, None)
    if descriptor is not None:
        _drop_owner(_owner_path(staging.parent, run_id_of(staging)), descriptor)


def remove_debris(output_dir: str | Path) -> list[Path]:
    """Remove what crashed runs left in ``output_dir``; return the removed paths.

    Only debris whose owner process is gone is removed: its ``.owner`` lock can be taken.
    """
    output_dir = Path(output_dir)
    runs = output_dir / RUNS
    removed: list[Path] = []
    if not runs.is_dir():
        return removed
    for owner in sorted(runs.glob(f".*{OWNER_SUFFIX}")):
        run_id = owner.name.removeprefix(".").removesuffix(OWNER_SUFFIX)
        try:
            descriptor = os.open(owner, os.O_RDWR)
        except FileNotFoundError:  # its run just finished
            continue
        try:
            if not try_lock(descriptor) or not _same_file(descriptor, owner):
                continue  # a run in progress, or its file was just replaced
            staging = runs / f".{run_id}{PARTIAL_SUFFIX}"
            if staging.exists():
                shutil.rmtree(staging)
                removed.append(staging)
            link = output_dir / f".{LATEST}.{run_id}.tmp"
            if link.is_symlink():
                link.unlink(missing_ok=True)
                removed.append(link)
            owner.unlink(missing_ok=True)  # last: a half-done removal is retried next time
            removed.append(owner)
        finally:
            os.close(descriptor)
    for claim in runs.glob(f".*{OWNER_SUFFIX}.*-*.tmp"):  # killed inside _claim_owner
        pid = claim.name.removesuffix(".tmp").rpartition(".")[2].partition("-")[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            claim.unlink(missing_ok=True)
            removed.append(claim)
    for link in output_dir.glob(f".{LATEST}.*.tmp"):
        run_id = link.name.removeprefix(f".{LATEST}.").removesuffix(".tmp")
        if link.is_symlink() and not _owner_path(runs, run_id).exists():
            link.unlink(missing_ok=True)  # its run is published or its debris removed above
            removed.append(link)
    for staging in runs.glob(f".*{PARTIAL_SUFFIX}"):
        run_id = staging.name.removeprefix(".").removesuffix(PARTIAL_SUFFIX)
        if staging.is_dir() and not _owner_path(runs, run_id).exists():
            log.warning("Ignoring %s: an unfinished run without an owner file", staging)
    if removed:
        log.info("Removed debris of crashed runs: %s", ", ".join(p.name for p in removed))
    return removed


def write_table(
    frame: pd.DataFrame, path: Path, schema: type[pa.DataFrameModel] | None = None
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


def file_checksums(
    folder: Path, suffixes: tuple[str, ...] | None = None
) -> dict[str, dict[str, int | str]]:
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
    run_id = staging.name.removeprefix(".").removesuffix(PARTIAL_SUFFIX)
    final = runs / run_id
    os.replace(staging, final)
    _fsync_dir(runs)
    _point_latest(runs.parent, final)
    _release_owner(staging)
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
    _release_owner(staging)


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
