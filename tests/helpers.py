"""Plain helpers shared by several test modules (fixtures live in conftest.py).

- segment runs on planted blobs (identity, describe, history tests);
- the crash-safety invariants of an output folder, and `segment run` as a process;
- headless Chromium;
- the checks the base sample and every dated snapshot of the sample generator must pass;
- a customer file read with the Mall preset, as the flow reads it;
- a model fitted by a run's own step functions (the `segment assign` tests).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from schemas.columns import AGE, ANNUAL_INCOME, CUSTOMER_ID, GENDER, SPENDING_SCORE
from schemas.customers import customers_schema
from schemas.outputs import profiles_schema, quarantine_schema, segments_schema
from schemas.spec import mall_spec
from tasks.clean import clean_customers
from tasks.describe import Described, FittedRows, describe_segments
from tasks.errors import InputError
from tasks.fit import fit_segments
from tasks.identity import PreviousRun
from tasks.ingest import canonical_frame, expected_types, read_file, read_header
from tasks.model import load_model
from tasks.sample_data import MALL_HEADER, SampleData
from tasks.scale import scale_features
from tasks.store.history import load_previous_run
from tasks.store.paths import MANIFEST
from tasks.store.run_files import latest_run, sha256_of
from tasks.store.runlock import RunLock
from tasks.table import mall_table, resolve_table

# The Mall preset's columns in their order, its numeric ones and its genders (as the tests expect
# them, independent of schemas/presets/mall.toml).
MALL_COLUMNS = (CUSTOMER_ID, GENDER, AGE, ANNUAL_INCOME, SPENDING_SCORE)
MALL_NUMERIC_COLUMNS = (AGE, ANNUAL_INCOME, SPENDING_SCORE)
MALL_GENDERS = ("Female", "Male")

# The contracts of a Mall run's tables, built by schemas/ from the Mall column plan as a run
# builds them.
MALL_CUSTOMERS = customers_schema(mall_table())
MALL_QUARANTINE = quarantine_schema(mall_table())
MALL_SEGMENTS = segments_schema(mall_table())
MALL_PROFILES = profiles_schema(mall_table())

# --- segment runs on planted blobs ------------------------------------------------------------

FEATURES = [ANNUAL_INCOME, SPENDING_SCORE]
# Blob centres (income k$, spending score), far apart in the scaled space.
A = (40.0, 80.0)  # low income, high spending
B = (70.0, 50.0)  # average / average
C = (100.0, 20.0)  # high income, low spending
D = (10.0, 40.0)  # lowest income of all: sorts first in the canonical centroid order
E = (15.0, 88.0)  # named like A, but more than max_shift away from it


def blob(tag: str, center: tuple[float, float], n: int = 30) -> pd.DataFrame:
    """n customers around ``center``; ids and values depend only on the tag (stable per run)."""
    rng = np.random.default_rng(int.from_bytes(tag.encode(), "little"))
    points = np.asarray(center) + rng.normal(0.0, 3.0, size=(n, 2))
    return pd.DataFrame(
        {
            "customer_id": pd.Series([f"{tag}{i:03d}" for i in range(n)], dtype="str"),
            "gender": pd.Series(rng.choice(["Female", "Male"], size=n), dtype="str"),
            AGE: rng.integers(18, 70, size=n).astype("float64"),
            ANNUAL_INCOME: np.clip(points[:, 0], 0.0, None),
            SPENDING_SCORE: np.clip(points[:, 1], 1.0, 100.0),
        }
    )


def population(**blobs: tuple[float, float]) -> pd.DataFrame:
    return pd.concat([blob(tag, center) for tag, center in blobs.items()], ignore_index=True)


def run(
    customers: pd.DataFrame,
    k: int,
    previous: PreviousRun | None = None,
    *,
    seed: int = 42,
    features: list[str] = FEATURES,
    scaler: str = "standard",
    max_shift: float = 0.5,
) -> Described:
    scaled = scale_features(customers, features, scaler)
    segmentation = fit_segments(scaled.matrix, k, seed=seed, n_init=5)
    return describe_segments(
        customers,
        FittedRows(scaled, segmentation),
        previous,
        features,
        max_shift=max_shift,
        seed=42,
    )


def as_previous(described: Described, run_id: str = "run-1") -> PreviousRun:
    return PreviousRun(run_id, described.model, described.segments[["customer_id", "segment_id"]])


def ids_by_customer(described: Described) -> pd.Series:
    return described.segments.set_index("customer_id")["segment_id"]


def ids_by_tag(described: Described) -> dict[str, int]:
    """The one segment id of each blob's customers (fails if a blob is split)."""
    tags = described.segments["customer_id"].str[0]
    per_tag = described.segments.groupby(tags)["segment_id"].unique()
    assert all(len(ids) == 1 for ids in per_tag), per_tag
    return {tag: int(ids[0]) for tag, ids in per_tag.items()}


# --- output folders and `segment run` processes -----------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def segment_command(source: Path, output: Path, *extra: str) -> list[str]:
    """`segment run` as the console script runs it (same interpreter, no temporary server)."""
    return [
        sys.executable,
        "-m",
        "segment.cli.main",
        "run",
        "--input",
        str(source),
        "--output",
        str(output),
        "--n-jobs",
        "1",
        *extra,
    ]


def bare_env(home: Path) -> dict[str, str]:
    """This environment without Prefect settings and with its own ``PREFECT_HOME``: ``segment
    run`` starts its own server, unless a background server runs in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "OMP_NUM_THREADS": "1",
    }


def assert_complete_run(folder: Path) -> dict:
    """A published run: its manifest lists exactly its files, each matches its sha256 and size
    and reads back (Parquet tables, JSON model, PNG plots). Returns the manifest."""
    assert not folder.name.startswith("."), f"{folder} is a staging folder"
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["run_id"] == folder.name
    listed = manifest["files"]
    present = {p.name for p in folder.iterdir() if not p.name.startswith(".")} - {MANIFEST}
    assert present == set(listed), f"{folder.name}: files {present} != manifest {set(listed)}"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], "temporary files"
    for name, expected in listed.items():
        path = folder / name
        assert path.stat().st_size == expected["bytes"], f"{path}: size differs from manifest"
        assert sha256_of(path) == expected["sha256"], f"{path}: sha256 differs from manifest"
        if name.endswith(".parquet"):
            pq.read_table(path)  # every column and row group decodes
        elif name == "model.json":
            load_model(path)
        elif name.endswith(".png"):
            data = path.read_bytes()
            assert data.startswith(PNG_SIGNATURE) and data.endswith(b"IEND\xaeB`\x82"), path
    return manifest


def assert_output_consistent(output: Path, known_runs: set[str]) -> str:
    """The crash-safety invariants of an output folder; returns the run ``latest`` names.

    ``known_runs`` (updated in place) holds every run seen published so far.
    """
    runs = output / "runs"
    published = {p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert known_runs <= published, f"published runs disappeared: {known_runs - published}"
    manifests = {name: assert_complete_run(runs / name) for name in published}
    known_runs |= published

    link = output / "latest"
    assert link.is_symlink(), "latest is gone or not a link"
    target = os.readlink(link)
    assert target == os.path.join("runs", Path(target).name), target
    name = Path(target).name
    assert name in published, f"latest names {name}, which is not a published run"
    assert latest_run(output) == (runs / name).resolve()
    assert load_previous_run(output).run_id == name  # what the next run would build on
    # the history is a chain of published runs: each one built on a run published before it
    for manifest in manifests.values():
        previous = (manifest.get("changes") or {}).get("previous_run_id")
        assert previous is None or previous in published, f"{manifest['run_id']} -> {previous}"
    return name


def lock_is_free(output: Path) -> bool:
    """Nobody holds the output folder's run lock."""
    lock = RunLock(output)
    try:
        lock.acquire("probe", timeout=0)
    except TimeoutError:
        return False
    lock.release()
    return True


def debris(output: Path) -> list[str]:
    hidden = [p.name for p in (output / "runs").iterdir() if p.name.startswith(".")]
    return sorted(hidden + [p.name for p in output.glob(".latest.*.tmp")])


# --- headless Chromium ------------------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no network here: no calls home
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=20000",  # let the single-page app fetch and render
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    message = "headless Chromium not found (Debian package 'chromium'; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def browse(url: str, user_data: Path, *, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran, in headless Chromium; optionally a screenshot too."""
    base = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={user_data}"]
    if screenshot is not None:
        subprocess.run(
            [*base, "--window-size=1400,2400", f"--screenshot={screenshot}", url],
            capture_output=True,
            timeout=120,
            check=True,
        )
    done = subprocess.run(
        [*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


# --- the sample generator: checks of the base sample and of every dated snapshot ---------------

MISSING_TOKENS = ["", "NA", "?"]
GENDER_SPELLINGS = {"female": "Female", "f": "Female", "male": "Male", "m": "Male"}


def _sample_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    _, _, age, income, score = MALL_HEADER
    return frame[[age, income, score]].apply(pd.to_numeric, errors="coerce")


def _out_of_range(numbers: pd.DataFrame) -> pd.Series:
    _, _, age, income, score = MALL_HEADER
    return (
        ~numbers[age].between(0, 120) | (numbers[income] < 0) | ~numbers[score].between(1, 100)
    ) & numbers.notna().all(axis=1)


def clean_sample_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows a simple cleaner keeps: numeric, in range, known gender, unique id."""
    id_, gender_column, age, income, score = MALL_HEADER
    frame = frame.drop_duplicates()
    numbers = _sample_numbers(frame)
    gender = frame[gender_column].str.strip().str.lower().map(GENDER_SPELLINGS)
    keep = (
        numbers.notna().all(axis=1)
        & ~_out_of_range(numbers)
        & gender.notna()
        & ~frame[id_].duplicated(keep=False)
    )
    clean = numbers[keep].assign(**{id_: frame.loc[keep, id_], gender_column: gender[keep]})
    return clean.astype({age: int, income: int, score: int})


def assert_dirt_counts_match(sample: SampleData) -> None:
    """The dirt the generator reports is the dirt in its frame: 2-5 % of rows, every kind."""
    id_, gender, age, income, score = MALL_HEADER
    frame, dirt = sample.frame, sample.dirt
    distinct = frame.drop_duplicates()
    counted = {
        "exact_duplicates": int(frame.duplicated().sum()),
        "missing_values_rows": int(
            frame[[age, income, score]].isin(MISSING_TOKENS).any(axis=1).sum()
        ),
        "out_of_range_rows": int(_out_of_range(_sample_numbers(frame)).sum()),
        "unknown_gender_rows": int((frame[gender] == "U").sum()),
        "conflicting_id_rows": int(distinct[id_].duplicated(keep=False).sum()),
    }
    assert counted == dirt
    # a small, realistic amount: every kind present, 2-5 % of rows in total
    assert all(count > 0 for count in dirt.values())
    assert 0.02 <= sum(dirt.values()) / len(frame) <= 0.05


def assert_planted_segments_recoverable(sample: SampleData) -> None:
    """K-Means (k=5) on scaled income + score recovers the planted segments of the clean rows."""
    id_, _, _, income, score = MALL_HEADER
    clean = clean_sample_rows(sample.frame)
    assert len(clean) >= 0.95 * len(sample.truth)
    truth = sample.truth.set_index("customer_id")["planted_segment"]
    features = StandardScaler().fit_transform(clean[[income, score]])
    labels = KMeans(5, n_init=10, random_state=0).fit_predict(features)
    assert adjusted_rand_score(truth.loc[clean[id_]].to_numpy(), labels) >= 0.9


# --- a customer file read with the Mall preset -------------------------------------------------


def read_customers(
    path: str | Path, columns: dict[str, str] | None = None, sep: str | None = None
) -> pd.DataFrame:
    """``source_row``, ``customer_id``, the Mall preset's columns under their names, then the
    file's other columns, read as the flow reads them (``read_file`` then ``canonical_frame``):
    text as read (stripped, NA tokens missing), Parquet numbers as float64. A column problem
    raises ``InputError`` naming the file."""
    header = read_header(path, sep)
    try:
        table = resolve_table(header, None, mall_spec(), columns)
    except InputError as error:
        raise error.with_path(path) from error
    return canonical_frame(read_file(path, sep, expected=expected_types(table)), table)


def model_like_a_run(frame: pd.DataFrame, table, k: int) -> Described:
    """A run's clean, scale, fit and describe steps as plain functions on ``frame`` (as the
    cleaning step takes it) with ``table``: what it describes, its ``model`` among them."""
    cleaned = clean_customers(frame, table=table, max_quarantine_share=0.2)
    scaled = scale_features(cleaned.customers, None, "standard", table, seed=42)
    segmentation = fit_segments(scaled.matrix, k, seed=42, n_init=4)
    return describe_segments(
        cleaned.customers, FittedRows(scaled, segmentation), None, table=table,
        fill_values=cleaned.fill_values, max_shift=0.5, seed=42,
    )  # fmt: skip
