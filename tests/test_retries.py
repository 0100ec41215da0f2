"""Reading the input is retried after a fixed delay on transient I/O errors, never on bad data.

Unit tests of the classification (tasks.store.retry) and the settings, then flow runs (throw-away
Prefect server) whose source fails the first tries: through the ingest task's Prefect retries.
"""

from __future__ import annotations

import errno
import itertools
import pathlib
import time

import pytest
from helpers import lock_is_free
from prefect.states import Completed, Failed
from pydantic import ValidationError

from flows.steps import retry_on_transient
from segment.settings import SegmentationSettings
from tasks.errors import InputError
from tasks.ingest import SAMPLE_ROWS
from tasks.sample_data import generate_customers, write_sample_csv
from tasks.store.retry import is_transient
from tasks.store.run_files import latest_run


def _raised_from(error: InputError, cause: BaseException) -> InputError:
    try:
        raise error from cause
    except InputError as raised:
        return raised


TRANSIENT = {
    "timeout": TimeoutError("read timed out"),
    "connection reset": ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    "blocking": BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"),
    "EIO": OSError(errno.EIO, "Input/output error"),
    "EAGAIN": OSError(errno.EAGAIN, "Resource temporarily unavailable"),
    "stale NFS handle": OSError(errno.ESTALE, "Stale file handle"),
    "EIO wrapped by ingest": _raised_from(
        InputError("cannot be read: Input/output error", path="x.csv"),
        OSError(errno.EIO, "Input/output error"),
    ),
}
NOT_TRANSIENT = {
    "bad data": InputError("missing required column(s): ['age']", path="x.csv"),
    "bad data at a row": InputError("could not parse", path="x.csv", row=3),
    "missing file": FileNotFoundError(errno.ENOENT, "No such file or directory"),
    "a folder": IsADirectoryError(errno.EISDIR, "Is a directory"),
    "no permission": PermissionError(errno.EACCES, "Permission denied"),
    "OSError without errno": OSError("Couldn't deserialize thrift"),
    "disk full": OSError(errno.ENOSPC, "No space left on device"),
    "value error": ValueError("could not convert string to float"),
    "missing file wrapped by ingest": _raised_from(
        InputError("cannot be read: No such file or directory", path="x.csv"),
        FileNotFoundError(errno.ENOENT, "No such file or directory"),
    ),
    "permission wrapped by ingest": _raised_from(
        InputError("cannot be read: Permission denied", path="x.csv"),
        PermissionError(errno.EACCES, "Permission denied"),
    ),
}


@pytest.mark.parametrize("error", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_transient_io_errors_are_retried(error):
    assert is_transient(error)
    assert retry_on_transient(None, None, Failed(data=error))


@pytest.mark.parametrize("error", NOT_TRANSIENT.values(), ids=NOT_TRANSIENT.keys())
def test_bad_data_and_other_errors_are_not_retried(error):
    assert not is_transient(error)
    assert not retry_on_transient(None, None, Failed(data=error))


def test_a_completed_state_is_not_retried():
    assert not retry_on_transient(None, None, Completed(data=1))


def test_retry_settings_have_safe_defaults_and_bounds():
    settings = SegmentationSettings()
    assert settings.read_retries == 3
    assert settings.read_retry_delay == 1.0
    for bad in ({"read_retries": -1}, {"read_retries": 11}, {"read_retry_delay": -0.1}):
        with pytest.raises(ValidationError):
            SegmentationSettings(**bad)


# --- flow runs -------------------------------------------------------------------------------


@pytest.fixture
def read_calls(monkeypatch):
    """Replace the in-memory engine's reader with one that fails the first ``fail_first`` calls with
    ``error`` (then reads the file for real); ``calls`` records the time of every call."""
    import tasks.engines as engines

    real = engines.read_file
    plan = {"calls": [], "fail_first": 0, "error": None}

    def flaky(*args, **kwargs):
        plan["calls"].append(time.monotonic())
        if len(plan["calls"]) <= plan["fail_first"]:
            raise plan["error"]
        return real(*args, **kwargs)

    monkeypatch.setattr(engines, "read_file", flaky)
    return plan


def _settings(source, output, **extra) -> SegmentationSettings:
    return SegmentationSettings(
        **{
            "input": source,
            "output_dir": output,
            "sweep": {"n_jobs": 1},
            "read_retries": 3,
            "read_retry_delay": 0.2,
            **extra,
        }
    )


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_a_source_that_times_out_twice_succeeds_on_the_third_try_after_the_delay(
    customers_csv, tmp_path, read_calls
):
    from flows.segmentation import segment_customers

    read_calls.update(fail_first=2, error=TimeoutError("share did not answer"))
    manifest = segment_customers(_settings(customers_csv, tmp_path))

    calls = read_calls["calls"]
    assert len(calls) == 3  # two failures, then success: two retries
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert gaps[0] >= 0.2 * 0.9 and gaps[1] >= 0.2 * 0.9  # read_retry_delay before each retry
    data_rows = len(customers_csv.read_text(encoding="utf-8").splitlines()) - 1
    assert manifest["rows"]["rows_read"] == data_rows  # the whole file, read once it worked
    assert latest_run(tmp_path).name == manifest["run_id"]
    assert lock_is_free(tmp_path)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_an_io_error_of_the_real_reader_is_retried(customers_csv, tmp_path, monkeypatch):
    """EIO from the file system, wrapped in InputError by tasks.ingest, is still transient."""
    from flows.segmentation import segment_customers

    real_read_bytes = pathlib.Path.read_bytes
    failures = []

    def read_bytes(self):
        if self == customers_csv and not failures:
            failures.append(self)
            raise OSError(errno.EIO, "Input/output error")
        return real_read_bytes(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    manifest = segment_customers(_settings(customers_csv, tmp_path))
    assert failures == [customers_csv]
    assert latest_run(tmp_path).name == manifest["run_id"]


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_bad_data_is_read_exactly_once(tmp_path, read_calls):
    from flows.segmentation import segment_customers

    # valid beyond the first rows (which are read, once and never retried, to resolve the
    # columns before the run), then a row the reader refuses: an unclosed quote
    bad = tmp_path / "bad.csv"
    write_sample_csv(generate_customers(n=SAMPLE_ROWS + 100, seed=3), bad)
    with bad.open("a", encoding="utf-8") as handle:
        handle.write('99999,"Male,20,30,40\n')
    output = tmp_path / "out"
    with pytest.raises(InputError, match=r"bad\.csv: unclosed quote"):
        segment_customers(_settings(bad, output))
    assert len(read_calls["calls"]) == 1
    assert latest_run(output) is None
    assert not any((output / "runs").iterdir())  # no run folder, no debris
    assert lock_is_free(output)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_a_source_that_keeps_failing_fails_the_run_after_the_last_retry(
    customers_csv, tmp_path, read_calls
):
    from flows.segmentation import segment_customers

    read_calls.update(fail_first=99, error=OSError(errno.EIO, "Input/output error"))
    settings = _settings(customers_csv, tmp_path, read_retry_delay=0.05)
    with pytest.raises(OSError, match="Input/output error"):
        segment_customers(settings)
    assert len(read_calls["calls"]) == settings.read_retries + 1
    assert latest_run(tmp_path) is None
    assert lock_is_free(tmp_path)
