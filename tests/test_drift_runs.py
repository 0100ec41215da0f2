"""Two nights of `segment sample-data` snapshots, the second with every income 30 % higher:
drift.parquet and moves.parquet with their exact columns, income the largest drift, said in
words in the manifest, report.html and both summaries, and --gate-max-psi stopping the night
(issue 24, items 1 and 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flows.segmentation import segment_customers
from segment.cli.main import format_summary
from segment.settings import SegmentationSettings
from tasks.gates import GateError
from tasks.reporting.artifacts import summary_markdown
from tasks.sample_data import generate_snapshots, write_snapshots
from tasks.store.run_files import latest_run

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

INCOME = "Annual Income (k$)"
DRIFT_COLUMNS = [
    "feature",
    "segment_id",
    "psi",
    "ks",
    "previous_mean",
    "mean",
    "customers",
    "previous_customers",
]
MOVES_COLUMNS = [
    "customer_id",
    "previous_segment_id",
    "previous_segment_name",
    "segment_id",
    "segment_name",
]


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Two dated snapshots; every parseable income of the second one raised by 30 %."""
    snapshots = generate_snapshots(2)
    folder = tmp_path_factory.mktemp("snapshots")
    _, second = write_snapshots(snapshots, folder)
    frame = pd.read_csv(second, dtype=str, keep_default_na=False)
    income = pd.to_numeric(frame[INCOME], errors="coerce")
    raised = (income * 1.3).round().astype("Int64").astype(str)
    frame[INCOME] = frame[INCOME].where(income.isna(), raised)
    frame.to_csv(second, index=False)
    return snapshots, folder


def _run(folder, day, output, **gates) -> dict:
    """One night; the moved-share gate off (a 30 % income shift moves most customers)."""
    gates = {"max_moved_share": None, **gates}
    return segment_customers(
        SegmentationSettings(input=folder, as_of=day, output_dir=output, gates=gates)
    )


@pytest.fixture(scope="module")
def shifted(nights, tmp_path_factory):
    snapshots, folder = nights
    output = tmp_path_factory.mktemp("outputs")
    first = _run(folder, snapshots[0].day, output)
    second = _run(folder, snapshots[1].day, output)
    return first, second


def test_a_first_run_writes_no_drift_and_no_moves(shifted):
    first, _ = shifted
    folder = Path(first["output_folder"])
    assert not (folder / "drift.parquet").exists() and not (folder / "moves.parquet").exists()
    assert "drift" not in first
    assert "Drift" not in format_summary(first)


def test_the_shifted_income_is_the_largest_drift_in_the_table(shifted):
    first, second = shifted
    folder = Path(second["output_folder"])
    drift = pd.read_parquet(folder / "drift.parquet")
    assert list(drift.columns) == DRIFT_COLUMNS
    overall = drift[drift["segment_id"].isna()].set_index("feature")
    assert set(overall.index) == {"annual_income", "spending_score"}
    assert overall["psi"].idxmax() == "annual_income"
    assert overall.loc["annual_income", "psi"] >= 0.25  # a large shift
    assert overall.loc["spending_score", "psi"] < 0.1  # unchanged
    ratio = overall.loc["annual_income", "mean"] / overall.loc["annual_income", "previous_mean"]
    assert ratio == pytest.approx(1.3 * 1.02, rel=0.05)  # 30 % up (a few customers joined)
    within = drift[drift["segment_id"].notna()]
    ids = {s["id"] for s in first["segments"]} | {s["id"] for s in second["segments"]}
    assert set(within["segment_id"]) == ids  # every segment of either run
    files = json.loads((folder / "manifest.json").read_text())["files"]
    assert "drift.parquet" in files and "moves.parquet" in files  # checksummed


def test_who_moved_joined_and_left_matches_the_changes(shifted, nights):
    first, second = shifted
    folder = Path(second["output_folder"])
    moves = pd.read_parquet(folder / "moves.parquet")
    assert list(moves.columns) == MOVES_COLUMNS
    had, has = moves["previous_segment_id"].notna(), moves["segment_id"].notna()
    changes = second["changes"]
    assert int((had & has).sum()) == changes["customers_moved"]
    assert int((~had & has).sum()) == changes["customers_joined"] > 0
    assert int((had & ~has).sum()) == changes["customers_left"] > 0
    before = pd.read_parquet(f"{first['output_folder']}/segments.parquet")
    now = pd.read_parquet(folder / "segments.parquet")
    both = before.merge(now, on="customer_id", suffixes=("_before", ""))
    moved = both.loc[both["segment_id_before"] != both["segment_id"], "customer_id"]
    assert set(moves.loc[had & has, "customer_id"]) == set(moved)


def test_the_drift_is_said_in_words_in_the_manifest_summaries_and_report(shifted):
    _, second = shifted
    sentences = second["drift"]["sentences"]
    assert sentences and sentences[0].startswith("Annual income")
    assert "shifted up 3" in sentences[0] and "overall" in sentences[0]  # about 32 %
    assert f"Drift: {sentences[0]}" in format_summary(second)
    markdown = summary_markdown(
        second, pd.read_parquet(f"{second['output_folder']}/profiles.parquet")
    )
    assert "**Drift since the previous run**" in markdown and "| Annual income" in markdown
    report = (Path(second["output_folder"]) / "report.html").read_text()
    assert "Drift since the previous run" in report and "Annual income" in report


def test_the_psi_gate_stops_the_shifted_night_naming_income(nights, tmp_path):
    snapshots, folder = nights
    first = _run(folder, snapshots[0].day, tmp_path)
    with pytest.raises(GateError, match=r"max_psi: annual_income has PSI \d"):
        _run(folder, snapshots[1].day, tmp_path, max_psi=0.25)
    assert latest_run(tmp_path).name == first["run_id"]  # the shifted night is not published
