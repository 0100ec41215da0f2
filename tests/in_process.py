"""A run of the flow's steps in memory as plain functions (``task.fn``: no Prefect server, no
engine), for the slow tier's tests of what a run writes (report.html, profiles.parquet)."""

from __future__ import annotations

from pathlib import Path

from prefect.logging import disable_run_logger

import flows.steps as steps
from segment.settings import SegmentationSettings
from tasks.describe import FittedRows, Outcome, clustered_on
from tasks.elbow import sweep_k
from tasks.engines import Engine
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
        run_plan = steps.plan.fn(settings)
        source = run_plan.source
        engine = Engine()
        staging = start_run(output, run_id)
        previous = load_previous_run(output)
        transactions = None
        if run_plan.orders is not None:  # order lines: derive the customer table first
            lines = steps.read_order_lines.fn(source, settings.sep, staging)
            derivation, raw, table = steps.derive.fn(lines, run_plan, settings, staging)
            transactions = derivation.manifest_record()
        else:
            table = run_plan.table_columns
            raw = steps.ingest.fn(engine, source, table, settings.sep, staging)
        cleaned = steps.clean.fn(engine, raw, table, source, settings.max_quarantine_share)
        scaled = steps.scale.fn(engine, cleaned, table, settings)
        elbow = sweep_k(
            scaled.features.matrix,
            settings.k_values,
            seed=settings.seed,
            n_init=2,
            n_jobs=1,
            silhouette_sample=1_000,
        )
        transforms = scaled.features.transforms
        choice = steps.pick_k.fn(elbow, previous, settings, clustered_on(transforms))
        rows = scaled.features.matrix
        fit = steps.final_fit.fn(engine, cleaned, scaled, rows, choice, settings)
        fitted = steps.Fitted(engine, cleaned, scaled, fit)
        described = steps.identify.fn(fitted, previous, staging, settings, run_plan)
        outcome = Outcome(FittedRows(scaled.features, fit), elbow, choice, described)
        steps.write_report.fn(
            staging, fitted, outcome, run_plan, table, settings.seed, transactions
        )
    return finish_run(staging, {"run_id": run_id})
