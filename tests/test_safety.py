"""Safety: no pickle, run folders stay inside the output folder, servers on 127.0.0.1, and no
spreadsheet exports that could carry formulas."""

from __future__ import annotations

import ast
import os
import pickle
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from pydantic import ValidationError

from flows.settings import SegmentationSettings
from live_server import ROOT, Server

SOURCE_DIRS = ("flows", "tasks", "schemas")
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "shelve", "marshal"}
PICKLE_LOADERS = {"joblib", "pickle", "cloudpickle", "dill", "torch", "shelve", "marshal"}
SPREADSHEET_MODULES = {"openpyxl", "xlsxwriter", "xlwt", "odf", "pyexcel"}
# Writers of synthetic input files: `segment sample-data`, and the planted test tables.
CSV_WRITER_ALLOWED = {"tasks/sample_data.py", "tasks/sample_tables.py"}


def _sources() -> dict[str, ast.Module]:
    files = sorted(p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py"))
    assert len(files) > 20, files  # the scan really covers the project
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text(encoding="utf-8")) for p in files}


def pickle_uses(tree: ast.AST) -> list[str]:
    """Ways ``tree`` could unpickle: pickle-family imports, ``*.load`` of pickle-based
    libraries, ``read_pickle``, ``allow_pickle=True``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            if top in PICKLE_MODULES:
                found.append(node.module)
            elif top in PICKLE_LOADERS:
                found += [f"{node.module}.{a.name}" for a in node.names if "load" in a.name]
        elif isinstance(node, ast.Attribute):
            if node.attr in {"read_pickle", "to_pickle", "Unpickler"}:
                found.append(node.attr)
            elif (
                "load" in node.attr
                and isinstance(node.value, ast.Name)
                and node.value.id in PICKLE_LOADERS
            ):
                found.append(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.keyword) and node.arg == "allow_pickle":
            if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                found.append("allow_pickle")
    return found


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


def test_the_pickle_scanner_finds_every_kind_of_unpickling():
    snippet = """
import pickle
import cloudpickle as cp
from joblib import load
from dill import loads
import joblib, numpy as np, pandas as pd
joblib.load("m.joblib")
pd.read_pickle("x.pkl")
np.load("a.npy", allow_pickle=True)
"""
    assert len(pickle_uses(ast.parse(snippet))) == 7
    assert pickle_uses(ast.parse("np.load('a.npy', allow_pickle=False)\njson.load(f)")) == []


def test_no_pickle_loading_anywhere_in_the_project():
    uses = {path: pickle_uses(tree) for path, tree in _sources().items()}
    assert {path: found for path, found in uses.items() if found} == {}


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
    from flows.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["run", "--output", str(tmp_path), "--run-id", "../escaped"])
    assert stop.value.code == 2
    assert "run_id" in capsys.readouterr().err
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


def test_the_temporary_dask_cluster_binds_to_127_0_0_1_with_no_dashboard():
    """--runner dask without an address starts a LocalCluster: scheduler and workers on the
    loopback interface, and no dashboard (whose default would listen on every interface)."""
    pytest.importorskip("prefect_dask")
    runners = pytest.importorskip("flows.runners")

    runner = runners.dask_task_runner(SegmentationSettings(runner="dask"))
    assert runner.cluster_kwargs["host"] == "127.0.0.1"
    assert runner.cluster_kwargs.get("dashboard_address", ":8787") is None


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


def test_runs_export_no_csv_or_excel_tables():
    """Run outputs are Parquet, PNG and JSON: nothing meant to be opened in a spreadsheet, so
    there are no cells to neutralise. The only CSV writer is the sample-data generator."""
    exports = {path: spreadsheet_exports(tree) for path, tree in _sources().items()}
    writers = {path for path, found in exports.items() if found}
    assert writers == CSV_WRITER_ALLOWED, exports
    found = spreadsheet_exports(ast.parse("frame.to_csv('x.csv')\nimport openpyxl"))
    assert sorted(found) == ["openpyxl", "to_csv"]  # the scanner does find them


def test_sample_data_csv_holds_no_cell_a_spreadsheet_would_run_as_a_formula():
    """The generator writes only numbers, ids and gender codes: a cell starting with '-' is a
    negative number (planted dirt), never a formula; none starts with '=', '+' or '@'."""
    from tasks.sample_data import generate_customers, generate_snapshots

    from tasks.sample_tables import (
        mixed_marketing_table,
        wholesale_like_table,
        wide_behaviour_table,
    )

    frames = [generate_customers(n=3000).frame] + [s.sample.frame for s in generate_snapshots(3)]
    frames += [t().frame for t in (wide_behaviour_table, mixed_marketing_table, wholesale_like_table)]
    for frame in frames:
        for column in frame.columns:
            cells = frame[column].dropna().astype(str)
            risky = cells[cells.str.match(r"^\s*[=+\-@\t\r]")]
            assert risky.str.fullmatch(r"-\d+(\.\d+)?").all(), (column, risky.unique()[:5])
