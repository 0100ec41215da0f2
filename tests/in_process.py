"""A run of the in-memory flow's steps as plain functions (``task.fn``: no Prefect server, no
engine), for the slow tier's tests of what a run writes (report.html, profiles.parquet)."""

from __future__ import annotations

from pathlib import Path

from prefect.logging import disable_run_logger

import flows.order_lines as order_lines
import flows.segmentation as segmentation
from flows.settings import SegmentationSettings
from tasks.describe import FittedRows, Outcome, clustered_on
from tasks.elbow import sweep_k
from tasks.store.history import load_previous_run
from tasks.store.run_files import finish_run, start_run


def segment_in_process(source: Path, output: Path, run_id: str, **options) -> Path:
    """One run of the in-memory flow's steps without the engine; the published run folder."""
    settings = SegmentationSettings(
        input=source,
        output_dir=output,
        run_id=run_id,
        n_init=2,
        sweep={"k_range": (1, 8)},
        **options,
    )
    with disable_run_logger():
        source = segmentation.resolve.fn(settings)
        staging = start_run(output, run_id)
        previous = load_previous_run(output)
        transactions = None
        if settings.transactions:  # order lines: derive the customer table first
            orders = order_lines.resolve_order_columns.fn(source, settings)
            lines = order_lines.read_order_lines(source, settings.sep, staging)
            derivation, raw, table = order_lines.derive.fn(lines, orders, source, settings, staging)
            transactions = derivation.manifest_record()
        else:
            table = segmentation.resolve_columns.fn(source, settings)
            raw = segmentation.ingest.fn(source, table, settings.sep, staging)
        cleaned = segmentation.clean.fn(raw, table, source, settings.max_quarantine_share)
        scaled = segmentation.scale.fn(cleaned.customers, table, settings.scaler, settings.seed)
        elbow = sweep_k(
            scaled.matrix,
            settings.k_values,
            seed=settings.seed,
            n_init=2,
            n_jobs=1,
            silhouette_sample=1_000,
        )
        choice = segmentation.pick_k.fn(elbow, previous, settings, clustered_on(scaled.transforms))
        fit = segmentation.final_fit.fn(
            scaled, scaled.matrix, choice, settings.seed, settings.n_init
        )
        shift = settings.identity.max_shift
        described = segmentation.identify.fn(cleaned, scaled, fit, previous, table, shift, seed=42)
        outcome = Outcome(FittedRows(scaled, fit), elbow, choice, described)
        segmentation.write_report.fn(
            staging, cleaned, outcome, table, settings, source, transactions
        )
    return finish_run(staging, {"run_id": run_id})
