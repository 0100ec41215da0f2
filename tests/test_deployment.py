"""The nightly deployment against a real `prefect server start`: served by `python -m
flows.deployment`, and deployed from prefect.yaml onto a process work pool run by a worker.

Everything runs in subprocesses with their own environment (conftest.py gives this process a
temporary PREFECT_HOME and no PREFECT_API_URL); each is stopped with its process group. The
tests that need no server are not marked `flow`: they also run with `-m 'not flow'`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
import yaml

from flows.deployment import (
    DEFAULT_CRON,
    DEPLOYMENT_NAME,
    FULL_NAME,
    backfill,
    main,
    serve_nightly,
)
from flows.run_settings import merge_over_deployment, settings_for_run
from live_server import BIN, ROOT, RUN_TIMEOUT, Server, start, stop, wait_for
from segment.settings import SegmentationSettings

CUSTOMERS = ROOT / "data" / "customers.csv"

TIMEZONE = "Asia/Kolkata"  # UTC+05:30 all year: 02:00 there is 20:30 UTC
ARTIFACT_KEYS = {"segmentation-summary", "segment-profiles"}


def _artifact_keys(server: Server, flow_run_id) -> set[str]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    only_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    with server.client() as client:
        return {a.key for a in client.read_artifacts(artifact_filter=only_run)}


def _scheduled_starts(server: Server, deployment_id) -> list[datetime]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    of_deployment = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]))
    with server.client() as client:
        runs = client.read_flow_runs(flow_run_filter=of_deployment)
    return [r.expected_start_time for r in runs if r.state and r.state.is_scheduled()]


def _entries(folder: Path) -> set[str]:
    return set(os.listdir(folder)) if folder.exists() else set()


def _snapshots(folder: Path) -> Path:
    """A snapshot folder: the default customers as of 2026-10-01 and 2026-11-01."""
    folder.mkdir(parents=True)
    for day in ("2026-10-01", "2026-11-01"):
        shutil.copyfile(CUSTOMERS, folder / f"customers_{day}.csv")
    return folder


@pytest.fixture(scope="module")
def server(live_server: Server) -> Server:
    """The session's real Prefect server (tests/conftest.py)."""
    return live_server


@dataclass
class Served:
    deployment: object
    output: Path
    settings: SegmentationSettings


@pytest.fixture(scope="module")
def served(server, tmp_path_factory):
    """`python -m flows.deployment` serving the nightly deployment until the module ends."""
    output = tmp_path_factory.mktemp("served-output")
    log = output.parent / "serve.log"
    process = start(
        [sys.executable, "-m", "flows.deployment", "--input", str(CUSTOMERS)]
        + ["--output", str(output), "--timezone", TIMEZONE],
        server.env(PREFECT_RUNNER_POLL_FREQUENCY="1"),  # default 10 s between polls
        log,
    )

    def registered():
        from prefect.exceptions import ObjectNotFound

        with server.client() as client:
            try:
                return client.read_deployment_by_name(FULL_NAME)
            except ObjectNotFound:
                return None

    try:
        deployment = wait_for("the served deployment", registered, process, log, timeout=60)
        settings = SegmentationSettings(input=CUSTOMERS, output_dir=output)
        yield Served(deployment=deployment, output=output, settings=settings)
    finally:
        stop(process)


@pytest.mark.flow
def test_served_deployment_is_scheduled_in_its_timezone_and_runs(server, served):
    deployment = served.deployment
    assert deployment.name == DEPLOYMENT_NAME
    assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == [
        (DEFAULT_CRON, TIMEZONE)
    ]
    assert deployment.parameters == {"settings": served.settings.model_dump(mode="json")}

    run = server.run_deployment(FULL_NAME)
    assert run.state.is_completed(), run.state
    assert _artifact_keys(server, run.id) >= ARTIFACT_KEYS
    manifest = json.loads((served.output / "latest" / "manifest.json").read_text())
    assert manifest["flow_run_id"] == str(run.id)
    assert manifest["input"]["path"] == str(CUSTOMERS)
    with server.client() as client:
        run = client.read_flow_run(run.id)
    assert run.name == f"segment-{manifest['run_id']}"  # the run folder's name
    assert "nightly" in run.tags and "adhoc" not in run.tags
    assert f"in the {TIMEZONE} time zone" in deployment.description

    # The server's scheduler queues the next nights at 02:00 in the deployment's timezone.
    deadline = time.monotonic() + 30
    while not (starts := _scheduled_starts(server, deployment.id)):
        assert time.monotonic() < deadline, "the server scheduled no runs"
        time.sleep(0.5)
    assert {s.astimezone(ZoneInfo(TIMEZONE)).strftime("%H:%M") for s in starts} == {"02:00"}


@pytest.mark.flow
def test_a_partial_settings_override_keeps_the_deployments_other_settings(server, served):
    """The issue's command, `prefect deployment run ... --param 'settings={"k": 4}'`: Prefect
    stores only the fields given; the flow merges them over the deployment's settings, so the
    run reads the deployment's input and writes to its output, not the demo defaults."""
    override = {"k": 4, "gates": {"max_moved_share": None}}  # a k change moves many customers
    created = server.prefect(
        "deployment", "run", FULL_NAME, "--param", f"settings={json.dumps(override)}", "--watch",
        timeout=RUN_TIMEOUT,
    )  # fmt: skip
    run_id = UUID(created.split("UUID:")[1].split()[0])
    with server.client() as client:
        run = client.read_flow_run(run_id)
    assert run.state.is_completed(), run.state
    assert run.parameters == {"settings": override}  # Prefect's one-level merge: not merged
    manifest = json.loads((served.output / "latest" / "manifest.json").read_text())
    assert manifest["flow_run_id"] == str(run_id)
    assert manifest["input"]["path"] == str(CUSTOMERS)
    assert (manifest["k"]["chosen"], manifest["k"]["rule"]) == (4, "fixed")
    stored = served.deployment.parameters["settings"]  # merged deeply: the other gates stay
    expected = {**stored, "k": 4, "gates": {**stored["gates"], "max_moved_share": None}}
    assert manifest["settings"] == expected
    assert str(run_id)[:8] not in " ".join(_entries(ROOT / "outputs" / "runs"))  # the defaults


@pytest.mark.flow
def test_as_of_on_a_deployment_of_a_single_file_is_refused_not_ignored(server, served):
    before = _entries(served.output), _entries(served.output / "runs")
    run = server.run_deployment(FULL_NAME, parameters={"settings": {"as_of": "2026-10-15"}})
    assert run.state.is_failed(), run.state
    assert (
        f"InputError: {CUSTOMERS}: as_of picks a dated snapshot from a folder of snapshots, "
        "but this is a single file"
    ) in run.state.message
    assert (_entries(served.output), _entries(served.output / "runs")) == before


@pytest.mark.flow
def test_run_settings_override_the_deployments_settings_field_by_field(server, served, tmp_path):
    """A run's `settings` (here a backfill on another snapshot folder and output) override the
    stored fields they name; the stored ones fill in the rest."""
    other = tmp_path / "other-output"
    settings = {
        "input": str(_snapshots(tmp_path / "snapshots")),
        "output_dir": str(other),
        "as_of": "2026-10-15",
    }
    run = server.run_deployment(FULL_NAME, parameters={"settings": settings})
    assert run.state.is_completed(), run.state
    assert run.parameters == {"settings": settings}  # what the run gave; the flow merges
    manifest = json.loads((other / "latest" / "manifest.json").read_text())
    assert manifest["flow_run_id"] == str(run.id)
    assert Path(manifest["input"]["path"]).name == "customers_2026-10-01.csv"
    assert manifest["settings"] == {**served.deployment.parameters["settings"], **settings}
    assert _artifact_keys(server, run.id) >= ARTIFACT_KEYS
    assert str(run.id)[:8] not in " ".join(_entries(served.output / "runs"))


@pytest.mark.flow
def test_backfill_keeps_the_deployments_settings(server, served, tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    folder = str(_snapshots(tmp_path / "snapshots"))
    later = datetime.now(UTC) + timedelta(hours=1)  # not picked up by the served runner
    with temporary_settings({PREFECT_API_URL: server.url}):
        with pytest.raises(ValueError, match="is a single file"):  # the stored input
            backfill("2026-10-15", timeout=0, scheduled_time=later)
        run = backfill("2026-10-15", timeout=0, scheduled_time=later, n_init=3, input=folder)
    try:
        stored = served.deployment.parameters["settings"]
        assert run.parameters == {
            "settings": {**stored, "input": folder, "as_of": "2026-10-15", "n_init": 3}
        }
        assert run.state.is_scheduled()
    finally:
        with server.client() as client:
            client.delete_flow_run(run.id)


@pytest.mark.flow
def test_segment_backfill_refuses_as_of_when_the_input_is_a_single_file(server, served):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    done = subprocess.run(
        [str(BIN / "segment"), "backfill", "--as-of", "2026-10-17"],
        env=server.env(), capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        "segment: error: as_of picks a dated snapshot from a folder of snapshots, but the input "
        f"of {FULL_NAME} is a single file ({CUSTOMERS}): serve it with --input on a snapshot "
        "folder"
    ]
    of_deployment = FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=[served.deployment.id])
    )
    with server.client() as client:
        runs = client.read_flow_runs(flow_run_filter=of_deployment)
    assert [r for r in runs if r.parameters["settings"].get("as_of") == "2026-10-17"] == []


@pytest.mark.flow
def test_prefect_yaml_deploys_onto_a_process_worker(server, tmp_path):
    """prefect.yaml as the README uses it: work pool, `prefect deploy`, CLI run, worker.

    The deployment is renamed in a copy so it does not take over the served one."""
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    spec["deployments"][0]["name"] = name = "nightly-from-prefect-yaml"
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(spec))
    pool = spec["deployments"][0]["work_pool"]["name"]

    server.prefect("work-pool", "create", pool, "--type", "process")
    server.prefect(
        "--no-prompt", "deploy", "--prefect-file", str(prefect_file), "--name", name,
        "--timezone", TIMEZONE,
    )  # fmt: skip
    with server.client() as client:
        deployment = client.read_deployment_by_name(f"customer-segmentation/{name}")
    assert deployment.work_pool_name == pool
    assert deployment.entrypoint == "flows/segmentation.py:segment_customers"
    assert deployment.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
    ]
    assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == [
        (DEFAULT_CRON, TIMEZONE)
    ]
    assert deployment.parameters["settings"]["input"] == str(CUSTOMERS)

    # The backfill command of the README, then a worker started outside the checkout.
    output = tmp_path / "worker-output"
    settings = {
        "input": str(_snapshots(tmp_path / "snapshots")),
        "output_dir": str(output),
        "as_of": "2026-10-15",
    }
    created = server.prefect(
        "deployment", "run", f"customer-segmentation/{name}",
        "--param", f"settings={json.dumps(settings)}",
    )  # fmt: skip
    run_id = UUID(created.split("UUID:")[1].split()[0])
    server.prefect(
        "worker", "start", "--pool", pool, "--run-once", "--install-policy", "never",
        cwd=tmp_path, timeout=RUN_TIMEOUT,
    )  # fmt: skip

    with server.client() as client:
        run = client.read_flow_run(run_id)
    assert run.state.is_completed(), run.state
    assert run.parameters == {"settings": settings}
    assert _artifact_keys(server, run.id) >= ARTIFACT_KEYS
    manifest = json.loads((output / "latest" / "manifest.json").read_text())
    assert Path(manifest["input"]["path"]).name == "customers_2026-10-01.csv"


def test_serving_without_a_server_says_how_to_start_one(monkeypatch, capsys):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with pytest.raises(RuntimeError, match=r"PREFECT_API_URL is not set.*make server"):
            serve_nightly(SegmentationSettings())
        assert main(["--input", str(CUSTOMERS)]) == 1
    assert "make server" in capsys.readouterr().err


def test_serve_rejects_an_unknown_timezone_or_cron(capsys):
    for bad in (["--timezone", "Mars/Olympus"], ["--cron", "every night"]):
        with pytest.raises(SystemExit) as exit_info:
            main(bad)
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown timezone 'Mars/Olympus'" in err and "Invalid cron string" in err


def test_prefect_yaml_names_the_deployment_and_its_flow():
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (deployment,) = spec["deployments"]
    assert deployment["name"] == DEPLOYMENT_NAME
    assert deployment["entrypoint"] == "flows/segmentation.py:segment_customers"
    assert deployment["work_pool"]["name"] == "segmentation-pool"
    (schedule,) = deployment["schedules"]
    assert schedule["cron"] == DEFAULT_CRON
    ZoneInfo(schedule["timezone"])
    # The build step records the checkout; the pull step and the paths use it.
    checkout = str(ROOT)
    assert spec["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ checkout.stdout }}"}}
    ]
    settings = json.loads(
        json.dumps(deployment["parameters"]["settings"]).replace("{{ checkout.stdout }}", checkout)
    )
    assert SegmentationSettings.model_validate(settings).input == CUSTOMERS

    flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
    assert flow.name == FULL_NAME.split("/")[0]


def test_the_deployments_description_says_the_schedules_time_zone():
    from flows.deployment import nightly_deployment

    deployment = nightly_deployment(SegmentationSettings(), timezone=TIMEZONE)
    assert f"cron '{DEFAULT_CRON}' in the {TIMEZONE} time zone" in deployment.description
    (declared,) = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    (schedule,) = declared["schedules"]
    assert (
        f"cron '{schedule['cron']}' in the {schedule['timezone']} time zone"
        in (declared["description"])
    )


# --- a run's partial settings merged over the deployment's (no server needed) ----------------


def _unreadable():
    raise ConnectionError("the server is gone")


def test_partial_run_settings_are_deep_merged_over_the_stored_ones():
    stored = SegmentationSettings(
        input=CUSTOMERS,
        output_dir=Path("/srv/segments"),
        columns={"annual_income": "Income", "age": "Years"},
        k_min=3,
    ).model_dump(mode="json")
    merged = merge_over_deployment({"k": 4, "columns": {"age": "AgeYears"}}, lambda: stored)
    assert (merged.input, merged.output_dir) == (CUSTOMERS, Path("/srv/segments"))
    assert (merged.k, merged.k_min) == (4, 3)
    assert merged.columns == {"annual_income": "Income", "age": "AgeYears"}
    # A field given as null is given: it replaces the stored value.
    assert merge_over_deployment({"k_min": None}, lambda: stored).k_min is None


def test_run_settings_given_in_full_need_no_stored_settings():
    full = SegmentationSettings(k=3, output_dir=Path("/srv/x")).model_dump(mode="json")
    assert merge_over_deployment(full, _unreadable) == SegmentationSettings.model_validate(full)


def test_partial_run_settings_are_refused_when_the_stored_ones_cannot_be_read():
    with pytest.raises(ValueError) as refused:
        merge_over_deployment({"as_of": "2026-10-15", "k": 4}, _unreadable)
    assert str(refused.value) == (
        "this run gives only some settings (as_of, k) and the deployment's stored settings "
        "could not be read (ConnectionError: the server is gone): refusing to run with the "
        "defaults for the others"
    )


def test_a_merge_that_does_not_validate_is_refused_naming_the_fields_given():
    stored = SegmentationSettings(k_max=3).model_dump(mode="json")
    with pytest.raises(ValueError, match=r"^this run's settings \(k_min\) merged over the "
                       r"deployment's are invalid: .*k_min=6 > k_max=3"):  # fmt: skip
        merge_over_deployment({"k_min": 6}, lambda: stored)


def test_outside_a_deployment_run_the_settings_are_used_as_given():
    settings = SegmentationSettings(k=3)
    assert settings_for_run(settings) is settings
    assert settings_for_run(None) == SegmentationSettings()
