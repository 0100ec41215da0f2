"""A real `prefect server start` on a free 127.0.0.1 port, and subprocess helpers, for tests.

Subprocesses get an environment free of the caller's PREFECT_* variables, run in their own
process group, and are stopped with SIGTERM then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUN_TIMEOUT = 120


@dataclass
class Server:
    url: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        """A subprocess environment pointing at this server, free of the caller's Prefect vars."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_EXTRA_LOGGERS="tasks",
            PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="ignore",
            **extra,
        )
        return env

    @contextmanager
    def client(self):
        """Prefect's (sync) client in this process, pointed at the server."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with (
            temporary_settings({PREFECT_API_URL: self.url}),
            get_client(sync_client=True) as client,
        ):
            yield client

    def run_deployment(self, name: str, timeout: float = RUN_TIMEOUT, **kwargs):
        """Prefect's ``run_deployment`` on this server: the flow run once it ends, or, with
        ``timeout=0``, at once."""
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.url}):
            return run_deployment(
                name, timeout=timeout, poll_interval=0.5, as_subflow=False, **kwargs
            )

    def prefect(self, *args: str, cwd: Path = ROOT, timeout: float = 60) -> str:
        """Run the `prefect` CLI against the server; its output, or a failure showing it."""
        done = subprocess.run(
            [str(BIN / "prefect"), *args],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{output}"
        return output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT):
    """A subprocess in its own process group (it and its children are stopped together)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    with suppress(ProcessLookupError):  # children that outlived the leader
        os.killpg(process.pid, signal.SIGKILL)


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_for(what: str, check, process: subprocess.Popen, log: Path, timeout: float):
    """Poll ``check()`` until it returns a truthy value; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} before {what}:\n{tail(log)}")
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:.0f} s:\n{tail(log)}")
        time.sleep(0.2)


@contextmanager
def running_server(home: Path) -> Iterator[Server]:
    """Start a Prefect server (API and UI) with its own PREFECT_HOME; stop it on exit."""
    port = free_port()
    server = Server(url=f"http://127.0.0.1:{port}/api", home=home)
    log = home / "server.log"
    process = start(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        server.env(PREFECT_UI_API_URL=server.url),  # the UI's default is port 4200
        log,
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"{server.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for("a healthy server", healthy, process, log, timeout=90)
        yield server
    finally:
        stop(process)
