"""Reading the previous complete run (the one `latest` names), for stable segment identity."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from schemas.columns import CUSTOMER_ID, SEGMENT_ID
from tasks.identity import PreviousRun
from tasks.model import load_model
from tasks.store.paths import MANIFEST
from tasks.store.run_files import latest_run, sha256_of

log = logging.getLogger(__name__)


def load_previous_run(output_dir: str | Path, *, assignments: bool = True) -> PreviousRun | None:
    """The previous complete run's model and customer segments, or None before the first run.

    Its segments are ``segments.parquet`` (an in-memory run) or ``segments-NNNNN.parquet`` (a
    partitioned run), each checked against the manifest. ``assignments=False``: the customer
    segments are left on disk (``PreviousRun.files``) for a partitioned run to read on Dask.
    """
    folder = latest_run(output_dir)
    if folder is None:
        log.info("No previous complete run in %s: segment ids start at 1", output_dir)
        return None
    files = tuple(sorted(folder.glob("segments-*.parquet")))
    if (folder / "segments.parquet").exists() or not files:
        files = (folder / "segments.parquet",)
    verify_files(folder, (*(f.name for f in files), "model.json"))
    model = load_model(folder / "model.json")
    if not assignments:
        return PreviousRun(folder.name, model, pd.DataFrame(), files)
    table = pd.concat(
        [pd.read_parquet(f, columns=[CUSTOMER_ID, SEGMENT_ID]) for f in files], ignore_index=True
    )
    log.info("Previous run %s: %d customers", folder.name, len(table))
    return PreviousRun(folder.name, model, table, files)


class CorruptRunError(RuntimeError):
    """A published run's file does not match the checksum its manifest recorded."""


def verify_files(folder: Path, names: tuple[str, ...]) -> None:
    """Check ``names`` in a published run folder against the sha256 and size in its manifest.

    A run folder is only published after its manifest is written, so a mismatch means the
    folder was changed afterwards (or the disk is failing): the run stops rather than carry
    segment ids over from data it cannot trust.
    """
    recorded = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("files", {})
    for name in names:
        path, expected = folder / name, recorded.get(name)
        if expected is None:
            raise CorruptRunError(f"{path}: not listed in the run's manifest")
        if not path.is_file():
            raise CorruptRunError(f"{path}: listed in the run's manifest but missing")
        if path.stat().st_size != expected["bytes"] or sha256_of(path) != expected["sha256"]:
            raise CorruptRunError(
                f"{path}: does not match the checksum in the run's manifest; the previous run "
                "was changed after it was published"
            )


def previous_customers(
    previous: PreviousRun, columns: list[str], *, at_most: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """The previous run's customers with their ``segment_id`` and those of ``columns`` its
    segments tables have (in original units): all of them, or with ``at_most`` a seeded
    sample of about that many, drawn file by file (a partitioned run's files never held in
    memory at once)."""
    import pyarrow.parquet as pq

    present = set(pq.read_schema(previous.files[0]).names)
    wanted = [SEGMENT_ID, *(c for c in columns if c in present and c != SEGMENT_ID)]
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in previous.files)
    share = 1.0 if at_most is None or total <= at_most else at_most / total
    rng = np.random.default_rng(seed)
    parts = []
    for path in previous.files:
        part = pd.read_parquet(path, columns=wanted)
        parts.append(part if share == 1.0 else part.sample(frac=share, random_state=rng))
    return pd.concat(parts, ignore_index=True)
