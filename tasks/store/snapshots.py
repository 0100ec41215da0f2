"""Pick the customer file to segment: a file as given, or the newest dated snapshot in a folder.

A snapshot is a file named ``<anything>_YYYY-MM-DD.<ext>`` or ``YYYY-MM-DD.<ext>`` with ``<ext>``
one of ``csv``, ``parquet``, ``pq`` (any case), e.g. ``customers_2026-11-26.csv``. Other files,
hidden files (``.name``) and subfolders in the folder are ignored.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from pathlib import Path

import pyarrow as arrow
import pyarrow.parquet as pq

from tasks.errors import NOT_A_REGULAR_FILE, InputError

logger = logging.getLogger(__name__)

SNAPSHOT_PATTERN = re.compile(
    r"^(?:.*_)?(?P<day>\d{4}-\d{2}-\d{2})\.(?:csv|parquet|pq)$", re.IGNORECASE
)


def snapshot_date(path: str | Path) -> date | None:
    """Return the date in a snapshot file name, or None when the name is not a dated snapshot."""
    name = Path(path).name
    match = SNAPSHOT_PATTERN.match(name)
    if match is None or name.startswith("."):
        return None
    try:
        return date.fromisoformat(match["day"])
    except ValueError:  # e.g. 2026-13-45
        return None


# Why an as_of is refused for a single file (it would be ignored): the callers add where.
AS_OF_NEEDS_A_FOLDER = "as_of picks a dated snapshot from a folder of snapshots"


def resolve_input(path: str | Path, as_of: date | None = None) -> Path:
    """Return ``path`` if it is a file, else its newest snapshot on or before ``as_of`` (if set).

    An ``as_of`` with a single file is refused (InputError), not ignored, and so is a path
    that is neither a regular file nor a folder (a pipe)."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    if not path.is_dir():
        if not path.is_file():  # a pipe: it would hang, or be drained by a first read
            raise InputError(NOT_A_REGULAR_FILE, path=path)
        if as_of is not None:
            raise InputError(f"{AS_OF_NEEDS_A_FOLDER}, but this is a single file", path=path)
        return path
    by_day = _snapshots(path)
    eligible = [day for day in by_day if as_of is None or day <= as_of]
    if not eligible:
        raise InputError(_none_found(list(by_day), as_of), path=path)
    day = max(eligible)
    if len(by_day[day]) > 1:
        names = ", ".join(file.name for file in by_day[day])
        raise InputError(f"{len(by_day[day])} snapshots dated {day}: {names}; keep one", path=path)
    picked = by_day[day][0]
    limit = "" if as_of is None else f" on or before {as_of}"
    logger.info(
        "using snapshot %s: the newest%s of %d in %s", picked.name, limit, len(by_day), path
    )
    return picked


def _snapshots(folder: Path) -> dict[date, list[Path]]:
    """The dated snapshot files of ``folder`` by date, each date's files sorted by name."""
    by_day: dict[date, list[Path]] = {}
    for file in sorted(folder.iterdir()):
        day = snapshot_date(file)
        if day is not None and file.is_file():
            by_day.setdefault(day, []).append(file)
    return by_day


def _none_found(days: list[date], as_of: date | None) -> str:
    """Say why no snapshot qualifies: none at all, or none on or before ``as_of``."""
    if not days:
        where = "" if as_of is None else f" (as_of {as_of})"
        return (
            f"no dated snapshot file (<name>_YYYY-MM-DD.csv, .parquet or .pq) in the folder{where}"
        )
    found = f"{len(days)} snapshot date(s) found, from {min(days)} to {max(days)}"
    return f"no snapshot on or before as_of {as_of}; {found}"


PARTITIONED_NEEDS_DASK = (
    "a folder of Parquet partition files is segmented on Dask: add --runner dask"
)


def is_partitioned_input(path: Path) -> bool:
    """A folder of Parquet files none of which is a dated snapshot (``*_YYYY-MM-DD.parquet``):
    the partitioned input of the Dask runner."""
    if not path.is_dir():
        return False
    files = list(parquet_files(path))
    return bool(files) and all(snapshot_date(f) is None for f in files)


def parquet_files(folder: Path):
    """The Parquet files of a folder (hidden ones left out), in no particular order."""
    return (
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in (".parquet", ".pq") and not p.name.startswith(".")
    )


def partition_files(folder: Path) -> tuple[Path, ...]:
    """The folder's Parquet files in name order; an error naming the folder if there are none."""
    files = tuple(sorted(parquet_files(folder)))
    if not files:
        raise InputError("no Parquet files (*.parquet) in the folder", path=folder)
    return files


def first_data_file(files: tuple[Path, ...]) -> Path:
    """The first file with data rows: the one whose header and first rows resolve the columns
    (writers such as Spark and Dask leave empty files)."""
    for path in files:
        if row_count(path):
            return path
    raise InputError("every Parquet file in the folder has no data rows", path=files[0].parent)


def row_count(path: Path) -> int:
    """Rows in a Parquet file, from its footer; a file that is not Parquet is bad input."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (arrow.ArrowException, OSError) as error:
        raise InputError(f"not a readable Parquet file: {error}", path=path) from error
