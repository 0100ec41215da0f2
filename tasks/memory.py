"""Give freed memory back to the operating system between the big steps of a run."""

from __future__ import annotations

import gc

import pyarrow as pa


def release_unused_memory() -> None:
    """Collect garbage, then ask Arrow's allocator to return its free pages.

    Arrow keeps memory it freed (the text of 10M raw rows: several hundred MiB) for reuse;
    until it is released the process's RSS stays at the high-water mark of the ingest.
    """
    gc.collect()
    pa.default_memory_pool().release_unused()
