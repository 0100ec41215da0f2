"""`segment run` killed with SIGKILL at seeded random moments, over and over, into one folder.

After every kill: ``outputs/latest`` still names a complete run whose files all read back and
match the sha256 and size in its manifest; every run folder that looks published is complete;
staging debris is never taken as a run. At the end a normal run succeeds, continues the history
from the run ``latest`` named, and removes the debris of the killed runs.

Each ``segment run`` talks to the session's real Prefect server (``live_server``) instead of
starting its own temporary server, so one run takes seconds. Kill moments: first one full run
is timed, then kill moments are drawn (seeded) uniformly over its duration up to publishing
(after that the process only reports to Prefect and exits), and, for ``REPORT_SHARE`` of them,
uniformly over the write-report/publish phase, counted from the moment the first report table
appears in the staging folder. Drawing goes on until ``KILLS`` runs were killed (a run that
finishes before its moment is checked too, and does not count).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from helpers import assert_output_consistent, debris, segment_command
from matplotlib.figure import Figure

import tasks.store.run_files
from live_server import ROOT, tail
from live_server import start as launch
from tasks.model import MODEL_FORMAT
from tasks.reporting.plots import figure_to_png
from tasks.store.paths import MANIFEST
from tasks.store.run_files import finish_run, start_run, write_bytes, write_json, write_table

SEED = 20261127
KILLS = 20
REPORT_SHARE = 0.3
MAX_ATTEMPTS = 30


def kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _staging_with_report(runs: Path, before: set[str]) -> Path | None:
    for staging in runs.glob(".*.partial"):
        if staging.name not in before and (staging / "segments.parquet").exists():
            return staging
    return None


def _phase(runs: Path, before: set[str], latest_before: str, output: Path) -> str:
    """Where the run is, seen from its files (for the report of kill moments)."""
    if os.readlink(output / "latest") != latest_before:
        return "published"
    new = [s for s in runs.glob(".*.partial") if s.name not in before]
    if not new:
        new_runs = [
            p for p in runs.iterdir() if not p.name.startswith(".") and p.name not in before
        ]
        return "publishing" if new_runs else "starting"
    names = {p.name for p in new[0].iterdir()}
    if MANIFEST in names:
        return "publishing"
    if "segments.parquet" in names:
        return "writing-report"
    return "computing"


@pytest.mark.flow
def test_segment_run_survives_sigkill_at_random_moments(live_server, customers_csv, tmp_path):
    output, logs = tmp_path / "outputs", tmp_path / "logs"
    logs.mkdir()
    env = live_server.env()
    # a full run, only with a lighter elbow sweep: seconds per run against the live server
    command = segment_command(customers_csv, output, "--sweep", "1-8", "--n-init", "2")
    runs, known = output / "runs", set()

    # one full run, timed: the kill moments are spread over its duration
    started = time.monotonic()
    first = launch(command, env, logs / "first.log")
    report_at = published_at = None
    while first.poll() is None:
        now = time.monotonic() - started
        if report_at is None and runs.is_dir() and _staging_with_report(runs, set()):
            report_at = now
        if published_at is None and (output / "latest").is_symlink():
            published_at = now
        time.sleep(0.005)
    duration = time.monotonic() - started
    assert first.returncode == 0, tail(logs / "first.log")
    assert report_at is not None and published_at is not None
    latest = assert_output_consistent(output, known)
    window = published_at + 0.2
    report_window = published_at - report_at + 0.1

    rng = random.Random(SEED)
    phases, completed = Counter(), 0
    for number in range(MAX_ATTEMPTS):
        if sum(phases.values()) == KILLS:
            break
        if rng.random() < REPORT_SHARE:
            anchor, delay = "report", rng.uniform(0, report_window)
        else:
            anchor, delay = "uniform", rng.uniform(0, window)
        before = {p.name for p in runs.iterdir()}
        latest_link = os.readlink(output / "latest")
        log = logs / f"kill-{number:02d}.log"
        process = launch(command, env, log)
        started = time.monotonic()
        if anchor == "report":  # wait for the report phase, then the seeded delay
            while process.poll() is None and not _staging_with_report(runs, before):
                time.sleep(0.002)
            started = time.monotonic()
        while process.poll() is None and time.monotonic() - started < delay:
            time.sleep(0.002)
        if process.poll() is None:
            phases[_phase(runs, before, latest_link, output)] += 1
            kill_group(process)
        else:  # it finished before its kill moment
            completed += 1
            assert process.returncode == 0, tail(log)
        latest = assert_output_consistent(output, known)

    kills = sum(phases.values())
    print(f"\n{kills} kills survived by phase {dict(phases)}, {completed} runs completed first")
    print(
        f"full run {duration:.1f} s, published after {published_at:.1f} s, "
        f"report..publish window {report_window:.2f} s"
    )
    assert kills == KILLS
    assert phases["writing-report"] + phases["publishing"] >= 5, phases
    assert phases["computing"] + phases["starting"] >= 3, phases

    # the next run succeeds, builds on the run `latest` named, and cleans up the debris
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    final = assert_output_consistent(output, known)
    manifest = json.loads((runs / final / MANIFEST).read_text())
    assert final != latest and manifest["changes"]["previous_run_id"] == latest
    assert f"Output: {runs / final}\n" in result.stdout
    assert debris(output) == [], "debris of killed runs left behind"


# --- every step of publishing, deterministically ---------------------------------------------


class _KillingOS:
    """Stands in for ``os`` in tasks.store.run_files: counts its calls (open, fsync, replace,
    symlink, close, ...) and SIGKILLs the process just before call number ``kill_at``."""

    def __init__(self, kill_at: int | None) -> None:
        self.kill_at, self.calls = kill_at, 0

    def __getattr__(self, name):
        real = getattr(os, name)
        if not callable(real):
            return real

        def counted(*args, **kwargs):
            self.calls += 1
            if self.calls == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        return counted


def _stage_run(output: Path, run_id: str) -> Path:
    """A small run staged like the flow does: a table with segments, the model, a plot."""
    staging = start_run(output, run_id)
    segments = pd.DataFrame({"customer_id": ["0001", "0002"], "segment_id": [1, 2]})
    write_table(segments, staging / "segments.parquet")
    write_json({"format": MODEL_FORMAT, "segments": [], "columns": []}, staging / "model.json")
    figure = Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    write_bytes(figure_to_png(figure), staging / "plot.png")
    return staging


def _publish_in_child(output: Path, run_id: str, kill_at: int | None) -> int:
    """Stage and publish ``run_id`` in a forked process killed at its ``kill_at``-th os call of
    ``finish_run``; returns the number of os calls publishing made (when not killed)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            staging = _stage_run(output, run_id)
            counter = _KillingOS(kill_at)
            tasks.store.run_files.os = counter
            finish_run(staging, {"run_id": run_id})
            tasks.store.run_files.os = os
            os.write(write_end, str(counter.calls).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert killed == (answer == b""), (status, answer)
    return int(answer) if answer else 0


@pytest.mark.process
def test_a_kill_before_any_step_of_publishing_leaves_the_folder_consistent(tmp_path):
    steps = _publish_in_child(tmp_path / "probe", "probe", None)
    assert steps >= 6  # manifest write + fsync + rename, folder rename, link, switch, ...

    output, known = tmp_path / "outputs", set()
    finish_run(_stage_run(output, "r00"), {"run_id": "r00"})
    seen = Counter()
    for step in range(1, steps + 1):
        run_id = f"r{step:02d}"
        before = assert_output_consistent(output, known)
        _publish_in_child(output, run_id, step)
        after = assert_output_consistent(output, known)
        staging = output / "runs" / f".{run_id}.partial"
        if after == run_id:
            seen["latest switched"] += 1
        elif (output / "runs" / run_id).is_dir():
            seen["renamed, latest not yet switched"] += 1
        elif (staging / MANIFEST).is_file():
            seen["manifest written, not renamed"] += 1
        else:
            seen["manifest not written"] += 1
            assert after == before
    print(f"\n{steps} kill points in publishing: {dict(seen)}")
    assert len(seen) == 4, seen  # a kill landed in each state of publishing

    final = finish_run(_stage_run(output, "final"), {"run_id": "final"})
    assert assert_output_consistent(output, known) == final.name
    assert debris(output) == []
