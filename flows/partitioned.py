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

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import flow

from flows.run_folder import (
    fails_without_persisting,
    flow_run_name,
    pipeline_task,
    run_id_for,
    staged_run,
    untagged_tasks,
)
from flows.runners import flow_dask_client
from flows.segmentation import (
    columns_of,
    pick_k,
    publish,
    quality_gates,
    run_manifest,
    sweep_on_workers,
)
from flows.settings import SegmentationSettings
from tasks import partitioned
from tasks.describe import Described, compared_previous, named_centroids
from tasks.elbow import KChoice
from tasks.fit import Segmentation
from tasks.identity import PreviousRun, changes_since, match_segments
from tasks.model import build_model
from tasks.partitioned import ClusterSpace, Partitions
from tasks.reporting import plots
from tasks.reporting.html_report import REPORT, run_report
from tasks.scale import ScaledFeatures, feature_frame
from tasks.store.history import load_previous_run
from tasks.store.manifest import StepTimer, utc_now
from tasks.store.run_files import run_id_of, write_run_files, write_text
from tasks.store.snapshots import first_data_file, partition_files
from tasks.table import Table

# Results stay in memory (Dask collections on the cluster): nothing hashed, nothing pickled.


@pipeline_task("resolve-columns")
def resolve_columns(settings: SegmentationSettings) -> tuple[tuple[Path, ...], Table]:
    """The partition files, and the columns resolved from the first file with data rows."""
    files = partition_files(settings.input)
    table = columns_of(first_data_file(files), settings)
    return files, table


@pipeline_task("load-previous-run")
def load_previous(settings: SegmentationSettings) -> PreviousRun | None:
    """The previous complete run's model; its segment files are read on the cluster."""
    return load_previous_run(settings.output_dir, assignments=False)


@pipeline_task("clean-partitions")
def clean(files: tuple[Path, ...], table: Table, settings: SegmentationSettings) -> Partitions:
    """Read and clean each Parquet file on the workers; duplicates found across files."""
    with flow_dask_client():
        parts = partitioned.clean_partitions(files, table, settings.max_quarantine_share)
        partitioned.check_features_vary(parts.customers, table)
        return parts


@pipeline_task("scale-features")
def scale(
    parts: Partitions, table: Table, settings: SegmentationSettings
) -> tuple[ClusterSpace, ScaledFeatures, pd.DataFrame]:
    """Transforms from statistics over all partitions; the seeded sample, scaled, for the
    sweep and the plots (and the sample's customers)."""
    with flow_dask_client():
        categories = partitioned.categories_of(parts.customers, table)
        sample = partitioned.draw_sample(parts.customers, settings.sweep.sample_size, settings.seed)
        rows = partitioned.fit_space(
            parts.customers, sample, table, categories, settings.scaler, settings.seed
        )
    space = ClusterSpace(table, categories, rows.transforms, rows.projection)
    return space, rows, sample


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
        centroids, inertia, n_iter = partitioned.fit_partitions(
            parts.customers,
            parts.sizes,
            space,
            rows.matrix,
            choice.k,
            seed=settings.seed,
            n_init=settings.n_init,
        )
    on_sample = partitioned.segmentation_of_sample(rows, centroids)
    return Segmentation(on_sample.labels, centroids, on_sample.distances, inertia, n_iter)


@pipeline_task("identify-segments")
def identify(
    staging: Path,
    parts: Partitions,
    space: ClusterSpace,
    rows: ScaledFeatures,
    sample: pd.DataFrame,
    segmentation: Segmentation,
    previous: PreviousRun | None,
    settings: SegmentationSettings,
) -> Described:
    """Stable ids and names (matched to the previous run), every customer's segment written
    per partition, profiles, transitions, the change summary and the model."""
    table = space.table
    identity = match_segments(
        segmentation.centroids, rows, previous, max_shift=settings.identity.max_shift
    )
    previous, restarted = compared_previous(previous, identity, rows.columns)
    values = feature_frame(sample, None, table, space.categories)
    centroids, names = named_centroids(values, rows, segmentation.centroids, identity, table)
    with flow_dask_client():
        labelled = partitioned.label_customers(
            parts.customers, space, segmentation.centroids, identity.ids, previous
        )
        partitioned.write_segments(labelled, names, table, staging)
        profiles = partitioned.profile_labelled(labelled, names, table)
        moves = partitioned.transitions_of(labelled)
        changes = restarted
        if previous is not None:
            changes = changes_since(
                previous.run_id,
                previous.model,
                partitioned.previous_sizes(previous),
                profiles.set_index("segment_id")["size"],
                moves,
                identity,
            )
        radii = partitioned.max_distances(labelled)  # over every customer, not the sample
    model = build_model(
        rows,
        segmentation,
        identity,
        names,
        list(table.feature_names),
        table,
        max_distances=radii,
    )
    return Described(identity, names, centroids, None, profiles, moves, changes, model)


@pipeline_task("write-report")
def write_report(
    staging: Path,
    parts: Partitions,
    rows: ScaledFeatures,
    sample: pd.DataFrame,
    elbow: pd.DataFrame,
    choice: KChoice,
    segmentation: Segmentation,
    described: Described,
    space: ClusterSpace,
    settings: SegmentationSettings,
) -> None:
    """Profiles, quarantine, elbow, transitions, model, plots (drawn from the sample) and
    report.html (medians, spreads and typical customers from the sample)."""
    identity = described.identity
    labels = identity.relabel(segmentation.labels)
    order = np.argsort(identity.ids)  # scaled centroids in segment-id order
    figures = plots.run_figures(
        elbow=elbow,
        chosen_k=choice.k,
        knee=choice.knee,
        values=space.values(sample),
        labels=labels,
        centroids=described.centroids,
        names=described.names,
        scaled=rows.matrix,
        scaled_centroids=segmentation.centroids[order],
        profiles=described.profiles,
        customers=sample,
        transitions=described.transitions,
        table=space.table,
        seed=settings.seed,
    )
    images = write_run_files(staging, described, elbow, parts.quarantine, figures)
    assigned = pd.DataFrame(
        {
            "customer_id": sample["customer_id"].to_numpy(),
            "segment_id": labels,
            "distance_to_centroid": segmentation.distances,
        }
    )
    html = run_report(
        run_id_of(staging), settings.input, parts, elbow, choice, described, space.table,
        images, population=sample, assigned=assigned,
    )  # fmt: skip
    write_text(html, staging / REPORT)


@flow(
    name="customer-segmentation-partitioned",
    flow_run_name=flow_run_name,  # segment-<run-id>, as the run folder
    log_prints=True,
    persist_result=False,
)
@fails_without_persisting  # a failed run writes no pickle of its exception either
def segment_partitioned(settings: SegmentationSettings) -> dict:
    """Segment a folder of Parquet partition files on Dask; returns the run's manifest."""
    with untagged_tasks():  # no tag-concurrency round trip before each task
        run_id = run_id_for(settings)  # the flow run's name is segment-<run-id>
        files, table = resolve_columns(settings)
        started, step = utc_now(), StepTimer()
        with staged_run(settings.output_dir, run_id, settings.input) as staging:
            previous = load_previous(settings)
            with step("clean"):
                parts = clean(files, table, settings)
            with step("scale"):
                space, rows, sample = scale(parts, table, settings)
            with step("elbow"):
                elbow = sweep_on_workers(rows.matrix, settings)
                choice = pick_k(elbow, previous, settings, rows.columns)
            with step("fit"):
                segmentation = final_fit(parts, space, rows, choice, settings)
            with step("identify"):
                described = identify(
                    staging, parts, space, rows, sample, segmentation, previous, settings
                )
                moved_share = (described.changes or {}).get("moved_share")
                quality_gates(described.profiles, moved_share, elbow, choice, run_id, settings)
            with step("report"):
                write_report(
                    staging,
                    parts,
                    rows,
                    sample,
                    elbow,
                    choice,
                    segmentation,
                    described,
                    space,
                    settings,
                )
            manifest = run_manifest(
                settings,
                run_id,
                started,
                step,
                settings.input,
                parts,
                choice,
                segmentation,
                described,
                rows,
                table,
            )
            return publish(staging, manifest, described, table, settings)
