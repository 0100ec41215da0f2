"""The segmentation flow: ingest -> validate & clean -> scale -> elbow -> fit -> report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from uuid import UUID

import numpy as np
import pandas as pd
from prefect import get_run_logger, unmapped
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run
from prefect.states import State

from flows.order_lines import derive, read_order_lines, resolve_order_columns
from flows.run_folder import (
    configure_run_logging,
    pipeline_task,
    run_artifact_key,
    run_id_for,
    segmentation_flow,
    staged_run,
    untagged_tasks,
)
from flows.run_settings import settings_for_run
from flows.settings import SegmentationSettings
from schemas.outputs import segments_schema
from tasks.clean import CleanResult, RowAccounting, clean_customers
from tasks.describe import (
    Described,
    FittedRows,
    Outcome,
    clustered_on,
    describe_segments,
    previous_k,
)
from tasks.elbow import (
    KChoice,
    choose_k_within_gate,
    elbow_table,
    metrics_for_k,
    sweep_k,
    sweepable_k_values,
)
from tasks.errors import InputError
from tasks.fit import Segmentation, fit_final, sweep_rows
from tasks.gates import GateError, gate_breaches
from tasks.identity import PreviousRun
from tasks.ingest import canonical_frame, expected_types, read_file
from tasks.orders.encoded_lines import EncodedLines
from tasks.reporting import plots
from tasks.reporting.artifacts import (
    gate_failure_markdown,
    profiles_records,
    summary_markdown,
    summary_means,
    transitions_records,
)
from tasks.reporting.html_report import REPORT, run_report
from tasks.scale import ScaledFeatures, check_features_vary, scale_features
from tasks.store.history import load_previous_run
from tasks.store.manifest import (
    KRecord,
    Manifest,
    PcaRecord,
    StepTimer,
    input_record,
    package_versions,
    segment_records,
    utc_now,
)
from tasks.store.memory import release_unused_memory
from tasks.store.retry import is_transient
from tasks.store.run_files import finish_run, run_id_of, write_run_files, write_table, write_text
from tasks.store.snapshots import resolve_input
from tasks.table import ColumnPlan, columns_line, describe_table

# Results stay in memory: no input hashing of large frames, nothing pickled to disk.


load_previous = pipeline_task("load-previous-run")(load_previous_run)


@pipeline_task("resolve-input")
def resolve(settings: SegmentationSettings) -> Path:
    """The input file: the path itself, or the newest dated snapshot in a folder (up to as_of;
    order lines in a single file take as_of as their snapshot date instead)."""
    single_orders = settings.transactions and not settings.input.is_dir()
    return resolve_input(settings.input, None if single_orders else settings.as_of)


@pipeline_task("resolve-columns")
def resolve_columns(source: Path, settings: SegmentationSettings) -> ColumnPlan:
    """Which columns are the id, the features and the profile columns (from the header and
    the first rows; the spec file, else the Mall preset for a Mall-like file, else every
    numeric column), each column's kind, label and checks."""
    return columns_of(source, settings)


def columns_of(source: Path, settings: SegmentationSettings) -> ColumnPlan:
    """The resolved columns of ``source`` (a file, or a partitioned input's first data file),
    logged with where they came from."""
    table = settings.table_for(source)
    logger = get_run_logger()
    logger.info(columns_line(table, settings.spec))
    for note in table.notes:  # what was inferred (no spec, not the Mall preset), and why
        logger.info(note)
    return table


def retry_on_transient(task: object, task_run: object, state: State) -> bool:
    """Prefect ``retry_condition_fn`` of ``ingest``: retry only a transient I/O error. Results
    are never persisted here, so the Failed state holds the exception itself."""
    return isinstance(state.data, BaseException) and is_transient(state.data)


@pipeline_task("ingest", retry_condition_fn=retry_on_transient)
def ingest(
    source: Path, table: ColumnPlan | None, sep: str | None, staging: Path
) -> pd.DataFrame | EncodedLines:
    """Read the customer file and keep a raw Parquet copy (the file's own headers) in the run
    folder; ``table`` None: order lines, read as codes (flows/order_lines.py). Retried on
    transient I/O errors (settings.read_retries, read_retry_delay seconds apart), never on bad
    data."""
    if table is None:
        return read_order_lines(source, sep, staging)
    raw = read_file(source, sep, expected=expected_types(table))
    write_table(raw, staging / "raw.parquet")
    return raw


@pipeline_task("validate-and-clean")
def clean(
    raw: pd.DataFrame, table: ColumnPlan, source: Path, max_quarantine_share: float
) -> CleanResult:
    """Drop duplicates, quarantine invalid rows with reasons, return typed customers."""
    return clean_customers(
        canonical_frame(raw, table),
        source=str(source),
        max_quarantine_share=max_quarantine_share,
        table=table,
    )


@pipeline_task("scale-features")
def scale(customers: pd.DataFrame, table: ColumnPlan, scaler: str, seed: int) -> ScaledFeatures:
    """Select, transform and scale the clustering features (then PCA, if asked)."""
    check_features_vary(customers, table)
    return scale_features(customers, None, scaler, table, seed=seed)


@pipeline_task("elbow-sweep")
def elbow_sweep(rows: np.ndarray, settings: SegmentationSettings) -> pd.DataFrame:
    """Inertia and quality metrics for each k of the sweep, with a progress artifact."""
    # Prefect types its sync/async functions as returning "X | Coroutine": from sync code, X
    tracker = cast(
        UUID,
        create_progress_artifact(
            progress=0.0,
            key=run_artifact_key("elbow-sweep-progress", settings),
            description="k values fitted in the sweep",
        ),
    )

    def report(done: int, total: int) -> None:
        update_progress_artifact(tracker, progress=100.0 * done / total)

    return sweep_k(
        rows,
        settings.k_values,
        seed=settings.seed,
        n_init=settings.n_init,
        silhouette_sample=settings.sweep.silhouette_sample,
        n_jobs=settings.sweep.n_jobs,
        progress=report,
    )


fit_k = pipeline_task("fit-k")(metrics_for_k)


def sweep_on_workers(rows: np.ndarray, settings: SegmentationSettings) -> pd.DataFrame:
    """The elbow sweep fanned out: one fit-k task per k, run by the flow's task runner."""
    ks = sweepable_k_values(rows, settings.k_values)
    futures = fit_k.map(
        unmapped(rows),
        ks,
        seed=unmapped(settings.seed),
        n_init=unmapped(settings.n_init),
        silhouette_sample=unmapped(settings.sweep.silhouette_sample),
    )
    return elbow_table([future.result() for future in futures])


@pipeline_task("choose-k")
def pick_k(
    elbow: pd.DataFrame,
    previous: PreviousRun | None,
    settings: SegmentationSettings,
    columns: tuple[str, ...],
) -> KChoice:
    """Apply the k rule: fixed k, Kneedle knee within bounds, or best silhouette; keep the
    previous run's k (when it clustered on the same ``columns``) unless another is clearly
    better."""
    choice = choose_k_within_gate(
        elbow,
        gate_min_segment_share=settings.gates.min_segment_share,
        fixed_k=settings.k,
        k_min=settings.k_min,
        k_max=settings.k_max,
        min_segment_share=settings.min_segment_share,
        previous_k=previous_k(previous, columns),
        k_margin=settings.identity.k_margin,
    )
    get_run_logger().info("Chose k=%d by rule %r: %s", choice.k, choice.rule, choice.reason)
    return choice


@pipeline_task("final-fit")
def final_fit(
    scaled: ScaledFeatures, rows: np.ndarray, choice: KChoice, seed: int, n_init: int
) -> Segmentation:
    """K-Means with k-means++ and n_init restarts, segments numbered canonically; when the
    sweep ran on a sample (``rows``), the restarts run on it, then one fit on all rows from
    the sample's centroids."""
    return fit_final(scaled.matrix, rows, choice.k, seed=seed, n_init=n_init)


@pipeline_task("identify-segments")
def identify(
    cleaned: CleanResult,
    scaled: ScaledFeatures,
    segmentation: Segmentation,
    previous: PreviousRun | None,
    table: ColumnPlan,
    max_shift: float,
    seed: int,
) -> Described:
    """Stable ids and names (matched to the previous run), profiles (with each segment's
    stability), transitions, model."""
    return describe_segments(
        cleaned.customers,
        FittedRows(scaled, segmentation),
        previous,
        max_shift=max_shift,
        table=table,
        fill_values=cleaned.fill_values,
        seed=seed,
    )


@pipeline_task("quality-gates")
def quality_gates(
    described: Described,
    elbow: pd.DataFrame,
    choice: KChoice,
    run_id: str,
    settings: SegmentationSettings,
) -> None:
    """Fail the run, naming the gate and its figures, if a quality gate is breached."""
    breaches = gate_breaches(
        settings.gates,
        profiles=described.profiles,
        elbow=elbow,
        k=choice.k,
        changes=described.changes,
    )
    if breaches:
        create_markdown_artifact(
            key=run_artifact_key("segmentation-summary", settings),
            markdown=gate_failure_markdown(run_id, breaches),
            description="This run was stopped by a quality gate",
        )
        raise GateError(breaches)


@pipeline_task("write-report")
def write_report(
    staging: Path,
    cleaned: CleanResult,
    outcome: Outcome,
    table: ColumnPlan,
    settings: SegmentationSettings,
    source: Path,
    order_lines: dict | None = None,
) -> dict[str, bytes]:
    """Write the tables (each validated), the model, the plots and report.html into the run
    folder. ``order_lines``: a run on order lines' line accounting (``Derivation``'s
    ``manifest_record()``), shown in the report's data quality section."""
    described = outcome.described
    write_table(described.segments, staging / "segments.parquet", segments_schema(table))
    figures = plots.run_figures(
        outcome.elbow,
        outcome.choice,
        outcome.fitted.segmentation,
        described,
        rows=plots.PlottedRows(
            cleaned.customers,
            outcome.fitted.scaled.values(cleaned.customers, table),
            outcome.fitted.scaled.matrix,
        ),
        table=table,
        seed=settings.seed,
    )
    images = write_run_files(staging, described, outcome.elbow, cleaned.quarantine, figures, table)
    html = run_report(
        run_id_of(staging), source, cleaned, outcome, table, images, order_lines=order_lines
    )
    write_text(html, staging / REPORT)
    return images


@pipeline_task("publish-run")
def publish(
    staging: Path,
    manifest: Manifest,
    described: Described,
    table: ColumnPlan,
    settings: SegmentationSettings,
    images: dict[str, bytes],
) -> dict:
    """Write the manifest last, publish the run folder, point `latest` at it, add UI artifacts
    (the summary shows ``images``, the run's PNGs by file name); returns the manifest as a
    dict, with the published folder as its output folder."""
    final = finish_run(staging, manifest.model_dump())
    record = manifest.model_copy(update={"output_folder": str(final)}).model_dump()
    create_markdown_artifact(
        key=run_artifact_key("segmentation-summary", settings),
        markdown=summary_markdown(record, described.profiles, images, summary_means(table)),
        description="Segments, chosen k, row accounting, changes since the previous run, plots",
    )
    create_table_artifact(
        key=run_artifact_key("segment-profiles", settings),
        table=profiles_records(described.profiles),
        description="Per-segment size, share and feature means/medians (original units)",
    )
    if not described.transitions.empty:
        create_table_artifact(
            key=run_artifact_key("segment-transitions", settings),
            table=transitions_records(described.transitions, described.names),
            description="Customers in both runs by previous and current segment",
        )
    return record


@dataclass(frozen=True)
class RunStart:
    """What a run knows before its first step: its settings, id and input (a file, or a
    folder of partition files), when it started and the clock of its steps."""

    settings: SegmentationSettings
    run_id: str
    source: Path
    started: str = field(default_factory=utc_now)
    step: StepTimer = field(default_factory=StepTimer)


def run_manifest(
    run: RunStart,
    accounting: RowAccounting,
    outcome: Outcome,
    table: ColumnPlan,
    order_lines: dict | None = None,
) -> Manifest:
    """The run's manifest (both flows): ``accounting`` is the cleaning's row accounting (a
    ``CleanResult`` or a partitioned run's ``Partitions``); ``order_lines``: a run on order
    lines' line accounting."""
    settings, described = run.settings, outcome.described
    return Manifest(
        run_id=run.run_id,
        flow_run_id=str(flow_run.get_id()),
        started_at=run.started,
        finished_at=utc_now(),
        output_folder=str(settings.output_dir / "runs" / run.run_id),
        input=input_record(run.source),
        rows=accounting.accounting(),
        k=KRecord.of(outcome.choice),
        inertia=outcome.fitted.segmentation.inertia,
        segments=segment_records(described.profiles),
        features=list(outcome.fitted.scaled.columns),
        columns=describe_table(table),
        missing_filled=dict(getattr(accounting, "missing_filled", {})),
        pca=PcaRecord.of(outcome.fitted.scaled.projection),
        changes=described.changes,
        timings=run.step.as_dict(),
        settings=settings.model_dump(mode="json"),
        versions=package_versions(),
        transactions=order_lines,
    )


@segmentation_flow("customer-segmentation")
def segment_customers(settings: SegmentationSettings | None = None) -> dict:
    """Segment the customers in ``settings.input``; returns the run's manifest."""
    configure_run_logging()
    with untagged_tasks():  # no tag-concurrency round trip before each task
        settings = settings_for_run(settings)  # in a deployment run: merged over its stored ones
        run_id = run_id_for(settings)  # the flow run's name is segment-<run-id>
        source = resolve(settings)
        orders = resolve_order_columns(source, settings) if settings.transactions else None
        table = None if orders else resolve_columns(source, settings)
        run = RunStart(settings, run_id, source)
        step = run.step
        with staged_run(settings.output_dir, run_id, source) as staging:
            previous = load_previous(settings.output_dir)
            with step("ingest"):
                raw = ingest.with_options(
                    retries=settings.read_retries,
                    # one number, not a backoff list: the Prefect UI shows a list as NaN
                    retry_delay_seconds=settings.read_retry_delay,
                )(source, table, settings.sep, staging)
            transactions = None  # order lines: their accounting, for the report and manifest
            if orders is not None:  # order lines: segment the derived per-customer table
                with step("derive"):
                    derivation, raw, table = derive(raw, orders, source, settings, staging)
                    transactions = derivation.manifest_record()
            if table is None:  # a customer table or derived from order lines: never None here
                raise RuntimeError("no customer table to segment")
            with step("clean"):
                cleaned = clean(raw, table, source, settings.max_quarantine_share)
                del raw  # the input as read is not needed again: free it before the fit
                release_unused_memory()
                too_many = settings.k_beyond(len(cleaned.customers), "there are clean customers")
                if too_many is not None:  # refused before the sweep, not after it
                    raise InputError(too_many)
            with step("scale"):
                scaled = scale(cleaned.customers, table, settings.scaler, settings.seed)
            with step("elbow"):
                rows = sweep_rows(
                    scaled.matrix,
                    settings.sweep.sample_threshold,
                    settings.sweep.sample_size,
                    settings.seed,
                )
                sweep = sweep_on_workers if settings.runner == "dask" else elbow_sweep
                elbow = sweep(rows, settings)
                choice = pick_k(elbow, previous, settings, clustered_on(scaled.transforms))
            with step("fit"):
                segmentation = final_fit(scaled, rows, choice, settings.seed, settings.n_init)
            with step("identify"):
                described = identify(
                    cleaned,
                    scaled,
                    segmentation,
                    previous,
                    table,
                    settings.identity.max_shift,
                    settings.seed,
                )
                quality_gates(described, elbow, choice, run_id, settings)
            outcome = Outcome(FittedRows(scaled, segmentation), elbow, choice, described)
            with step("report"):
                images = write_report(
                    staging, cleaned, outcome, table, settings, source, transactions
                )
            manifest = run_manifest(run, cleaned, outcome, table, transactions)
            return publish(staging, manifest, described, table, settings, images)
