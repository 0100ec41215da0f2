"""The run store's own paths in an output folder, and the checks that they are safe to write.

An output folder may be shared, and whoever can write in it can plant links there: a ``.lock``
linked to someone's file would have that file truncated, a ``runs`` linked elsewhere would
have the runs (and the removal of crashed runs' debris) happen there. So none of the store's
paths is written through a symbolic link, and each must be the kind of file it is meant to be;
anything else is refused with an ``OutputError`` naming it (the CLI's exit 3), before the
run starts where possible and again when the path is used. The output folder itself may be a
link (a user's choice of where the runs go).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from tasks.errors import OutputError

RUNS = "runs"
LATEST = "latest"  # <output>/latest -> the newest complete run
MANIFEST = "manifest.json"
LOCK_NAME = ".lock"


def check_output_folder(output_dir: str | Path) -> Path:
    """Check, before a run starts, that ``output_dir`` is a folder (created if missing) this
    process can write in, and that the store's own paths in it are what they must be
    (``check_store_paths``). Raises ``OutputError`` naming the path; returns ``output_dir``."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(
            "is not a folder; --output names the folder the runs are written to", path=output_dir
        )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=".write-check-", dir=output_dir)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(
            f"cannot be created or written: {error.strerror or error}", path=output_dir
        ) from error
    check_store_paths(output_dir)
    return output_dir


def check_store_paths(output_dir: Path) -> None:
    """Refuse (``OutputError``) a ``.lock`` that is a link or not a regular file, a ``runs``
    that is a link or not a folder, and a ``latest`` that is not a link."""
    lock, runs, latest = output_dir / LOCK_NAME, output_dir / RUNS, output_dir / LATEST
    if lock.is_symlink():
        raise refused_link(lock, "the output folder's lock")
    if os.path.lexists(lock) and not stat.S_ISREG(lock.lstat().st_mode):
        raise not_regular(lock, "the output folder's lock")
    if runs.is_symlink():
        raise refused_link(runs, "the runs folder")
    if os.path.lexists(runs) and not runs.is_dir():
        raise not_regular(runs, "the runs folder", "a folder")
    if os.path.lexists(latest) and not latest.is_symlink():
        raise OutputError("is not a link to a run; move it away and re-run", path=latest)


def refused_link(path: Path, what: str) -> OutputError:
    """The error for a path of the run store that is a symbolic link."""
    return OutputError(
        f"{what} is a symbolic link, which the run store never writes through; remove it and "
        "re-run",
        path=path,
    )


def not_regular(path: Path, what: str, expected: str = "a regular file") -> OutputError:
    """The error for a path of the run store that is not the kind of file it must be."""
    return OutputError(f"{what} is not {expected}; remove it or choose another --output", path=path)


def open_new_file(path: Path) -> BinaryIO:
    """Open ``path`` for writing as a file this call creates: whatever is already there (a
    file, or a link planted to have its target overwritten) is removed first, never written
    through (``O_EXCL | O_NOFOLLOW``)."""
    path.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o644), "wb")
