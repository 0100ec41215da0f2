"""Typed settings of a segmentation run: the flow's one parameter."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.spec import Missing
from tasks.gates import Gates

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = PROJECT_ROOT / "data" / "customers.csv"
DEFAULT_OUTPUT = PROJECT_ROOT / "outputs"
DEFAULT_SNAPSHOTS = (
    PROJECT_ROOT / "data" / "snapshots"
)  # written by `segment sample-data --snapshots`

Scaler = Literal["standard", "robust", "minmax", "log-standard"]
Runner = Literal["local", "dask"]


class SegmentationSettings(BaseModel):
    """Everything a run depends on. Defaults reproduce the classic Mall-customers recipe."""

    model_config = ConfigDict(extra="forbid")

    input: Path = Field(
        DEFAULT_INPUT,
        description="customer file (CSV or Parquet), or a folder of dated snapshots "
        "(customers_YYYY-MM-DD.csv): the newest one up to as_of is used",
    )
    as_of: date | None = Field(
        None,
        description="with a snapshot folder: use the newest snapshot on or before this date; "
        "with transactions: also the snapshot date of recency (lines on or after it left out)",
    )
    transactions: bool = Field(
        False,
        description="the input is order lines: derive recency, frequency and monetary value "
        "per customer (tasks/transactions.py), then segment that table",
    )
    date_format: str | None = Field(
        None,
        description="with transactions: the order dates' format (strftime codes, e.g. "
        "'%d/%m/%Y %H:%M'); unset: ISO, day-first or month-first, read from the dates",
    )
    output_dir: Path = Field(DEFAULT_OUTPUT, description="runs go to <output_dir>/runs/<run-id>/")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="canonical column -> header in the file, e.g. {'annual_income': 'Income'}; "
        "unset columns are found by their common spellings",
    )
    sep: str | None = Field(None, description="field separator; sniffed when unset")
    spec: Path | None = Field(
        None,
        description="segmentation spec (TOML): roles, kinds, labels, checks and transforms of "
        "the columns; unset: the Mall preset for a Mall-like file, else every numeric column",
    )
    features: list[str] | None = Field(
        None,
        min_length=1,
        description="columns to cluster on, by their header ('numeric': every numeric column "
        "except the id and profile columns); unset: the spec's",
    )
    profile: list[str] | None = Field(
        None, description="columns described per segment but not clustered on"
    )
    id_column: str | None = Field(
        None,
        description="header of the customer id ('none': no id, customers are numbered by row); "
        "unset: found by common spellings",
    )
    missing: Missing | None = Field(
        None,
        description="a missing feature value: quarantine the row, or fill the column median",
    )
    pca: float | None = Field(
        None,
        gt=0,
        description="PCA before K-Means: N components (N >= 1) or the share of variance (< 1)",
    )
    scaler: Scaler = Field("standard", description="feature scaling before K-Means")
    k: int | None = Field(
        None, ge=1, description="fix the number of segments (skips the elbow rule)"
    )
    k_sweep_min: int = Field(1, ge=1, description="smallest k of the elbow sweep")
    k_sweep_max: int = Field(10, ge=2, description="largest k of the elbow sweep")
    k_min: int | None = Field(None, ge=2, description="smallest k the elbow rule may choose")
    k_max: int | None = Field(None, ge=2, description="largest k the elbow rule may choose")
    min_segment_share: float = Field(
        0.0, ge=0, lt=1, description="each segment must hold at least this share of customers"
    )
    n_init: int = Field(10, ge=1, description="K-Means restarts (final fit and sweep)")
    seed: int = Field(42, description="random seed of every random step")
    n_jobs: int = Field(-1, description="parallel k fits in the sweep (-1: all cores, 1: serial)")
    sample_threshold: int = Field(
        200_000,
        ge=1_000,
        description="above this many customers the elbow sweep runs on a seeded sample and the "
        "final K-Means on all rows starts from the sample's centroids",
    )
    sample_size: int = Field(100_000, ge=1_000, description="rows in that sample")
    silhouette_sample: int = Field(
        1_000, ge=100, description="rows sampled (seeded) for the silhouette score"
    )
    k_margin: float = Field(
        0.05,
        ge=0,
        description="keep the previous run's k unless another k's silhouette is higher by this",
    )
    identity_max_shift: float = Field(
        0.5,
        gt=0,
        description="a centroid within this distance (scaled units) of a previous run's keeps "
        "that segment's id and name",
    )
    gate_min_segment_share: float | None = Field(
        0.01, ge=0, lt=1, description="quality gate: fail if a segment is smaller (None: off)"
    )
    gate_silhouette_floor: float | None = Field(
        0.2, ge=-1, le=1, description="quality gate: fail if silhouette is lower (None: off)"
    )
    gate_max_moved_share: float | None = Field(
        0.25,
        ge=0,
        le=1,
        description="quality gate: fail if more returning customers changed segment (None: off)",
    )
    max_quarantine_share: float = Field(
        0.2, ge=0, le=1, description="fail the run when more rows than this share are quarantined"
    )
    runner: Runner = Field(
        "local",
        description="local: this process (threads for the elbow sweep); dask: Prefect's "
        "DaskTaskRunner, the sweep's k values fanned out over Dask workers, and a folder of "
        "Parquet files cleaned and fitted partition by partition (dask-ml K-Means)",
    )
    dask_address: str | None = Field(
        None,
        description="with runner=dask: scheduler address of an existing Dask cluster, e.g. "
        "tcp://10.0.0.5:8786 (unset: a temporary LocalCluster on 127.0.0.1)",
    )
    dask_workers: int = Field(
        2, ge=1, description="with runner=dask and no address: worker processes of the LocalCluster"
    )
    run_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",  # one plain folder name: never leaves runs/
        max_length=200,
        description="name of the run folder",
    )
    read_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="retries of reading the input after a transient I/O error (timeout, "
        "EIO, EAGAIN, ...); bad data is never retried",
    )
    read_retry_delay: float = Field(
        1.0,
        ge=0,
        le=300,
        description="seconds to wait before each retry of reading the input",
    )

    @model_validator(mode="after")
    def _check_ranges(self) -> SegmentationSettings:
        if self.k_sweep_min > self.k_sweep_max:
            raise ValueError(f"k_sweep_min={self.k_sweep_min} > k_sweep_max={self.k_sweep_max}")
        if self.k_min is not None and self.k_max is not None and self.k_min > self.k_max:
            raise ValueError(f"k_min={self.k_min} > k_max={self.k_max}")
        if self.sample_size > self.sample_threshold:
            raise ValueError(
                f"sample_size={self.sample_size} > sample_threshold={self.sample_threshold}"
            )
        if self.features and len(set(self.features)) != len(self.features):
            raise ValueError(f"features listed twice: {self.features}")
        return self

    def column_choices(self) -> dict:
        """The column choices given on the command line (None: not given), for
        ``tasks.ingest.table_for_file``."""
        return {
            "features": self.features,
            "profile": self.profile,
            "id_column": self.id_column,
            "missing": self.missing,
            "pca": self.pca,
        }

    def order_fields(self) -> dict[str, str]:
        """With transactions: order-line field -> header given on the command line
        (``--column``, and ``--id-column`` as the customer id)."""
        given = {"customer_id": self.id_column} if self.id_column else {}
        return given | self.columns

    def k_beyond(self, count: int, what: str, *, options: bool = False) -> str | None:
        """Why ``k``, ``k_min`` or ``k_max`` cannot work with at most ``count`` customers (k
        segments need at least k of them), or None. ``what`` says what ``count`` counts;
        ``options``: name the command-line options (``--k-max``) rather than the fields."""
        for name in ("k", "k_min", "k_max"):
            k = getattr(self, name)
            if k is not None and k > count:
                shown = f"--{name.replace('_', '-')} {k}" if options else f"{name}={k}"
                return (
                    f"{shown} asks for more segments than {what} ({count:,}); use at most {count:,}"
                )
        return None

    @property
    def gates(self) -> Gates:
        return Gates(
            min_segment_share=self.gate_min_segment_share,
            silhouette_floor=self.gate_silhouette_floor,
            max_moved_share=self.gate_max_moved_share,
        )

    @property
    def k_values(self) -> range:
        """The k values of the sweep, widened to include a fixed k."""
        high = max(self.k_sweep_max, self.k or 0)
        return range(self.k_sweep_min, high + 1)
