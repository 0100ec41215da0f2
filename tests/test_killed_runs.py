"""Killed and stopped runs: which flow runs' processes are gone (flows/killed_runs.py), and
SIGTERM/SIGINT as an exception (segment/cli/signals.py)."""

from __future__ import annotations

import os
import signal
import socket
import threading
from types import SimpleNamespace

import pytest

from flows.killed_runs import crash_killed_runs, dead_runs, process_gone, this_process
from segment.cli.signals import Stopped, stopped_by_signals

HOST = "worker-7"
ALIVE = {100, 200}


def alive(pid: int) -> bool:
    return pid in ALIVE


@pytest.mark.parametrize(
    ("process", "gone"),
    [
        ("worker-7:300", True),  # this host, no such process
        ("worker-7:100", False),  # this host, running
        ("other:300", False),  # another host: cannot be checked from here
        ("worker-7.example:300", False),
        ("host:with:colons:300", False),
        ("worker-7:", False),  # not host:pid
        ("worker-7:abc", False),
        ("300", False),
        ("", False),
        (None, False),  # a run that never recorded its process
    ],
)
def test_a_process_is_gone_only_when_it_is_of_this_host_and_not_alive(process, gone):
    assert process_gone(process, HOST, alive) is gone


def test_dead_runs_are_those_whose_process_is_gone():
    runs = [
        SimpleNamespace(name="killed", infrastructure_pid="worker-7:300"),
        SimpleNamespace(name="running", infrastructure_pid="worker-7:200"),
        SimpleNamespace(name="elsewhere", infrastructure_pid="other:300"),
        SimpleNamespace(name="unknown", infrastructure_pid=None),
    ]
    assert [run.name for run in dead_runs(runs, HOST, alive)] == ["killed"]


def test_this_process_is_alive_and_a_pid_beyond_the_kernels_range_is_not():
    host, _, pid = this_process().rpartition(":")
    assert host == socket.gethostname() and int(pid) == os.getpid()
    assert not process_gone(this_process(), host, lambda pid: os.path.exists(f"/proc/{pid}"))
    assert process_gone(f"{host}:{2**22 + 1}", host, lambda pid: False)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_stopping_signal_raises_stopped_and_a_second_one_would_end_the_process(number):
    before = signal.getsignal(number)
    with pytest.raises(Stopped) as stopped, stopped_by_signals():
        signal.raise_signal(number)
        # during the cleanup after the first signal, a second one ends the process
        # (not observed here: the handler is restored on the way out)
    assert stopped.value.signum == number
    assert stopped.value.name == signal.Signals(number).name
    assert stopped.value.exit_code == 128 + number  # 143 for SIGTERM, 130 for SIGINT
    assert signal.getsignal(number) == before


def test_after_the_first_signal_the_handlers_are_the_defaults():
    seen = {}
    with pytest.raises(Stopped), stopped_by_signals():
        try:
            signal.raise_signal(signal.SIGTERM)
        finally:
            seen = {n: signal.getsignal(n) for n in (signal.SIGTERM, signal.SIGINT)}
    assert seen == {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.SIG_DFL}


def test_stopped_passes_by_except_exception():
    """Prefect's flow engine and the CLI's last-resort handler catch Exception: a stop is not
    a failure of the run."""
    assert not issubclass(Stopped, Exception)


def test_outside_the_main_thread_the_handlers_are_left_alone():
    before, seen = signal.getsignal(signal.SIGTERM), []

    def run() -> None:
        with stopped_by_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before]


# --------------------------------------------------------------- against a Prefect server


def test_the_next_run_marks_runs_of_dead_processes_crashed(prefect_server):
    """RUNNING flow runs whose recorded process is gone are marked Crashed; the runs of live
    processes, of other hosts and without a recorded process are left alone."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Running

    @flow(name="killed-runs-probe")
    def probe() -> None:
        return None

    host = socket.gethostname()
    processes = {
        "killed": f"{host}:{2**22 + 1}",  # beyond any pid_max: never alive
        "alive": this_process(),
        "elsewhere": "another-host:1",
        "unknown": None,
    }
    with get_client(sync_client=True) as client:
        ids = {}
        for name, process in processes.items():
            run = client.create_flow_run(probe, name=f"probe-{name}", state=Running())
            if process is not None:
                client.update_flow_run(run.id, infrastructure_pid=process)
            ids[name] = run.id
        assert crash_killed_runs() >= 1
        states = {name: client.read_flow_run(i).state for name, i in ids.items()}
        for i in ids.values():  # leave no RUNNING probe behind for other tests
            client.set_flow_run_state(i, Completed(), force=True)
    assert states["killed"].is_crashed()
    assert processes["killed"] in states["killed"].message
    assert [name for name, state in states.items() if state.is_running()] == [
        "alive",
        "elsewhere",
        "unknown",
    ]


def test_runs_started_without_heartbeats_send_none_unless_a_setting_asks():
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    from flows.killed_runs import without_heartbeats

    before = get_current_settings().flows.heartbeat_frequency
    assert before is not None  # Prefect's default: 180 s
    with without_heartbeats():
        assert get_current_settings().flows.heartbeat_frequency is None  # no heartbeat thread
    assert get_current_settings().flows.heartbeat_frequency == before

    # set by the user (environment, profile): kept
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 60}), without_heartbeats():
        assert get_current_settings().flows.heartbeat_frequency == 60
