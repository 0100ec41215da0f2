"""Tests for tasks.store.manifest: step timings, run ids, package versions."""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest

from tasks.store.manifest import StepTimer, new_run_id, package_versions


def test_step_timer_sums_repeated_steps_and_total_spans_all_steps(monkeypatch):
    # a clock that only moves when told: no timing of real sleeps (a loaded machine can
    # stretch any of them), the same sums every time
    now = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    timer = StepTimer()
    for step, seconds, pause in (("a", 2.0, 0.5), ("b", 1.0, 0.25), ("a", 3.0, 0.0)):
        with timer(step):
            now[0] += seconds
        now[0] += pause  # time between steps counts in the total only
    times = timer.as_dict()
    assert times == {"a": 5.0, "b": 1.0, "total": 6.75}


def test_step_timer_records_a_step_that_raises():
    timer = StepTimer()
    with pytest.raises(RuntimeError), timer("boom"):
        raise RuntimeError("x")
    assert "boom" in timer.as_dict()


def test_step_timer_without_steps_has_zero_total():
    assert StepTimer().as_dict() == {"total": 0.0}


def test_new_run_id_is_utc_timestamp_then_short_suffix():
    run_id = new_run_id("0123456789abcdef")
    assert re.fullmatch(r"\d{8}T\d{6}Z-01234567", run_id)
    assert re.fullmatch(r"\d{8}T\d{6}Z-local", new_run_id("local"))


def test_package_versions_include_python_and_pandas():
    versions = package_versions()
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", versions["python"])
    assert versions["pandas"] == pd.__version__
