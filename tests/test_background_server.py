"""Prefect's background server of `segment server start|stop|status`
(flows/background_server.py, segment/cli/server.py) and `segment run` using it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from contextlib import suppress
from pathlib import Path

import psutil
import pytest
from helpers import bare_env

from flows import background_server as background
from flows import server as early
from segment.cli.main import main, ui_link
from segment.cli.server import EXIT_NOT_RUNNING

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    with subprocess.Popen([sys.executable, "-c", "pass"]) as child:
        child.wait()
    return child.pid


def _record(home: Path, pid: int, port: int, prefect_pid: int | None = None) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / background.PREFECT_PID_FILE).write_text(str(prefect_pid or pid))
    (home / background.RECORD_FILE).write_text(json.dumps({"pid": pid, "port": port}))


# ------------------------------------------------------------ finding the server, no process


def test_nothing_is_found_in_an_empty_home(tmp_path):
    assert background.found(tmp_path) is None
    assert background.running(tmp_path) is None


def test_a_live_recorded_pid_is_found_but_does_not_run_without_an_answering_api(tmp_path):
    port = _free_port()  # nothing listens there
    _record(tmp_path, os.getpid(), port)
    assert background.found(tmp_path) == background.BackgroundServer(os.getpid(), port)
    assert background.running(tmp_path) is None


def test_a_record_that_prefects_pid_file_contradicts_is_not_found(tmp_path):
    _record(tmp_path, os.getpid(), _free_port(), prefect_pid=os.getppid())
    assert background.found(tmp_path) is None
    (tmp_path / background.PREFECT_PID_FILE).unlink()
    assert background.found(tmp_path) is None


@pytest.mark.process  # starts a child only to get a pid that is gone
def test_a_dead_pid_is_not_found_and_its_files_are_stale(tmp_path):
    _record(tmp_path, _dead_pid(), _free_port())
    assert background.found(tmp_path) is None
    background.forget_stale(tmp_path)
    assert not (tmp_path / background.PREFECT_PID_FILE).exists()
    assert not (tmp_path / background.RECORD_FILE).exists()


def test_stale_files_of_a_live_process_are_kept(tmp_path):
    _record(tmp_path, os.getpid(), _free_port())
    background.forget_stale(tmp_path)
    assert (tmp_path / background.PREFECT_PID_FILE).exists()


def test_the_home_is_prefects_default_without_the_variable():
    assert background.prefect_home({}) == Path("~/.prefect").expanduser()
    assert background.prefect_home({"PREFECT_HOME": "/x/y"}) == Path("/x/y")


@pytest.fixture
def environ(tmp_path, monkeypatch) -> dict[str, str]:
    """A copy of the environment as ``os.environ`` (what a test's code sets there is dropped
    after it), with ``tmp_path`` as PREFECT_HOME and no API or UI URL."""
    copy = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_UI_URL")}
    monkeypatch.setattr(os, "environ", copy | {"PREFECT_HOME": str(tmp_path)})
    return os.environ  # type: ignore[return-value]


def test_a_run_uses_an_answering_background_server(tmp_path, monkeypatch, environ):
    server = background.BackgroundServer(os.getpid(), 4321)
    monkeypatch.setattr(background, "found", lambda home: server if home == tmp_path else None)
    monkeypatch.setattr(background, "answers", lambda found: found == server)
    assert early.use_background_server()
    assert environ["PREFECT_API_URL"] == "http://127.0.0.1:4321/api"
    assert environ["PREFECT_UI_URL"] == "http://127.0.0.1:4321"


def test_a_run_says_when_the_background_server_does_not_answer(tmp_path, environ, capsys):
    port = _free_port()
    _record(tmp_path, os.getpid(), port)
    assert not early.use_background_server()
    assert "PREFECT_API_URL" not in environ
    err = capsys.readouterr().err
    assert f"does not answer at http://127.0.0.1:{port}/api" in err
    assert "this run uses a temporary server" in err


def test_status_and_stop_say_not_running(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    assert main(["server", "status"]) == EXIT_NOT_RUNNING
    assert capsys.readouterr().out == f"Not running: no background Prefect server in {tmp_path}\n"
    assert main(["server", "stop"]) == 0
    assert capsys.readouterr().out.startswith("Not running: ")


def test_server_without_an_action_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["server"])
    assert exit_info.value.code == 2
    assert "segment server: error:" in capsys.readouterr().err


def test_the_ui_link_is_the_flow_runs_page_under_the_ui_url():
    from prefect.settings import PREFECT_UI_URL, temporary_settings

    manifest = {"flow_run_id": "b013853b-5817-4b9c-812c-7bc760a1e63e"}
    with temporary_settings(updates={PREFECT_UI_URL: "http://127.0.0.1:4321"}):
        assert ui_link(manifest) == (
            "http://127.0.0.1:4321/runs/flow-run/b013853b-5817-4b9c-812c-7bc760a1e63e"
        )
    with temporary_settings(updates={PREFECT_UI_URL: ""}):
        assert ui_link(manifest) is None  # a temporary server: no UI, no link


# ------------------------------------------------------------------ a real background server


def _segment(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "segment.cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _get(url: str, accept: str = "application/json") -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.status, response.read().decode()


@pytest.fixture
def home(tmp_path):
    """A PREFECT_HOME of its own; whatever server the test started there is stopped after it."""
    home = tmp_path / "prefect-home"
    yield home
    pid = background.prefect_pid(home)
    with suppress(background.ServerError, OSError, subprocess.SubprocessError):
        background.stop(home, timeout=15)
    if pid is not None and background.process_alive(pid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.process
def test_start_a_run_with_its_ui_link_and_stop(home, tmp_path):
    """`segment server start` starts Prefect's background server (again: says so); `segment
    run` uses it, no temporary server, and ends its summary with the flow run's UI link;
    `segment server stop` stops it (again: says so) and the port is free."""
    env, port = bare_env(home), _free_port()
    started = _segment("server", "start", "--port", str(port), env=env)
    assert started.returncode == 0, started.stderr
    ui = f"http://127.0.0.1:{port}"
    assert started.stdout.startswith(f"Started: UI {ui}, API {ui}/api, pid ")
    pid = background.prefect_pid(home)
    assert pid is not None and background.process_alive(pid)
    assert "prefect.server.api.server:create_app" in Path(f"/proc/{pid}/cmdline").read_text()
    listening = {
        c.laddr.ip for c in psutil.Process(pid).net_connections("inet") if c.status == "LISTEN"
    }
    assert listening == {"127.0.0.1"}  # this machine only

    again = _segment("server", "start", "--port", str(port), env=env)
    assert (again.returncode, again.stdout) == (
        0,
        f"Already running: UI {ui}, API {ui}/api, pid {pid}\n",
    )
    status = _segment("server", "status", env=env)
    assert (status.returncode, status.stdout) == (0, f"Running: UI {ui}, API {ui}/api, pid {pid}\n")

    output = tmp_path / "outputs"
    customers = ROOT / "data" / "customers.csv"
    run = _segment("run", "--input", str(customers), "--output", str(output), "--quiet", env=env)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((output / "latest" / "manifest.json").read_text())
    link = f"{ui}/runs/flow-run/{manifest['flow_run_id']}"
    assert run.stdout.rstrip("\n").splitlines()[-1] == f"UI: {link}"
    code, flow_run = _get(f"{ui}/api/flow_runs/{manifest['flow_run_id']}")
    assert (code, json.loads(flow_run)["state_type"]) == (200, "COMPLETED")  # on this server
    code, page = _get(link, accept="text/html")
    assert code == 200 and "<html" in page.lower()  # the UI serves the link

    # `segment backfill` (like serve and notify) finds the server too: it asks it for the
    # nightly deployment, which this server does not have
    backfill = _segment("backfill", "--as-of", "2026-01-01", "--no-wait", env=env)
    assert backfill.returncode == 1 and "PREFECT_API_URL is not set" not in backfill.stderr
    assert "nightly-resegmentation" in backfill.stderr, backfill.stderr

    stopped = _segment("server", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == f"Stopped the background Prefect server (pid {pid}) of {home}\n"
    assert not background.process_alive(pid)
    assert not (home / background.PREFECT_PID_FILE).exists()
    assert not (home / background.RECORD_FILE).exists()
    with socket.socket() as sock:  # nothing listens there any more (as Prefect checks a port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    status = _segment("server", "status", env=env)
    assert (status.returncode, status.stdout.split(":")[0]) == (EXIT_NOT_RUNNING, "Not running")
    stopped = _segment("server", "stop", env=env)
    assert (stopped.returncode, stopped.stdout.split(":")[0]) == (0, "Not running")


@pytest.mark.process
def test_start_on_a_port_in_use_fails_with_one_line_and_leaves_nothing(home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = _segment("server", "start", "--port", str(port), env=bare_env(home))
    assert started.returncode == 1
    assert started.stderr.count("\n") == 1
    assert started.stderr.startswith("segment: error: `prefect server start --background")
    assert f"Port {port} is already in use" in started.stderr
    assert background.prefect_pid(home) is None
    assert not (home / background.RECORD_FILE).exists()
