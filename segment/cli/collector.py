"""Python's cyclic garbage collector in a `segment` process: kept off what lives until exit.

`segment run` imports Prefect, pandas, pandera, scikit-learn, matplotlib and the project before
its flow starts: ~280,000 objects that live until the process exits. CPython's collector scans
all of them at each full collection (five during those imports, each slower than the last),
again at every full collection while the flow runs, and once more when the interpreter exits.
None of it finds garbage: modules, classes and functions are not freed before exit. Measured on
the Mall file with the background server (2 cores, a slow afternoon): 1.7 s of collections
while importing and 0.7 s while the flow ran, then 1.9-5 s of interpreter shutdown; with the
three steps below, none, 0.13 s and 0.1-0.5 s (benchmarks/RESULTS.md, "The collector kept off
the imports").

- :func:`paused` while the run path is imported (nothing to collect there); on leaving it, what
  was imported is moved out of the collector's reach (``gc.freeze``) before collecting
  resumes, so the flow's collections scan only the run's own objects, as in any small script
  (the flow's garbage is collected as usual);
- :func:`thaw` when the flow has returned: back in the oldest generation (tests call
  :func:`segment.cli.main.main` in their own process);
- :func:`exit_without_collection`: the console script's last step
  (:func:`segment.cli.main.console`), so the interpreter's shutdown does not scan the whole
  heap once more.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside the block (imports); when it completes, every object alive
    (the imported modules, classes, functions) is frozen out of later collections until
    :func:`thaw`; the collector's state is restored either way. Frozen before collecting
    resumes: a first collection would scan everything the block made, ~0.4 s for the run
    path."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()  # not when the block raised: nobody would thaw it
    finally:
        if enabled:
            gc.enable()


def thaw() -> None:
    """Put what :func:`paused` froze back in the oldest generation (``gc.unfreeze``: every
    frozen object; nothing else in a `segment` process freezes any)."""
    gc.unfreeze()


def exit_without_collection() -> None:
    """Leave every object alive now out of the interpreter's last collection at exit (the
    process ends right after; the operating system frees its memory). An object caught in a
    reference cycle is then not finalized: the run's files are written, flushed and closed
    before this, and atexit handlers and ``weakref.finalize`` callbacks still run."""
    gc.freeze()
