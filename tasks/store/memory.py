"""Give freed memory back to the operating system between the big steps of a run."""

from __future__ import annotations

import pyarrow as arrow


def release_unused_memory() -> None:
    """Ask Arrow's allocator to return the pages it keeps after frees.

    Arrow keeps memory it freed (the text of 10M raw rows: several hundred MiB) for reuse;
    until it is released the process's RSS stays at the high-water mark of the ingest. (No
    ``gc.collect()``: the frames are freed by reference counting, and a full collection in a
    process with Prefect loaded costs ~0.2 s, as much as the whole cleaning of a small file.)
    """
    arrow.default_memory_pool().release_unused()
