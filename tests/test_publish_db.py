"""--publish-db end to end (issue 24, item 4): three nights of `segment sample-data` snapshots
segmented by the flow into one output folder, each night's customers written into the
membership history, on SQLite and on a real PostgreSQL server (tests/postgres.py); and
`segment run` exiting 6 with one line when the database write fails, its run folder published."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from flows.segmentation import segment_customers
from segment.cli.main import EXIT_PUBLISH_DB
from segment.settings import SegmentationSettings
from tasks.sample_data import generate_snapshots, write_snapshots
from tasks.store.run_files import latest_run

NIGHTS = 3


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.process)]
)
def nights(request, tmp_path_factory):
    """Three dated snapshots (customers join, leave and move), segmented night after night with
    --publish-db; the database URL and each night's manifest."""
    request.getfixturevalue("prefect_server")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'segments.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database("three_nights")
    snapshots = generate_snapshots(NIGHTS)
    folder = tmp_path_factory.mktemp("snapshots")
    write_snapshots(snapshots, folder)
    output = tmp_path_factory.mktemp("outputs")
    manifests = [
        segment_customers(
            SegmentationSettings(input=folder, as_of=s.day, output_dir=output, publish_db=url)
        )
        for s in snapshots
    ]
    return url, manifests


pytestmark = pytest.mark.flow


def _query(url: str, sql: str) -> pd.DataFrame:
    engine = create_engine(url)
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(text(sql)).mappings().all())
    engine.dispose()
    return frame


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert(UTC)


def _history(url: str) -> pd.DataFrame:
    """customer_segments, its times as UTC timestamps (SQLite keeps them without a zone)."""
    rows = _query(url, "SELECT * FROM customer_segments")
    for column in ("valid_from", "valid_to"):
        times = pd.to_datetime(rows[column].astype(object))
        rows[column] = (
            times.dt.tz_localize(UTC) if times.dt.tz is None else times.dt.tz_convert(UTC)
        )
    return rows


def _members(manifest: dict) -> set[tuple[str, int, str]]:
    segments = pd.read_parquet(f"{manifest['output_folder']}/segments.parquet")
    return set(
        zip(
            segments["customer_id"].astype(str),
            segments["segment_id"].astype(int),
            segments["segment_name"].astype(str),
            strict=True,
        )
    )


def test_each_night_is_one_row_of_segment_runs(nights):
    url, manifests = nights
    runs = _query(url, "SELECT * FROM segment_runs ORDER BY finished_at")
    assert list(runs.columns) == ["run_id", "finished_at", "k", "customers", "output_folder"]
    assert list(runs["run_id"]) == [m["run_id"] for m in manifests]
    assert list(runs["k"]) == [m["k"]["chosen"] for m in manifests]
    assert list(runs["customers"]) == [m["rows"]["rows_kept"] for m in manifests]
    assert list(runs["output_folder"]) == [m["output_folder"] for m in manifests]
    assert all("published_db" in m and url.split(":")[0] in m["published_db"] for m in manifests)


def test_the_history_as_of_each_night_is_that_nights_run_folder(nights):
    url, manifests = nights
    history = _history(url)
    assert list(history.columns) == [
        "customer_id", "segment_id", "segment_name", "run_id", "valid_from", "valid_to",
    ]  # fmt: skip
    for manifest in manifests:
        at = _utc(manifest["finished_at"])
        valid = history[
            (history["valid_from"] <= at)
            & (history["valid_to"].isna() | (history["valid_to"] > at))
        ]
        as_of = set(
            zip(valid["customer_id"], valid["segment_id"], valid["segment_name"], strict=True)
        )
        assert as_of == _members(manifest), manifest["run_id"]


def test_a_night_closes_the_moved_and_gone_and_opens_the_moved_and_new(nights):
    url, manifests = nights
    history = _history(url)
    for manifest in manifests[1:]:
        at, changes = _utc(manifest["finished_at"]), manifest["changes"]
        closed = (history["valid_to"] == at).sum()
        opened = (history["run_id"] == manifest["run_id"]).sum()
        assert (history[history["run_id"] == manifest["run_id"]]["valid_from"] == at).all()
        assert closed == changes["customers_moved"] + changes["customers_left"]
        assert opened == changes["customers_moved"] + changes["customers_joined"]
        assert changes["customers_moved"] > 0 and changes["customers_left"] > 0
    current = history[history["valid_to"].isna()]
    assert current["customer_id"].is_unique
    assert len(current) == manifests[-1]["rows"]["rows_kept"]


def _summaries(manifest: dict) -> list[str]:
    """The flow run's versions of its summary artifact in the Prefect UI."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    from tasks.reporting.artifacts import artifact_key

    key = artifact_key("segmentation-summary", manifest["settings"]["output_dir"], deployment=False)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[manifest["flow_run_id"]]),
                key=ArtifactFilterKey(any_=[key]),
            )
        )
    return [artifact.data for artifact in artifacts]


def test_each_nights_summary_says_what_the_database_got(nights):
    from tasks.reporting.artifacts import database_line
    from tasks.store.membership_db import shown_url

    url, manifests = nights
    for n, manifest in enumerate(manifests):
        rows, changes = manifest["rows"]["rows_kept"], manifest["changes"] or {}
        opened = rows if n == 0 else changes["customers_moved"] + changes["customers_joined"]
        closed = 0 if n == 0 else changes["customers_moved"] + changes["customers_left"]
        written = (
            f"customer_segments: {rows - opened:,} kept, {opened:,} opened, {closed:,} closed; "
            "segment_runs +1"
        )
        (summary,) = _summaries(manifest)  # updated in place: one version per run
        assert database_line(shown_url(url), written) in summary, manifest["run_id"]
        assert "writing the membership history" not in summary


def test_a_failed_database_write_is_in_the_summary(prefect_server, customers_csv, tmp_path):
    from flows.segmentation import segment_customers
    from tasks.errors import PublishError

    url = f"sqlite:///{tmp_path / 'segments.db'}"
    _refuse_runs(url)
    settings = SegmentationSettings(input=customers_csv, output_dir=tmp_path / "out", k=3)
    with pytest.raises(PublishError):
        segment_customers(settings.model_copy(update={"publish_db": url}))
    published = latest_run(tmp_path / "out")
    assert published is not None
    (summary,) = _summaries(json.loads((published / "manifest.json").read_text()))
    (line,) = [line for line in summary.splitlines() if line.startswith("**Database**")]
    assert "table segment\\_runs has the columns" in line and "not written" in line


# --- `segment run`: a failed database write ------------------------------------------------


def _segment_run(customers_csv, output, url: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "segment.cli.main", "run", "--input", str(customers_csv)]
    return subprocess.run(
        [*command, "--output", str(output), "--n-jobs", "1", "--quiet", "--publish-db", url],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _tables(url: str) -> list[tuple]:
    engine = create_engine(url)
    with engine.connect() as connection:
        names = sorted(connection.dialect.get_table_names(connection))
        rows = [
            (name, *sorted(connection.execute(text(f"SELECT * FROM {name}")).all()))  # noqa: S608
            for name in names
        ]
    engine.dispose()
    return rows


def _refuse_runs(url: str) -> None:
    """A segment_runs table of another shape: the publication fails inside the database."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE segment_runs (id INTEGER, note TEXT)")
        connection.exec_driver_sql("INSERT INTO segment_runs VALUES (1, 'theirs')")
    engine.dispose()


@pytest.mark.process
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_failed_database_write_exits_6_with_one_line_and_the_run_published(
    backend, customers_csv, tmp_path, request
):
    if backend == "sqlite":
        url = shown = f"sqlite:///{tmp_path / 'segments.db'}"
    else:  # a password (trust authentication accepts any): never printed nor recorded
        server = request.getfixturevalue("postgres_server")
        server.create_database("refused_run")
        url = server.url("refused_run", password="s3cret-word")  # noqa: S106
        shown = server.url("refused_run", password="***")  # noqa: S106
    _refuse_runs(url)
    before = _tables(url)
    done = _segment_run(customers_csv, tmp_path / "out", url)
    assert done.returncode == EXIT_PUBLISH_DB, done.stderr
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"segment: error: --publish-db {shown}: table segment_runs has")
    assert "the database is as it was" in line
    assert "s3cret-word" not in done.stderr + done.stdout
    assert _tables(url) == before
    published = latest_run(tmp_path / "out")
    assert published is not None and str(published) in line
    manifest = json.loads((published / "manifest.json").read_text())
    assert manifest["settings"]["publish_db"] == shown
    assert "s3cret-word" not in (published / "manifest.json").read_text()


@pytest.mark.process
def test_segment_run_publishes_and_says_so(customers_csv, tmp_path):
    url = f"sqlite:///{tmp_path / 'segments.db'}"
    done = _segment_run(customers_csv, tmp_path / "out", url)
    assert done.returncode == 0, done.stderr
    assert f"Database {url}: " in done.stdout and "rows opened" in done.stdout
    customers = _query(url, "SELECT customers FROM segment_runs")["customers"].tolist()
    assert customers == [len(pd.read_parquet(tmp_path / "out/latest/segments.parquet"))]


def test_an_unusable_url_is_a_usage_error_before_the_run(customers_csv, tmp_path):
    from segment.cli.main import EXIT_USAGE, main

    url = "nosuchdb://ann:s3cret@host/db"
    code = main(
        ["run", "--input", str(customers_csv), "--output", str(tmp_path / "out")]
        + ["--publish-db", url]
    )
    assert code == EXIT_USAGE
    assert not (tmp_path / "out" / "runs").exists()


def test_segment_serve_refuses_an_unusable_url_before_serving(capsys):
    from flows.deployment import main as serve

    with pytest.raises(SystemExit) as exit_info:
        serve(["--publish-db", "nosuchdb://ann:s3cret@host/db"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--publish-db nosuchdb://ann:***@host/db" in err and "s3cret" not in err
