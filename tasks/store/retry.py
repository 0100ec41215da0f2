"""Which failures of reading the input are worth retrying, and how long to wait between tries.

A network share that times out or a disk that returns EIO once may well work a second later:
those are *transient* I/O errors and the read is retried after a delay. Bad data
(a malformed file, a missing column, a file that is not there or is a folder) fails the same
way every time: it is never retried, so the run fails at once with its one-line reason.

The ingest step wraps every ``OSError`` of reading the file in an ``InputError`` ("cannot be
read: ..."), raised ``from`` the original error; such an error counts as transient when that
original error does. ``flows.segmentation.retry_on_transient`` makes it the ``ingest`` task's
Prefect ``retry_condition_fn``.
"""

from __future__ import annotations

import errno

from tasks.errors import InputError

# errno values that say "try again" rather than "this file is wrong".
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.EAGAIN,  # == EWOULDBLOCK
        errno.EINTR,
        errno.EBUSY,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ECONNREFUSED,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.ENETRESET,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ESTALE,  # stale NFS file handle
        errno.ENOLCK,
    }
)
# Exception types that are transient whatever their errno.
TRANSIENT_TYPES = (TimeoutError, ConnectionError, BlockingIOError, InterruptedError)


def is_transient(error: BaseException) -> bool:
    """True for a transient I/O error (worth another try), False for bad data and the rest."""
    if isinstance(error, InputError):
        cause = error.__cause__  # "cannot be read: ..." raised from the OSError of the read
        return (
            isinstance(cause, OSError) and not isinstance(cause, InputError) and is_transient(cause)
        )
    if not isinstance(error, OSError):
        return False  # ValueError, KeyError, pandas/pyarrow parse errors: the data is bad
    if isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return False  # the input is wrong, not the disk
    if isinstance(error, PermissionError):
        return False  # retrying does not grant access
    return isinstance(error, TRANSIENT_TYPES) or error.errno in TRANSIENT_ERRNOS
