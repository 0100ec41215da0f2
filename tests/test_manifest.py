"""Tests for tasks.store.manifest: step timings, run ids, package versions."""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest

from tasks.store.manifest import StepTimer, new_run_id, package_versions


def test_step_timer_sums_repeated_steps_and_total_spans_all_steps():
    timer = StepTimer()
    outer_start = time.perf_counter()
    with timer("a"):
        time.sleep(0.003)
    with timer("b"):
        time.sleep(0.003)
    with timer("a"):
        time.sleep(0.003)
    outer = time.perf_counter() - outer_start
    times = timer.as_dict()
    assert set(times) == {"a", "b", "total"}
    assert times["a"] >= 0.006 - 1e-4  # two sleeps of 3 ms, rounded to 0.1 ms
    assert times["b"] >= 0.003 - 1e-4
    assert times["a"] > times["b"]
    assert times["total"] >= times["a"] + times["b"] - 2e-4
    assert times["total"] <= outer + 1e-4


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
