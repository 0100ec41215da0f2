"""Tests for flows.run_folder: the staging folder and output lock around a run, and run ids."""

from __future__ import annotations

import re

import pytest
from helpers import lock_is_free

from flows.run_folder import run_id_for, staged_run
from flows.settings import SegmentationSettings
from tasks.errors import InputError


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
