"""The run's manifest: what went in, what came out, and how the rows add up.

``Manifest`` is the typed record; its ``model_dump()`` is the manifest.json a run writes (file
checksums are added when the run is published) and the dict a flow returns.
"""

from __future__ import annotations

import platform
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

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


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class InputFile(_Record):
    """The input file: path, sha256 and size."""

    path: str
    sha256: str
    bytes: int


class InputFolder(_Record):
    """A folder of Parquet partition files: each file's sha256 and size, and their total."""

    path: str
    files: dict[str, dict[str, Any]]
    bytes: int


class KRecord(_Record):
    """The chosen k, the rule that chose it and why, and the knee (if any)."""

    chosen: int
    rule: str
    reason: str
    knee: int | None

    @classmethod
    def of(cls, choice: KChoice) -> KRecord:
        return cls(chosen=choice.k, rule=choice.rule, reason=choice.reason, knee=choice.knee)


class SegmentRecord(_Record):
    id: int
    name: str
    size: int


class PcaRecord(_Record):
    """A PCA projection's components and explained variance (each ratio to 6 decimals)."""

    components: int
    explained_variance_ratio: list[float]
    explained_variance: float

    @classmethod
    def of(cls, projection: Any) -> PcaRecord | None:
        if projection is None:
            return None
        ratios = projection.explained_variance_ratio
        return cls(
            components=len(projection.components),
            explained_variance_ratio=[round(float(v), 6) for v in ratios],
            explained_variance=round(float(ratios.sum()), 6),
        )


class Manifest(_Record):
    """Everything a run records about itself (file checksums are added when it is published).

    ``columns``: the resolved columns (id, features, profile columns, kinds, specs);
    ``missing_filled``: feature values filled with the median, per column; ``pca``: the PCA
    projection's explained variance, if any; ``transactions``: a run on order lines' line
    accounting (left out of the JSON for a customer table); ``drift``: the drift since the
    previous run in words and per feature (``tasks.drift.drift_record``; left out in a first
    run).
    """

    run_id: str
    flow_run_id: str
    status: Literal["complete"] = "complete"
    started_at: str
    finished_at: str
    output_folder: str
    input: InputFile | InputFolder
    rows: dict[str, int]
    k: KRecord
    inertia: float
    segments: list[SegmentRecord]
    features: list[str]
    columns: dict[str, Any] | None
    missing_filled: dict[str, int]
    pca: PcaRecord | None
    changes: dict[str, Any] | None
    timings: dict[str, float]
    settings: dict[str, Any]
    versions: dict[str, str]
    transactions: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for optional in ("transactions", "drift"):
            if data.get(optional) is None:
                data.pop(optional, None)
        return data


def segment_records(profiles: pd.DataFrame) -> list[SegmentRecord]:
    """Each segment's id, name and size, from the profiles table."""
    return [
        SegmentRecord(id=int(p.segment_id), name=p.segment_name, size=int(p.size))
        for p in profiles.itertuples()
    ]


def input_record(source: Path) -> InputFile | InputFolder:
    """Path, sha256 and size of the input file; for a folder of Parquet partition files, each
    file's."""
    if source.is_dir():
        files = file_checksums(source, PARQUET_SUFFIXES)
        total = sum(f["bytes"] for f in files.values())
        return InputFolder(path=str(source), files=files, bytes=total)
    return InputFile(path=str(source), sha256=sha256_of(source), bytes=source.stat().st_size)


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
