"""All writing of a run's files: a staging folder, atomic writes, the manifest last, then `latest`.

A run is built in ``<output>/runs/.<run-id>.partial/``. Each file is written to a temporary
name and renamed into place; the manifest (with every file's checksum) is written last; then
the folder is renamed to ``<output>/runs/<run-id>/`` and ``<output>/latest`` is switched to it.
A crash at any point leaves either no run folder or a ``.partial`` one that is never taken as
complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq
from matplotlib.figure import Figure

log = logging.getLogger(__name__)

RUNS = "runs"
LATEST = "latest"
MANIFEST = "manifest.json"
PARTIAL_SUFFIX = ".partial"


def start_run(output_dir: str | Path, run_id: str) -> Path:
    """Create and return the staging folder of a new run."""
    staging = Path(output_dir) / RUNS / f".{run_id}{PARTIAL_SUFFIX}"
    if (Path(output_dir) / RUNS / run_id).exists():
        raise FileExistsError(f"run {run_id} already exists in {output_dir}")
    latest = Path(output_dir) / LATEST
    if latest.exists() and not latest.is_symlink():  # found now, not after the run is published
        raise FileExistsError(f"{latest} is not a link to a run; move it away and re-run")
    staging.mkdir(parents=True, exist_ok=False)
    return staging


def write_table(
    frame: pd.DataFrame, path: Path, schema: type[pa.DataFrameModel] | None = None
) -> Path:
    """Validate ``frame`` against ``schema`` (if given), then write it as Parquet atomically."""
    if schema is not None:
        frame = schema.validate(frame)
    table = pa_arrow.Table.from_pandas(frame, preserve_index=False)
    return _atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def write_png(figure: Figure, path: Path, dpi: int = 100) -> Path:
    """Save a figure as PNG atomically."""
    return _atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi))


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


def file_checksums(folder: Path) -> dict[str, dict[str, int | str]]:
    """sha256 and size of every file in a run folder, by name."""
    return {
        path.name: {"sha256": sha256_of(path), "bytes": path.stat().st_size}
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.startswith(".")
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


def latest_run(output_dir: str | Path) -> Path | None:
    """The folder ``latest`` names, if it is a complete run (has a manifest)."""
    link = Path(output_dir) / LATEST
    if not link.exists():
        return None
    target = link.resolve()
    return target if (target / MANIFEST).is_file() else None
