"""Reading the previous complete run (the one `latest` names), for stable segment identity."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from schemas.customers import CUSTOMER_ID
from tasks.identity import SEGMENT_ID, PreviousRun
from tasks.model import load_model
from tasks.report import MANIFEST, latest_run, sha256_of

log = logging.getLogger(__name__)


def load_previous_run(output_dir: str | Path) -> PreviousRun | None:
    """The previous complete run's model and customer segments, or None before the first run."""
    folder = latest_run(output_dir)
    if folder is None:
        log.info("No previous complete run in %s: segment ids start at 1", output_dir)
        return None
    if not (folder / "segments.parquet").exists() and any(folder.glob("segments-*.parquet")):
        log.warning(
            "Previous run %s segmented a partitioned input on Dask: its segment ids are not "
            "carried over (ids start again at 1)",
            folder.name,
        )
        return None
    verify_files(folder, ("segments.parquet", "model.json"))
    assignments = pd.read_parquet(folder / "segments.parquet", columns=[CUSTOMER_ID, SEGMENT_ID])
    log.info("Previous run %s: %d customers", folder.name, len(assignments))
    return PreviousRun(folder.name, load_model(folder / "model.json"), assignments)


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
