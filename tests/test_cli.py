"""The `segment` command: arguments, exit codes, the summary, and real runs as users start it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.environment import STARTUP_TIMEOUT_ERROR, STARTUP_TIMEOUT_VARIABLE
from segment.cli.main import (
    EXIT_BAD_INPUT,
    EXIT_GATE,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    format_summary,
    main,
)
from segment.settings import DEFAULT_INPUT, PROJECT_ROOT

SEGMENT = Path(sys.executable).with_name("segment")


def test_no_command_prints_help_and_exits_with_usage_code(capsys):
    assert main([]) == EXIT_USAGE
    assert "segment" in capsys.readouterr().out


def test_help_lists_the_main_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--input", "--k", "--features", "--output", "--scaler", "--sweep"):
        assert option in out


def _subparsers() -> dict:
    import argparse

    from flows.deployment import _parser as serve_parser
    from segment.cli.main import _parser

    parser = _parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {**commands.choices, "serve": serve_parser("segment serve")}


@pytest.mark.parametrize("command", ["run", "init", "sample-data", "backfill", "serve"])
def test_help_says_in_words_what_an_option_without_a_default_does(command):
    parser = _subparsers()[command]
    text = " ".join(parser.format_help().split())
    for shown in ("(default: None)", "(default: [])", "(default: False)"):
        assert shown not in text
    for action in parser._actions:
        if action.default is None and action.nargs != 0 and not action.required:
            words = action.help.lower()
            assert "default" in words or "unset" in words, (action.option_strings, action.help)


@pytest.mark.parametrize(
    "args",
    [
        ["--k", "0"],
        ["--sweep", "ten"],
        ["--column", "no-equals-sign"],
        ["--k-min", "6", "--k-max", "3"],
        ["--missing", "mean"],
        ["--pca", "0"],
    ],
    ids=["k-zero", "bad-sweep", "bad-column-mapping", "k-min-above-k-max", "bad-missing", "pca-0"],
)
def test_bad_arguments_exit_with_usage_code(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *args])
    assert exit_info.value.code == EXIT_USAGE
    assert "error" in capsys.readouterr().err


def test_missing_input_file_exits_with_bad_input_code_before_prefect_starts(tmp_path, capsys):
    missing = tmp_path / "nope.csv"
    assert main(["run", "--input", str(missing), "--output", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err == f"segment: error: {missing}: no such file"


def _no_prefect(monkeypatch) -> None:
    """Fails the test if the flow is looked up: the error came after slow work (only the
    temporary server may already be booting, in the background)."""
    import flows.runners

    def no_flow(settings):
        raise AssertionError("the flow was started: the error came after slow work")

    monkeypatch.setattr(flows.runners, "flow_for", no_flow)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--features", "height"],
            "feature column 'height' is not in the file; headers found: CustomerID, Gender, Age, "
            "Annual Income (k$), Spending Score (1-100)",
        ),
        (["--features", "Age", "--profile", "age"], "column 'Age' is given two roles"),
        (["--id-column", "Account"], "id column 'Account' is not in the file"),
        (["--features", "Gender", "--spec", "/no/such/spec.toml"], "no such spec file"),
    ],
    ids=["unknown-feature", "two-roles", "unknown-id", "missing-spec"],
)
def test_column_errors_exit_with_bad_input_code_before_prefect_starts(
    args, message, capsys, monkeypatch
):
    _no_prefect(monkeypatch)
    assert main(["run", *args]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith("segment: error: ") and message in err
    assert "\n" not in err


def test_a_spec_section_for_no_column_of_the_file_exits_3_before_prefect_starts(
    tmp_path, capsys, monkeypatch
):
    _no_prefect(monkeypatch)
    spec = tmp_path / "spec.toml"
    spec.write_text('features = ["Age"]\n[columns.Income]\nmin = 0\n')
    args = ["run", "--spec", str(spec), "--output", str(tmp_path)]
    assert main(args) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "spec section [columns.Income] names a column that is not in the file" in err
    assert "headers found: CustomerID, Gender, Age" in err and "\n" not in err


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({}, "Mall preset (opt out: --spec FILE or --features numeric). Features: Annual Income"),
        (
            {"features": ["numeric"]},
            "Inferred from the file (no --spec, not the Mall preset). Features:",
        ),
    ],
    ids=["mall-preset", "features-numeric"],
)
def test_the_plan_log_line_says_whether_the_mall_preset_is_used(options, said, monkeypatch):
    import logging

    import flows.steps as steps

    lines: list[str] = []
    logger = logging.getLogger("test.resolve")
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(logger, "info", lambda message, *args: lines.append(message % args))
    monkeypatch.setattr(steps, "get_run_logger", lambda: logger)
    settings = steps.SegmentationSettings(input=DEFAULT_INPUT, **options)
    table = steps.plan.fn(settings).table_columns
    assert (table.preset == "mall") == (not options)
    assert any(said in line for line in lines), lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "500"], "--k 500 asks for more segments than the input has rows (3,036)"),
        (["--k-max", "4000"], "--k-max 4000 asks for more segments than the input has rows"),
        (["--k-min", "3037"], "--k-min 3037 asks for more segments than the input has rows"),
    ],
    ids=["k", "k-max", "k-min"],
)
def test_k_above_the_number_of_rows_is_a_usage_error_before_prefect_starts(
    args, message, tmp_path, capsys, monkeypatch
):
    _no_prefect(monkeypatch)
    small = tmp_path / "small.csv"
    lines = DEFAULT_INPUT.read_text().splitlines()
    if args[0] == "--k":  # 200 customers, as in the issue: --k 500 would sweep k = 1..196
        small.write_text("\n".join(lines[:201]) + "\n")
        message = "--k 500 asks for more segments than the input has rows (200); use at most 200"
    else:
        small = DEFAULT_INPUT
    assert main(["run", "--input", str(small), "--output", str(tmp_path), *args]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"segment: error: {small}: ") and message in err
    assert err.count("\n") == 1


def test_k_equal_to_the_number_of_rows_passes_the_check(tmp_path):
    from segment.cli.main import check_input
    from segment.settings import SegmentationSettings

    small = tmp_path / "small.csv"
    small.write_text("\n".join(DEFAULT_INPUT.read_text().splitlines()[:21]))  # no final newline
    assert check_input(SegmentationSettings(input=small, k=20)) is None
    code, message = check_input(SegmentationSettings(input=small, k=21))
    assert code == EXIT_USAGE and "rows (20)" in message


def test_rows_are_counted_from_parquet_metadata_and_csv_lines(tmp_path):
    import pandas as pd

    from tasks.ingest import count_data_rows

    frame = pd.DataFrame({"id": range(1234), "x": 1.0})
    frame.to_parquet(tmp_path / "t.parquet")
    assert count_data_rows(tmp_path / "t.parquet") == 1234
    (tmp_path / "crlf.csv").write_bytes(b"id,x\r\n1,2\r\n3,4\r\n")
    (tmp_path / "cr.csv").write_bytes(b"id,x\r1,2\r3,4")
    (tmp_path / "header.csv").write_bytes(b"id,x\n")
    assert count_data_rows(tmp_path / "crlf.csv") == 2
    assert count_data_rows(tmp_path / "cr.csv") == 2
    assert count_data_rows(tmp_path / "header.csv") == 0


def test_unknown_column_key_is_a_usage_error_before_prefect_starts(tmp_path, capsys, monkeypatch):
    _no_prefect(monkeypatch)
    args = ["run", "--output", str(tmp_path), "--column", "shoe_size=Age"]
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("segment: error: ")
    assert "unknown canonical column(s) in the mapping: ['shoe_size']" in err
    assert "customer_id, gender, age, annual_income, spending_score" in err
    assert err.count("\n") == 1
    # a known key mapped to a header the file lacks is still the input's problem (exit 3)
    args = ["run", "--output", str(tmp_path), "--column", "age=Alter"]
    assert main(args) == EXIT_BAD_INPUT


def test_unknown_column_key_of_a_general_table_is_a_usage_error(tmp_path, capsys, monkeypatch):
    """No preset, no spec: a --column NAME that no feature or profile uses is a typo, not
    something to ignore; a NAME the run does use works."""
    _no_prefect(monkeypatch)
    table = tmp_path / "wholesale.csv"
    table.write_text("Channel,Fresh,Milk\n1,12669,9656\n2,7057,9810\n1,6353,8808\n")
    base = ["run", "--input", str(table), "--output", str(tmp_path)]
    assert main([*base, "--column", "nosuch=Fresh"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("segment: error: ") and err.count("\n") == 1
    assert "--column nosuch: no column of this run has that name" in err
    assert "--features or --profile (here: Channel, Fresh, Milk, customer_id)" in err
    from segment.cli.main import check_input
    from segment.settings import SegmentationSettings

    used = SegmentationSettings(input=table, features=["fresh"], columns={"fresh": "Fresh"})
    assert check_input(used) is None


def test_invalid_spec_file_names_its_key_and_line_before_prefect_starts(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('features = ["numeric"]\nmissing = "mean"\n')
    assert main(["run", "--spec", str(spec), "--output", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"segment: error: {spec}: line 2, key missing: Input should be")


def test_init_writes_a_spec_that_reads_back_and_refuses_to_overwrite(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    assert main(["init", "--input", str(DEFAULT_INPUT), "--output", str(spec)]) == EXIT_OK
    text = spec.read_text()
    assert 'id_column = "CustomerID"' in text and "[columns." in text
    assert main(["init", "--input", str(DEFAULT_INPUT), "--output", str(spec)]) == EXIT_USAGE
    assert "exists" in capsys.readouterr().err


@pytest.mark.process
def test_as_of_with_a_single_input_file_is_refused_before_prefect_is_imported(tmp_path):
    """--as-of picks a snapshot from a folder: with a single file it would be ignored."""
    code = (
        "import sys; from segment.cli.main import main; "
        f"code = main(['run', '--input', {str(DEFAULT_INPUT)!r}, '--as-of', '2026-11-20', "
        f"'--output', {str(tmp_path)!r}]); "
        "print('prefect' in sys.modules); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stdout == "False\n"  # refused before Prefect (and its server) started
    assert done.stderr == (
        "segment: error: --as-of picks a dated snapshot from a folder of snapshots, "
        f"but --input {DEFAULT_INPUT} is a single file\n"
    )
    assert list(tmp_path.iterdir()) == []


def _startup_timeout(cwd: Path, *, configure: bool, **env: str) -> int:
    """The temporary server's start-up limit as Prefect reads it in a fresh process started in
    ``cwd`` (with the caller's PREFECT_* variables removed), after the CLI's defaults or not."""
    code = (
        ("from flows.environment import configure_prefect; configure_prefect(); " if configure
         else "")
        + "from prefect.settings import get_current_settings as g; "
        "print(g().server.ephemeral.startup_timeout_seconds)"
    )  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**clean, "PREFECT_HOME": str(cwd / ".prefect-home"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.process
def test_the_temporary_server_gets_90_seconds_to_start(tmp_path):
    """prefect.toml in the project folder, and the CLI's default anywhere; a user's variable
    wins; Prefect's own default (20 s) elsewhere shows that the setting is what changes it."""
    assert _startup_timeout(PROJECT_ROOT, configure=False) == 90
    assert _startup_timeout(tmp_path, configure=True) == 90
    assert _startup_timeout(tmp_path, configure=True, **{STARTUP_TIMEOUT_VARIABLE: "150"}) == 150
    assert _startup_timeout(tmp_path, configure=False) == 20


STARTUP_HINT = (
    f"({STARTUP_TIMEOUT_VARIABLE}). Start a server once with `make server`, then `export "
    "PREFECT_API_URL=http://127.0.0.1:4200/api` in this shell and run again"
)


def _no_server(monkeypatch) -> None:
    """No temporary server and no API calls before the flow: for the tests below, which
    replace the flow itself and only read the CLI's line for its error."""
    import contextlib

    import flows.killed_runs
    import flows.runners

    monkeypatch.setattr(
        flows.runners, "prefect_api_for_workers", lambda settings: contextlib.nullcontext()
    )
    monkeypatch.setattr(flows.killed_runs, "crash_killed_runs", lambda: 0)


def test_a_temporary_server_that_does_not_start_in_time_says_what_to_do(
    tmp_path, capsys, monkeypatch
):
    import flows.runners

    def timed_out(settings):
        raise RuntimeError(f"{STARTUP_TIMEOUT_ERROR}. stdout: b''\nstderr: b'a\nb'")

    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as LIMIT
    from prefect.settings import temporary_settings

    monkeypatch.setattr(flows.runners, "flow_for", lambda settings: timed_out)
    _no_server(monkeypatch)
    monkeypatch.setenv(STARTUP_TIMEOUT_VARIABLE, "90")  # what the CLI sets (kept in this process)
    with temporary_settings({LIMIT: 90}):  # whatever folder the tests run from
        assert main(["run", "--output", str(tmp_path), "--quiet"]) == EXIT_INTERNAL
    assert capsys.readouterr().err == (
        f"segment: internal error: Prefect's temporary server did not start within 90 s "
        f"{STARTUP_HINT}\n"
    )


def test_other_internal_errors_keep_their_type_and_message(tmp_path, capsys, monkeypatch):
    import flows.runners

    def broken(settings):
        raise KeyError("no such thing")

    monkeypatch.setattr(flows.runners, "flow_for", lambda settings: broken)
    _no_server(monkeypatch)
    assert main(["run", "--output", str(tmp_path), "--quiet"]) == EXIT_INTERNAL
    assert capsys.readouterr().err == "segment: internal error: KeyError: 'no such thing'\n"


def test_the_flow_runs_with_the_collector_on_the_imports_frozen_and_no_heartbeats(
    tmp_path, monkeypatch
):
    """segment.cli.collector: what the run path imported is frozen out of the flow's
    collections, all back in the oldest generation afterwards (this test's own process goes
    on); and the flow run sends no heartbeats."""
    import gc

    import flows.runners

    seen = {}

    def flow(settings):
        from prefect.settings import get_current_settings

        seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count())
        seen["heartbeat"] = get_current_settings().flows.heartbeat_frequency
        raise KeyError("stop here")

    def flow_for(settings):
        return flow

    monkeypatch.setattr(flows.runners, "flow_for", flow_for)
    _no_server(monkeypatch)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert main(["run", "--output", str(tmp_path), "--quiet"]) == EXIT_INTERNAL
    assert seen["enabled"] is True
    assert seen["frozen"] > 10_000  # Prefect, pandas, the project: modules, classes, functions
    assert seen["heartbeat"] is None  # flows.killed_runs.without_heartbeats
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_flow_that_cannot_be_built_is_an_internal_error_and_leaves_nothing_frozen(
    tmp_path, capsys, monkeypatch
):
    import gc

    import flows.runners

    def flow_for(settings):
        raise RuntimeError("no task runner")

    monkeypatch.setattr(flows.runners, "flow_for", flow_for)
    _no_server(monkeypatch)
    assert main(["run", "--output", str(tmp_path), "--quiet"]) == EXIT_INTERNAL
    assert capsys.readouterr().err == "segment: internal error: RuntimeError: no task runner\n"
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_sample_data_command_writes_the_committed_default_file(tmp_path, capsys):
    target = tmp_path / "customers.csv"
    assert main(["sample-data", "--output", str(target)]) == EXIT_OK
    assert target.read_bytes() == DEFAULT_INPUT.read_bytes()
    assert "Wrote 3,036 rows" in capsys.readouterr().out


def summary_manifest(path: str, names: list[str]) -> dict:
    """A run's manifest as the summary reads it: two segments of 30 and 10 customers."""
    return {
        "input": {"path": path},
        "k": {"chosen": 2, "rule": "elbow", "reason": "knee at k=2"},
        "segments": [
            {"id": i, "name": n, "size": s} for i, n, s in zip((1, 2), names, (30, 10), strict=True)
        ],
        "rows": {"rows_read": 45, "rows_kept": 40, "rows_quarantined": 3, "duplicates_dropped": 2},
        "output_folder": "outputs/runs/x",
    }


def test_summary_lists_segments_rows_and_output_folder():
    names = ["Low income, low spending", "High income, high spending"]
    manifest = summary_manifest("in.csv", names)
    text = format_summary(manifest)
    assert "Segmented 40 customers from in.csv" in text
    assert "k = 2 (elbow: knee at k=2)" in text
    assert "    1         30   75.0%  Low income, low spending" in text
    assert "Rows: 45 read = 40 segmented + 3 quarantined + 2 duplicates" in text
    assert "Warning" not in text
    assert text.endswith("Output: outputs/runs/x\nReport: outputs/runs/x/report.html")


def test_summary_shows_names_and_paths_with_control_characters_escaped():
    """A name or path from the data cannot break the table or drive the terminal: a line
    break, a tab, an escape sequence and a right-to-left override are shown as escapes."""
    names = ["High\nincome\t\x1b[31mred\u202eevil", "Mostly 👨\u200d👩\u200d👧"]
    manifest = summary_manifest("in\nput.csv", names)
    lines = format_summary(manifest).splitlines()
    assert lines[0] == "Segmented 40 customers from in\\nput.csv"
    assert lines[4].endswith("  High\\nincome\\t\\x1b[31mred\\u202eevil")
    assert lines[5].endswith("  Mostly 👨\u200d👩\u200d👧")  # emoji joiners kept
    assert not any(ch in "".join(lines) for ch in "\t\x1b\u202e")


def test_summary_warns_when_most_rows_read_were_duplicates():
    manifest = {
        "input": {"path": "copies.csv"},
        "k": {"chosen": 2, "rule": "elbow", "reason": "knee at k=2"},
        "segments": [{"id": 1, "name": "A", "size": 150}, {"id": 2, "name": "B", "size": 50}],
        "rows": {
            "rows_read": 57_600,
            "rows_kept": 200,
            "rows_quarantined": 0,
            "duplicates_dropped": 57_400,
        },
        "output_folder": "outputs/runs/x",
    }
    lines = format_summary(manifest).splitlines()
    rows = lines.index("Rows: 57,600 read = 200 segmented + 0 quarantined + 57,400 duplicates")
    assert lines[rows + 1] == (
        "Warning: 57,400 of the 57,600 rows read (99.7%) were exact duplicates and were "
        "dropped; check how the file was produced"
    )


def _segment(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SEGMENT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.flow
def test_segment_run_on_the_mall_file_with_a_temporary_server(tmp_path, shared_data):
    # as a user runs it: no server running, Prefect starts its temporary one
    assert shutil.which(str(SEGMENT)), "the console script is installed"
    result = _segment(
        "run",
        "--input",
        str(shared_data / "mall_customers.csv"),
        "--output",
        str(tmp_path),
        "--quiet",
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert "Segmented 200 customers" in result.stdout
    assert "k = 5 (elbow" in result.stdout
    assert " | INFO " not in result.stderr  # --quiet: warnings only (INFO shows without it)
    for size, name in [(22, "Low income, high spending"), (81, "Average income, average spending")]:
        assert any(str(size) in line and name in line for line in result.stdout.splitlines())
    assert (tmp_path / "latest" / "manifest.json").is_file()


@pytest.mark.flow
def test_segment_run_against_a_running_server_reports_bad_input_in_one_line(
    tmp_path, shared_data, prefect_server
):
    from prefect.settings import PREFECT_API_URL

    conflict = shared_data / "dirty" / "mall_customers_merge_conflict.csv"
    result = _segment(
        "run",
        "--input",
        str(conflict),
        "--output",
        str(tmp_path),
        "--quiet",
        env={"PREFECT_API_URL": PREFECT_API_URL.value()},
    )
    assert result.returncode == EXIT_BAD_INPUT
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"segment: error: {conflict}")
    assert "merge-conflict markers at lines 1, 203, 405" in last
    assert result.stderr == f"{last}\n"  # --quiet: the failure once, no Prefect ERROR lines
    assert not (tmp_path / "latest").exists()


@pytest.mark.flow
def test_breached_quality_gate_exits_with_gate_code_and_keeps_no_run(tmp_path, prefect_server):
    from prefect.settings import PREFECT_API_URL

    result = _segment(
        "run",
        "--output",
        str(tmp_path),
        "--quiet",
        "--gate-silhouette-floor",
        "0.99",
        env={"PREFECT_API_URL": PREFECT_API_URL.value()},
    )
    assert result.returncode == EXIT_GATE
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("segment: quality gate failed: silhouette_floor: silhouette 0.")
    assert last.endswith(f"is below 0.99; {tmp_path / 'latest'} is unchanged")  # --output's
    assert result.stderr == f"{last}\n"  # --quiet: the failure once, no Prefect ERROR lines
    assert not (tmp_path / "latest").exists()


@pytest.mark.flow
def test_segment_run_names_what_to_do_when_prefects_server_times_out(tmp_path):
    """Prefect's real time-out error: a limit of 0 s fails the first health check (no timing)."""
    result = _segment(
        "run", "--output", str(tmp_path / "out"), "--quiet",
        env={"PREFECT_HOME": str(tmp_path / "home"), STARTUP_TIMEOUT_VARIABLE: "0"},
    )  # fmt: skip
    assert result.returncode == EXIT_INTERNAL, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"segment: internal error: Prefect's temporary server did not start within 0 s "
        f"{STARTUP_HINT}"
    )


@pytest.mark.flow
def test_an_adhoc_run_of_mostly_duplicates_warns_and_is_named_tagged_and_keyed_for_the_ui(
    tmp_path, shared_data, prefect_server
):
    """Not --quiet: the INFO lines the quiet tests do not see are there. The Mall file three
    times over: 600 rows read, 400 exact duplicates dropped; the run goes on, with a warning."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.settings import PREFECT_API_URL

    from tasks.reporting.artifacts import artifact_key

    lines = (shared_data / "mall_customers.csv").read_text().splitlines()
    copies = tmp_path / "copies.csv"
    copies.write_text("\n".join([lines[0], *lines[1:] * 3]) + "\n")
    output = tmp_path / "adhoc-out"
    result = _segment(
        "run", "--input", str(copies), "--output", str(output),
        env={"PREFECT_API_URL": PREFECT_API_URL.value()},
    )  # fmt: skip
    assert result.returncode == EXIT_OK, result.stderr
    assert "Rows: 600 read = 200 segmented + 0 quarantined + 400 duplicates\n" in result.stdout
    assert (
        "Warning: 400 of the 600 rows read (66.7%) were exact duplicates and were dropped"
        in result.stdout
    )
    assert " | INFO    | tasks.clean - " in result.stderr  # shown without --quiet

    manifest = json.loads((output / "latest" / "manifest.json").read_text())
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(manifest["flow_run_id"])
        only_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        artifacts = {a.key: a for a in client.read_artifacts(artifact_filter=only_run) if a.key}
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        )
    assert run.name == f"segment-{manifest['run_id']}"  # the run folder's name
    assert "adhoc" in run.tags and "nightly" not in run.tags
    # its task runs are not tagged: no tag-concurrency round trip before each task
    assert tasks and all(t.tags == [] for t in tasks)
    keys = {
        base: artifact_key(base, output, deployment=False)
        for base in ("segmentation-summary", "segment-profiles", "elbow-sweep-progress")
    }
    assert set(keys.values()) <= set(artifacts)
    assert not {"segmentation-summary", "segment-profiles"} & set(artifacts)
    assert "Warning: 400 of the 600 rows read" in artifacts[keys["segmentation-summary"]].data
    profiles = json.loads(artifacts[keys["segment-profiles"]].data)
    assert {row["share"] for row in profiles} >= {"11.0%", "40.5%"}
    (ingest,) = [t for t in tasks if t.name.startswith("ingest")]
    delay = ingest.empirical_policy.retry_delay
    assert isinstance(delay, int | float) and delay == 1.0  # a number, not a list (NaN in the UI)
