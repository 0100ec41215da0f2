"""Test-wide setup: an isolated Prefect home, no telemetry, the test tiers, shared fixtures.

Tiers (see docs/development.md, "Tests"): ``make test-fast`` runs every test not marked ``flow``,
``process`` or ``slow`` (a whole pipeline run in this process); ``make test`` runs them all.
A test that uses the ``prefect_server`` or ``live_server`` fixture is marked ``flow`` here,
automatically. A test that starts a process (subprocess, fork, Chromium, a temporary Prefect
server) or calls a flow must say so with ``@pytest.mark.process`` or ``@pytest.mark.flow``: an
unmarked test that tries is failed by ``_unmarked_tests_start_no_process`` below, in both
tiers, so none lands in the fast tier.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Before anything imports Prefect: never touch the user's ~/.prefect, never phone home.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "tasks")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ.pop("PREFECT_API_URL", None)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

SERVER_FIXTURES = {"prefect_server", "live_server"}
SPAWNING_MARKERS = {"flow", "process"}  # the tests allowed to start processes


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Mark every test that uses a Prefect server fixture ``flow``. For ``--dist loadgroup``
    (make test): the tests of the live server run on one worker (one server for them all), and
    the tests sharing a module-scoped fixture (a flow run, a week of nights) run on one worker,
    so that it is computed once; every other test goes to whichever worker is free."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SERVER_FIXTURES and not item.get_closest_marker("flow"):
            item.add_marker(pytest.mark.flow)
        if item.get_closest_marker("xdist_group"):
            continue
        if "live_server" in fixtures:
            item.add_marker(pytest.mark.xdist_group("live-server"))
        elif _uses_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def _uses_a_module_fixture(item) -> bool:
    # pytest's FixtureDefs of the item (no public accessor); only the scope is read
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    return any(d.scope == "module" for defs in definitions for d in defs)


# Probes libraries make of the machine (platform.architecture runs `file`, joblib's cpu count
# `lscpu`): a few milliseconds, not a test's own process.
LIBRARY_PROBES = {"file", "lscpu"}


def _refuse(what: str):
    def refused(*args, **kwargs):
        pytest.fail(
            f"this test {what} but is not marked: add @pytest.mark.process (or "
            "@pytest.mark.flow for a flow call) so that it stays out of the fast tier",
            pytrace=False,
        )

    return refused


@pytest.fixture(autouse=True)
def _unmarked_tests_start_no_process(request, monkeypatch):
    """The fast tier's guarantee: a test marked neither ``flow`` nor ``process`` starts no
    process (subprocess, fork, multiprocessing) and calls no flow (a flow call would start
    Prefect's temporary server)."""
    if any(request.node.get_closest_marker(name) for name in SPAWNING_MARKERS):
        yield
        return
    import multiprocessing.process
    import subprocess

    spawn = _refuse("starts a process")
    execute_child = subprocess.Popen._execute_child

    def probe_or_refuse(popen, args, *rest, **kwargs):
        command = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
        if Path(os.fsdecode(command[0]).split()[0]).name in LIBRARY_PROBES:
            return execute_child(popen, args, *rest, **kwargs)
        return spawn()

    monkeypatch.setattr(subprocess.Popen, "_execute_child", probe_or_refuse)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", spawn)
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, spawn)
    if "prefect.flows" in sys.modules:
        monkeypatch.setattr(sys.modules["prefect.flows"].Flow, "__call__", _refuse("calls a flow"))
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared public datasets next to the repo; skips when they are not there."""
    if not (SHARED_DATA / "mall_customers.csv").is_file():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (../shared/data from the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def customers_csv(tmp_path_factory) -> Path:
    """600 seeded sample customers (the generator's default shape) as a Mall-style CSV."""
    from tasks.sample_data import generate_customers, write_sample_csv

    path = tmp_path_factory.mktemp("input") / "customers.csv"
    write_sample_csv(generate_customers(n=600, seed=5), path)
    return path


@pytest.fixture(scope="session")
def abc_run():
    """A first run on three planted blobs A, B, C (tests/helpers.py), k=3."""
    from helpers import A, B, C, population, run

    return run(population(A=A, B=B, C=C), 3)


@pytest.fixture(scope="session")
def prefect_server():
    """One throw-away Prefect server and database for every flow test in the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """A real `prefect server start` (API and UI) on a free 127.0.0.1 port, for the session."""
    from live_server import running_server

    with running_server(tmp_path_factory.mktemp("prefect-server-home")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server():
    """A throw-away PostgreSQL server on a free 127.0.0.1 port, for the session (one per
    pytest-xdist worker; tests/postgres.py). Skipped without Debian's binaries, failed in CI."""
    from postgres import postgres_server as started

    with started() as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server, request) -> str:
    """A new empty database on the session's PostgreSQL server: its SQLAlchemy URL."""
    import re
    import uuid

    name = re.sub(r"\W+", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    return postgres_server.create_database(name)
