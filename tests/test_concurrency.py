"""Runs at the same time into one output folder: distinct complete runs, one unbroken history.

The output folder's run lock (tasks.store.runlock) lets one run at a time go from loading the
previous run to publishing; the others wait. Unit tests of the lock with two processes, then
real `segment run` processes against the session's Prefect server (``live_server``).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from helpers import assert_output_consistent, debris, segment_command

from live_server import ROOT, tail
from live_server import start as launch
from tasks.store.paths import MANIFEST
from tasks.store.runlock import RunLock

CHILD = textwrap.dedent(
    """
    import logging, sys, time
    from tasks.store.runlock import RunLock
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    lock = RunLock(sys.argv[1])
    try:
        lock.acquire(sys.argv[2], timeout=float(sys.argv[3]))
    except TimeoutError as error:
        print("timeout:", error, flush=True)
        sys.exit(3)
    print("acquired", flush=True)
    time.sleep(float(sys.argv[4]))  # hold it
    """
)


def _child(output: Path, run_id: str, timeout: float, hold: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(output), run_id, str(timeout), str(hold)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.process
def test_a_second_process_waits_for_the_lock_and_is_told_who_holds_it(tmp_path):
    lock = RunLock(tmp_path)
    lock.acquire("first-run")
    try:
        child = _child(tmp_path, "second-run", timeout=1.0, hold=0)
        output, _ = child.communicate(timeout=60)
        assert child.returncode == 3, output  # could not get it while we hold it
        assert "waits" in output and f"run first-run (pid {os.getpid()})" in output, output
    finally:
        lock.release()
    child = _child(tmp_path, "second-run", timeout=30, hold=0)
    output, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and "acquired" in output and "waits" not in output, output


@pytest.mark.process
def test_the_lock_of_a_killed_holder_is_released(tmp_path):
    holder = _child(tmp_path, "killed-run", timeout=30, hold=600)
    assert holder.stdout.readline().strip() == "acquired"
    lock = RunLock(tmp_path)
    with pytest.raises(TimeoutError, match=r"run killed-run \(pid"):
        lock.acquire("next", timeout=0.3)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    holder.stdout.close()
    lock.acquire("next", timeout=10)  # the kernel dropped the dead holder's lock
    assert lock.held
    lock.release()


def test_two_locks_in_one_process_exclude_each_other(tmp_path):
    """Runs started as threads of one process (flow calls) are serialized too."""
    inside, overlaps = [], []

    def run(run_id: str) -> None:
        with RunLock(tmp_path) as lock:
            lock.acquire(run_id, timeout=30)
            inside.append(run_id)
            if len(inside) > 1:
                overlaps.append(tuple(inside))
            time.sleep(0.2)
            inside.remove(run_id)

    threads = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert overlaps == []


# --- real runs --------------------------------------------------------------------------------


LIGHT = ("--sweep", "1-8", "--n-init", "2")  # a full run, with a lighter elbow sweep
NO_GATES = ("--gate-min-segment-share", "off", "--gate-silhouette-floor", "off")
NO_GATES += ("--gate-max-moved-share", "off")


# Each night clusters on a feature set its predecessor did not use, whichever runs first: every
# segment gets a new id, so both nights allocate from the id registry.
NIGHTS = (
    ("--k", "4", "--features", "annual_income", "spending_score", "age"),
    ("--k", "4", "--features", "annual_income", "spending_score", "gender"),
)


def _manifests(output: Path) -> dict[str, dict]:
    return {
        p.name: json.loads((p / MANIFEST).read_text())
        for p in (output / "runs").iterdir()
        if not p.name.startswith(".")
    }


def _history_chain(manifests: dict[str, dict], start: str | None) -> list[str]:
    """The runs in the order they built on each other, from the one whose previous is
    ``start``; fails if two runs built on the same previous run (a fork in the history)."""
    by_previous: dict[str | None, list[str]] = {}
    for run_id, manifest in manifests.items():
        previous = (manifest.get("changes") or {}).get("previous_run_id")
        by_previous.setdefault(previous, []).append(run_id)
    forks = {prev: runs for prev, runs in by_previous.items() if len(runs) > 1}
    assert not forks, f"runs built on the same previous run: {forks}"
    chain, current = [], start
    while current in by_previous:
        current = by_previous[current][0]
        chain.append(current)
    return chain


def _wait_all(processes, logs) -> None:
    for process, log in zip(processes, logs, strict=True):
        process.wait(timeout=300)
        assert process.returncode == 0, tail(log)


@pytest.mark.flow
def test_three_runs_at_once_into_one_folder(live_server, customers_csv, tmp_path):
    output = tmp_path / "outputs"
    logs = [tmp_path / f"run-{i}.log" for i in range(3)]
    command = segment_command(customers_csv, output, *LIGHT)
    processes = [launch(command, live_server.env(), log) for log in logs]
    _wait_all(processes, logs)

    manifests = _manifests(output)
    assert len(manifests) == 3  # three distinct run folders
    latest = assert_output_consistent(output, set())  # each one complete, latest one of them
    assert latest in manifests
    # they ran one after the other from loading the previous run to publishing
    chain = _history_chain(manifests, None)
    assert sorted(chain) == sorted(manifests)
    assert chain[-1] == latest
    assert debris(output) == []


@pytest.mark.flow
def test_overlapping_nightly_runs_keep_one_consistent_identity_history(
    live_server, customers_csv, tmp_path
):
    """Two runs that both start while the previous run's lock is held (deterministic overlap:
    both are seen waiting) and both allocate new segment ids: the second builds on the first."""
    output, env = tmp_path / "outputs", live_server.env()
    first = subprocess.run(
        segment_command(customers_csv, output, *LIGHT, "--k", "3"),  # income and score
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    (start,) = _manifests(output)

    held = RunLock(output)
    held.acquire("test-holds-the-folder")
    logs = [tmp_path / "night-a.log", tmp_path / "night-b.log"]
    try:
        processes = [
            launch(segment_command(customers_csv, output, *LIGHT, *NO_GATES, *night), env, log)
            for night, log in zip(NIGHTS, logs, strict=True)
        ]
        deadline = time.monotonic() + 120
        while not all("waits: " in log.read_text(errors="replace") for log in logs):
            assert all(p.poll() is None for p in processes), [tail(log) for log in logs]
            assert time.monotonic() < deadline, [tail(log) for log in logs]
            time.sleep(0.1)
        assert set(_manifests(output)) == {start}  # both waiting, neither loaded a run yet
    finally:
        held.release()
    _wait_all(processes, logs)

    manifests = _manifests(output)
    chain = _history_chain(manifests, None)
    assert len(chain) == 3 and chain[0] == start  # start -> one night -> the other
    assert assert_output_consistent(output, set()) == chain[-1]
    models = {
        run_id: json.loads((output / "runs" / run_id / "model.json").read_text())
        for run_id in chain
    }
    ever_allocated = {s["id"] for s in models[start]["segments"]}  # ids handed out so far
    for earlier, later in itertools.pairwise(chain):
        before, after = models[earlier], models[later]
        new_ids = manifests[later]["changes"]["new_segment_ids"]
        assert new_ids, f"{later} allocated no new id: the test would prove nothing"
        assert min(new_ids) >= before["next_segment_id"]  # the registry continues
        assert after["next_segment_id"] == before["next_segment_id"] + len(new_ids)
        assert set(before["retired_segment_ids"]) <= set(after["retired_segment_ids"])
        current_ids = {s["id"] for s in after["segments"]}
        assert not current_ids & set(before["retired_segment_ids"])  # retired ids stay retired
        assert not set(new_ids) & ever_allocated  # no id handed out twice
        ever_allocated |= set(new_ids)
        for segment_id in current_ids - set(new_ids):  # kept ids were in the previous run
            assert segment_id in {s["id"] for s in before["segments"]}
