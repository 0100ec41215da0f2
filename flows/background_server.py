"""Prefect's background server for this project: ``segment server start|stop|status``.

``prefect server start --background`` (Prefect's own command) runs the API and the UI in a
process that outlives the command and writes that process's pid to ``$PREFECT_HOME/server.pid``;
``prefect server stop`` sends it SIGTERM and removes the file, without waiting. One background
server per ``PREFECT_HOME``: Prefect refuses a second start while the pid file is there.

Prefect does not record the port, so beside its pid file this module writes
``$PREFECT_HOME/segment-server.json`` (pid and port). ``segment run`` reads both before it
imports Prefect (:func:`running`): when the recorded pid is Prefect's background server and the
API answers ``/api/health`` on 127.0.0.1, the run uses that server instead of starting a
temporary one, and its summary ends with the flow run's UI link.

No Prefect import here: ``segment run`` calls :func:`running` first thing, and start and stop
run the ``prefect`` command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flows.killed_runs import pid_alive

HOST = "127.0.0.1"
DEFAULT_PORT = 4200  # Prefect's default: the UI's own default API address
PREFECT_PID_FILE = "server.pid"  # prefect.cli._server_utils.SERVER_PID_FILE_NAME
RECORD_FILE = "segment-server.json"
START_TIMEOUT_SECONDS = 90.0  # a first start creates the database: ~10 s on a quiet machine
STOP_TIMEOUT_SECONDS = 30.0
SERVER_APP = "prefect.server.api.server:create_app"  # in the server process's command line


class ServerError(RuntimeError):
    """The background server could not be started or stopped: the message says why."""


@dataclass(frozen=True)
class BackgroundServer:
    """Prefect's background server of one ``PREFECT_HOME``: its process and port."""

    pid: int
    port: int

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"


def prefect_home(environ: Mapping[str, str] | None = None) -> Path:
    """The ``PREFECT_HOME`` Prefect uses (``environ``: this process's environment): the
    variable, else ``~/.prefect``."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def prefect_pid(home: Path) -> int | None:
    """The pid in Prefect's ``server.pid``, or None (no file, or not a number)."""
    try:
        text = (home / PREFECT_PID_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def recorded(home: Path) -> BackgroundServer | None:
    """The server ``segment server start`` recorded in ``home``, or None."""
    try:
        record = json.loads((home / RECORD_FILE).read_text(encoding="utf-8"))
        return BackgroundServer(pid=int(record["pid"]), port=int(record["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has: its port is closed)."""
    if not pid_alive(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # no /proc: os.kill said it exists
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def answers(server: BackgroundServer, timeout: float = 2.0) -> bool:
    """Whether the server's API answers ``/health`` with 200."""
    try:
        # an http:// URL to 127.0.0.1 built here
        with urllib.request.urlopen(f"{server.api_url}/health", timeout=timeout) as response:  # noqa: S310
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def found(home: Path) -> BackgroundServer | None:
    """The recorded server when it is still Prefect's background server of ``home`` (the pid
    files agree) and its process is alive; it may not answer yet (starting) or any more."""
    server = recorded(home)
    if server is None or prefect_pid(home) != server.pid or not process_alive(server.pid):
        return None
    return server


def running(home: Path) -> BackgroundServer | None:
    """The background server of ``home`` when it is alive and answers; fast (file reads and
    one request to 127.0.0.1), no Prefect import."""
    server = found(home)
    return server if server is not None and answers(server) else None


def prefect_command() -> list[str]:
    """The ``prefect`` command of this interpreter's environment."""
    return [sys.executable, "-m", "prefect"]


def _prefect(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    """Run ``prefect ARGS``; its output, or ServerError with its last line."""
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments, no shell
        [*prefect_command(), *args],
        env={**env, "COLUMNS": "1000"},  # one line per message: rich wraps at the width
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = (done.stdout + "\n" + done.stderr).strip()
    if done.returncode != 0:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        last = lines[-1] if lines else "no output"
        raise ServerError(f"`prefect {' '.join(args)}` failed (exit {done.returncode}): {last}")
    return output


def server_environment(home: Path, port: int) -> dict[str, str]:
    """The environment of ``prefect server start``: this ``PREFECT_HOME``, the UI talking to
    this port's API (its default is port 4200), no telemetry unless asked."""
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env["PREFECT_UI_API_URL"] = BackgroundServer(pid=0, port=port).api_url
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.pop("PREFECT_API_URL", None)  # the server's own address is --host/--port
    return env


def forget_stale(home: Path) -> None:
    """Remove the pid files of a background server whose process is gone (a reboot, a kill):
    Prefect refuses to start while its pid file is there."""
    pid = prefect_pid(home)
    if pid is None or not process_alive(pid):
        (home / PREFECT_PID_FILE).unlink(missing_ok=True)
        (home / RECORD_FILE).unlink(missing_ok=True)


def start(
    home: Path, port: int = DEFAULT_PORT, timeout: float = START_TIMEOUT_SECONDS
) -> tuple[BackgroundServer, bool]:
    """Start Prefect's background server of ``home`` on 127.0.0.1:``port`` and wait until it
    answers; ``(server, False)``. ``(server, True)`` when it is already running (on its own
    port). ServerError when Prefect refuses (port in use, a server not started here) or the
    server does not answer within ``timeout`` seconds."""
    already = found(home)
    if already is not None:
        if not _wait_until_answering(already, timeout):
            raise ServerError(
                f"a background server is running (pid {already.pid}) but does not answer at "
                f"{already.api_url}/health; stop it with `segment server stop`"
            )
        return already, True
    home.mkdir(parents=True, exist_ok=True)
    forget_stale(home)
    env = server_environment(home, port)
    _prefect(["server", "start", "--background", "--host", HOST, "--port", str(port)], env)
    pid = prefect_pid(home)
    if pid is None:
        raise ServerError(f"`prefect server start --background` wrote no pid to {home}")
    server = BackgroundServer(pid=pid, port=port)
    record = {"pid": pid, "port": port, "api_url": server.api_url, "ui_url": server.ui_url}
    (home / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if not _wait_until_answering(server, timeout):
        stop(home)
        raise ServerError(
            f"the Prefect server (pid {pid}) did not answer at {server.api_url}/health within "
            f"{timeout:.0f} s (Prefect discards a background server's output: run `prefect "
            f"server start --port {port}` to see its log)"
        )
    return server, False


def _wait_until_answering(server: BackgroundServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(server.pid):
            return False
        if answers(server):
            return True
        time.sleep(0.2)
    return False


def stop(home: Path, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
    """Stop the background server of ``home`` with ``prefect server stop`` and wait until its
    process has exited (SIGKILL after ``timeout`` seconds); the stopped server's pid, or None
    when none was running (stale pid files are removed)."""
    pid = prefect_pid(home)
    if pid is None or not process_alive(pid):
        forget_stale(home)
        return None
    _prefect(["server", "stop"], {**os.environ, "PREFECT_HOME": str(home)})
    if not _wait_until_gone(pid, timeout) and _is_prefect_server(pid):
        os.kill(pid, signal.SIGKILL)
        _wait_until_gone(pid, 5)
    (home / RECORD_FILE).unlink(missing_ok=True)
    return pid


def _wait_until_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _is_prefect_server(pid: int) -> bool:
    """Whether ``pid`` is still a Prefect server process (not a reused pid)."""
    try:
        return SERVER_APP in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
