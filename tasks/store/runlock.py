"""One run at a time per output folder, from loading the previous run until publishing.

Every run matches its segments to the previous complete run (the one ``<output>/latest`` names)
and continues that run's id registry. Two runs that overlap (a nightly run still going when
the next starts, or several ``segment run`` at once) would both load the same previous run and
publish histories that contradict each other (the same new id for different segments, a
segment retired by one and kept by the other). So a run holds an exclusive lock on
``<output>/.lock`` (``fcntl.flock``, Linux/POSIX) from loading the previous run until its own
run is published or abandoned; a second run waits, logging that it waits and for whom, and
then loads the run the first one published.

The kernel releases the lock when its holder exits, however it exits (SIGKILL included), so a
crashed run never leaves the folder locked. The file itself stays (it is not debris); it holds
the current holder's pid and run id, for the waiting run's log line.

The lock file is opened without following a symbolic link (``O_NOFOLLOW``) and must be a
regular file with no other hard link: in a shared output folder, a ``.lock`` planted as a link
to someone's file would otherwise have that file truncated. Such a lock is refused
(``OutputError`` naming it), never written.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
import time
from pathlib import Path

from tasks.errors import OutputError, cannot_write
from tasks.store.paths import LOCK_NAME, not_regular, refused_link

log = logging.getLogger(__name__)


class RunLock:
    """The exclusive lock of an output folder. Not re-entrant: one ``acquire`` per ``release``.

    Two ``RunLock`` objects on the same folder exclude each other even in one process (each
    opens the file anew, and ``flock`` locks belong to the open file).
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, run_id: str, *, timeout: float | None = None, poll: float = 0.1) -> None:
        """Take the lock, waiting for the run that holds it (forever unless ``timeout``).

        Raises ``TimeoutError`` when ``timeout`` seconds pass without getting it.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        fd = open_lock_file(self.path)
        try:
            if not try_lock(fd):
                started = time.monotonic()
                log.info(
                    "Run %s waits: %s is locked by %s; it continues when that run has "
                    "published (or failed)",
                    run_id,
                    self.path.parent,
                    _describe_holder(fd),
                )
                if timeout is None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                else:
                    while not try_lock(fd):
                        if time.monotonic() - started > timeout:
                            raise TimeoutError(
                                f"{self.path} still locked by {_describe_holder(fd)} "
                                f"after {timeout:g} s"
                            )
                        time.sleep(poll)
                log.info(
                    "Run %s got the lock of %s after waiting %.1f s",
                    run_id,
                    self.path.parent,
                    time.monotonic() - started,
                )
            holder = json.dumps({"pid": os.getpid(), "run_id": run_id, "since": time.time()})
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, holder.encode(), 0)
            except OSError as error:  # e.g. a full disk
                raise cannot_write(self.path, error) from error
        except BaseException:
            os.close(fd)  # closing also releases the lock if it was taken
            raise
        self._fd = fd

    def release(self) -> None:
        """Let the next run in (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def open_lock_file(path: Path) -> int:
    """Open (creating it if needed) the lock file ``path``, refusing a symbolic link, anything
    but a regular file, and a file with other hard links (``OutputError`` naming it). The
    descriptor is not inherited by child processes."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_NONBLOCK: opening a FIFO planted as the lock must not wait for a writer
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise refused_link(path, "the output folder's lock") from error
        if error.errno in (errno.EISDIR, errno.ENXIO, errno.EOPNOTSUPP):
            raise not_regular(path, "the output folder's lock") from error
        raise cannot_write(path, error) from error
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise not_regular(path, "the output folder's lock")
        if status.st_nlink != 1:
            raise OutputError(
                f"the output folder's lock has {status.st_nlink} hard links (a link to another "
                "file?); remove it and re-run",
                path=path,
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def try_lock(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` if it is free; False if another holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _describe_holder(fd: int) -> str:
    """'run <id> (pid <pid>)' from the lock file, or 'another run' when it cannot be read."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"run {holder['run_id']} (pid {holder['pid']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another run"
