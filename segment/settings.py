"""Typed settings of a segmentation run: the flow's one parameter."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.spec import Missing, load_spec
from tasks.gates import Gates

if TYPE_CHECKING:
    from tasks.table import ColumnPlan


@dataclass(frozen=True)
class Option:
    """How one settings field appears on the command line (every part optional)."""

    flag: str | None = None  # default: --<prefix>-<field-name>
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # text -> value (argparse ``type``)
    prefix: str | None = None  # on a nested model field: the prefix of its fields' flags


PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = PROJECT_ROOT / "data" / "customers.csv"
DEFAULT_OUTPUT = PROJECT_ROOT / "outputs"
# written by `segment sample-data --snapshots`
DEFAULT_SNAPSHOTS = PROJECT_ROOT / "data" / "snapshots"

Scaler = Literal["standard", "robust", "minmax", "log-standard"]
Runner = Literal["local", "dask"]


def _k_range(text: str) -> tuple[int, int]:
    """``LOW-HIGH`` (or one k) on the command line -> (low, high)."""
    low, sep, high = text.partition("-")
    try:
        return int(low), int(high if sep else low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH such as 1-10, got {text!r}") from None


def _database_url(text: str) -> str:
    """A database URL from the command line: a relative SQLite file made absolute (the runs of
    a deployment start in another folder); any other URL as given."""
    scheme, sep, path = text.partition(":///")
    if sep and scheme.split("+")[0] == "sqlite" and path and not path.startswith(("/", ":")):
        return f"{scheme}:///{os.path.abspath(os.path.expanduser(path))}"
    return text


class SweepSettings(BaseModel):
    """The elbow sweep: which k values are fitted, on how many rows, how many at once."""

    model_config = ConfigDict(extra="forbid")

    k_range: Annotated[
        tuple[int, int], Option(flag="--sweep", metavar="LOW-HIGH", parse=_k_range)
    ] = Field((1, 10), description="k values of the elbow sweep, e.g. 1-10")
    n_jobs: Annotated[int, Option(flag="--n-jobs")] = Field(
        -1, description="parallel k fits in the sweep (-1: all cores, 1: serial)"
    )
    sample_threshold: int = Field(
        200_000,
        ge=1_000,
        description="above this many customers the sweep runs on a seeded sample and the final "
        "K-Means on all rows starts from the sample's centroids",
    )
    sample_size: int = Field(100_000, ge=1_000, description="rows in that sample")
    silhouette_sample: int = Field(
        1_000, ge=100, description="rows sampled (seeded) for each k's silhouette score"
    )

    @field_validator("k_range")
    @classmethod
    def _check_k_range(cls, k_range: tuple[int, int]) -> tuple[int, int]:
        low, high = k_range
        if low < 1 or high < 2 or low > high:
            raise ValueError(f"{low}-{high}: needs 1 <= LOW <= HIGH and HIGH >= 2")
        return k_range

    @model_validator(mode="after")
    def _check(self) -> SweepSettings:
        if self.sample_size > self.sample_threshold:
            raise ValueError(
                f"sample_size={self.sample_size} > sample_threshold={self.sample_threshold}"
            )
        return self


class IdentitySettings(BaseModel):
    """How a run keeps the previous run's k, segment ids and names."""

    model_config = ConfigDict(extra="forbid")

    k_margin: Annotated[float, Option(flag="--k-margin")] = Field(
        0.05,
        ge=0,
        description="keep the previous run's k unless another k's silhouette is higher by this",
    )
    max_shift: float = Field(
        0.5,
        gt=0,
        description="a centroid within this distance (scaled units) of a previous run's keeps "
        "that segment's id and name",
    )


class DaskSettings(BaseModel):
    """Where a run with runner=dask computes."""

    model_config = ConfigDict(extra="forbid")

    address: Annotated[str | None, Option(metavar="ADDRESS")] = Field(
        None,
        description="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786; unset: a temporary "
        "LocalCluster on 127.0.0.1",
    )
    workers: int = Field(2, ge=1, description="worker processes of that LocalCluster")


class SegmentationSettings(BaseModel):
    """Everything a run depends on, each setting declared once: the flow's one parameter (the
    deployment's form in the Prefect UI), `segment run`'s and `segment serve`'s options and the
    README's option table are generated from these fields (``segment.cli.options``). Defaults
    reproduce the classic Mall-customers recipe."""

    model_config = ConfigDict(extra="forbid")

    input: Path = Field(
        DEFAULT_INPUT,
        description="customer file (CSV or Parquet), or a folder of dated snapshots "
        "(customers_YYYY-MM-DD.csv: the newest one up to --as-of is used), or with --runner "
        "dask a folder of Parquet partition files",
    )
    output_dir: Annotated[Path, Option(flag="--output")] = Field(
        DEFAULT_OUTPUT,
        description="runs go to OUTPUT/runs/<run-id>/, OUTPUT/latest names the newest",
    )
    transactions: bool = Field(
        False,
        description="the input is order lines (customer id, invoice, date, quantity and unit "
        "price, or an amount): derive recency, frequency and monetary value per customer and "
        "segment them; --column maps the fields (customer_id, invoice, date, quantity, price, "
        "amount), --profile names line columns to describe",
    )
    as_of: Annotated[date | None, Option(metavar="YYYY-MM-DD")] = Field(
        None,
        description="with a snapshot folder: use the newest snapshot on or before this date; "
        "with --transactions also the snapshot date of recency (lines after it left out); "
        "unset: the newest snapshot (--transactions: the day after the latest purchase)",
    )
    date_format: Annotated[str | None, Option(metavar="FMT")] = Field(
        None,
        description="with --transactions: the order dates' format in strftime codes, e.g. "
        "'%d/%m/%Y %H:%M'; unset: ISO, day-first or month-first read from the dates (an "
        "ambiguous file stops and asks for this option)",
    )
    lines_memory_limit: Annotated[str, Option(metavar="SIZE")] = Field(
        "500MB",
        description="with --transactions on a Parquet file: the working memory of the order "
        "lines' derivation (DuckDB), e.g. 500MB or 4GiB; beyond it, it spills to disk in the "
        "run folder",
    )
    spec: Annotated[Path | None, Option(metavar="FILE.toml")] = Field(
        None,
        description="a segmentation spec (roles, kinds, labels, checks and transforms of the "
        "columns; `segment init` writes one); options given here override it; unset: the Mall "
        "preset for a Mall-like file, else the spec `segment init` would write, inferred from "
        "the file's first 10,000 rows (the run log says each choice and why)",
    )
    features: Annotated[list[str] | None, Option(metavar="COL")] = Field(
        None,
        min_length=1,
        description="columns to cluster on, by their header ('numeric': every numeric column "
        "except the id and the profile columns; 0/1 flags become profile columns, constant and "
        "id-like columns are left out); unset: the spec's, the Mall preset's (annual_income "
        "spending_score) for a file with all its columns, else the inferred ones (numeric "
        "columns other than codes and 0/1 flags)",
    )
    profile: Annotated[list[str] | None, Option(metavar="COL")] = Field(
        None,
        description="columns described per segment but not clustered on; unset: the spec's, the "
        "Mall preset's (gender age) for a Mall-like file, else the inferred ones (text with up "
        "to 50 values, 0/1 flags, whole-number codes)",
    )
    id_column: Annotated[str | None, Option(metavar="NAME")] = Field(
        None,
        description="the customer id's header ('none': no id, customers are numbered by data "
        "row); unset: found by common spellings (CustomerID, Customer ID, CUST_ID, ID, ...)",
    )
    columns: Annotated[dict[str, str], Option(flag="--column", metavar="NAME=HEADER")] = Field(
        default_factory=dict,
        description="map a column of the spec (or the Mall preset: customer_id, gender, age, "
        "annual_income, spending_score) to a header in the file, e.g. annual_income=Income; "
        "repeatable; unset columns are found by their common spellings",
    )
    sep: str | None = Field(None, description="field separator; sniffed when unset")
    missing: Missing | None = Field(
        None,
        description="a missing feature value: quarantine the row (the default) or fill the "
        "column median (a text feature: its most frequent value)",
    )
    pca: Annotated[float | None, Option(metavar="N|SHARE")] = Field(
        None,
        gt=0,
        description="PCA before K-Means: N components, or the share of variance to keep (e.g. "
        "0.9); unset: off (the spec's, if it sets pca)",
    )
    scaler: Scaler = Field(
        "standard",
        description="feature scaling before K-Means (log-standard: log1p first on every feature "
        "with no negative value, besides the spec's or inferred transforms)",
    )
    k: int | None = Field(
        None, ge=1, description="fix the number of segments; unset: the elbow rule"
    )
    k_min: int | None = Field(
        None, ge=2, description="smallest k the elbow rule may choose; unset: 2"
    )
    k_max: int | None = Field(
        None, ge=2, description="largest k the elbow rule may choose; unset: the sweep's largest"
    )
    min_segment_share: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="while choosing k (not with --k): only a k whose every segment holds at "
        "least this share of customers, e.g. 0.05; a smaller k rather than a failed run (the "
        "check after the fit is --gate-min-segment-share); 0: any k",
    )
    n_init: int = Field(10, ge=1, description="K-Means restarts (final fit and sweep)")
    seed: int = Field(42, description="random seed of every random step")
    max_quarantine_share: float = Field(
        0.2, ge=0, le=1, description="fail the run when more rows than this share are quarantined"
    )
    runner: Runner = Field(
        "local",
        description="local: this process (threads for the elbow sweep); dask: Prefect's "
        "DaskTaskRunner, the sweep's k values fanned out over Dask workers, and a folder of "
        "Parquet files cleaned and fitted partition by partition (with --transactions: order "
        "lines derived into customers on the workers)",
    )
    run_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",  # one plain folder name: never leaves runs/
        max_length=200,
        description="name of the run folder; unset: <UTC time>-<flow run id>",
    )
    read_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="retries of reading the input after a transient I/O error (timeout, EIO, "
        "EAGAIN, ...); bad data is never retried",
    )
    read_retry_delay: Annotated[float, Option(metavar="SECONDS")] = Field(
        1.0, ge=0, le=300, description="seconds to wait before each retry of reading the input"
    )
    publish_db: Annotated[str | None, Option(metavar="URL", parse=_database_url)] = Field(
        None,
        description="after the run folder is published, keep each customer's segment history "
        "in this database (a SQLAlchemy URL: sqlite:///segments.db, or "
        "postgresql+psycopg://user@host/db with the postgres extra): tables customer_segments "
        "(one row per customer and stretch in a segment, valid_to empty while current) and "
        "segment_runs, written in one transaction; a failed write leaves the database as it "
        "was and exits 6; unset: off",
    )
    sweep: SweepSettings = Field(default_factory=SweepSettings, description="the elbow sweep")
    gates: Annotated[Gates, Option(prefix="gate")] = Field(
        default_factory=Gates,
        description="quality gates: a breached one fails the run; latest stays on the previous run",
    )
    identity: IdentitySettings = Field(
        default_factory=IdentitySettings, description="identity across runs"
    )
    dask: DaskSettings = Field(default_factory=DaskSettings, description="with runner=dask")

    @field_validator("lines_memory_limit")
    @classmethod
    def _check_memory_size(cls, size: str) -> str:
        if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", size.strip(), re.IGNORECASE):
            raise ValueError(
                f"expected a size such as 500MB, 2GB or 1.5GiB (KB, MB, GB, TB or KiB, MiB, GiB, "
                f"TiB), not {size!r}"
            )
        return size.strip()

    @field_validator("publish_db")
    @classmethod
    def _check_database_url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"[A-Za-z][A-Za-z0-9+._-]*://", url):
            raise ValueError(
                "expected a database URL such as sqlite:///segments.db or "
                "postgresql+psycopg://user@host/db"
            )
        return url

    @model_validator(mode="after")
    def _check_ranges(self) -> SegmentationSettings:
        if self.k_min is not None and self.k_max is not None and self.k_min > self.k_max:
            raise ValueError(f"k_min={self.k_min} > k_max={self.k_max}")
        if self.features and len(set(self.features)) != len(self.features):
            raise ValueError(f"features listed twice: {self.features}")
        return self

    def table_for(self, source: Path) -> ColumnPlan:
        """The columns of ``source`` as these settings choose them: the spec file's, with the
        column choices given on the command line (None: not given) over them
        (``tasks.ingest.table_for_file``)."""
        from tasks.ingest import table_for_file

        spec = load_spec(self.spec) if self.spec else None
        choices = self.model_dump(include={"features", "profile", "id_column", "missing", "pca"})
        return table_for_file(source, sep=self.sep, spec=spec, columns=self.columns, **choices)

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
    def k_values(self) -> range:
        """The k values of the sweep, widened to include a fixed k."""
        low, high = self.sweep.k_range
        return range(low, max(high, self.k or 0) + 1)
