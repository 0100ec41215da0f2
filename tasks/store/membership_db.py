"""The membership history in a database (``--publish-db URL``, issue 24 item 4).

After a run folder is published, ``publish_run`` writes its customers' segments into two tables
of a database given by its SQLAlchemy URL (``sqlite:///segments.db`` needs nothing installed;
``postgresql+psycopg://user@host/db`` needs the ``postgres`` extra), in one transaction:

- ``segment_runs``: one row per published run: ``run_id``, ``finished_at`` (UTC), ``k``,
  ``customers``, ``output_folder``.
- ``customer_segments``: a slowly changing history (type 2), one row per customer and stretch of
  time in one segment: ``customer_id`` (text), ``segment_id``, ``segment_name``, ``run_id`` (the
  run that opened the row), ``valid_from`` (that run's finished_at, UTC) and ``valid_to`` (the
  finished_at of the run that closed it; null: the current row). A customer whose segment (id
  and name) is unchanged keeps its row; a change closes the row and opens a new one; a customer
  not in the run is closed (and gets a new row if it comes back).

Publishing a run already in ``segment_runs`` changes nothing; a run that finished before the
latest one published is refused (the history only moves forward). Any failure rolls the whole
transaction back (tables, rows and indexes), so the database stays as it was: ``PublishError``.

The segments are read from the published folder in batches (``segments.parquet``, or a
partitioned run's ``segments-NNNNN.parquet``) into a temporary table; two set statements then
close and open the rows, so the customers are never all held in memory.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as arrow
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    event,
    exists,
    func,
    insert,
    inspect,
    literal,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from schemas.columns import CUSTOMER_ID, SEGMENT_ID, SEGMENT_NAME
from tasks.errors import PublishError
from tasks.store.history import verify_files
from tasks.store.paths import MANIFEST

log = logging.getLogger(__name__)

BATCH_ROWS = 100_000  # customers read and inserted at a time
SQLITE_BUSY_SECONDS = 60  # wait this long for another publisher's lock on a SQLite file
ADVISORY_LOCK = 24_004  # PostgreSQL: one publisher at a time (pg_advisory_xact_lock)
UTC_TIME = DateTime(timezone=True)

METADATA = MetaData()
SEGMENT_RUNS = Table(
    "segment_runs",
    METADATA,
    Column("run_id", Text, primary_key=True),
    Column("finished_at", UTC_TIME, nullable=False),
    Column("k", Integer, nullable=False),
    Column("customers", BigInteger, nullable=False),
    Column("output_folder", Text, nullable=False),
)
CUSTOMER_SEGMENTS = Table(
    "customer_segments",
    METADATA,
    Column(CUSTOMER_ID, Text, primary_key=True),
    Column(SEGMENT_ID, Integer, nullable=False),
    Column(SEGMENT_NAME, Text, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("valid_from", UTC_TIME, primary_key=True),  # a customer gets one row per run at most
    Column("valid_to", UTC_TIME, nullable=True),
)
_current = CUSTOMER_SEGMENTS.c.valid_to.is_(None)
Index(  # at most one current row per customer; the lookups of a publication use it
    "customer_segments_current",
    CUSTOMER_SEGMENTS.c.customer_id,
    unique=True,
    sqlite_where=_current,
    postgresql_where=_current,
)
# This run's customers, loaded batch by batch, dropped before the commit.
INCOMING = Table(
    "incoming_segments",
    MetaData(),
    Column(CUSTOMER_ID, Text, primary_key=True),
    Column(SEGMENT_ID, Integer, nullable=False),
    Column(SEGMENT_NAME, Text, nullable=False),
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True)
class RunRecord:
    """What ``segment_runs`` keeps of a published run (read from its manifest)."""

    run_id: str
    finished_at: datetime
    k: int
    folder: Path


@dataclass(frozen=True)
class Published:
    """What one publication did: ``already`` (the run was in the database: nothing written),
    the run's customers, and the rows it opened and closed (changed and gone customers)."""

    run_id: str
    database: str  # the URL without its password
    customers: int = 0
    opened: int = 0
    closed: int = 0
    already: bool = False

    @property
    def kept(self) -> int:
        """Customers whose current row stayed as it was."""
        return self.customers - self.opened

    def tables(self) -> str:
        """What was written, table by table (the Prefect summary's database line)."""
        if self.already:
            return "unchanged (already published)"
        return (
            f"customer_segments: {self.kept:,} kept, {self.opened:,} opened, "
            f"{self.closed:,} closed; segment_runs +1"
        )

    def summary(self) -> str:
        if self.already:
            return f"Database {self.database}: run {self.run_id} was already published (unchanged)"
        return (
            f"Database {self.database}: {self.customers:,} customers of run {self.run_id}: "
            f"{self.kept:,} kept their row, {self.opened:,} rows opened, {self.closed:,} closed"
        )


def shown_url(url: str) -> str:
    """``url`` as messages, logs and the manifest show it: its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL: show only what precedes any credentials
        return url.split("://", 1)[0] + "://..." if "://" in url else "(not a database URL)"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be used (not a SQLAlchemy URL, an unknown database, its driver not
    installed), in one line, or None. Connects to nothing: checked before a run starts."""
    try:
        create_engine(url, poolclass=NullPool).dispose()
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        hint = " (pip install 'customer-segmentation[postgres]')" if "psycopg" in url else ""
        return f"{shown_url(url)}: {_one_line(error)}{hint}"
    return None


def publish_run(url: str, folder: Path, *, batch_rows: int = BATCH_ROWS) -> Published:
    """Write the published run in ``folder`` into the membership history at ``url``, in one
    transaction; ``PublishError`` (the database as it was) when it cannot."""
    database = shown_url(url)
    run = run_record(folder)
    files = segment_files(folder)
    verify_files(folder, tuple(f.name for f in files))  # the files the manifest lists, unchanged
    problem = url_problem(url)
    if problem is not None:
        raise PublishError(_failed(problem, folder))
    engine = _engine(url)
    driver_error = engine.dialect.loaded_dbapi.Error  # raised by COPY and executemany as such
    try:
        with engine.begin() as connection:
            published = _write(connection, run, files, batch_rows, database)
    except (SQLAlchemyError, driver_error, _Refused) as error:
        raise PublishError(_failed(f"{database}: {_one_line(error)}", folder)) from error
    finally:
        engine.dispose()
    log.info("%s", published.summary())
    return published


def run_record(folder: Path) -> RunRecord:
    """The run id, end time and k of the published run in ``folder``, from its manifest."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    finished = datetime.fromisoformat(manifest["finished_at"])
    return RunRecord(manifest["run_id"], _utc(finished), int(manifest["k"]["chosen"]), folder)


def segment_files(folder: Path) -> tuple[Path, ...]:
    """The run's segments: ``segments.parquet``, or a partitioned run's part files."""
    if (folder / "segments.parquet").exists():
        return (folder / "segments.parquet",)
    parts = tuple(sorted(folder.glob("segments-*.parquet")))
    return parts or (folder / "segments.parquet",)  # missing: verify_files names it


def segment_batches(files: tuple[Path, ...], rows: int) -> Iterator[list[tuple[str, int, str]]]:
    """The customers of ``files`` as (customer_id as text, segment_id, segment_name), ``rows``
    at a time."""
    for path in files:
        table = pq.ParquetFile(path)
        for batch in table.iter_batches(rows, columns=[CUSTOMER_ID, SEGMENT_ID, SEGMENT_NAME]):
            ids = pc.cast(batch.column(CUSTOMER_ID), arrow.string()).to_pylist()
            segment_ids = batch.column(SEGMENT_ID).to_pylist()
            names = batch.column(SEGMENT_NAME).to_pylist()
            yield list(zip(ids, segment_ids, names, strict=True))


def _load_incoming(connection: Connection, files: tuple[Path, ...], rows: int) -> int:
    """Insert the run's customers into ``INCOMING``; return their number. Straight through the
    driver: COPY with psycopg, else its executemany (SQLAlchemy's own builds a dict of
    parameters per row, which took half of a 1M-customer publication on SQLite)."""
    columns = list(INCOMING.columns.keys())
    marks = {
        "qmark": ["?"] * len(columns),
        "format": ["%s"] * len(columns),
        "pyformat": ["%s"] * len(columns),
        "numeric": [f":{i + 1}" for i in range(len(columns))],
    }.get(connection.dialect.paramstyle)
    # the table's and columns' own names, no data: nothing to inject
    sql = f"INSERT INTO {INCOMING.name} ({', '.join(columns)}) VALUES ({', '.join(marks or [])})"  # noqa: S608
    cursor = connection.connection.cursor()  # in the transaction of ``connection``
    customers = 0
    for batch in segment_batches(files, rows):
        if connection.dialect.driver == "psycopg":  # PostgreSQL's bulk load: COPY
            with cursor.copy(f"COPY {INCOMING.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
        elif marks is None:  # a driver with named parameters
            named = [dict(zip(columns, row, strict=True)) for row in batch]
            connection.execute(insert(INCOMING), named)
        else:
            cursor.executemany(sql, batch)
        customers += len(batch)
    cursor.close()
    return customers


class _Refused(Exception):
    """A publication refused inside the transaction (rolled back, nothing written)."""


def _write(
    connection: Connection, run: RunRecord, files: tuple[Path, ...], rows: int, database: str
) -> Published:
    if connection.dialect.name == "postgresql":  # SQLite: BEGIN IMMEDIATE did it (_engine)
        connection.execute(select(func.pg_advisory_xact_lock(ADVISORY_LOCK)))
    METADATA.create_all(connection)  # the first publication creates the tables
    _check_columns(connection)
    runs = SEGMENT_RUNS.c
    if connection.execute(select(runs.run_id).where(runs.run_id == run.run_id)).first():
        return Published(run.run_id, database, already=True)
    latest = connection.execute(
        select(runs.run_id, runs.finished_at).order_by(runs.finished_at.desc()).limit(1)
    ).first()
    if latest is not None and _utc(latest.finished_at) >= run.finished_at:
        raise _Refused(
            f"run {run.run_id} finished at {run.finished_at.isoformat()}, not after run "
            f"{latest.run_id} ({_utc(latest.finished_at).isoformat()}), the latest in the "
            "database: the history only moves forward"
        )
    INCOMING.create(connection)
    customers = _load_incoming(connection, files, rows)
    history, incoming, at = CUSTOMER_SEGMENTS.c, INCOMING.c, run.finished_at
    same = exists().where(
        incoming.customer_id == history.customer_id,
        incoming.segment_id == history.segment_id,
        incoming.segment_name == history.segment_name,
    )
    closed = connection.execute(
        update(CUSTOMER_SEGMENTS).where(history.valid_to.is_(None), ~same).values(valid_to=at)
    ).rowcount
    current = exists().where(
        history.customer_id == incoming.customer_id, history.valid_to.is_(None)
    )
    connection.execute(
        insert(CUSTOMER_SEGMENTS).from_select(
            [CUSTOMER_ID, SEGMENT_ID, SEGMENT_NAME, "run_id", "valid_from"],
            select(
                incoming.customer_id,
                incoming.segment_id,
                incoming.segment_name,
                literal(run.run_id, Text),
                literal(at, UTC_TIME),
            ).where(~current),
        )
    )
    opened = connection.execute(  # counted: not every driver gives an INSERT ... SELECT's rows
        select(func.count()).select_from(CUSTOMER_SEGMENTS).where(history.run_id == run.run_id)
    ).scalar_one()
    connection.execute(
        insert(SEGMENT_RUNS).values(
            run_id=run.run_id,
            finished_at=at,
            k=run.k,
            customers=customers,
            output_folder=str(run.folder),
        )
    )
    INCOMING.drop(connection)
    return Published(run.run_id, database, customers, opened, closed)


def _check_columns(connection: Connection) -> None:
    """Refuse tables of these names that are not the history's (someone else's tables)."""
    inspector = inspect(connection)
    for table in METADATA.tables.values():
        found = [column["name"] for column in inspector.get_columns(table.name)]
        if found != list(table.columns.keys()):
            raise _Refused(
                f"table {table.name} has the columns {', '.join(found)}, not those of the "
                f"membership history ({', '.join(table.columns.keys())})"
            )


def _engine(url: str) -> Engine:
    """An engine whose ``begin()`` is one transaction over everything, DDL included. SQLite:
    Python's driver would commit before DDL on its own, so SQLAlchemy emits ``BEGIN
    IMMEDIATE`` itself (which also takes the file's write lock first: one publisher at a time).
    No pool: a publication's connection is closed with it."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, poolclass=NullPool)
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_SECONDS})

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _utc(moment: datetime) -> datetime:
    """Times are stored in UTC; SQLite gives them back without a time zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _one_line(error: BaseException) -> str:
    """The driver's own message (not SQLAlchemy's SQL and parameters), on one line."""
    original = getattr(error, "orig", None)
    text = str(original if original is not None else error)
    text = text.split("(Background on this error")[0]
    return re.sub(r"\s+", " ", text).strip() or type(error).__name__


def _failed(reason: str, folder: Path) -> str:
    return (
        f"--publish-db {reason}; the membership history was not written (the database is as "
        f"it was), the run folder {folder} is published"
    )
