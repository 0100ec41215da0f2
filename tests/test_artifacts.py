"""The run summary and tables shown in the Prefect UI (tasks/reporting/artifacts.py)."""

from __future__ import annotations

import base64
import html
import json
import re

import numpy as np
import pandas as pd
import pytest
from helpers import MALL_PROFILES

from tasks.profile import profile_segments
from tasks.reporting.artifacts import (
    artifact_key,
    assignment_markdown,
    database_line,
    gate_failure_markdown,
    profiles_records,
    replace_database_line,
    summary_markdown,
    transitions_records,
)

# --- the summary and what changed since the previous run -----------------------------------------


def profiles() -> pd.DataFrame:
    customers = pd.DataFrame(
        {
            "customer_id": pd.Series(["1", "2", "3", "4"], dtype="str"),
            "gender": pd.Series(["Female", "Male", "Female", "Male"], dtype="str"),
            "age": [20.0, 30.0, 40.0, 50.0],
            "annual_income": [20.0, 22.0, 90.0, 94.0],
            "spending_score": [80.0, 82.0, 10.0, 14.0],
        }
    )
    names = {1: "Low income, high spending", 4: "High income, low spending"}
    return MALL_PROFILES.validate(profile_segments(customers, np.array([1, 1, 4, 4]), names))


def manifest(changes: dict | None) -> dict:
    return {
        "run_id": "20250102T000000Z-second00",
        "input": {"path": "data/customers.csv"},
        "k": {"chosen": 2, "rule": "previous-k", "reason": "kept", "knee": 2},
        "rows": {
            "rows_read": 1100,
            "rows_kept": 1100,
            "rows_quarantined": 0,
            "duplicates_dropped": 0,
        },
        "output_folder": "outputs/runs/20250102T000000Z-second00",
        "changes": changes,
    }


CHANGES = {
    "previous_run_id": "20250101T000000Z-first000",
    "customers_in_both": 1000,
    "customers_joined": 100,
    "customers_left": 12,
    "customers_moved": 37,
    "moved_share": 0.037,
    "adjusted_rand_index": 0.912,
    "size_change": {1: 5, 2: -400, 3: -12, 4: 407},
    "centroid_shift": {1: 0.0123},
    "new_segment_ids": [4],
    "retired_segment_ids": [2, 3],
}


@pytest.mark.parametrize("via_json", [False, True], ids=["dict", "manifest-json"])
def test_summary_lists_what_changed_since_the_previous_run(via_json):
    # the manifest's JSON turns integer keys into strings; the summary reads both
    changes = json.loads(json.dumps(CHANGES)) if via_json else CHANGES
    text = summary_markdown(manifest(changes), profiles())
    assert "(20250101T000000Z-first000)" in text
    assert "37 of 1,000 returning customers changed segment (3.7%)" in text
    assert "adjusted Rand index 0.912" in text
    assert "100 joined, 12 left" in text
    assert "New segments: 4." in text
    assert "Retired segments: 2, 3." in text
    assert "| 1 | +5 | 0.012 |" in text
    assert "| 2 | -400 | retired |" in text
    assert "| 3 | -12 | retired |" in text
    assert "| 4 | +407 | new |" in text
    assert "first run" not in text


def test_summary_of_a_first_run_says_so():
    text = summary_markdown(manifest(None), profiles())
    assert "this is the first run" in text
    assert "returning customers" not in text
    assert "| size change |" not in text


def test_summary_without_returning_customers_shows_no_rand_index():
    changes = {
        **CHANGES,
        "customers_in_both": 0,
        "customers_moved": 0,
        "moved_share": 0.0,
        "adjusted_rand_index": None,
    }
    assert "adjusted Rand index n/a" in summary_markdown(manifest(changes), profiles())


def test_summary_names_run_k_rule_segments_and_row_accounting():
    rows = {"rows_read": 1234, "rows_kept": 1100, "rows_quarantined": 101, "duplicates_dropped": 33}
    text = summary_markdown({**manifest(None), "rows": rows}, profiles())
    assert "20250102T000000Z-second00" in text
    assert "**2 segments**" in text
    assert "rule: previous-k" in text
    assert "1,234 read = 1,100 segmented + 101 quarantined + 33 exact duplicates dropped" in text
    # segment rows carry size, share and the income / score means
    assert "| 1 | Low income, high spending | 2 | 50.0% | 21.0 | 81.0 |" in text
    assert "| 4 | High income, low spending | 2 | 50.0% | 92.0 | 12.0 |" in text


def test_summary_names_the_runs_report_html():
    text = summary_markdown(manifest(None), profiles())
    assert "**Report**: outputs/runs/20250102T000000Z-second00/report.html (open" in text


def test_summary_warns_when_most_rows_read_were_duplicates():
    rows = {
        "rows_read": 57600,
        "rows_kept": 200,
        "rows_quarantined": 0,
        "duplicates_dropped": 57400,
    }
    text = summary_markdown({**manifest(None), "rows": rows}, profiles())
    assert (
        "**Warning: 57,400 of the 57,600 rows read (99.7%) were exact duplicates and were "
        "dropped; check how the file was produced**"
    ) in text
    half = {"rows_read": 100, "rows_kept": 50, "rows_quarantined": 0, "duplicates_dropped": 50}
    assert "Warning" not in summary_markdown({**manifest(None), "rows": half}, profiles())


def test_summary_embeds_the_key_plots_as_data_uris_in_a_fixed_order():
    images = {"transitions.png": b"T", "elbow.png": b"E", "segments.png": b"S", "eda.png": b"X"}
    text = summary_markdown(manifest(None), profiles(), images)
    uris = [f"data:image/png;base64,{base64.b64encode(b).decode()}" for b in (b"E", b"S", b"T")]
    positions = [text.index(f"]({uri})") for uri in uris]
    assert positions == sorted(positions)  # elbow, segments, transitions
    assert base64.b64encode(b"X").decode() not in text  # only the three key plots


def test_gate_failure_summary_lists_every_breach():
    text = gate_failure_markdown("run-1", ["silhouette_floor: 0.1 is below 0.2", "max_moved: x"])
    assert "run-1 failed a quality gate" in text
    assert "- silhouette_floor: 0.1 is below 0.2" in text and "- max_moved: x" in text
    assert "latest` still names the previous good run" in text


def test_transitions_records_name_the_current_segment():
    table = pd.DataFrame({"previous_segment_id": [1, 2], "segment_id": [1, 3], "customers": [5, 2]})
    records = transitions_records(table, {1: "One", 3: "Three"})
    assert records == [
        {"previous_segment_id": 1, "segment_id": 1, "segment_name": "One", "customers": 5},
        {"previous_segment_id": 2, "segment_id": 3, "segment_name": "Three", "customers": 2},
    ]


def test_profiles_records_show_shares_as_percentages_and_numbers_rounded():
    table = profiles().assign(
        share=[0.123456, 0.876544],
        age_mean=[33.333333, 41.0],
        annual_income_median=[0.0123456, float("nan")],
    )
    first, second = profiles_records(table)
    assert first["share"] == "12.3%" and second["share"] == "87.7%"
    assert first["gender_Female_share"] == "50.0%"
    assert first["age_mean"] == 33.3 and second["age_mean"] == 41.0
    assert first["annual_income_median"] == 0.0123 and second["annual_income_median"] is None
    assert first["segment_id"] == 1 and first["size"] == 2
    assert first["segment_name"] == "Low income, high spending"
    json.dumps([first, second], allow_nan=False)  # plain JSON: no NaN for the UI to show


def test_artifact_keys_of_adhoc_runs_follow_their_output_folder(tmp_path):
    nightly = artifact_key("segmentation-summary", "/srv/outputs", deployment=True)
    assert nightly == "segmentation-summary"
    here = artifact_key("segmentation-summary", tmp_path / "My Outputs (2026)", deployment=False)
    assert re.fullmatch(r"segmentation-summary-adhoc-my-outputs-2026-[0-9a-f]{8}", here)
    assert here == artifact_key(
        "segmentation-summary", tmp_path / "My Outputs (2026)", deployment=False
    )
    # the same folder name elsewhere, or the deployment's own folder run ad hoc: another key
    assert here != artifact_key(
        "segmentation-summary", tmp_path / "b" / "My Outputs (2026)", deployment=False
    )
    assert artifact_key("segment-profiles", "/srv/outputs", deployment=False) != "segment-profiles"
    odd = artifact_key("segment-profiles", "/data/Ünïcode___", deployment=False)
    assert re.fullmatch(r"[a-z0-9-]+", odd) and "--" not in odd


def test_assignment_summary_lists_every_segment_and_accounts_for_every_row():
    summary = {
        "rows_read": 1_205, "rows_kept": 1_190, "rows_quarantined": 10, "duplicates_dropped": 5,
        "outliers": 3, "segments": {1: 1_000, 3: 190}, "model": "outputs/latest/model.json",
        "output": "a.parquet", "quarantine": "a.quarantine.parquet",
    }  # fmt: skip
    markdown = assignment_markdown(summary, {1: "Savers", 2: "Spenders", 3: "Careful"})
    assert "| 1 | Savers | 1,000 |\n| 2 | Spenders | 0 |\n| 3 | Careful | 190 |" in markdown
    assert "1,205 read = 1,190 assigned + 10 quarantined + 5 duplicates; outliers: 3" in markdown
    assert "Output: a.parquet; quarantine: a.quarantine.parquet" in markdown


# --- text from data in Markdown: shown as itself in the Prefect UI --------------------------------

HOSTILE = [
    '<a href="http://evil.example/">click me</a>',
    "[x](http://evil.example/)",
    "<b>bold</b> <script>alert(1)</script> <img src=x onerror=alert(1)>",
    "www.evil.example mail@evil.example *em* _u_ `tick` ~~del~~ | pipe \\ # $ ^ { } = + - @",
    "line\nbreak\ttab 😀 " + "long" * 200,
]


def shown(markdown: str) -> str:
    """The text a Markdown renderer shows for escaped text: comments dropped, backslash escapes
    and HTML entities resolved, whitespace runs as one space (as a browser lays them out)."""
    text = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown.replace("<!---->", ""))
    return " ".join(html.unescape(text).split())


def assert_inert(markdown: str) -> None:
    """No HTML tag, link, autolinked URL or e-mail address, emphasis or code mark left active."""
    assert not re.search(r"<(?!!---->)", markdown), "an HTML tag"
    assert not re.search(r"(?<!\\)[\[\]`*_~]", markdown.replace("**", "")), "Markdown syntax"
    assert not re.search(r"https?:|www\.|\w@", markdown, re.IGNORECASE), "a URL or address"


def test_summary_shows_names_labels_ids_and_paths_from_data_as_text():
    table = profiles()
    table["segment_name"] = HOSTILE[:2]
    data = {**manifest(CHANGES), "input": {"path": f"/in/{HOSTILE[3]}.csv"}}
    data["output_folder"] = f"/out/{HOSTILE[1]}"
    data["changes"] = {**CHANGES, "previous_run_id": HOSTILE[2]}
    labels = {"annual_income": HOSTILE[4], "spending_score": HOSTILE[0]}
    text = summary_markdown(data, table, means=labels)
    table_lines = [line for line in text.splitlines() if line.startswith("|")]
    header, *rows = table_lines[:4]
    pipes = header.count("|")
    assert all(re.sub(r"\\\|", "", row).count("|") == pipes for row in rows), rows
    for line in text.splitlines():
        if HOSTILE[0] in shown(line) or "evil" in line or "bold" in line:
            assert_inert(line.replace("**", ""))
    for value in [*HOSTILE, f"/in/{HOSTILE[3]}.csv"]:
        assert " ".join(value.split()) in shown(text), value


def test_assignment_and_gate_summaries_show_names_and_paths_from_data_as_text():
    summary = {
        "rows_read": 3, "rows_kept": 3, "rows_quarantined": 0, "duplicates_dropped": 0,
        "outliers": 0, "segments": {1: 2, 2: 1}, "model": f"/m/{HOSTILE[1]}/model.json",
        "output": f"/o/{HOSTILE[3]}.csv", "quarantine": f"/o/{HOSTILE[0]}.csv",
    }  # fmt: skip
    markdown = assignment_markdown(summary, {1: HOSTILE[2], 2: HOSTILE[4]})
    gate = gate_failure_markdown(HOSTILE[0], ["min_segment_share: 1% below 2%"])
    assert_inert("\n".join(line for line in markdown.splitlines() if "| ---" not in line))
    assert_inert(gate.splitlines()[0])
    rows = [line for line in markdown.splitlines() if line.startswith("| 1 ") or line[:4] == "| 2 "]
    assert [re.sub(r"\\\|", "", row).count("|") for row in rows] == [4, 4]
    for value in [HOSTILE[2], HOSTILE[4], f"/m/{HOSTILE[1]}/model.json", f"/o/{HOSTILE[0]}.csv"]:
        assert " ".join(value.split()) in shown(markdown), value
    assert f"{' '.join(HOSTILE[0].split())} failed a quality gate" in shown(gate)


def test_table_artifact_cells_with_names_from_data_are_escaped_for_the_classic_ui():
    """The classic UI renders each table cell as Markdown: a name is escaped there too."""
    table = profiles()
    table["segment_name"] = HOSTILE[:2]
    records = profiles_records(table)
    moves = pd.DataFrame({"previous_segment_id": [1], "segment_id": [4], "customers": [5]})
    (transition,) = transitions_records(moves, {4: HOSTILE[0]})
    for record, name in (
        (records[0], HOSTILE[0]),
        (records[1], HOSTILE[1]),
        (transition, HOSTILE[0]),
    ):
        assert_inert(record["segment_name"])
        assert shown(record["segment_name"]) == name


def test_summary_shows_each_segments_stability_in_words():
    stable = profiles().assign(stability=[0.91, 0.62])
    text = summary_markdown(manifest(None), stable)
    assert "| 1 | Low income, high spending | 2 | 50.0% | 21.0 | 81.0 | 0.91 stable |" in text
    assert "| 4 | High income, low spending | 2 | 50.0% | 92.0 | 12.0 | 0.62 doubtful |" in text
    assert "stable at 0.85 or more, fairly stable at 0.75 or more, doubtful below" in text


# --- --publish-db: the summary's database line ---------------------------------------------------


def test_a_run_publishing_to_a_database_says_so_and_then_what_it_wrote():
    url = "postgresql+psycopg://crm:***@db.example/crm"
    pending = summary_markdown(manifest(None), profiles(), database=database_line(url))
    assert "**Database** postgresql" in pending and "writing the membership history" in pending
    assert pending.index("**Database**") < pending.index("**Files**")
    assert "**Database**" not in summary_markdown(manifest(None), profiles())
    written = "customer_segments: 2,814 kept, 149 opened, 127 closed; segment_runs +1"
    done = replace_database_line(pending, url, written)
    assert done == pending.replace(database_line(url), database_line(url, written))
    (line,) = [line for line in done.splitlines() if line.startswith("**Database**")]
    shown = html.unescape(re.sub(r"<!---->|\\", "", line))  # what the UI shows
    assert shown == f"**Database** {url}: {written}"
    assert "writing the membership history" not in done
    with pytest.raises(ValueError, match="no pending database line"):
        replace_database_line(done, url, "unchanged (already published)")
