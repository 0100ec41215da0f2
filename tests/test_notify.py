"""Alerts of the nightly deployment (`--notify URL`, flows/notify.py) against a real `prefect
server start` (its trigger and action services send the notifications) and a real HTTP receiver
on 127.0.0.1: a forced gate failure sends one notification with the reason and the run's UI
link, a good night none. The tests that need no server are not marked `flow`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flows.deployment import FLOW_NAME, main
from flows.notify import automation_name, block_name, check_url, set_alerts
from live_server import BIN, ROOT, RUN_TIMEOUT, Server, start, stop, wait_for

CUSTOMERS = ROOT / "data" / "customers.csv"
NAME = "nightly-alerts"  # its own deployment on the session's shared server
FULL_NAME = f"{FLOW_NAME}/{NAME}"
FORCED_GATE = {"gates": {"min_segment_share": 0.5}}  # five segments: one holds less than half
QUIET_SECONDS = 10  # after the expected notifications, how long nothing more may arrive


class Receiver:
    """A real HTTP server on 127.0.0.1 keeping the JSON body of every request it receives."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append({"path": self.path, "json": json.loads(body or b"null")})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:  # no request lines on stderr
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def at(self, path: str) -> list[dict]:
        return [r for r in self.received if r["path"] == path]

    def wait(self, path: str, count: int = 1, timeout: float = 60) -> list[dict]:
        """The requests to ``path`` once ``count`` have arrived, and still ``count`` after
        ``QUIET_SECONDS`` more (fails when fewer arrive in ``timeout`` seconds, or more)."""
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < count:
            assert time.monotonic() < deadline, f"{len(self.at(path))} of {count} notifications"
            time.sleep(0.2)
        time.sleep(QUIET_SECONDS)  # a repeat, or another run's notification, would come by now
        assert len(self.at(path)) == count, self.at(path)
        return self.at(path)


@pytest.fixture(scope="module")
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.http.shutdown()


@pytest.fixture(scope="module")
def served_with_alerts(live_server: Server, receiver: Receiver, tmp_path_factory):
    """`python -m flows.deployment --notify <receiver>/alerts` serving its own deployment."""
    output = tmp_path_factory.mktemp("alerts-output")
    log = output.parent / "serve-alerts.log"
    process = start(
        [sys.executable, "-m", "flows.deployment", "--name", NAME, "--input", str(CUSTOMERS)]
        + ["--output", str(output), "--notify", f"{receiver.url}/alerts"],
        live_server.env(PREFECT_RUNNER_POLL_FREQUENCY="1"),
        log,
    )

    def alerting():  # the deployment is registered and its automation made
        with live_server.client() as client:
            return client.read_automations_by_name(automation_name(FULL_NAME))

    try:
        wait_for("the deployment's automation", alerting, process, log, timeout=90)
        yield live_server
    finally:
        stop(process)


@pytest.mark.flow
def test_a_gate_failure_sends_one_notification_and_a_good_night_none(served_with_alerts, receiver):
    server = served_with_alerts
    good = server.run_deployment(FULL_NAME)
    assert good.state.is_completed(), good.state
    failed = server.run_deployment(FULL_NAME, parameters={"settings": FORCED_GATE})
    assert failed.state.is_failed(), failed.state
    assert "min_segment_share" in failed.state.message

    [notification] = receiver.wait("/alerts")  # one: none for the good night, no repeat
    text = notification["json"]["text"]
    ui = server.url.removesuffix("/api")
    assert f"Segmentation run failed: {NAME} / {failed.name}" in text
    assert f"Deployment: {FULL_NAME}" in text
    assert f"Flow run: {failed.name} ({failed.id})" in text
    assert "Reason: " in text and "GateError: quality gate failed: min_segment_share" in text
    assert f"Open in the Prefect UI: {ui}/runs/flow-run/{failed.id}" in text
    assert str(good.id) not in text


@pytest.mark.flow
@pytest.mark.process
def test_a_crashed_run_sends_one_notification_naming_the_reason(served_with_alerts, receiver):
    """A night whose process is killed (SIGKILL, as by the kernel's out-of-memory killer): the
    serving process sees it exit and marks the run Crashed; one notification says so."""
    server, before = served_with_alerts, _sent_so_far(receiver)
    run = server.run_deployment(FULL_NAME, timeout=0)  # returns at once: the run is scheduled
    host, pid = _running_process(server, run.id)
    assert host == socket.gethostname() and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    run = _ended(server, run.id)  # named segment-<run-id> by now
    assert run.state.is_crashed(), run.state
    assert "Process exited with status code: -9" in run.state.message

    [notification] = receiver.wait("/alerts", count=before + 1)[-1:]
    text = notification["json"]["text"]
    assert f"Segmentation run failed: {NAME} / {run.name}" in text
    assert f"Flow run: {run.name} ({run.id})" in text
    assert "State: Crashed" in text
    assert "Reason: Process exited with status code: -9" in text
    assert f"/runs/flow-run/{run.id}" in text


@pytest.mark.flow
def test_a_timed_out_run_sends_one_notification_naming_the_reason(served_with_alerts, receiver):
    """A run of the deployment that ends TimedOut, the state Prefect's engine gives a flow run
    past its ``timeout_seconds`` (a Failed state named TimedOut: its event is
    ``prefect.flow-run.TimedOut``), set through the API on a run that the serving process
    never starts (scheduled a day ahead): one notification naming the time-out."""
    from prefect.states import Failed, Running, Scheduled

    server, before = served_with_alerts, _sent_so_far(receiver)
    message = "Flow run exceeded timeout of 3600.0 second(s)"  # the engine's own words
    with server.client() as client:
        deployment = client.read_deployment_by_name(FULL_NAME)
        run = client.create_flow_run_from_deployment(
            deployment.id, state=Scheduled(scheduled_time=_in_a_day())
        )
        client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(run.id, Failed(name="TimedOut", message=message), force=True)
        state = client.read_flow_run(run.id).state
    assert state.name == "TimedOut" and state.is_failed()

    [notification] = receiver.wait("/alerts", count=before + 1)[-1:]
    text = notification["json"]["text"]
    assert f"Segmentation run failed: {NAME} / {run.name}" in text
    assert f"Flow run: {run.name} ({run.id})" in text
    assert "State: TimedOut" in text
    assert f"Reason: {message}" in text


def _sent_so_far(receiver: Receiver) -> int:
    """The notifications at /alerts before this test's run (the module's tests share it)."""
    return len(receiver.at("/alerts"))


def _in_a_day():
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(days=1)


def _running_process(server: Server, run_id, timeout: float = RUN_TIMEOUT) -> tuple[str, int]:
    """The ``host:pid`` a running flow run records (flows.killed_runs), once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.client() as client:
            run = client.read_flow_run(run_id)
        assert not run.state.is_final(), f"the run ended before it could be killed: {run.state}"
        if run.state.is_running() and run.infrastructure_pid:
            host, _, pid = run.infrastructure_pid.rpartition(":")
            return host, int(pid)
        time.sleep(0.1)
    pytest.fail(f"the run did not start in {timeout:.0f} s")


def _ended(server: Server, run_id, timeout: float = RUN_TIMEOUT):
    """The flow run once it is in a final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.client() as client:
            run = client.read_flow_run(run_id)
        if run.state.is_final():
            return run
        time.sleep(0.2)
    pytest.fail(f"the run did not end in {timeout:.0f} s")


@pytest.mark.flow
def test_an_apprise_url_is_notified_through_apprise(served_with_alerts, receiver):
    """Any URL other than http(s) goes to Apprise; its json:// scheme POSTs to a local server."""
    server = served_with_alerts
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with server.client() as client:
        deployment_id = client.read_deployment_by_name(FULL_NAME).id
    apprise_url = receiver.url.replace("http://", "json://") + "/apprise"
    try:
        with temporary_settings({PREFECT_API_URL: server.url}):
            set_alerts(deployment_id, [apprise_url])
        failed = server.run_deployment(FULL_NAME, parameters={"settings": FORCED_GATE})
        assert failed.state.is_failed(), failed.state
        [notification] = receiver.wait("/apprise")
        message = notification["json"]
        assert message["title"] == f"Segmentation run failed: {NAME} / {failed.name}"
        assert "GateError: quality gate failed: min_segment_share" in message["message"]
        assert f"/runs/flow-run/{failed.id}" in message["message"]
    finally:
        with temporary_settings({PREFECT_API_URL: server.url}):
            set_alerts(deployment_id, [f"{receiver.url}/alerts"])


@pytest.mark.flow
def test_setting_the_alerts_again_keeps_one_automation_and_no_url_removes_it(
    served_with_alerts, receiver
):
    server = served_with_alerts
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with server.client() as client:
        deployment_id = client.read_deployment_by_name(FULL_NAME).id
    urls = [f"{receiver.url}/one", f"{receiver.url}/two"]
    try:
        with temporary_settings({PREFECT_API_URL: server.url}):
            first = set_alerts(deployment_id, urls)
            assert set_alerts(deployment_id, urls) == first
            assert _alerts(server) == [(first, urls)]
            assert set_alerts(deployment_id, urls[1:]) == first
            assert _alerts(server) == [(first, urls[1:])]
            assert set_alerts(deployment_id, []) is None
            assert _alerts(server) == []
            assert _blocks(server) == []  # no block left behind
    finally:  # the other test's alert again
        with temporary_settings({PREFECT_API_URL: server.url}):
            set_alerts(deployment_id, [f"{receiver.url}/alerts"])


@pytest.mark.flow
@pytest.mark.process
def test_segment_notify_sets_the_alerts_of_a_deployed_deployment(served_with_alerts, receiver):
    """The prefect.yaml route: `segment notify` after `prefect deploy`; no --notify removes."""
    server = served_with_alerts
    url = f"{receiver.url}/from-cli"
    try:
        out = _segment(server, "notify", "--deployment", FULL_NAME, "--notify", url)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"{FULL_NAME}: 1 URL(s) told of a failed run"
        [(_, urls)] = _alerts(server)
        assert urls == [url]
        out = _segment(server, "notify", "--deployment", FULL_NAME)
        assert (out.returncode, out.stdout.strip()) == (0, f"{FULL_NAME}: no alerts")
        assert _alerts(server) == []
        out = _segment(server, "notify", "--deployment", f"{FLOW_NAME}/missing")
        assert out.returncode == 1
        assert out.stderr.strip() == (
            f"segment notify: error: no deployment '{FLOW_NAME}/missing' on the server"
        )
    finally:
        _segment(server, "notify", "--deployment", FULL_NAME, "--notify", f"{receiver.url}/alerts")


@pytest.mark.flow
@pytest.mark.process
def test_the_prefect_yaml_deployment_alerts_once_through_segment_notify(
    live_server: Server, receiver: Receiver, tmp_path
):
    """The README's route (b) end to end: the repo's prefect.yaml (its deployment renamed, on
    a pool of its own) deployed by `prefect deploy` onto a process work pool; `segment notify
    --deployment ... --notify URL` twice leaves one automation; a forced gate failure of a run
    of that deployment, run by `prefect worker start --run-once`, sends one notification."""
    import yaml

    server = live_server
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (deployment,) = spec["deployments"]
    deployment["name"] = name = "nightly-alerts-from-prefect-yaml"
    deployment["work_pool"]["name"] = pool = "alerts-pool"
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(spec))
    full_name, url = f"{FLOW_NAME}/{name}", f"{receiver.url}/deployed"

    server.prefect("work-pool", "create", pool, "--type", "process")
    server.prefect("--no-prompt", "deploy", "--prefect-file", str(prefect_file), "--name", name)
    for _ in range(2):  # idempotent: run again, still one automation
        out = _segment(server, "notify", "--deployment", full_name, "--notify", url)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"{full_name}: 1 URL(s) told of a failed run"
    [(_, urls)] = _alerts(server, full_name)
    assert urls == [url]

    settings = {**FORCED_GATE, "output_dir": str(tmp_path / "outputs")}
    created = server.prefect(
        "deployment", "run", full_name, "--param", f"settings={json.dumps(settings)}"
    )
    run_id = created.split("UUID:")[1].split()[0]
    server.prefect(
        "worker", "start", "--pool", pool, "--run-once", "--install-policy", "never",
        cwd=tmp_path, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    with server.client() as client:
        run = client.read_flow_run(run_id)
    assert run.state.is_failed(), run.state
    assert "min_segment_share" in run.state.message

    [notification] = receiver.wait("/deployed")
    text = notification["json"]["text"]
    assert f"Segmentation run failed: {name} / {run.name}" in text
    assert f"Deployment: {full_name}" in text
    assert f"Flow run: {run.name} ({run.id})" in text
    assert "GateError: quality gate failed: min_segment_share" in text


def _segment(server: Server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "segment"), *args],
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def _alerts(server: Server, deployment: str = FULL_NAME) -> list[tuple]:
    """The deployment's automations, each as (id, the URLs of its notification blocks)."""
    from prefect.blocks.core import Block

    with server.client() as client:
        automations = client.read_automations_by_name(automation_name(deployment))
        blocks = [
            (a.id, [client.read_block_document(b.block_document_id) for b in a.actions])
            for a in automations
        ]
    return [(id_, [_url(Block._from_block_document(d)) for d in docs]) for id_, docs in blocks]


def _url(block) -> str:
    """The URL a notification block sends to (kept as a secret either way)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    if isinstance(block, CustomWebhookNotificationBlock):
        return block.secrets.get_secret_value()["webhook_url"]
    return block.url.get_secret_value()


def _blocks(server: Server) -> list[str]:
    prefix = block_name(FULL_NAME, 0).removesuffix("0")
    with server.client() as client:
        return [d.name for d in client.read_block_documents() if d.name.startswith(prefix)]


def test_check_url_accepts_webhooks_and_apprise_urls_and_refuses_others():
    assert check_url("https://hooks.slack.com/services/T0/B0/x") == (
        "https://hooks.slack.com/services/T0/B0/x"
    )
    assert check_url("mailto://user:secret@example.com") == "mailto://user:secret@example.com"
    for bad in ("hooks.slack.com/services/x", "http:///path", "nosuch://x"):
        with pytest.raises(ValueError, match=r"webhook URL|names no host"):
            check_url(bad)


def test_block_names_are_prefect_block_names():
    assert block_name(FULL_NAME, 2) == "customer-segmentation-nightly-alerts-notify-2"


def test_serve_refuses_a_url_that_cannot_notify(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--notify", "example.com/hook"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "segment serve: error: argument --notify: 'example.com/hook' is neither an http(s) "
        "webhook URL nor an Apprise URL Apprise accepts (e.g. mailto://user:password@example.com, "
        "msteams://..., slack://...) (see segment serve --help)"
    )
