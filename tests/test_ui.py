"""The run as a marketer sees it: headless Chromium opens the flow run in the served Prefect UI.

Two nights are segmented by `segment run` against a real server (conftest's `live_server`);
the browser loads the second night's run page and its summary artifact, and the test checks
what the page shows. A screenshot of each page is kept in outputs/ui-screenshots/.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import browse

from live_server import ROOT, Server
from tasks.sample_data import generate_snapshots, write_snapshots

pytestmark = pytest.mark.flow

SCREENSHOTS = ROOT / "outputs" / "ui-screenshots"


@pytest.fixture(scope="module")
def two_nights(live_server: Server, tmp_path_factory) -> dict:
    """The manifest of the second of two nightly `segment run`s against the live server."""
    snapshots = tmp_path_factory.mktemp("snapshots")
    days = generate_snapshots(2, n=1000)
    write_snapshots(days, snapshots)
    output = tmp_path_factory.mktemp("outputs")
    segment = Path(sys.executable).with_name("segment")
    for day in days:
        done = subprocess.run(
            [str(segment), "run", "--quiet", "--input", str(snapshots), "--as-of", str(day.day),
             "--output", str(output)],
            env=live_server.env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    return json.loads((output / "latest" / "manifest.json").read_text())


def _ui(server: Server) -> str:
    return server.url.removesuffix("/api")


def _summary_artifact_id(server: Server, flow_run_id: str) -> str:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    only_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    with server.client() as client:
        artifacts = client.read_artifacts(artifact_filter=only_run)
    return str(next(a.id for a in artifacts if a.key.startswith("segmentation-summary-adhoc-")))


def test_flow_run_page_lists_the_runs_artifacts(live_server, two_nights, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screenshot = SCREENSHOTS / "flow-run.png"
    url = f"{_ui(live_server)}/v2/runs/flow-run/{two_nights['flow_run_id']}?tab=Artifacts"
    dom = browse(url, tmp_path / "chromium", screenshot=screenshot)
    assert "Completed" in dom
    for key in ("segmentation-summary", "segment-profiles", "segment-transitions"):
        assert key in dom, f"artifact {key} not on the run page"
    assert "elbow-sweep-progress" in dom
    assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank one


def test_summary_artifact_shows_the_story_with_its_plots_inline(live_server, two_nights, tmp_path):
    artifact = _summary_artifact_id(live_server, two_nights["flow_run_id"])
    screenshot = SCREENSHOTS / "summary-artifact.png"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    url = f"{_ui(live_server)}/v2/artifacts/artifact/{artifact}"
    dom = browse(url, tmp_path / "chromium", screenshot=screenshot)
    assert two_nights["run_id"] in dom
    for segment in two_nights["segments"]:
        assert segment["name"] in dom
    assert "Since the previous run" in dom
    images = re.findall(r'<img[^>]+src="data:image/png;base64,', dom)
    assert len(images) == 3  # elbow, segments, transitions: rendered with no file server
