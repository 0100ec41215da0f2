"""Tests for tasks.store.history: reading the previous run of an output folder."""

from __future__ import annotations

import pytest
from helpers import MALL_SEGMENTS, A, B, C, population, run

from tasks.model import model_to_json
from tasks.store.history import CorruptRunError, load_previous_run
from tasks.store.run_files import finish_run, start_run, write_table, write_text


def test_load_previous_run_is_none_without_a_complete_run(tmp_path):
    assert load_previous_run(tmp_path) is None
    assert load_previous_run(tmp_path / "missing") is None
    start_run(tmp_path, "unfinished")  # a staging folder is never a previous run
    assert load_previous_run(tmp_path) is None


def test_load_previous_run_reads_the_run_latest_names(abc_run, tmp_path):
    staging = start_run(tmp_path, "20250101T000000Z-first")
    write_table(abc_run.segments, staging / "segments.parquet", MALL_SEGMENTS)
    write_text(model_to_json(abc_run.model), staging / "model.json")
    finish_run(staging, {"run_id": "20250101T000000Z-first"})
    previous = load_previous_run(tmp_path)
    assert previous.run_id == "20250101T000000Z-first"
    assert previous.model == abc_run.model
    assert previous.k == 3
    assert list(previous.assignments.columns) == ["customer_id", "segment_id"]
    expected = abc_run.segments[["customer_id", "segment_id"]]
    assert previous.assignments["customer_id"].tolist() == expected["customer_id"].tolist()
    assert previous.assignments["segment_id"].tolist() == expected["segment_id"].tolist()
    # and it drives the next run's identity
    again = run(population(A=A, B=B, C=C), 3, previous)
    assert again.changes["previous_run_id"] == "20250101T000000Z-first"
    assert again.changes["customers_moved"] == 0


def test_load_previous_run_refuses_a_run_changed_after_publishing(tmp_path):
    staging = start_run(tmp_path, "r1")
    write_text('{"format": "x"}\n', staging / "model.json")
    write_text("not parquet\n", staging / "segments.parquet")
    final = finish_run(staging, {"run_id": "r1"})
    (final / "segments.parquet").write_text("tampered\n")
    with pytest.raises(CorruptRunError, match="does not match the checksum"):
        load_previous_run(tmp_path)
