"""A throw-away PostgreSQL server for the tests of --publish-db: Debian's binaries (package
``postgresql``, which .ci/run installs), a fresh cluster in a temporary folder, listening on a
free port of 127.0.0.1 only, trust authentication, no fsync; the server dies with the test
process. As root (CI containers) the server runs as the ``postgres`` user (else ``nobody``):
PostgreSQL refuses to run as root.

Without the binaries the tests that need the server are skipped, saying so; with ``CI`` set
(.ci/run sets it) they fail instead, so CI never passes by skipping them."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.server import dies_with_parent, free_port

MISSING = (
    "PostgreSQL server binaries not found (Debian package 'postgresql': initdb and postgres "
    "under /usr/lib/postgresql/*/bin; .ci/run installs it)"
)
STARTUP_SECONDS = 60


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb and postgres, or the folder of
    ``initdb`` on PATH."""

    def version(initdb: str) -> int:
        name = Path(initdb).parent.parent.name
        return int(name) if name.isdigit() else 0

    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    found = versions[-1] if versions else shutil.which("initdb")
    if found is None:
        return None
    folder = Path(found).resolve().parent
    return folder if (folder / "postgres").is_file() else None


def require_postgres_bin() -> Path:
    folder = postgres_bin()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)
    return folder


@dataclass(frozen=True)
class PostgresServer:
    port: int
    user: str = "postgres"  # the cluster's superuser (initdb -U)

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql+psycopg://{self.user}{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}"


def _account() -> tuple[int, int] | None:
    """As root: the uid and gid to run the server as; else None (this user)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    pytest.fail("running as root with neither a 'postgres' nor a 'nobody' user", pytrace=False)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a fresh server (initdb + postgres) and stop it afterwards."""
    binaries = require_postgres_bin()
    account = _account()
    as_user = {} if account is None else {"user": account[0], "group": account[1]}
    root = Path(tempfile.mkdtemp(prefix="pg-test-"))
    data = root / "data"
    if account is not None:
        os.chown(root, *account)
    server = None
    try:
        subprocess.run(
            [
                *(binaries / "initdb", "-D", data, "-U", "postgres", "-A", "trust"),
                *("-E", "UTF8", "--no-locale", "--no-sync"),
            ],
            check=True,
            capture_output=True,
            **as_user,
        )
        port = free_port()
        log = (root / "server.log").open("wb")
        server = subprocess.Popen(
            [
                *(binaries / "postgres", "-D", data, "-p", str(port), "-h", "127.0.0.1"),
                *("-k", root, "-c", "fsync=off", "-c", "full_page_writes=off"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=dies_with_parent(),  # the server dies with the tests
            **as_user,
        )
        log.close()
        running = PostgresServer(port)
        _wait_until_ready(running, server, root / "server.log")
        yield running
    finally:
        if server is not None:
            server.terminate()  # SIGTERM: smart shutdown
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_ready(running: PostgresServer, server: subprocess.Popen, log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited with {server.returncode}: {log.read_text()}")
        try:
            psycopg.connect(running._dsn("postgres"), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
