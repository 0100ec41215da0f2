"""The segmentation flow: ingest -> validate & clean -> scale -> elbow -> fit -> report."""

from __future__ import annotations

import logging

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.settings import SegmentationSettings
from schemas.outputs import Elbow, Profiles, Quarantine, Segments
from tasks import plots
from tasks.artifacts import profiles_records, summary_markdown
from tasks.clean import CleanResult, clean_customers
from tasks.elbow import KChoice, choose_k, sweep_k
from tasks.errors import InputError
from tasks.fit import Segmentation, fit_segments
from tasks.ingest import file_sha256, read_customers
from tasks.manifest import StepTimer, new_run_id, package_versions, utc_now
from tasks.model import build_model, model_to_json
from tasks.profile import name_segments, profile_segments, segment_table
from tasks.report import abandon_run, finish_run, start_run, write_png, write_table, write_text
from tasks.scale import ScaledFeatures, feature_frame, scale_features

# The task modules log with the standard library; with PREFECT_LOGGING_EXTRA_LOGGERS=tasks
# (set by the CLI and prefect.toml) their INFO lines reach the run's log in the Prefect UI.
logging.getLogger("tasks").setLevel(logging.INFO)


class _NoTracebackForBadInput(logging.Filter):
    """Bad input is the user's to fix, not a bug: log its one-line message, not a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], InputError):
            record.exc_info = None
            record.exc_text = None
        return True


for _name in ("prefect.flow_runs", "prefect.task_runs"):
    logging.getLogger(_name).addFilter(_NoTracebackForBadInput())

# Results stay in memory: no input hashing of large frames, nothing pickled to disk.
_TASK = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="ingest", **_TASK)
def ingest(settings: SegmentationSettings, staging) -> pd.DataFrame:
    """Read the customer file and keep a raw Parquet copy in the run folder."""
    raw = read_customers(settings.input, settings.columns or None, settings.sep)
    write_table(raw, staging / "raw.parquet")
    return raw


@task(name="validate-and-clean", **_TASK)
def clean(raw: pd.DataFrame, settings: SegmentationSettings) -> CleanResult:
    """Drop duplicates, quarantine invalid rows with reasons, return typed customers."""
    return clean_customers(
        raw, source=str(settings.input), max_quarantine_share=settings.max_quarantine_share
    )


@task(name="scale-features", **_TASK)
def scale(customers: pd.DataFrame, settings: SegmentationSettings) -> ScaledFeatures:
    """Select and scale the clustering features."""
    return scale_features(customers, settings.features, settings.scaler)


@task(name="elbow-sweep", **_TASK)
def elbow_sweep(scaled: ScaledFeatures, settings: SegmentationSettings) -> pd.DataFrame:
    """Inertia and quality metrics for each k of the sweep."""
    return sweep_k(
        scaled.matrix,
        settings.k_values,
        seed=settings.seed,
        n_init=settings.n_init,
        silhouette_sample=settings.silhouette_sample,
        n_jobs=settings.n_jobs,
    )


@task(name="choose-k", **_TASK)
def pick_k(elbow: pd.DataFrame, settings: SegmentationSettings) -> KChoice:
    """Apply the k rule: fixed k, Kneedle knee within bounds, or best silhouette."""
    choice = choose_k(
        elbow,
        fixed_k=settings.k,
        k_min=settings.k_min,
        k_max=settings.k_max,
        min_segment_share=settings.min_segment_share,
    )
    get_run_logger().info("Chose k=%d by rule %r: %s", choice.k, choice.rule, choice.reason)
    return choice


@task(name="final-fit", **_TASK)
def final_fit(
    scaled: ScaledFeatures, choice: KChoice, settings: SegmentationSettings
) -> Segmentation:
    """K-Means with k-means++ and n_init restarts, segments numbered canonically."""
    return fit_segments(scaled.matrix, choice.k, seed=settings.seed, n_init=settings.n_init)


@task(name="write-report", **_TASK)
def write_report(
    staging,
    cleaned: CleanResult,
    scaled: ScaledFeatures,
    elbow: pd.DataFrame,
    choice: KChoice,
    segmentation: Segmentation,
    settings: SegmentationSettings,
) -> pd.DataFrame:
    """Name and profile the segments; write tables, model and plots; return the profiles."""
    customers = cleaned.customers
    values = feature_frame(customers, settings.features)
    centroids = pd.DataFrame(
        {t.column: t.invert(segmentation.centroids[:, j]) for j, t in enumerate(scaled.transforms)},
        index=pd.RangeIndex(1, segmentation.k + 1, name="segment_id"),
    )
    names = name_segments(centroids, values)
    profiles = profile_segments(customers, segmentation.labels, names)
    segments = segment_table(customers, segmentation.labels, segmentation.distances, names)

    write_table(segments, staging / "segments.parquet", Segments)
    write_table(profiles, staging / "profiles.parquet", Profiles)
    write_table(elbow, staging / "elbow.parquet", Elbow)
    write_table(cleaned.quarantine, staging / "quarantine.parquet", Quarantine)
    write_text(
        model_to_json(build_model(scaled, segmentation, names, settings.features)),
        staging / "model.json",
    )
    figures = {
        "elbow.png": plots.plot_elbow(elbow, choice.k, choice.knee),
        "segments.png": plots.plot_segments(
            values,
            segmentation.labels,
            centroids,
            names,
            scaled=scaled.matrix,
            scaled_centroids=segmentation.centroids,
            seed=settings.seed,
        ),
        "profiles.png": plots.plot_profiles(profiles),
        "eda.png": plots.plot_eda(customers),
    }
    for name, figure in figures.items():
        write_png(figure, staging / name)
    return profiles


@task(name="publish-run", **_TASK)
def publish(staging, manifest: dict, profiles: pd.DataFrame) -> dict:
    """Write the manifest last, publish the run folder, point `latest` at it, add UI artifacts."""
    final = finish_run(staging, manifest)
    manifest = {**manifest, "output_folder": str(final)}
    create_markdown_artifact(
        key="segmentation-summary",
        markdown=summary_markdown(manifest, profiles),
        description="Segments, chosen k, row accounting, output folder",
    )
    create_table_artifact(
        key="segment-profiles",
        table=profiles_records(profiles),
        description="Per-segment size, share and feature means/medians (original units)",
    )
    return manifest


@flow(name="customer-segmentation", log_prints=True)
def segment_customers(settings: SegmentationSettings | None = None) -> dict:
    """Segment the customers in ``settings.input``; returns the run's manifest."""
    settings = settings or SegmentationSettings()
    run_id = settings.run_id or new_run_id(str(flow_run.get_id() or "local"))
    staging = start_run(settings.output_dir, run_id)
    started, step = utc_now(), StepTimer()
    try:
        with step("ingest"):
            raw = ingest(settings, staging)
        with step("clean"):
            cleaned = clean(raw, settings)
        with step("scale"):
            scaled = scale(cleaned.customers, settings)
        with step("elbow"):
            elbow = elbow_sweep(scaled, settings)
            choice = pick_k(elbow, settings)
        with step("fit"):
            segmentation = final_fit(scaled, choice, settings)
        with step("report"):
            profiles = write_report(staging, cleaned, scaled, elbow, choice, segmentation, settings)
        manifest = {
            "run_id": run_id,
            "flow_run_id": str(flow_run.get_id()),
            "status": "complete",
            "started_at": started,
            "finished_at": utc_now(),
            "output_folder": str(settings.output_dir / "runs" / run_id),
            "input": {
                "path": str(settings.input),
                "sha256": file_sha256(settings.input),
                "bytes": settings.input.stat().st_size,
            },
            "rows": cleaned.accounting(),
            "k": {
                "chosen": choice.k,
                "rule": choice.rule,
                "reason": choice.reason,
                "knee": choice.knee,
            },
            "inertia": segmentation.inertia,
            "segments": [
                {"id": int(p.segment_id), "name": p.segment_name, "size": int(p.size)}
                for p in profiles.itertuples()
            ],
            "features": list(scaled.columns),
            "timings": step.as_dict(),
            "settings": settings.model_dump(mode="json"),
            "versions": package_versions(),
        }
        return publish(staging, manifest, profiles)
    except BaseException:
        abandon_run(staging)
        raise
