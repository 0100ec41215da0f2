"""tasks.store.membership_db: the membership history (--publish-db) over three nights, on SQLite
and on a real PostgreSQL server the tests start (tests/postgres.py), never a mock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from tasks.errors import PublishError
from tasks.store.membership_db import publish_run, shown_url, url_problem
from tasks.store.run_files import file_checksums

NIGHT_1 = datetime(2026, 12, 1, 2, 0, 7, tzinfo=UTC)
NAMES = {1: "Low income, high spending", 2: "Average", 3: "High income, low spending"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.process)])
def database(request, tmp_path) -> str:
    """An empty database: a SQLite file, or a fresh database on the session's PostgreSQL
    server (started from Debian's binaries; skipped without them, failed in CI)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'segments.db'}"
    return request.getfixturevalue("postgres_database")


def published_folder(
    root: Path, run_id: str, finished: datetime, members: dict[str, int], *, parts: int = 1
) -> Path:
    """A published run folder as the flow leaves it: segments (one file, or ``parts``
    partition files) and a manifest listing them with their checksums."""
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    table = pd.DataFrame(
        {
            "customer_id": pd.array(list(members), dtype="string"),
            "age": 30,
            "segment_id": list(members.values()),
            "segment_name": pd.Categorical([NAMES[s] for s in members.values()]),
            "distance_to_centroid": 0.5,
        }
    )
    if parts == 1:
        table.to_parquet(folder / "segments.parquet")
    else:
        for i in range(parts):
            table.iloc[i::parts].to_parquet(folder / f"segments-{i:05d}.parquet")
    manifest = {
        "run_id": run_id,
        "finished_at": finished.isoformat(timespec="seconds"),
        "k": {"chosen": len(set(members.values()))},
        "files": file_checksums(folder),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def history(url: str) -> list[tuple]:
    """customer_segments as (customer, segment, name, run, valid_from, valid_to) tuples, the
    times as UTC ISO text (SQLite stores them without a zone, PostgreSQL with)."""
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT customer_id, segment_id, segment_name, run_id, valid_from, valid_to "
                "FROM customer_segments ORDER BY customer_id, valid_from"
            )
        ).all()
    engine.dispose()
    return [(*row[:4], _iso(row[4]), _iso(row[5])) for row in rows]


def runs_table(url: str) -> list[tuple]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT run_id, finished_at, k, customers, output_folder FROM segment_runs")
        ).all()
    engine.dispose()
    return [(row[0], _iso(row[1]), *row[2:]) for row in rows]


def _iso(moment) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC).isoformat()


# Night 1: a, b, c, d. Night 2: b moves 1 -> 2, d leaves, e joins. Night 3: b moves back to 1,
# d comes back (into 3), c stays throughout.
NIGHTS = [
    {"a": 1, "b": 1, "c": 3, "d": 2},
    {"a": 1, "b": 2, "c": 3, "e": 2},
    {"a": 1, "b": 1, "c": 3, "d": 3, "e": 2},
]


def three_nights(url: str, root: Path, **options) -> list:
    times = [NIGHT_1 + timedelta(days=n) for n in range(3)]
    folders = [
        published_folder(root, f"night-{n + 1}", times[n], members, **options)
        for n, members in enumerate(NIGHTS)
    ]
    return [publish_run(url, folder, batch_rows=2) for folder in folders]


def test_three_nights_give_a_slowly_changing_history(database, tmp_path):
    published = three_nights(database, tmp_path)
    t1, t2, t3 = (_iso(NIGHT_1 + timedelta(days=n)) for n in range(3))
    low, average, high = NAMES[1], NAMES[2], NAMES[3]
    assert history(database) == [
        ("a", 1, low, "night-1", t1, None),  # unchanged: one row, opened on night 1
        ("b", 1, low, "night-1", t1, t2),  # moved on night 2: closed ...
        ("b", 2, average, "night-2", t2, t3),  # ... and reopened, moved back on night 3
        ("b", 1, low, "night-3", t3, None),
        ("c", 3, high, "night-1", t1, None),
        ("d", 2, average, "night-1", t1, t2),  # gone on night 2: closed
        ("d", 3, high, "night-3", t3, None),  # back on night 3: a new row
        ("e", 2, average, "night-2", t2, None),  # joined on night 2
    ]
    assert [(p.customers, p.opened, p.closed, p.kept) for p in published] == [
        (4, 4, 0, 0),
        (4, 2, 2, 2),  # b reopened, e opened; b and d closed
        (5, 2, 1, 3),  # b and d opened; b closed
    ]
    assert [p.tables() for p in published] == [  # the Prefect summary's database line
        "customer_segments: 0 kept, 4 opened, 0 closed; segment_runs +1",
        "customer_segments: 2 kept, 2 opened, 2 closed; segment_runs +1",
        "customer_segments: 3 kept, 2 opened, 1 closed; segment_runs +1",
    ]
    folders = [str(tmp_path / "runs" / f"night-{n}") for n in (1, 2, 3)]
    assert runs_table(database) == [
        ("night-1", t1, 3, 4, folders[0]),
        ("night-2", t2, 3, 4, folders[1]),
        ("night-3", t3, 3, 5, folders[2]),
    ]


def test_a_partitioned_runs_part_files_give_the_same_history(tmp_path):
    one, parts = tmp_path / "one", tmp_path / "parts"
    three_nights(f"sqlite:///{tmp_path / 'one.db'}", one)
    three_nights(f"sqlite:///{tmp_path / 'parts.db'}", parts, parts=3)
    assert (parts / "runs/night-1/segments-00002.parquet").is_file()
    assert history(f"sqlite:///{tmp_path / 'one.db'}") == history(
        f"sqlite:///{tmp_path / 'parts.db'}"
    )


def test_publishing_the_same_run_twice_changes_nothing(database, tmp_path):
    three_nights(database, tmp_path)
    before = history(database), runs_table(database)
    again = publish_run(database, tmp_path / "runs/night-2")
    assert again.already and "already published" in again.summary()
    assert again.tables() == "unchanged (already published)"
    assert publish_run(database, tmp_path / "runs/night-3").already
    assert (history(database), runs_table(database)) == before


def test_a_run_older_than_the_latest_published_is_refused(database, tmp_path):
    three_nights(database, tmp_path)
    before = history(database), runs_table(database)
    older = published_folder(tmp_path, "late", NIGHT_1 + timedelta(hours=1), {"a": 2})
    with pytest.raises(PublishError, match="history only moves forward"):
        publish_run(database, older)
    assert (history(database), runs_table(database)) == before


def _refuse_runs(url: str) -> None:
    """A trigger that fails the publication's last statement (the segment_runs row), after
    every customer_segments row was closed and opened: a real failure of the database."""
    engine = create_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON segment_runs "
                "BEGIN SELECT RAISE(ABORT, 'no more runs today'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'no more runs today'; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON segment_runs "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
    engine.dispose()


def test_a_failed_write_leaves_the_database_as_it_was(database, tmp_path):
    times = [NIGHT_1 + timedelta(days=n) for n in range(3)]
    folders = [
        published_folder(tmp_path, f"night-{n + 1}", times[n], members)
        for n, members in enumerate(NIGHTS)
    ]
    publish_run(database, folders[0])
    _refuse_runs(database)
    before = history(database), runs_table(database)
    with pytest.raises(PublishError) as failed:
        publish_run(database, folders[1])
    message = str(failed.value)
    assert "\n" not in message and "no more runs today" in message
    assert "the database is as it was" in message and str(folders[1]) in message
    assert (history(database), runs_table(database)) == before
    assert (folders[1] / "segments.parquet").is_file()  # the run folder is left as published


def test_a_customer_listed_twice_fails_in_the_driver_and_is_rolled_back(database, tmp_path):
    """The customers go through the driver (COPY, executemany): its own errors are caught too."""
    folder = published_folder(tmp_path, "night-1", NIGHT_1, NIGHTS[0])
    publish_run(database, folder)
    before = history(database), runs_table(database)
    twice = published_folder(tmp_path, "night-2", NIGHT_1 + timedelta(days=1), NIGHTS[1])
    segments = pd.read_parquet(twice / "segments.parquet")
    pd.concat([segments, segments.iloc[:1]]).to_parquet(twice / "segments.parquet")
    manifest = json.loads((twice / "manifest.json").read_text())
    manifest["files"] = file_checksums(twice, (".parquet",))
    (twice / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PublishError, match="the database is as it was") as failed:
        publish_run(database, twice)
    assert "\n" not in str(failed.value)
    assert (history(database), runs_table(database)) == before


def test_the_first_publication_creating_the_tables_is_rolled_back_too(tmp_path):
    """Made to fail by an existing table of another shape: nothing is created."""
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE segment_runs (id INTEGER, note TEXT)")
    folder = published_folder(tmp_path, "night-1", NIGHT_1, NIGHTS[0])
    with pytest.raises(PublishError, match="table segment_runs has the columns id, note"):
        publish_run(url, folder)
    with engine.connect() as connection:
        tables = connection.exec_driver_sql("SELECT name FROM sqlite_master").scalars().all()
    engine.dispose()
    assert tables == ["segment_runs"]


def test_an_unreachable_server_is_one_line_without_the_password(tmp_path):
    folder = published_folder(tmp_path, "night-1", NIGHT_1, NIGHTS[0])
    url = "sqlite:////nonexistent-folder/deep/segments.db"
    with pytest.raises(PublishError, match="unable to open database file") as failed:
        publish_run(url, folder)
    assert "\n" not in str(failed.value)
    assert shown_url("postgresql+psycopg://ann:s3cret@db.example:5432/crm") == (
        "postgresql+psycopg://ann:***@db.example:5432/crm"
    )


def test_url_problems_are_found_before_connecting():
    assert url_problem("sqlite:///segments.db") is None
    assert url_problem("postgresql+psycopg://ann:s3cret@db.example/crm") is None  # no connection
    unknown = url_problem("nosuchdb://ann:s3cret@host/db")
    assert unknown is not None and "s3cret" not in unknown and "nosuchdb" in unknown
    assert url_problem("not a url") is not None


def test_without_postgresql_its_tests_skip_here_and_fail_in_ci(monkeypatch):
    """CI (.ci/run sets CI and installs the binaries) never passes by skipping them."""
    import postgres

    monkeypatch.setattr(postgres, "postgres_bin", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian package 'postgresql'"):
        postgres.require_postgres_bin()
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="Debian package 'postgresql'"):
        postgres.require_postgres_bin()


def test_a_relative_sqlite_file_is_made_absolute_on_the_command_line():
    """A deployment's runs start in another folder: the option records where the file is."""
    from segment.settings import _database_url

    assert _database_url("sqlite:///segments.db") == f"sqlite:///{Path.cwd() / 'segments.db'}"
    assert _database_url("sqlite:////srv/segments.db") == "sqlite:////srv/segments.db"
    assert _database_url("sqlite:///:memory:") == "sqlite:///:memory:"
    assert _database_url("postgresql+psycopg://crm@db/crm") == "postgresql+psycopg://crm@db/crm"
