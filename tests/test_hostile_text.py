"""Hostile text in headers and values through `segment run` and `segment assign` (issue 21).

One table holds every payload at once: feature headers with HTML, a link, a spreadsheet formula,
Markdown and TeX punctuation (`_ ^ \\ { } < > " ' = + - @`), a tab, a line break, an emoji and
a very long string; a profile column and customer ids with the same kinds of values. One
`segment run` against the live server, then `segment assign` to CSV on new customers (one bad
row) and a few refused inputs: every command exits 0, 2 or 3 (never 1, an internal error), a
refusal is one line, and every output shows the text as it is and safely: the Parquet tables hold
it unchanged, report.html and the summary artifact in both Prefect UIs (headless Chromium) show
it as text (no link, no markup), the CSVs escape what a spreadsheet would run as a formula, the
PNGs are written. `$` in headers (matplotlib reads text between two `$` as math) has its own
test below.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import assert_complete_run, browse, segment_command

from live_server import Server

pytestmark = pytest.mark.flow

LONG = "long " + "x" * 400
FEATURES = [
    '<a href="http://evil.example/">click me</a>',
    '=HYPERLINK("http://h","inc")',
    "@SUM(1) q_^\\{}'\"+-",
    "tab\there\nline 😀",
    LONG,
]
PROFILE = "kind <b>seg</b> [x](http://evil.example/)"
KINDS = ["<b>bold</b>", "[x](http://evil.example/)", "emoji 😀 | pipe \\ {}"]
IDS = ['=cmd|" /C calc"!A0', "@id<script>alert(1)</script>", "+1", "-2", "tab\tid\nline"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CLI = [sys.executable, "-m", "segment.cli.main"]


def hostile_table(n: int = 300, seed: int = 3) -> pd.DataFrame:
    """Three planted groups on the hostile feature headers, the hostile ids first."""
    rng = np.random.default_rng(seed)
    group = np.arange(n) % 3
    frame = pd.DataFrame({"customer_id": IDS + [f"c{i}" for i in range(len(IDS), n)]})
    for j, name in enumerate(FEATURES):
        frame[name] = rng.normal(10 + 20 * (group == j % 3), 2, n).round(1)
    frame[PROFILE] = [KINDS[g] for g in group]
    return frame


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def one_line(text: str) -> str:
    return " ".join(text.split())


# What the payloads would put on a page if they were not escaped (in a page's HTML, text shows
# `<` as `&lt;`: a raw `<` starts an element).
MARKUP = ['<a href="http', "<b>bold</b>", "<b>seg</b>", "<script", "<img src=x"]


def assert_shows_as_text(dom: str, texts: list[str]) -> None:
    """Each of ``texts`` is on the page as text; no link or markup from the data."""
    assert not [m for m in MARKUP if m in dom], "a link or markup from the data"
    shown = one_line(html.unescape(re.sub(r"<[^>]*>", "", dom)))
    for text in texts:
        assert one_line(text) in shown, text[:60]


@pytest.fixture(scope="module")
def hostile_run(live_server: Server, tmp_path_factory) -> dict:
    """`segment run` on the hostile table against the live server: the process and its manifest."""
    folder = tmp_path_factory.mktemp("hostile")
    source = folder / "customers.csv"
    hostile_table().to_csv(source, index=False)
    output = folder / "outputs"
    done = run(segment_command(source, output, "--quiet", "--profile", PROFILE), live_server.env())
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = assert_complete_run((output / "latest").resolve())  # PNGs among its files
    return {"done": done, "folder": folder, "output": output, "manifest": manifest}


def test_run_keeps_hostile_headers_and_values_as_they_are_in_parquet_and_report(hostile_run):
    latest = hostile_run["output"] / "latest"
    segments = pd.read_parquet(latest / "segments.parquet")
    assert set(FEATURES + [PROFILE]) <= set(segments.columns)
    assert segments["customer_id"].head(len(IDS)).tolist() == IDS
    assert set(segments[PROFILE]) == set(KINDS)
    for png in ("elbow.png", "segments.png", "profiles.png"):
        assert (latest / png).stat().st_size > 1000
    report = (latest / "report.html").read_text(encoding="utf-8")
    names = [s["name"] for s in hostile_run["manifest"]["segments"]]
    assert_shows_as_text(report, FEATURES[:3] + names)


def rendered_artifact(
    server: Server, run: dict, base: str, ui: str, between: tuple[str, str], user_data: Path
) -> str:
    """The part of the run's artifact ``base`` page in ``ui`` ("" classic, "/v2") from the first
    to the next of ``between``, after checking it holds no link or markup."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    only_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run["flow_run_id"]]))
    with server.client() as client:
        artifacts = client.read_artifacts(artifact_filter=only_run)
    artifact = next(a.id for a in artifacts if a.key.startswith(f"{base}-adhoc-"))
    url = f"{server.url.removesuffix('/api')}{ui}/artifacts/artifact/{artifact}"
    dom = browse(url, user_data)
    start = dom.find(between[0])
    assert start >= 0, f"{base} did not render"
    part = dom[start : dom.find(between[1], start)]
    assert not re.search(r"<(a|b|img)\b", part), f"a link or markup in {base}"
    return part


@pytest.mark.parametrize("ui", ["", "/v2"], ids=["classic-ui", "v2-ui"])
def test_summary_artifact_shows_hostile_names_and_labels_as_text(
    live_server, hostile_run, tmp_path, ui
):
    manifest = hostile_run["manifest"]
    between = ("Customer segmentation", "Elbow: inertia")  # the text, before the plots
    summary = rendered_artifact(
        live_server, manifest, "segmentation-summary", ui, between, tmp_path / "chromium"
    )
    names = [s["name"] for s in manifest["segments"]]
    assert_shows_as_text(summary, [*names, str(hostile_run["folder"] / "customers.csv")])


def test_profiles_table_shows_hostile_names_as_text_in_the_classic_ui(
    live_server, hostile_run, tmp_path
):
    """The classic UI (Prefect's default) renders each table cell as Markdown; the /v2 UI shows
    cells as plain text, so there a name with punctuation shows its escapes (not checked)."""
    manifest = hostile_run["manifest"]
    table = rendered_artifact(
        live_server, manifest, "segment-profiles", "", ("<table", "</table>"), tmp_path / "chr"
    )
    assert_shows_as_text(table, [s["name"] for s in manifest["segments"]])


def test_assign_writes_hostile_headers_and_values_literally_and_spreadsheet_safe(
    hostile_run, tmp_path
):
    new = hostile_table(n=12, seed=4).astype("str")
    new.loc[5, FEATURES[0]] = "<b>not a number</b>"  # one quarantined row
    source = tmp_path / "new.csv"
    new.to_csv(source, index=False)
    out = tmp_path / "assigned.csv"
    done = run(
        [*CLI, "assign", "--model", str(hostile_run["output"]), "--input", str(source),
         "--output", str(out)],
        without_server(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for path, rows in ((out, 11), (tmp_path / "assigned.quarantine.csv", 1)):
        with path.open(newline="", encoding="utf-8") as handle:
            header, *cells = list(csv.reader(handle))
        assert len(cells) == rows
        every = header + [cell for row in cells for cell in row]
        assert not [c for c in every if c.startswith(FORMULA_STARTS)], path
        shown = [c[1:] if c[:2] in {f"'{s}" for s in FORMULA_STARTS} else c for c in header]
        assert set(FEATURES + [PROFILE]) <= set(shown), header
    with out.open(newline="", encoding="utf-8") as handle:
        ids = [row["customer_id"] for row in csv.DictReader(handle)]
    assert ids[:5] == [f"'{i}" if i.startswith(FORMULA_STARTS) else i for i in IDS]


@pytest.mark.parametrize(
    "option",
    [["--features", FEATURES[0] + "x"], ["--profile", "nosuch\n<b>x</b>"]],
    ids=["unknown-hostile-feature", "unknown-profile-with-newline"],
)
def test_run_refuses_an_unknown_hostile_column_in_one_line(
    live_server, hostile_run, tmp_path, option
):
    source = hostile_run["folder"] / "customers.csv"
    done = run(segment_command(source, tmp_path / "out", *option), live_server.env())
    assert_one_line_refusal(done)


def test_assign_refuses_a_file_without_a_hostile_header_in_one_line(hostile_run, tmp_path):
    hostile_table(n=12).drop(columns=[FEATURES[3]]).to_csv(tmp_path / "new.csv", index=False)
    done = run(
        [*CLI, "assign", "--model", str(hostile_run["output"]), "--input",
         str(tmp_path / "new.csv"), "--output", str(tmp_path / "a.csv")],
        without_server(),
    )  # fmt: skip
    assert_one_line_refusal(done)


def assert_one_line_refusal(done: subprocess.CompletedProcess) -> None:
    assert done.returncode in (2, 3), done.stderr[-3000:]
    message = done.stderr.strip()
    assert message and "\n" not in message and "Traceback" not in message, message


def without_server() -> dict[str, str]:
    """`segment assign` runs without Prefect: no server address."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}


def test_run_with_dollar_signs_in_headers_draws_them_literally(live_server, tmp_path):
    frame = hostile_table(n=120).drop(columns=FEATURES[2:])
    frame = frame.rename(columns={FEATURES[0]: "income_$", FEATURES[1]: "spend_$ {x}^2"})
    source = tmp_path / "dollars.csv"
    frame.to_csv(source, index=False)
    done = run(segment_command(source, tmp_path / "out", "--quiet"), live_server.env())
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / "latest" / "manifest.json").read_text())
    assert any("income_$" in s["name"] for s in manifest["segments"])
