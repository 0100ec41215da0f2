"""Tests for tasks.store.manifest: the manifest's JSON, step timings, run ids, package versions."""

from __future__ import annotations

import json
import re
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tasks.elbow import KChoice
from tasks.store.manifest import (
    KRecord,
    Manifest,
    PcaRecord,
    StepTimer,
    input_record,
    new_run_id,
    package_versions,
    segment_records,
)
from tasks.store.run_files import sha256_of


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


def manifest_of(source, **fields):
    """A Manifest of a two-segment run on ``source`` (fixed times and versions)."""
    profiles = pd.DataFrame({"segment_id": [1, 2], "segment_name": ["a", "b"], "size": [3, 4]})
    fields = {"pca": None, **fields}
    return Manifest(
        run_id="r1",
        flow_run_id="f1",
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:05+00:00",
        output_folder="/o/runs/r1",
        input=input_record(source),
        rows={"rows_read": np.int64(7), "rows_kept": 7, "rows_quarantined": 0,
              "duplicates_dropped": 0},
        k=KRecord.of(KChoice(k=2, rule="knee", reason="why", knee=None)),
        inertia=np.float64(1.5),
        segments=segment_records(profiles),
        features=["a", "b"],
        columns=None,
        missing_filled={},
        changes=None,
        timings={"total": 1.0},
        settings={"seed": 42},
        versions={"python": "3.11.7"},
        **fields,
    )  # fmt: skip


def test_manifest_json_has_the_keys_of_a_run_in_order_without_transactions(tmp_path):
    source = tmp_path / "customers.csv"
    source.write_text("a\n", encoding="utf-8")
    record = manifest_of(source).model_dump(mode="json")
    assert list(record) == [
        "run_id", "flow_run_id", "status", "started_at", "finished_at", "output_folder",
        "input", "rows", "k", "inertia", "segments", "features", "columns", "missing_filled",
        "pca", "changes", "timings", "settings", "versions",
    ]  # fmt: skip
    assert record["status"] == "complete"
    assert record["input"] == {"path": str(source), "sha256": sha256_of(source), "bytes": 2}
    assert record["rows"]["rows_read"] == 7
    assert record["k"] == {"chosen": 2, "rule": "knee", "reason": "why", "knee": None}
    assert record["segments"] == [
        {"id": 1, "name": "a", "size": 3},
        {"id": 2, "name": "b", "size": 4},
    ]
    assert record["pca"] is None
    assert json.dumps(manifest_of(source).model_dump()) == json.dumps(record)


def test_manifest_of_order_lines_ends_with_their_accounting_and_a_folder_lists_its_files(tmp_path):
    (tmp_path / "part-0.parquet").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"skipped")
    projection = SimpleNamespace(
        components=np.zeros((2, 3)), explained_variance_ratio=np.array([0.5123456789, 0.25])
    )
    record = manifest_of(
        tmp_path, transactions={"lines_read": 9}, pca=PcaRecord.of(projection)
    ).model_dump(mode="json")
    assert list(record)[-2:] == ["versions", "transactions"]
    assert record["transactions"] == {"lines_read": 9}
    assert list(record["input"]) == ["path", "files", "bytes"]
    assert list(record["input"]["files"]) == ["part-0.parquet"]
    assert record["pca"] == {
        "components": 2,
        "explained_variance_ratio": [0.512346, 0.25],
        "explained_variance": 0.762346,
    }
