"""Test-wide setup: an isolated Prefect home, no telemetry, shared data location, harness."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared public datasets next to the repo; skips when they are not there."""
    if not (SHARED_DATA / "mall_customers.csv").is_file():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (../shared/data from the repo)")
    return SHARED_DATA


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
