"""The segmentation flow: plan -> ingest (order lines: derive the customers) -> validate &
clean -> scale -> elbow -> fit -> identify (and compare with the previous run) -> report ->
publish (and, with publish_db, the membership history in a database), for every run mode.

The plan (``segment.plan``) decides the mode once; the flow only orders the steps
(``flows.steps``) and picks the engine that does their work: in this process, or over a folder
of Parquet partitions on the flow's Dask cluster (``tasks.engines``). Order lines are a
pre-step that turns them into a customer table; every step after it is the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flows.run_folder import (
    configure_run_logging,
    run_id_for,
    segmentation_flow,
    staged_run,
    untagged_tasks,
)
from flows.run_settings import settings_for_run
from flows.steps import (
    Fitted,
    RunStart,
    clean,
    compare_runs,
    derive,
    derive_parts,
    elbow_sweep,
    final_fit,
    identify,
    ingest,
    load_previous,
    pick_k,
    plan,
    publish,
    publish_db,
    quality_gates,
    read_order_lines,
    retried,
    run_manifest,
    scale,
    sweep_on_workers,
    write_report,
)
from segment.plan import RunPlan
from segment.settings import SegmentationSettings
from tasks.describe import FittedRows, Outcome, clustered_on
from tasks.engines import Engine
from tasks.errors import InputError
from tasks.fit import sweep_rows
from tasks.store.memory import release_unused_memory


@contextmanager
def flow_dask_client() -> Iterator[None]:
    """Inside a task of a flow run by the DaskTaskRunner: its cluster (started on first use)
    as the current Dask client, so Dask collections are computed on the cluster's workers.

    Library internals: the task runner's ``client`` attribute. prefect-dask's public
    ``get_dask_client`` serves a task running *on* a worker; the tasks calling this run in the
    flow's process and hand the whole collection to the cluster. tests/test_dask.py's
    partitioned runs pin it to the installed prefect-dask."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or not hasattr(context.task_runner, "client"):
        raise RuntimeError("flow_dask_client() needs a flow run with the DaskTaskRunner")
    with context.task_runner.client.as_current():
        yield


def engine_for(run_plan: RunPlan) -> Engine:
    """In this process, or over the partitions on the flow's Dask cluster."""
    if run_plan.partitioned:
        from tasks.partitioned import Partitioned

        return Partitioned(run_plan.files, flow_dask_client)
    return Engine()


@segmentation_flow("customer-segmentation")
def segment_customers(settings: SegmentationSettings | None = None) -> dict:
    """Segment the customers in ``settings.input``; returns the run's manifest."""
    configure_run_logging()
    with untagged_tasks():  # no tag-concurrency round trip before each task
        settings = settings_for_run(settings)  # in a deployment run: merged over its stored ones
        run_id = run_id_for(settings)  # the flow run's name is segment-<run-id>
        run_plan = plan(settings)
        engine = engine_for(run_plan)
        run = RunStart(settings, run_id, run_plan.source)
        step = run.step
        with staged_run(settings.output_dir, run_id, run_plan.source) as staging:
            previous = load_previous(settings.output_dir, assignments=engine.previous_assignments)
            order_lines = None  # order lines: their accounting, for the report and manifest
            if run_plan.orders is not None and run_plan.files:  # order lines in Parquet parts
                with step("derive"):  # read and derived on the Dask cluster
                    derivation, data, columns = retried(derive_parts, settings)(
                        run_plan, settings, staging, flow_dask_client
                    )
                    order_lines = derivation.manifest_record()
            elif run_plan.orders is not None:  # the pre-step: order lines -> a customer table
                with step("ingest"):
                    lines = retried(read_order_lines, settings)(
                        run_plan.source, settings.sep, staging
                    )
                with step("derive"):
                    derivation, data, columns = derive(lines, run_plan, settings, staging)
                    order_lines = derivation.manifest_record()
            else:  # a customer table, in one file or in partitions
                columns = run_plan.table_columns
                with step("ingest"):
                    data = retried(ingest, settings)(
                        engine, run_plan.source, columns, settings.sep, staging
                    )
            with step("clean"):
                cleaned = clean(
                    engine, data, columns, run_plan.source, settings.max_quarantine_share
                )
                del data  # the input as read is not needed again: free it before the fit
                release_unused_memory()
                too_many = settings.k_beyond(cleaned.rows_kept, "there are clean customers")
                if too_many is not None:  # refused before the sweep, not after it
                    raise InputError(too_many)
            with step("scale"):
                scaled = scale(engine, cleaned, columns, settings)
            with step("elbow"):
                rows = sweep_rows(
                    scaled.features.matrix,
                    settings.sweep.sample_threshold,
                    settings.sweep.sample_size,
                    settings.seed,
                )
                sweep = sweep_on_workers if settings.runner == "dask" else elbow_sweep
                elbow = sweep(rows, settings)
                choice = pick_k(elbow, previous, settings, clustered_on(scaled.features.transforms))
            with step("fit"):
                segmentation = final_fit(engine, cleaned, scaled, rows, choice, settings)
            fitted = Fitted(engine, cleaned, scaled, segmentation)
            with step("identify"):
                described = identify(fitted, previous, staging, settings, run_plan)
                drift, drift_words = compare_runs(fitted, described, previous, staging, settings)
                quality_gates(described, elbow, choice, run_id, settings, drift)
            outcome = Outcome(
                FittedRows(scaled.features, segmentation), elbow, choice, described, drift_words
            )
            with step("report"):
                images = write_report(
                    staging, fitted, outcome, run_plan, columns, settings.seed, order_lines
                )
            manifest = run_manifest(run, cleaned, outcome, columns, order_lines)
            record, summary = publish(staging, manifest, described, columns, settings, images)
        if settings.publish_db is not None:  # after the folder is published (and unlocked)
            record = publish_db(record, settings.publish_db, summary)
        return record
