"""The segmentation flow for a folder of Parquet partition files, run on a Dask cluster.

The in-memory flow's steps and outputs, on the same core: the columns resolved from the first
file with data (spec, presets and command-line choices as for one file), every partition
cleaned by the same function (every row kept, quarantined or counted as a duplicate), scaling
from statistics combined over all partitions, the elbow sweep on a seeded sample (one task per
k on the workers), the k rule, the final K-Means over all partitions (dask-ml), stable segment
ids matched to the previous run, transitions, the quality gates, then a run folder with one
``segments-NNNNN.parquet`` per partition and the same tables, model, plots (drawn from the
sample), manifest and Prefect artifacts as an in-memory run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from flows.run_folder import (
    configure_run_logging,
    pipeline_task,
    run_id_for,
    segmentation_flow,
    staged_run,
    untagged_tasks,
)
from flows.segmentation import (
    RunStart,
    columns_of,
    load_previous,
    pick_k,
    publish,
    quality_gates,
    run_manifest,
    sweep_on_workers,
)
from flows.settings import SegmentationSettings
from tasks import partitioned
from tasks.describe import Described, FittedRows, Outcome, clustered_on
from tasks.elbow import KChoice
from tasks.fit import Segmentation
from tasks.identity import PreviousRun
from tasks.partitioned import ClusterSpace, Partitions
from tasks.reporting import plots
from tasks.reporting.html_report import REPORT, ReportSample, run_report
from tasks.scale import ScaledFeatures
from tasks.store.run_files import run_id_of, write_run_files, write_text
from tasks.store.snapshots import first_data_file, partition_files
from tasks.table import ColumnPlan

# Results stay in memory (Dask collections on the cluster): nothing hashed, nothing pickled.


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


@pipeline_task("resolve-columns")
def resolve_columns(settings: SegmentationSettings) -> tuple[tuple[Path, ...], ColumnPlan]:
    """The partition files, and the columns resolved from the first file with data rows."""
    files = partition_files(settings.input)
    table = columns_of(first_data_file(files), settings)
    return files, table


@pipeline_task("clean-partitions")
def clean(files: tuple[Path, ...], table: ColumnPlan, settings: SegmentationSettings) -> Partitions:
    """Read and clean each Parquet file on the workers; duplicates found across files."""
    with flow_dask_client():
        parts = partitioned.clean_partitions(files, table, settings.max_quarantine_share)
        partitioned.check_features_vary(parts.customers, table)
        return parts


@pipeline_task("scale-features")
def scale(
    parts: Partitions, table: ColumnPlan, settings: SegmentationSettings
) -> tuple[ClusterSpace, ScaledFeatures, pd.DataFrame]:
    """Transforms from statistics over all partitions; the seeded sample, scaled, for the
    sweep and the plots (and the sample's customers)."""
    with flow_dask_client():
        return partitioned.fit_space(
            parts.customers,
            table,
            settings.scaler,
            size=settings.sweep.sample_size,
            seed=settings.seed,
        )


@pipeline_task("final-fit")
def final_fit(
    parts: Partitions,
    space: ClusterSpace,
    rows: ScaledFeatures,
    choice: KChoice,
    settings: SegmentationSettings,
) -> Segmentation:
    """dask-ml K-Means over all partitions from the sample's best centroids."""
    with flow_dask_client():
        return partitioned.fit_partitions(
            parts, space, rows.matrix, choice.k, seed=settings.seed, n_init=settings.n_init
        )


@pipeline_task("identify-segments")
def identify(
    staging: Path,
    parts: Partitions,
    space: ClusterSpace,
    fitted: FittedRows,
    sample: pd.DataFrame,
    previous: PreviousRun | None,
    settings: SegmentationSettings,
) -> Described:
    """Stable ids and names (matched to the previous run), every customer's segment written
    per partition, profiles, transitions, the change summary and the model."""
    with flow_dask_client():
        return partitioned.describe_partitions(
            parts.customers,
            space,
            fitted,
            sample,
            previous,
            staging,
            max_shift=settings.identity.max_shift,
            seed=settings.seed,
        )


@pipeline_task("write-report")
def write_report(
    staging: Path,
    parts: Partitions,
    sample: pd.DataFrame,
    outcome: Outcome,
    space: ClusterSpace,
    settings: SegmentationSettings,
) -> dict[str, bytes]:
    """Profiles, quarantine, elbow, transitions, model, plots (drawn from the sample) and
    report.html (medians, spreads and typical customers from the sample)."""
    segmentation, described = outcome.fitted.segmentation, outcome.described
    figures = plots.run_figures(
        outcome.elbow,
        outcome.choice,
        segmentation,
        described,
        rows=plots.PlottedRows(sample, space.values(sample), outcome.fitted.scaled.matrix),
        table=space.table,
        seed=settings.seed,
    )
    images = write_run_files(
        staging, described, outcome.elbow, parts.quarantine, figures, space.table
    )
    assigned = pd.DataFrame(
        {
            "customer_id": sample["customer_id"].to_numpy(),
            "segment_id": described.identity.relabel(segmentation.labels),
            "distance_to_centroid": segmentation.distances,
        }
    )
    html = run_report(
        run_id_of(staging), settings.input, parts, outcome, space.table, images,
        sample=ReportSample(sample, assigned),
    )  # fmt: skip
    write_text(html, staging / REPORT)
    return images


@segmentation_flow("customer-segmentation-partitioned")
def segment_partitioned(settings: SegmentationSettings) -> dict:
    """Segment a folder of Parquet partition files on Dask; returns the run's manifest."""
    configure_run_logging()
    with untagged_tasks():  # no tag-concurrency round trip before each task
        run_id = run_id_for(settings)  # the flow run's name is segment-<run-id>
        files, table = resolve_columns(settings)
        run = RunStart(settings, run_id, settings.input)
        step = run.step
        with staged_run(settings.output_dir, run_id, settings.input) as staging:
            # the previous run's model; its segment files are read on the cluster
            previous = load_previous(settings.output_dir, assignments=False)
            with step("clean"):
                parts = clean(files, table, settings)
            with step("scale"):
                space, rows, sample = scale(parts, table, settings)
            with step("elbow"):
                elbow = sweep_on_workers(rows.matrix, settings)
                choice = pick_k(elbow, previous, settings, clustered_on(rows.transforms))
            with step("fit"):
                segmentation = final_fit(parts, space, rows, choice, settings)
            with step("identify"):
                fitted = FittedRows(rows, segmentation)
                described = identify(staging, parts, space, fitted, sample, previous, settings)
                quality_gates(described, elbow, choice, run_id, settings)
            outcome = Outcome(fitted, elbow, choice, described)
            with step("report"):
                images = write_report(staging, parts, sample, outcome, space, settings)
            manifest = run_manifest(run, parts, outcome, table)
            return publish(staging, manifest, described, table, settings, images)
