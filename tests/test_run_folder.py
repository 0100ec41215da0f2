"""Tests for flows.run_folder: the staging folder and output lock around a run, and run ids."""

from __future__ import annotations

import logging
import re

import pytest
from helpers import lock_is_free

from flows.run_folder import configure_run_logging, run_id_for, staged_run
from segment.settings import SegmentationSettings
from tasks.errors import InputError
from tasks.gates import GateError


def test_a_staged_run_holds_the_output_lock_until_it_ends(tmp_path):
    with staged_run(tmp_path, "r1", tmp_path / "customers.csv") as staging:
        assert staging.is_dir() and staging.name.startswith(".")
        assert not lock_is_free(tmp_path)
    assert lock_is_free(tmp_path)


def test_bad_input_found_after_reading_removes_the_staging_folder_and_names_the_source(tmp_path):
    source = tmp_path / "customers.csv"
    with (
        pytest.raises(InputError, match=r"customers\.csv.*too few distinct customers"),
        staged_run(tmp_path, "r1", source) as staging,
    ):
        raise InputError("too few distinct customers for k=5")
    assert not staging.exists()
    assert lock_is_free(tmp_path)


def test_any_other_failure_removes_the_staging_folder_too(tmp_path):
    source = tmp_path / "x.csv"
    with pytest.raises(KeyboardInterrupt), staged_run(tmp_path, "r1", source) as staging:
        raise KeyboardInterrupt
    assert not staging.exists()
    assert lock_is_free(tmp_path)


def test_the_run_id_is_the_settings_one_else_a_new_local_one_outside_a_flow_run(tmp_path):
    assert run_id_for(SegmentationSettings(output_dir=tmp_path, run_id="night-1")) == "night-1"
    new = run_id_for(SegmentationSettings(output_dir=tmp_path))
    assert re.fullmatch(r"\d{8}T\d{6}Z-local", new)


def test_run_logging_shows_task_info_and_no_traceback_for_bad_input_only(monkeypatch):
    tasks_logger, task_runs = logging.getLogger("tasks"), logging.getLogger("prefect.task_runs")
    monkeypatch.setattr(task_runs, "filters", [])
    level = tasks_logger.level
    tasks_logger.setLevel(logging.NOTSET)
    try:
        configure_run_logging()
        configure_run_logging()  # each run calls it: the filter is not installed twice
        assert tasks_logger.getEffectiveLevel() == logging.INFO and len(task_runs.filters) == 1
    finally:
        tasks_logger.setLevel(level)  # setLevel, not an attribute: it clears the level caches

    def logged(error: Exception) -> logging.LogRecord:
        record = task_runs.makeRecord(
            task_runs.name, logging.ERROR, __file__, 1, "failed", (), (type(error), error, None)
        )
        assert task_runs.filter(record)  # the record is kept, only its traceback may go
        return record

    assert logged(InputError("bad row")).exc_info is None
    assert logged(GateError(["min_segment_share: ..."])).exc_info is None
    assert logged(ValueError("a bug")).exc_info is not None
