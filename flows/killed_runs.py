"""Flow runs whose process was killed: marked Crashed by the next run.

A `segment run` killed with SIGKILL (or any signal it cannot handle) leaves its flow run
RUNNING in Prefect's database for ever: nothing ran to report the end. Prefect 3.9's own remedy
(flow-run heartbeats, every 30 s at least, and an automation that crashes a run whose heartbeats
stop) needs a server that keeps running and watches the clock; the temporary server lives only
while one run does. So each flow run records its process as ``infrastructure_pid``
(``host:pid``, the form Prefect's workers and runners use) when it starts running, and each
`segment run` marks Crashed, before its own flow starts, the RUNNING flow runs of this host
whose process is gone. Such a run sends no heartbeats either (:func:`without_heartbeats`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

CRASHED_MESSAGE = "The process of this flow run ({process}) ended without reporting a final state"


def this_process() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (a zombie counts: it is not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def process_gone(process: str | None, host: str, alive: Callable[[int], bool]) -> bool:
    """Whether ``process`` (a flow run's ``host:pid``) is a process of ``host`` that is no
    longer ``alive``. Another host's process, or a value in another form, is never gone: it
    cannot be checked from here."""
    if not process:
        return False
    name, _, pid = process.rpartition(":")
    if name != host or not pid.isdigit():
        return False
    return not alive(int(pid))


def dead_runs(
    runs: Iterable[Any], host: str, alive: Callable[[int], bool] = pid_alive
) -> list[Any]:
    """Those of ``runs`` (flow runs) whose recorded process is gone from ``host``."""
    return [run for run in runs if process_gone(run.infrastructure_pid, host, alive)]


def record_process(flow: Any, flow_run: Any, state: Any) -> None:
    """An ``on_running`` hook: the flow run's ``infrastructure_pid`` is this process."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, infrastructure_pid=this_process())


def crash_killed_runs() -> int:
    """Mark Crashed the RUNNING flow runs of this host whose process is gone; how many. A
    failure here is logged and does not stop the run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    running = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
    )
    try:
        with get_client(sync_client=True) as client:
            dead = dead_runs(client.read_flow_runs(flow_run_filter=running), socket.gethostname())
            for run in dead:
                message = CRASHED_MESSAGE.format(process=run.infrastructure_pid)
                client.set_flow_run_state(run.id, Crashed(message=message), force=True)
    except Exception as error:  # noqa: BLE001 - housekeeping: never the reason a run fails
        log.warning("could not check for flow runs of killed processes: %s", error)
        return 0
    if dead:
        log.info("marked %d flow run(s) of killed processes Crashed", len(dead))
    return len(dead)


@contextmanager
def without_heartbeats() -> Iterator[None]:
    """Flow runs started inside send none of Prefect's heartbeats, unless a Prefect setting
    asks for them (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, in the environment or a profile).

    A killed `segment run` is marked Crashed by the next one (above), with any server; and
    Prefect's engine, when a flow run ends, joins its heartbeat thread, which sleeps in steps
    of one second: up to a second, ~0.4 s on average, at the end of every run. Deployment runs
    (`segment serve`) are started by Prefect's runner, not here: they keep their heartbeats.
    """
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    if "heartbeat_frequency" in get_current_settings().flows.model_fields_set:
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
