"""The segmentation flow for a folder of Parquet partition files, run on a Dask cluster.

Same steps and outputs as ``flows.segmentation`` where they carry over: clean (every row kept,
quarantined or counted as a duplicate), scale over all rows, elbow sweep on a seeded sample
(one task per k on the workers), the k rule, the final K-Means over all partitions (dask-ml),
then a run folder with one ``segments-NNNNN.parquet`` per partition, ``profiles.parquet``,
``quarantine.parquet``, ``elbow.parquet``, ``model.json``, plots and the manifest last.
Segment ids are 1..k in canonical order: matching them to the previous run's is done by the
in-memory flow only.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.run_folder import (
    fails_without_persisting,
    flow_run_name,
    run_artifact_key,
    run_id_for,
    staged_run,
)
from flows.runners import flow_dask_client
from flows.segmentation import pick_k, quality_gates, sweep_on_workers
from flows.settings import SegmentationSettings
from schemas.outputs import Elbow, Profiles, Quarantine
from tasks import partitioned, plots
from tasks.artifacts import summary_markdown
from tasks.elbow import KChoice
from tasks.fit import Segmentation
from tasks.manifest import StepTimer, build_manifest, utc_now
from tasks.model import build_model, model_to_json
from tasks.partitioned import Partitions
from tasks.profile import name_segments
from tasks.report import finish_run, write_png, write_table, write_text
from tasks.scale import DEFAULT_FEATURES, FeatureTransform, ScaledFeatures

# Results stay in memory (Dask collections on the cluster): nothing hashed, nothing pickled.
_TASK = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="clean-partitions", **_TASK)
def clean(settings: SegmentationSettings) -> Partitions:
    """Read and clean each Parquet file on the workers; duplicates found across files."""
    files = partitioned.partition_files(settings.input)
    with flow_dask_client():
        return partitioned.clean_partitions(
            files, settings.columns or None, settings.max_quarantine_share
        )


@task(name="scale-features", **_TASK)
def scale(parts: Partitions, settings: SegmentationSettings) -> tuple[FeatureTransform, ...]:
    """The scaler's parameters over all rows of all partitions."""
    with flow_dask_client():
        return partitioned.fit_transforms_dask(
            parts.customers, _features(settings), settings.scaler
        )


@task(name="sample-for-sweep", **_TASK)
def sample(
    parts: Partitions, transforms: tuple[FeatureTransform, ...], settings: SegmentationSettings
) -> ScaledFeatures:
    """A seeded sample of ``sample_size`` customers, scaled: what the elbow sweep sees."""
    with flow_dask_client():
        return partitioned.sample_scaled(
            parts.customers,
            _features(settings),
            transforms,
            settings.sample_size,
            settings.seed,
            settings.scaler,
        )


@task(name="final-fit", **_TASK)
def final_fit(
    parts: Partitions, rows: ScaledFeatures, choice: KChoice, settings: SegmentationSettings
) -> Segmentation:
    """dask-ml K-Means over all partitions from the sample's best centroids."""
    with flow_dask_client():
        centroids, inertia, n_iter = partitioned.fit_partitions(
            parts,
            _features(settings),
            rows.transforms,
            rows.matrix,
            choice.k,
            seed=settings.seed,
            n_init=settings.n_init,
        )
    on_sample = partitioned.segmentation_of_sample(rows, centroids)
    return Segmentation(on_sample.labels, centroids, on_sample.distances, inertia, n_iter)


@task(name="write-report", **_TASK)
def write_report(
    staging: Path,
    parts: Partitions,
    rows: ScaledFeatures,
    elbow: pd.DataFrame,
    choice: KChoice,
    segmentation: Segmentation,
    settings: SegmentationSettings,
) -> pd.DataFrame:
    """Segments per partition (written by the workers), profiles, quarantine, elbow, model,
    plots (drawn from the sample). Returns the profiles."""
    transforms = rows.transforms
    centroids = pd.DataFrame(
        {t.column: t.invert(segmentation.centroids[:, j]) for j, t in enumerate(transforms)},
        index=pd.Index(range(1, segmentation.k + 1), name="segment_id"),
    )
    sample_values = pd.DataFrame(
        {t.column: t.invert(rows.matrix[:, j]) for j, t in enumerate(transforms)}
    )
    names = name_segments(centroids, sample_values)
    with flow_dask_client():
        partitioned.write_segments(
            parts, _features(settings), transforms, segmentation.centroids, names, staging
        )
        profiles = partitioned.profile_partitions(
            parts, _features(settings), transforms, segmentation.centroids, names
        )
    write_table(profiles, staging / "profiles.parquet", Profiles)
    write_table(parts.quarantine, staging / "quarantine.parquet", Quarantine)
    write_table(elbow, staging / "elbow.parquet", Elbow)
    model = build_model(rows, segmentation, None, names, _features(settings))
    write_text(model_to_json(model), staging / "model.json")
    figures = {
        "elbow.png": plots.plot_elbow(elbow, choice.k, choice.knee),
        "segments.png": plots.plot_segments(
            sample_values,
            segmentation.labels,
            centroids,
            names,
            scaled=rows.matrix,
            scaled_centroids=segmentation.centroids,
            seed=settings.seed,
        ),
        "profiles.png": plots.plot_profiles(profiles),
    }
    for name, figure in figures.items():
        write_png(figure, staging / name)
    return profiles


@task(name="publish-run", **_TASK)
def publish(
    staging: Path, manifest: dict, profiles: pd.DataFrame, settings: SegmentationSettings
) -> dict:
    """Write the manifest last, publish the run folder, point `latest` at it."""
    final = finish_run(staging, manifest)
    manifest = {**manifest, "output_folder": str(final)}
    images = {name: (final / name).read_bytes() for name in ("elbow.png", "segments.png")}
    create_markdown_artifact(
        key=run_artifact_key("segmentation-summary", settings),
        markdown=summary_markdown(manifest, profiles, images),
        description="Segments, chosen k, row accounting and plots (partitioned input on Dask)",
    )
    return manifest


@flow(
    name="customer-segmentation-partitioned",
    flow_run_name=flow_run_name,  # segment-<run-id>, as the run folder
    log_prints=True,
    persist_result=False,
)
@fails_without_persisting  # a failed run writes no pickle of its exception either
def segment_partitioned(settings: SegmentationSettings) -> dict:
    """Segment a folder of Parquet partition files on Dask; returns the run's manifest."""
    run_id = run_id_for(settings)  # the flow run's name is segment-<run-id>
    started, step = utc_now(), StepTimer()
    with staged_run(settings.output_dir, run_id, settings.input) as staging:
        with step("clean"):
            parts = clean(settings)
        with step("scale"):
            transforms = scale(parts, settings)
            rows = sample(parts, transforms, settings)
        with step("elbow"):
            elbow = sweep_on_workers(rows.matrix, settings)
            choice = pick_k(elbow, None, settings)
        with step("fit"):
            segmentation = final_fit(parts, rows, choice, settings)
        with step("report"):
            profiles = write_report(staging, parts, rows, elbow, choice, segmentation, settings)
            quality_gates(profiles, None, elbow, choice, run_id, settings)
        manifest = build_manifest(
            run_id=run_id,
            flow_run_id=str(flow_run.get_id()),
            started_at=started,
            output_folder=settings.output_dir / "runs" / run_id,
            source=settings.input,
            rows=parts.accounting(),
            choice=choice,
            inertia=segmentation.inertia,
            profiles=profiles,
            features=list(rows.columns),
            changes=None,
            timings=step.as_dict(),
            settings=settings.model_dump(mode="json"),
        )
        return publish(staging, manifest, profiles, settings)


def _features(settings: SegmentationSettings) -> list[str]:
    """The partitioned path segments Mall-like files: the canonical feature names."""
    return list(settings.features or DEFAULT_FEATURES)
