"""Reading the previous complete run (the one `latest` names), for stable segment identity."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from schemas.customers import CUSTOMER_ID
from tasks.identity import SEGMENT_ID, PreviousRun
from tasks.model import load_model
from tasks.report import latest_run

log = logging.getLogger(__name__)


def load_previous_run(output_dir: str | Path) -> PreviousRun | None:
    """The previous complete run's model and customer segments, or None before the first run."""
    folder = latest_run(output_dir)
    if folder is None:
        log.info("No previous complete run in %s: segment ids start at 1", output_dir)
        return None
    assignments = pd.read_parquet(folder / "segments.parquet", columns=[CUSTOMER_ID, SEGMENT_ID])
    log.info("Previous run %s: %d customers", folder.name, len(assignments))
    return PreviousRun(folder.name, load_model(folder / "model.json"), assignments)
