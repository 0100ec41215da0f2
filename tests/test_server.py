"""The temporary Prefect server started early by `segment run` (flows/server.py)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from helpers import assert_output_consistent, bare_env, segment_command

from flows import server as early

PROJECT_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------- when to start one


def test_nothing_names_an_api_in_a_bare_folder(tmp_path):
    env = {"PREFECT_HOME": str(tmp_path / "home")}
    assert not early.api_named_elsewhere(env, tmp_path)


def test_the_projects_own_settings_files_name_no_api(tmp_path):
    """Runs from the project folder get the early start (prefect.toml only mentions the
    variable in a comment)."""
    env = {"PREFECT_HOME": str(tmp_path / "home")}
    assert "PREFECT_API_URL" in (PROJECT_ROOT / "prefect.toml").read_text()
    assert not early.api_named_elsewhere(env, PROJECT_ROOT)


@pytest.mark.parametrize(
    "variable",
    ["PREFECT_API_URL", "PREFECT_SERVER_EPHEMERAL_ENABLED", "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"],
)
def test_the_environment_can_name_an_api_or_switch_the_temporary_server(tmp_path, variable):
    env = {"PREFECT_HOME": str(tmp_path / "home"), variable: "x"}
    assert early.api_named_elsewhere(env, tmp_path)


@pytest.mark.parametrize(
    ("name", "text", "names_api"),
    [
        ("prefect.toml", '[api]\nurl = "http://127.0.0.1:4200/api"\n', True),
        ("prefect.toml", 'api.url = "http://127.0.0.1:4200/api"\n', True),
        ("prefect.toml", 'api = { url = "http://127.0.0.1:4200/api" }\n', True),
        ("prefect.toml", "# set [api] url here, or PREFECT_API_URL\n[logging.to_api]\n", False),
        ("pyproject.toml", '[tool.prefect.api]\nurl = "http://h/api"\n', True),
        ("pyproject.toml", "[tool.ruff]\nline-length = 100\n", False),
        (".env", "PREFECT_API_URL=http://h/api\n", True),
    ],
)
def test_settings_files_in_the_working_folder_can_name_an_api(tmp_path, name, text, names_api):
    (tmp_path / name).write_text(text)
    env = {"PREFECT_HOME": str(tmp_path / "home")}
    assert early.api_named_elsewhere(env, tmp_path) is names_api


def test_a_profile_can_name_an_api(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text(
        'active = "local"\n[profiles.local]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n'
    )
    assert early.api_named_elsewhere({"PREFECT_HOME": str(home)}, tmp_path)
    elsewhere = tmp_path / "elsewhere.toml"
    (home / "profiles.toml").rename(elsewhere)
    assert not early.api_named_elsewhere({"PREFECT_HOME": str(home)}, tmp_path)
    env = {"PREFECT_HOME": str(home), "PREFECT_PROFILES_PATH": str(elsewhere)}
    assert early.api_named_elsewhere(env, tmp_path)


def test_no_early_start_once_prefect_is_imported(monkeypatch):
    """In a process that already imported Prefect its loaded settings decide (tests, the
    deployment's worker): no server, no variable set."""
    import prefect  # noqa: F401

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert early.start_early_server() is None
    assert "PREFECT_API_URL" not in os.environ


# --------------------------------------------------------------- pinned to Prefect


def test_the_server_command_and_environment_are_prefects_own(monkeypatch):
    """Prefect's temporary server as Prefect itself would start it (a private method: this
    test fails when an upgrade changes it)."""
    from prefect.server.api import server as prefect_server

    started = {}

    def fake_popen(args, env, **_):
        started.update(args=args, env=env)
        return None

    monkeypatch.setattr(prefect_server.subprocess, "Popen", fake_popen)
    prefect_server.SubprocessASGIServer(port=18123)._run_uvicorn_command()
    prefect_server.SubprocessASGIServer._instances.pop(18123, None)
    assert started["args"] == early.server_command(18123)
    assert early.SERVER_ENVIRONMENT.items() <= started["env"].items()


# --------------------------------------------------------------- a real one


@pytest.mark.flow
def test_an_early_server_answers_then_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    server = early.EarlyServer.start()
    try:
        server.wait(timeout=120)
        assert server.healthy()
    finally:
        server.stop()
    assert server.process.poll() is not None
    assert not server.healthy()


def _servers_of(home: Path) -> list[psutil.Process]:
    """Running Prefect API server processes whose PREFECT_HOME is ``home`` (a zombie, dead
    and waiting to be reaped, is not running)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if "prefect.server.api.server:create_app" not in " ".join(
                process.info["cmdline"] or []
            ):
                continue
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get("PREFECT_HOME") == str(home):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.flow
def test_segment_run_starts_the_server_early_and_leaves_none_behind(tmp_path):
    """A whole `segment run` with no API configured: the flow ran against the early server
    (Prefect never started its own: no "Starting temporary server" line), the summary is
    printed, and no server process outlives the command; the same after an input error."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    segment = Path(sys.executable).parent / "segment"
    done = subprocess.run(
        [str(segment), "run", "--output", str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "Segmented " in done.stdout
    assert "Starting temporary server" not in done.stderr
    assert "View at" not in done.stderr  # no link to a UI that is gone after the run
    assert _servers_of(home) == []

    bad = subprocess.run(
        [str(segment), "run", "--features", "height", "--output", str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 3
    assert "feature column 'height' is not in the file" in bad.stderr
    assert _servers_of(home) == []


def test_warm_up_pays_the_one_time_costs_before_the_flow():
    """What ``warm_up`` does while the server boots is really done once: the template is
    cached and pandera's pandas backends are registered."""
    from pandera.api.pandas.container import DataFrameSchema

    from tasks.reporting.html_report import report_template

    early.warm_up()
    assert report_template.cache_info().currsize == 1
    assert DataFrameSchema.BACKEND_REGISTRY  # pandera's backends, registered on first use


def _wait_for_no_server(home: Path, timeout: float = 15) -> list[psutil.Process]:
    """The servers of ``home`` still running after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (left := _servers_of(home)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.process
def test_the_server_dies_with_a_killed_parent(tmp_path):
    """The parent that started the server is killed with SIGKILL (no exit handler runs): the
    server goes too, instead of living on under PID 1."""
    home = tmp_path / "home"
    script = textwrap.dedent(
        """
        import sys, time
        from flows.server import EarlyServer
        server = EarlyServer.start()
        server.wait(timeout=120)
        print(server.process.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env=bare_env(home),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        assert [p.pid for p in _servers_of(home)] == [server_pid]
    finally:
        parent.kill()
        parent.wait(timeout=30)
    assert _wait_for_no_server(home) == []


KILL_SEED = 20261206
SIGNALS = [signal.SIGKILL] * 20 + [signal.SIGTERM] * 5
MAX_ATTEMPTS = 40


def _server_started(process: subprocess.Popen) -> bool:
    """Whether ``process`` started its temporary server (then it handles SIGTERM itself)."""
    try:
        children = psutil.Process(process.pid).children()
        return any("create_app" in " ".join(child.cmdline()) for child in children)
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
@pytest.mark.process
def test_no_server_outlives_killed_or_stopped_runs(tmp_path, shared_data):
    """`segment run` (its own temporary server) is killed 20 times with SIGKILL and stopped 5
    times with SIGTERM at seeded random moments: a SIGKILL anywhere in a run's duration (the
    shortest seen so far), a
    SIGTERM once its server started (before that, during its imports, Python's default ends
    it: no server yet). After each: no server of those runs is left, ``latest`` names a
    complete earlier run, a SIGTERM ends the command with exit code 143 and one line. At the
    end a normal run succeeds and no flow run of a killed process is left RUNNING: the runs
    marked them Crashed."""
    home, output, logs = tmp_path / "home", tmp_path / "outputs", tmp_path / "logs"
    logs.mkdir()
    env = bare_env(home)
    command = segment_command(
        shared_data / "mall_customers.csv", output, "--sweep", "1-8", "--n-init", "2", "--quiet"
    )

    def launch(log: Path) -> subprocess.Popen:
        with log.open("w") as sink:  # the child keeps its own descriptor
            return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=sink, stderr=sink)

    known: set[str] = set()
    for name in ("first", "timed"):  # the first creates Prefect's database: slower
        started = time.monotonic()
        setup = launch(logs / f"{name}.log")
        assert setup.wait(timeout=600) == 0, (logs / f"{name}.log").read_text()
        duration = time.monotonic() - started
        assert_output_consistent(output, known)
        assert _wait_for_no_server(home) == []

    rng = random.Random(KILL_SEED)
    rng.shuffle(SIGNALS)
    to_send, outcomes, completed = list(SIGNALS), [], 0
    for number in range(MAX_ATTEMPTS):
        if not to_send:
            break
        sent, share = to_send[0], rng.random()
        log = logs / f"run-{number:02d}.log"
        process = launch(log)
        started = time.monotonic()
        if sent == signal.SIGTERM:
            while process.poll() is None and not _server_started(process):
                time.sleep(0.01)
        delay = share * max(duration - (time.monotonic() - started), 0)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(sent)  # the command only: its server must go by itself
        code = process.wait(timeout=120)
        text = log.read_text()
        if code == 0:  # it finished before its moment: runs are faster now (load varies)
            completed += 1
            duration = min(duration, time.monotonic() - started)
        else:
            to_send.pop(0)
            if sent == signal.SIGKILL:
                assert code == -signal.SIGKILL, text
            else:
                assert code == 128 + signal.SIGTERM, text
                assert text.strip().splitlines() == [
                    "segment: stopped by SIGTERM; outputs/latest names the last complete run"
                ], text
            outcomes.append(f"{signal.Signals(sent).name} at {time.monotonic() - started:.1f} s")
        assert _wait_for_no_server(home) == [], f"attempt {number}: {sent!r} after {delay:.1f} s"
        assert_output_consistent(output, known)

    print(f"\nrun {duration:.1f} s; {completed} runs completed first; signals: {outcomes}")
    assert not to_send, f"{len(to_send)} signals not sent in {MAX_ATTEMPTS} attempts"

    last = launch(logs / "last.log")
    assert last.wait(timeout=600) == 0, (logs / "last.log").read_text()
    assert_output_consistent(output, known)
    assert _wait_for_no_server(home) == []
    # Prefect's database (read directly: no server is left to ask)
    with sqlite3.connect(home / "prefect.db") as db:
        running = db.execute(
            "SELECT name, infrastructure_pid FROM flow_run WHERE state_type = 'RUNNING'"
        ).fetchall()
        crashed = db.execute("SELECT count(*) FROM flow_run WHERE state_type = 'CRASHED'")
        print(f"{crashed.fetchone()[0]} flow runs Crashed; RUNNING: {running}")
    assert [run for run in running if run[1]] == []  # each recorded its process: all gone
