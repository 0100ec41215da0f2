"""Safety: no pickle (none written by a failed run, a pickle saved as a model refused; that
the product code never unpickles is ruff's rule: TID251, S301 in pyproject.toml), run folders
stay inside the output folder, servers on 127.0.0.1, and CSV for spreadsheets only through the
writer that escapes cells a spreadsheet would run as formulas."""

from __future__ import annotations

import ast
import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
from pydantic import ValidationError

import flows.segmentation  # noqa: F401 - Prefect sets up its log handlers on import: before capsys
from live_server import ROOT, Server
from segment.cli.main import EXIT_BAD_INPUT, EXIT_GATE, EXIT_INTERNAL, main
from segment.settings import SegmentationSettings

SOURCE_DIRS = ("flows", "tasks", "schemas")
SPREADSHEET_MODULES = {"openpyxl", "xlsxwriter", "xlwt", "odf", "pyexcel"}
# The writer of synthetic input files: `segment sample-data`.
CSV_WRITER_ALLOWED = {"tasks/sample_data.py"}
# The one writer of tables for people (`segment assign --output FILE.csv`): it escapes formulas.
CSV_EXPORTER = "tasks/scoring/export.py"


def _sources() -> dict[str, ast.Module]:
    files = sorted(p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py"))
    assert len(files) > 20, files  # the scan really covers the project
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text(encoding="utf-8")) for p in files}


def spreadsheet_exports(tree: ast.AST) -> list[str]:
    """CSV/Excel writing: ``to_csv``, ``to_excel``, ``ExcelWriter``, ``csv.writer``, ..."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {
            "to_csv",
            "to_excel",
            "ExcelWriter",
            "writer",
            "DictWriter",
            "write_csv",
        }:
            found.append(node.attr)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            found += [n for n in names if n.split(".")[0] in SPREADSHEET_MODULES]
    return found


def test_task_results_are_never_persisted_or_cached():
    from prefect import Task
    from prefect.cache_policies import NO_CACHE
    from prefect.settings import get_current_settings

    import flows.segmentation as module

    tasks = [value for value in vars(module).values() if isinstance(value, Task)]
    assert len(tasks) >= 10
    for task in tasks + [module.ingest.with_options(retries=2)]:
        assert task.persist_result is False, task.name
        assert task.cache_policy is NO_CACHE, task.name
        assert task.result_storage is None, task.name
    assert module.segment_customers.persist_result is not True
    assert module.segment_customers.result_storage is None
    assert get_current_settings().results.persist_by_default is False


def _project_flows() -> list:
    """Every Prefect flow the project's modules define."""
    import importlib

    from prefect import Flow

    found = {}
    for path in sorted((ROOT / "flows").glob("*.py")):
        module = importlib.import_module(f"flows.{path.stem}")
        found.update({id(v): v for v in vars(module).values() if isinstance(v, Flow)})
    return list(found.values())


def test_every_flow_persists_nothing_and_fails_without_raising_into_prefect():
    from flows.run_folder import fails_without_persisting

    flows = _project_flows()
    assert {f.name for f in flows} == {
        "assign-segments",
        "customer-segmentation",
    }
    wrapper = fails_without_persisting(lambda: None).__code__
    for flow in flows:
        assert flow.persist_result is False, flow.name
        assert flow.result_storage is None, flow.name
        assert flow.fn.__code__ is wrapper, f"{flow.name} is not @fails_without_persisting"


# A failed run (quality gate, bad input, internal error) writes nothing: Prefect 3.9 would
# write a raised exception as a cloudpickle into $PREFECT_HOME/storage and add an unnamed result
# artifact pointing at it, whatever persist_result says.


def _storage_files() -> set[Path]:
    """Files in Prefect's default result storage, $PREFECT_HOME/storage."""
    from prefect.settings import get_current_settings

    storage = Path(os.environ["PREFECT_HOME"]) / "storage"
    assert Path(get_current_settings().results.local_storage_path) == storage
    return {p for p in storage.rglob("*") if p.is_file()} if storage.exists() else set()


def _run_and_its_artifacts(run_id: str):
    """The flow run whose settings have ``run_id``, its flow's name, and the run's artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50)
        (run,) = [r for r in runs if (r.parameters.get("settings") or {}).get("run_id") == run_id]
        only_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        flow_name = client.read_flow(run.flow_id).name
        return run, flow_name, client.read_artifacts(artifact_filter=only_run)


def _result_artifacts(artifacts) -> list:
    """Result artifacts: Prefect's pointers at a stored result (type "result", or no key and a
    storage_key in their data, as Prefect 3.9 writes them for a failed flow's exception)."""
    return [
        a
        for a in artifacts
        if a.type == "result"
        or (a.key is None and isinstance(a.data, dict) and "storage_key" in a.data)
    ]


def _every_row_invalid(tmp_path: Path) -> list[str]:
    """Bad data the run finds only once it reads every row (the columns themselves are fine,
    so the CLI's check before the run lets it through): every age out of range."""
    path = tmp_path / "all-invalid.csv"
    rows = "".join(f"{i},Female,150,{20 + i},{30 + i}\n" for i in range(1, 6))
    path.write_text("CustomerID,Genre,Age,Annual Income (k$),Spending Score (1-100)\n" + rows)
    return ["--input", str(path)]


def _inject_internal_error(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("injected fault in scale_features")

    monkeypatch.setattr("tasks.engines.scale_features", broken)


FAILURES = {
    "quality-gate": (
        lambda tmp_path, monkeypatch: ["--gate-silhouette-floor", "0.99"],
        EXIT_GATE,
        "segment: quality gate failed: silhouette_floor: silhouette 0.",
    ),
    "bad-input": (
        lambda tmp_path, monkeypatch: _every_row_invalid(tmp_path),
        EXIT_BAD_INPUT,
        "segment: error: ",
    ),
    "internal-error": (
        lambda tmp_path, monkeypatch: _inject_internal_error(monkeypatch) or [],
        EXIT_INTERNAL,
        "segment: internal error: RuntimeError: injected fault in scale_features",
    ),
}


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_a_failed_run_writes_no_pickle_and_no_result_artifact(
    failure, tmp_path, monkeypatch, capsys
):
    options, exit_code, message = failure
    run_id = f"failed-{uuid.uuid4().hex[:8]}"
    before = _storage_files()
    code = main(
        ["run", "--output", str(tmp_path / "out"), "--run-id", run_id, "--quiet"]
        + options(tmp_path, monkeypatch)
    )
    err = capsys.readouterr().err
    assert code == exit_code, err
    assert err.strip().splitlines()[-1].startswith(message), err  # the CLI's one line

    assert _storage_files() - before == set()
    run, flow_name, artifacts = _run_and_its_artifacts(run_id)
    assert flow_name == "customer-segmentation"
    assert run.state.is_failed(), run.state
    assert _result_artifacts(artifacts) == []
    if exit_code == EXIT_GATE:  # the run's own artifacts are there: the query finds them
        assert any(a.key.startswith("segmentation-summary") for a in artifacts if a.key)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_a_failed_partitioned_run_writes_no_pickle_and_no_result_artifact(tmp_path, capsys):
    pytest.importorskip("prefect_dask")
    parts = tmp_path / "parts"
    parts.mkdir()
    # the first file resolves the columns before Prefect starts; the second fails in the flow
    header = ["CustomerID", "Gender", "Age", "Annual Income (k$)", "Spending Score (1-100)"]
    rows = [["1", "Female", "30", "50", "60"], ["2", "Male", "40", "70", "20"]]
    pd.DataFrame(rows, columns=header).to_parquet(parts / "part-0.parquet", index=False)
    (parts / "part-1.parquet").write_bytes(b"not parquet at all")
    run_id = f"failed-{uuid.uuid4().hex[:8]}"
    before = _storage_files()
    code = main(
        ["run", "--input", str(parts), "--runner", "dask", "--dask-workers", "1"]
        + ["--output", str(tmp_path / "out"), "--run-id", run_id, "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert "not a readable Parquet file" in err

    assert _storage_files() - before == set()
    run, flow_name, artifacts = _run_and_its_artifacts(run_id)
    assert flow_name == "customer-segmentation"
    assert run.state.is_failed(), run.state
    assert _result_artifacts(artifacts) == []


def test_a_pickle_saved_as_model_is_refused_not_unpickled(tmp_path):
    from tasks.model import load_model

    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (tmp_path / "model.json").write_bytes(pickle.dumps(Payload(), protocol=0))
    with pytest.raises(ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        load_model(tmp_path / "model.json")
    assert not marker.exists()


# --- output paths -----------------------------------------------------------------------------


ESCAPING_RUN_IDS = [
    "../x",
    "..",
    ".",
    "/etc",
    "/tmp/x",
    "a/b",
    "a/../../b",
    "a\\b",
    ".x",
    "",
    "x" * 201,
]


@pytest.mark.parametrize("run_id", ESCAPING_RUN_IDS)
def test_settings_refuse_run_ids_that_leave_the_runs_folder(run_id):
    with pytest.raises(ValidationError, match="run_id"):
        SegmentationSettings(run_id=run_id)


@pytest.mark.parametrize("run_id", ["20261126T150422Z-67d84b3d", "nightly.2026-11-26", "a..b"])
def test_accepted_run_ids_name_a_folder_directly_inside_runs(run_id, tmp_path):
    settings = SegmentationSettings(run_id=run_id, output_dir=tmp_path)
    runs = (tmp_path / "runs").resolve()
    assert (settings.output_dir / "runs" / settings.run_id).resolve().parent == runs


def test_the_cli_refuses_an_escaping_run_id_with_the_usage_code(capsys, tmp_path):
    from segment.cli.main import main

    with pytest.raises(SystemExit) as stop:
        main(["run", "--output", str(tmp_path), "--run-id", "../escaped"])
    assert stop.value.code == 2
    assert "--run-id: String should match pattern" in capsys.readouterr().err
    assert not (tmp_path.parent / "escaped").exists() and list(tmp_path.iterdir()) == []


# --- servers ---------------------------------------------------------------------------------


def _listening(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (Linux /proc/net/tcp[6])."""
    addresses = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, port_hex = local.split(":")
                if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                    raw = bytes.fromhex(address)
                    words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]
                    addresses.add(
                        ".".join(str(b) for b in words[0])
                        if width == 8
                        else ":".join(w.hex() for w in words)
                    )
    return addresses


@pytest.mark.process
def test_make_server_binds_to_127_0_0_1_by_default():
    dry_run = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "server"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    (command,) = [line for line in dry_run.stdout.splitlines() if "server start" in line]
    assert "--host 127.0.0.1 " in command + " "


@pytest.mark.process
def test_prefect_defaults_in_the_project_bind_servers_to_loopback():
    """What `prefect server start` (no --host), `segment serve` and the workers would use,
    read in a fresh process in the project folder (its prefect.toml applies)."""
    code = (
        "from prefect.settings import get_current_settings as g; s = g(); "
        "print(s.server.api.host, s.runner.server.enable, s.runner.server.host)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    api_host, runner_enabled, runner_host = done.stdout.split()
    assert api_host == "127.0.0.1"
    assert runner_enabled == "False"  # `segment serve` starts no runner webserver
    assert runner_host in {"127.0.0.1", "localhost"}


def test_no_worker_healthcheck_webserver_is_started():
    """A worker's healthcheck webserver binds 0.0.0.0 by default: the project never asks for
    one (`prefect worker start` without --with-healthcheck), nor a runner webserver."""
    for name in ("Makefile", "README.md", "prefect.yaml", "prefect.toml"):
        assert "with-healthcheck" not in (ROOT / name).read_text(encoding="utf-8"), name
    for path, tree in _sources().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg in {"webserver", "with_healthcheck"}:
                pytest.fail(f"{path} sets {node.arg}")


@pytest.mark.flow
def test_the_test_server_listens_on_127_0_0_1_only(live_server: Server):
    port = urlparse(live_server.url).port
    assert _listening(port) == {"127.0.0.1"}


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_the_temporary_server_of_segment_run_listens_on_127_0_0_1_only():
    """`segment run` without PREFECT_API_URL starts the same temporary server as the harness."""
    from prefect.settings import PREFECT_API_URL

    url = urlparse(PREFECT_API_URL.value())
    assert url.hostname == "127.0.0.1"
    assert _listening(url.port) == {"127.0.0.1"}


# --- spreadsheet exports ---------------------------------------------------------------------


def test_csv_for_spreadsheets_is_written_only_by_the_exporter_that_escapes_formulas(tmp_path):
    """Runs write Parquet, PNG and JSON; `segment assign` may write CSV, through
    tasks/scoring/export.py alone, and every text cell a spreadsheet would run as a formula
    (starting with =, +, -, @, tab or carriage return) comes out with a leading apostrophe. No Excel
    writer anywhere."""
    import csv

    from tasks.scoring.export import write_table_file

    exports = {path: spreadsheet_exports(tree) for path, tree in _sources().items()}
    writers = {path for path, found in exports.items() if found}
    assert writers == CSV_WRITER_ALLOWED | {CSV_EXPORTER}, exports
    assert set(exports[CSV_EXPORTER]) == {"write_csv"}  # CSV only, no spreadsheet library
    found = spreadsheet_exports(ast.parse("frame.to_csv('x.csv')\nimport openpyxl"))
    assert sorted(found) == ["openpyxl", "to_csv"]  # the scanner does find them

    formulas = ["=1+1", "+A1", "-A1+2", "@SUM(A1:A2)", "\t=1", "\r=1", '=HYPERLINK("x")']
    frame = pd.DataFrame({"customer_id": formulas, "note": ["fine"] * len(formulas)})
    path = write_table_file(frame, tmp_path / "export.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    risky = [c for c in cells if c[:1] in {"=", "+", "-", "@", "\t", "\r"}]
    assert risky == [], risky
    assert cells.count("fine") == len(formulas)
    assert [f"'{f}" for f in formulas] == [c for c in cells if c.startswith("'")]


def test_sample_data_csv_holds_no_cell_a_spreadsheet_would_run_as_a_formula():
    """The generator writes only numbers, ids and gender codes: a cell starting with '-' is a
    negative number (planted dirt), never a formula; none starts with '=', '+' or '@'."""
    from planted_tables import (
        mixed_marketing_table,
        wholesale_like_table,
        wide_behaviour_table,
    )

    from tasks.sample_data import generate_customers, generate_snapshots

    frames = [generate_customers(n=3000).frame] + [s.sample.frame for s in generate_snapshots(3)]
    frames += [
        t().frame for t in (wide_behaviour_table, mixed_marketing_table, wholesale_like_table)
    ]
    for frame in frames:
        for column in frame.columns:
            cells = frame[column].dropna().astype(str)
            risky = cells[cells.str.match(r"^\s*[=+\-@\t\r]")]
            assert risky.str.fullmatch(r"-\d+(\.\d+)?").all(), (column, risky.unique()[:5])


@pytest.mark.flow
def test_a_local_run_works_with_dask_not_installed(live_server, tmp_path):
    """`segment run` (runner local) in a process where importing dask, distributed or
    prefect_dask fails, as on a machine without the dask extra: the run completes."""
    from live_server import ROOT

    blocker = tmp_path / "no_dask"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class NoDask(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'dask', 'distributed', 'prefect_dask', 'dask_ml'}:\n"
        "            raise ImportError(f'No module named {name!r} (blocked by the test)')\n"
        "sys.meta_path.insert(0, NoDask())\n"
    )
    env = live_server.env(PYTHONPATH=str(blocker))
    probe = subprocess.run(
        [sys.executable, "-c", "import dask"], env=env, capture_output=True, text=True
    )
    assert probe.returncode != 0 and "blocked by the test" in probe.stderr
    output = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "segment.cli.main", "run", "--output", str(output), "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (output / "latest" / "manifest.json").is_file()
