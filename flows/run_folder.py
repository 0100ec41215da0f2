"""What every segmentation flow does around its steps: a staging folder and the output lock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.errors import InputError
from tasks.report import abandon_run, start_run
from tasks.runlock import RunLock


@contextmanager
def staged_run(output_dir: Path, run_id: str, source: Path) -> Iterator[Path]:
    """Yield the run's staging folder, holding the output folder's lock meanwhile.

    One run at a time per output folder, from loading the previous run to publishing. On any
    failure the staging folder is removed; a bad-input error found after reading (e.g. too few
    distinct customers for k) is re-raised naming ``source``.
    """
    staging = start_run(output_dir, run_id)
    lock = RunLock(output_dir)
    try:
        lock.acquire(run_id)
        yield staging
    except InputError as error:
        abandon_run(staging)
        if error.path is None:
            raise error.with_path(source) from error
        raise
    except BaseException:
        abandon_run(staging)
        raise
    finally:
        lock.release()
