"""The steps of the segmentation flow as Prefect tasks: each hands its work to a plain
function of tasks/ (through the run's engine, ``tasks.engines``, where the work depends on
where the customers are) and adds what Prefect shows: log lines, progress, artifacts."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast
from uuid import UUID

import numpy as np
import pandas as pd
from prefect import Task, get_run_logger, unmapped
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run
from prefect.states import State

from flows.run_folder import pipeline_task, run_artifact_key
from schemas.columns import SEGMENT_ID
from schemas.outputs import Drift, Moves
from segment.plan import RunPlan, plan_run
from segment.settings import SegmentationSettings
from tasks.clean import RowAccounting
from tasks.describe import Described, FittedRows, Outcome, previous_k
from tasks.drift import DRIFT_SAMPLE, drift_record, drift_table
from tasks.elbow import (
    KChoice,
    choose_k_within_gate,
    elbow_table,
    metrics_for_k,
    sweep_k,
    sweepable_k_values,
)
from tasks.engines import Engine, Scaled
from tasks.errors import InputError, PublishError
from tasks.fit import Segmentation
from tasks.gates import GateError, gate_breaches
from tasks.identity import PreviousRun
from tasks.orders.encoded_lines import EncodedLines
from tasks.orders.order_table import order_lines_record, segmentable_customers
from tasks.orders.out_of_core import derive_lines, order_lines
from tasks.orders.transactions import Derivation
from tasks.reporting import plots
from tasks.reporting.artifacts import (
    database_line,
    gate_failure_markdown,
    profiles_records,
    replace_database_line,
    summary_markdown,
    summary_means,
    transitions_records,
)
from tasks.reporting.html_report import REPORT, ReportSample, run_report
from tasks.store.history import load_previous_run, previous_customers
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
from tasks.store.retry import is_transient
from tasks.store.run_files import finish_run, run_id_of, write_run_files, write_table, write_text
from tasks.table import ColumnPlan, describe_table

# Results stay in memory: no input hashing of large frames, nothing pickled to disk.

P = ParamSpec("P")
R = TypeVar("R")


@pipeline_task("plan-run")
def plan(settings: SegmentationSettings) -> RunPlan:
    """The run's input (the file, the newest dated snapshot in a folder up to as_of, or the
    partition files), its mode and its columns (``segment.plan.plan_run``), logged with where
    they came from and what was inferred."""
    run_plan = plan_run(settings)
    logger = get_run_logger()
    for note in run_plan.notes:
        logger.info(note)
    return run_plan


load_previous = pipeline_task("load-previous-run")(load_previous_run)


def retry_on_transient(task: object, task_run: object, state: State) -> bool:
    """Prefect ``retry_condition_fn`` of ``ingest``: retry only a transient I/O error. Results
    are never persisted here, so the Failed state holds the exception itself."""
    return isinstance(state.data, BaseException) and is_transient(state.data)


def retried(step: Task[P, R], settings: SegmentationSettings) -> Task[P, R]:
    """A reading ``step`` retried on transient I/O errors: ``settings.read_retries`` times,
    ``read_retry_delay`` seconds apart (one number, not a backoff list: the Prefect UI shows
    a list as NaN)."""
    return step.with_options(
        retries=settings.read_retries, retry_delay_seconds=settings.read_retry_delay
    )


@pipeline_task("ingest", retry_condition_fn=retry_on_transient)
def ingest(
    engine: Engine, source: Path, columns: ColumnPlan, sep: str | None, staging: Path
) -> Any:
    """Read the customer table (in memory: the file, kept as raw.parquet in the run folder;
    partitions: each is read on the workers by the cleaning). Retried on transient I/O errors
    (settings.read_retries, read_retry_delay seconds apart), never on bad data."""
    return engine.read(source, columns, sep, staging)


@pipeline_task("read-order-lines", retry_condition_fn=retry_on_transient)
def read_order_lines(source: Path, sep: str | None, staging: Path) -> EncodedLines | Path:
    """Order lines to derive. A Parquet file stays where it is: derive-customers reads it out
    of core (its layout is checked here; the manifest records its path, size and sha256); a
    text file is read whole as codes into each column's distinct values and kept as
    raw.parquet, as a customer file is. Retried as ``ingest``."""
    lines, raw = order_lines(source, sep)
    if raw is not None:
        write_table(raw, staging / "raw.parquet")
    return lines


@pipeline_task("derive-customers")
def derive(
    lines: EncodedLines | Path, run_plan: RunPlan, settings: SegmentationSettings, staging: Path
) -> tuple[Derivation, pd.DataFrame, ColumnPlan]:
    """Order lines -> one row per customer (R, F, M, extras, RFM scores): the customer table
    the run segments (a Parquet file out of core in DuckDB, within --lines-memory-limit and
    spilling into the run folder). Writes customers.parquet, quarantine_lines.parquet and
    customers_without_purchases.parquet; returns the derivation (its line accounting), the
    customers as a table to clean, and its ColumnPlan."""
    if run_plan.orders is None or run_plan.order_spec is None:
        raise RuntimeError("derive-customers needs a plan of order lines")
    try:
        derivation = derive_lines(
            lines,
            run_plan.orders,
            as_of=settings.as_of,
            date_format=settings.date_format,
            memory_limit=settings.lines_memory_limit,
            spill_dir=staging,
        )
    except InputError as error:
        raise error.with_path(run_plan.source) from error
    return derived_table(derivation, run_plan, staging)


def derived_table(
    derivation: Derivation, run_plan: RunPlan, staging: Path
) -> tuple[Derivation, pd.DataFrame, ColumnPlan]:
    """Write the derivation's customers.parquet, quarantine_lines.parquet and
    customers_without_purchases.parquet; (the derivation, the customers as a table to clean,
    its ColumnPlan)."""
    if run_plan.order_spec is None:
        raise RuntimeError("a derivation of order lines needs the plan's order spec")
    _, frame, columns = segmentable_customers(derivation.customers, run_plan.order_spec)
    write_table(derivation.customers, staging / "customers.parquet")
    write_table(derivation.quarantine, staging / "quarantine_lines.parquet")
    write_table(derivation.without_purchases, staging / "customers_without_purchases.parquet")
    return derivation, frame, columns


@pipeline_task("validate-and-clean")
def clean(
    engine: Engine, data: Any, columns: ColumnPlan, source: Path, max_quarantine_share: float
) -> RowAccounting:
    """Drop duplicates, quarantine invalid rows with reasons, return typed customers."""
    return engine.clean(data, columns, source, max_quarantine_share)


@pipeline_task("derive-customers-on-dask", retry_condition_fn=retry_on_transient)
def derive_parts(
    run_plan: RunPlan,
    settings: SegmentationSettings,
    staging: Path,
    on_cluster: Callable[[], AbstractContextManager],
) -> tuple[Derivation, pd.DataFrame, ColumnPlan]:
    """Order lines in a folder of Parquet parts -> one row per customer, derived on the flow's
    Dask cluster (``on_cluster``: ``tasks.orders.partitioned_lines``, the same customers, lines
    and accounting as ``derive-customers`` on the parts as one file); then as
    ``derive-customers``: the same three files written (the parts themselves are the audit
    copy), the customers as a table to clean in memory, its ColumnPlan. Retried as ``ingest``."""
    from tasks.orders.partitioned_lines import derive_partitioned  # Dask: only when used

    if run_plan.orders is None or run_plan.order_spec is None or not run_plan.files:
        raise RuntimeError("derive-customers-on-dask needs a plan of order lines in parts")
    try:
        derivation = derive_partitioned(
            run_plan.files,
            run_plan.orders,
            as_of=settings.as_of,
            date_format=settings.date_format,
            on_cluster=on_cluster,
        )
    except InputError as error:
        raise error.with_path(run_plan.source) from error
    return derived_table(derivation, run_plan, staging)


@pipeline_task("scale-features")
def scale(
    engine: Engine, cleaned: RowAccounting, columns: ColumnPlan, settings: SegmentationSettings
) -> Scaled:
    """Select, transform and scale the clustering features (then PCA, if asked)."""
    return engine.scale(
        cleaned,
        columns,
        settings.scaler,
        sample_size=settings.sweep.sample_size,
        seed=settings.seed,
    )


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
        progress=throttled(report),
    )


PROGRESS_SECONDS = 1.0  # a progress update is an API call (~20 ms): at most one a second


def throttled(
    report: Callable[[int, int], None],
    every: float = PROGRESS_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[int, int], None]:
    """``report(done, total)`` at most once every ``every`` seconds, and always when all is
    done: a small sweep (all k in under a second) makes one update, at 100 %."""
    last = clock()  # the artifact was created at 0 % just before

    def call(done: int, total: int) -> None:
        nonlocal last
        now = clock()
        if done >= total or now - last >= every:
            last = now
            report(done, total)

    return call


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
    engine: Engine,
    cleaned: RowAccounting,
    scaled: Scaled,
    rows: np.ndarray,
    choice: KChoice,
    settings: SegmentationSettings,
) -> Segmentation:
    """K-Means with k-means++ and n_init restarts over every customer, segments numbered
    canonically; when the sweep ran on a sample (``rows``), the restarts run on it, then one
    fit on all customers from the sample's centroids."""
    return engine.fit(cleaned, scaled, rows, choice.k, seed=settings.seed, n_init=settings.n_init)


@dataclass(frozen=True)
class Fitted:
    """What the identify step reads: the engine, the cleaning, the scaled rows and their fit."""

    engine: Engine
    cleaned: Any
    scaled: Scaled
    segmentation: Segmentation

    @property
    def rows(self) -> FittedRows:
        return FittedRows(self.scaled.features, self.segmentation)


@pipeline_task("identify-segments")
def identify(
    fitted: Fitted,
    previous: PreviousRun | None,
    staging: Path,
    settings: SegmentationSettings,
    run_plan: RunPlan,
) -> Described:
    """Stable ids and names (matched to the previous run), every customer's segment written
    into the run folder, profiles (with each segment's stability), transitions, model (a run
    on order lines: with how it derived its customers, for ``segment assign --transactions``)."""
    described = fitted.engine.describe(
        fitted.cleaned,
        fitted.rows,
        fitted.scaled,
        previous,
        staging,
        max_shift=settings.identity.max_shift,
        seed=settings.seed,
    )
    if run_plan.orders is None or run_plan.order_spec is None:
        return described
    recipe = order_lines_record(run_plan.orders, run_plan.order_spec, settings.date_format)
    return replace(described, model={**described.model, "order_lines": recipe})


@pipeline_task("compare-runs")
def compare_runs(
    fitted: Fitted,
    described: Described,
    previous: PreviousRun | None,
    staging: Path,
    settings: SegmentationSettings,
) -> tuple[pd.DataFrame | None, dict | None]:
    """Since the previous run (when it clustered on the same columns): the customers who
    moved, joined or left (moves.parquet) and the drift of each feature, over all customers
    and within each segment (drift.parquet: ``tasks.drift``), with its record in words. The
    drift compares at most ``DRIFT_SAMPLE`` customers a side (a seeded sample above that; a
    partitioned run's customers in memory are its sample already)."""
    if previous is None or "customers_moved" not in (described.changes or {}):
        return None, None
    engine, scaled, columns = fitted.engine, fitted.scaled, fitted.scaled.space.table
    write_table(engine.moves(described, previous, staging), staging / "moves.parquet", Moves)
    assigned = engine.assigned(fitted.rows, scaled, described)
    current = scaled.customers.assign(**{SEGMENT_ID: assigned[SEGMENT_ID].to_numpy()})
    if len(current) > DRIFT_SAMPLE:
        current = current.sample(n=DRIFT_SAMPLE, random_state=settings.seed)
    features = list(columns.feature_names)
    before = previous_customers(previous, features, at_most=DRIFT_SAMPLE, seed=settings.seed)
    features = [f for f in columns.feature_names if f in before.columns]
    drift = drift_table(before, current, features)
    write_table(drift, staging / "drift.parquet", Drift)
    record = drift_record(drift, {c.name: c.titled() for c in columns.features}, described.names)
    for sentence in record["sentences"]:
        get_run_logger().info("Drift since %s: %s", previous.run_id, sentence)
    return drift, record


@pipeline_task("quality-gates")
def quality_gates(
    described: Described,
    elbow: pd.DataFrame,
    choice: KChoice,
    run_id: str,
    settings: SegmentationSettings,
    drift: pd.DataFrame | None = None,
) -> None:
    """Fail the run, naming the gate and its figures, if a quality gate is breached."""
    breaches = gate_breaches(
        settings.gates,
        profiles=described.profiles,
        elbow=elbow,
        k=choice.k,
        changes=described.changes,
        drift=drift,
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
    fitted: Fitted,
    outcome: Outcome,
    run_plan: RunPlan,
    columns: ColumnPlan,
    seed: int,
    order_lines: dict | None = None,
) -> dict[str, bytes]:
    """Write the tables (each validated), the model, the plots and report.html into the run
    folder: the plots, medians, spreads and typical customers from the customers in memory
    (all of them, or a partitioned run's sample). ``order_lines``: a run on order lines' line
    accounting (``Derivation``'s ``manifest_record()``), shown in the data quality section."""
    scaled, described = fitted.scaled, outcome.described
    figures = plots.run_figures(
        outcome.elbow,
        outcome.choice,
        fitted.segmentation,
        described,
        rows=plots.PlottedRows(scaled.customers, scaled.values(), scaled.features.matrix),
        table=columns,
        seed=seed,
    )
    images = write_run_files(
        staging, described, outcome.elbow, fitted.cleaned.quarantine, figures, columns
    )
    sample = ReportSample(scaled.customers, fitted.engine.assigned(fitted.rows, scaled, described))
    html = run_report(
        run_id_of(staging),
        run_plan.source,
        fitted.cleaned,
        outcome,
        columns,
        images,
        sample=sample,
        order_lines=order_lines,
    )
    write_text(html, staging / REPORT)
    return images


@dataclass(frozen=True)
class Summary:
    """The run's summary artifact in the Prefect UI as publish-run created it: publish-db
    puts what it wrote into its database line."""

    artifact_id: UUID
    markdown: str


@pipeline_task("publish-run")
def publish(
    staging: Path,
    manifest: Manifest,
    described: Described,
    table: ColumnPlan,
    settings: SegmentationSettings,
    images: dict[str, bytes],
) -> tuple[dict, Summary]:
    """Write the manifest last, publish the run folder, point `latest` at it, add UI artifacts
    (the summary shows ``images``, the run's PNGs by file name); returns the manifest as a
    dict, with the published folder as its output folder, and the summary artifact. With
    ``publish_db`` the summary's database line says the history is being written (publish-db
    then says what it wrote)."""
    final = finish_run(staging, manifest.model_dump())
    record = manifest.model_copy(update={"output_folder": str(final)}).model_dump()
    database = None
    if settings.publish_db is not None:
        from tasks.store.membership_db import shown_url  # SQLAlchemy: only when asked for

        database = database_line(shown_url(settings.publish_db))
    markdown = summary_markdown(
        record, described.profiles, images, summary_means(table), database=database
    )
    summary = cast(  # sync in a task: the id, not a coroutine
        UUID,
        create_markdown_artifact(
            key=run_artifact_key("segmentation-summary", settings),
            markdown=markdown,
            description="Segments, chosen k, row accounting, changes since the previous run, plots",
        ),
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
    return record, Summary(summary, markdown)


@pipeline_task("publish-db")
def publish_db(record: dict, url: str, summary: Summary) -> dict:
    """After publish-run: the run's customers into the membership history of the database at
    ``url`` (``tasks.store.membership_db``), in one transaction; returns ``record`` with what
    was written (``published_db``) for the terminal summary, and puts it (or why nothing was)
    into ``summary``'s database line. A failed write raises ``PublishError``: the database is
    as it was and the run folder stays published."""
    from tasks.store.membership_db import publish_run, shown_url  # SQLAlchemy: only when asked

    database = shown_url(url)
    try:
        published = publish_run(url, Path(record["output_folder"]))  # logs what it wrote
    except PublishError as error:
        _say_in_summary(summary, database, str(error))
        raise
    _say_in_summary(summary, database, published.tables())
    return {**record, "published_db": published.summary()}


def _say_in_summary(summary: Summary, database: str, outcome: str) -> None:
    """Update the summary artifact in place (its key's latest version: no second version of
    it in the key's history) with ``outcome`` as its database line. An API failure here is a
    warning: the database is written (or the run fails for its own reason) either way."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactUpdate

    markdown = replace_database_line(summary.markdown, database, outcome)
    try:
        with get_client(sync_client=True) as client:
            client.update_artifact(summary.artifact_id, ArtifactUpdate(data=markdown))
    except Exception as error:  # noqa: BLE001 - a summary line is not worth failing the run
        get_run_logger().warning("The run's summary does not say what the database got: %s", error)


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
        settings=_recorded(settings),
        versions=package_versions(),
        transactions=order_lines,
        drift=outcome.drift,
    )


def _recorded(settings: SegmentationSettings) -> dict:
    """The settings as the manifest records them: a database URL without its password."""
    recorded = settings.model_dump(mode="json")
    if settings.publish_db is not None:
        from tasks.store.membership_db import shown_url

        recorded["publish_db"] = shown_url(settings.publish_db)
    return recorded
