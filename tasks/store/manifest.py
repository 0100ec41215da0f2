"""The run's manifest: what went in, what came out, and how the rows add up."""

from __future__ import annotations

import platform
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.elbow import KChoice
from tasks.ingest import PARQUET_SUFFIXES
from tasks.store.run_files import file_checksums, sha256_of

PACKAGES = (
    "prefect",
    "pandas",
    "pandera",
    "scikit-learn",
    "numpy",
    "matplotlib",
    "pyarrow",
)


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Versions of Python and the packages that shape a run's results."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def build_manifest(
    *,
    run_id: str,
    flow_run_id: str,
    started_at: str,
    output_folder: Path,
    source: Path,
    rows: dict[str, int],
    choice: KChoice,
    inertia: float,
    profiles: pd.DataFrame,
    features: list[str],
    changes: dict | None,
    timings: dict[str, float],
    settings: dict,
    table: dict | None = None,
    missing_filled: dict[str, int] | None = None,
    projection: Any = None,
) -> dict:
    """Everything a run records about itself; file checksums are added when it is published.

    ``table``: the resolved columns (id, features, profile columns, kinds, specs);
    ``missing_filled``: feature values filled with the median, per column; ``projection``: the
    PCA projection, if any (its explained variance is recorded).
    """
    return {
        "run_id": run_id,
        "flow_run_id": flow_run_id,
        "status": "complete",
        "started_at": started_at,
        "finished_at": utc_now(),
        "output_folder": str(output_folder),
        "input": input_record(source),
        "rows": rows,
        "k": {
            "chosen": choice.k,
            "rule": choice.rule,
            "reason": choice.reason,
            "knee": choice.knee,
        },
        "inertia": inertia,
        "segments": [
            {"id": int(p.segment_id), "name": p.segment_name, "size": int(p.size)}
            for p in profiles.itertuples()
        ],
        "features": features,
        "columns": table,
        "missing_filled": dict(missing_filled or {}),
        "pca": None
        if projection is None
        else {
            "components": len(projection.components),
            "explained_variance_ratio": [
                round(float(v), 6) for v in projection.explained_variance_ratio
            ],
            "explained_variance": round(float(projection.explained_variance_ratio.sum()), 6),
        },
        "changes": changes,
        "timings": timings,
        "settings": settings,
        "versions": package_versions(),
    }


def input_record(source: Path) -> dict:
    """Path, sha256 and size of the input file; for a folder of Parquet partition files, each
    file's."""
    if source.is_dir():
        files = file_checksums(source, PARQUET_SUFFIXES)
        total = sum(f["bytes"] for f in files.values())
        return {"path": str(source), "files": files, "bytes": total}
    return {"path": str(source), "sha256": sha256_of(source), "bytes": source.stat().st_size}


def new_run_id(suffix: str) -> str:
    """A sortable, unique run folder name: UTC time then a short unique suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{suffix[:8]}"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StepTimer:
    """Wall-clock seconds per named step; ``total`` covers the first start to the last end."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._first: float | None = None
        self._last: float | None = None

    @contextmanager
    def __call__(self, step: str):
        start = time.perf_counter()
        self._first = start if self._first is None else self._first
        try:
            yield
        finally:
            end = time.perf_counter()
            self.seconds[step] = round(self.seconds.get(step, 0.0) + end - start, 4)
            self._last = end

    def as_dict(self) -> dict[str, float]:
        if self._first is None or self._last is None:
            return {**self.seconds, "total": 0.0}
        total = self._last - self._first
        return {**self.seconds, "total": round(total, 4)}
