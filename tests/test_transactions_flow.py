"""Order lines end to end (`segment run --transactions`): the UCI Online Retail sample, and
generated order lines with planted behaviour groups (Parquet), through the whole flow."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from planted_orders import order_lines, write_order_lines
from sklearn.metrics import adjusted_rand_score

from flows.segmentation import segment_customers
from segment.cli.main import format_summary
from segment.settings import SegmentationSettings
from tasks.store.run_files import latest_run

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

DERIVED = [
    "customer_id",
    "first_purchase",
    "last_purchase",
    "recency_days",
    "frequency",
    "monetary",
]


def run(tmp_path, source, **settings):
    output = tmp_path / "outputs"
    manifest = segment_customers(
        SegmentationSettings(input=source, output_dir=output, transactions=True, **settings)
    )
    folder = latest_run(output)
    assert folder is not None and folder.name == manifest["run_id"]
    return manifest, folder


def test_online_retail_sample_gives_named_segments_scores_and_exact_accounting(
    shared_data, tmp_path
):
    manifest, folder = run(tmp_path, shared_data / "online_retail_sample.csv", profile=["Country"])
    lines = manifest["transactions"]["lines"]
    assert lines["lines_read"] == 20_000 and lines["duplicates_dropped"] == 7
    assert lines["lines_read"] == (
        lines["lines_used"]
        + lines["lines_not_purchases"]
        + lines["lines_quarantined"]
        + lines["duplicates_dropped"]
    )
    assert lines["lines_without_customer_id"] == 5_078
    assert manifest["transactions"]["customers"]["customers"] == 3_017
    assert manifest["transactions"]["snapshot_date"] == "2011-12-10"

    customers = pd.read_parquet(folder / "customers.parquet")
    assert list(customers.columns[:6]) == DERIVED
    assert pd.api.types.is_string_dtype(customers["customer_id"]) and len(customers) == 3_017
    segments = pd.read_parquet(folder / "segments.parquet")
    assert set(segments["customer_id"]) == set(customers["customer_id"])
    for score in ("r_score", "f_score", "m_score"):
        assert set(segments[score].unique()) <= {1, 2, 3, 4, 5}
    assert sorted(segments["r_score"].unique()) == [1, 2, 3, 4, 5]
    assert sorted(segments["f_score"].unique()) == [1, 3, 4, 5]  # 47 % buy once: all F = 1
    assert segments["rfm_segment"].nunique() == 10
    names = set(segments["segment_name"].astype(str))
    assert any(name.startswith(("Recent", "Lapsed", "Fairly recent")) for name in names)
    assert any("spend" in name for name in names)
    without = pd.read_parquet(folder / "customers_without_purchases.parquet")
    assert len(without) == manifest["transactions"]["customers"]["customers_without_purchases"] > 0
    quarantine = pd.read_parquet(folder / "quarantine_lines.parquet")
    assert len(quarantine) == lines["lines_quarantined"]
    raw = pd.read_parquet(folder / "raw.parquet")  # a text file is kept as read
    assert len(raw) == 20_000 and "InvoiceNo" in raw.columns

    summary = format_summary(json.loads((folder / "manifest.json").read_text()))
    assert "Lines: 20,000 read = " in summary
    assert "5,078 of the 20,000 lines (25.4%) had no customer id" in summary


def test_planted_behaviour_groups_are_found_from_parquet_order_lines(tmp_path):
    orders = order_lines(2000, seed=7)
    source = write_order_lines(orders, tmp_path / "orders.parquet")
    manifest, folder = run(tmp_path, source)
    # a Parquet input is not copied: the manifest names it with its size and sha256
    assert not (folder / "raw.parquet").exists()
    assert manifest["input"]["sha256"] and manifest["input"]["bytes"] == source.stat().st_size
    segments = pd.read_parquet(folder / "segments.parquet")
    truth = orders.groups.loc[segments["customer_id"]].to_numpy()
    assert adjusted_rand_score(truth, segments["segment_id"]) >= 0.9
    assert manifest["transactions"]["snapshot_date"] == orders.snapshot.isoformat()
    names = set(segments["segment_name"].astype(str))
    assert "Recent, frequent, high spend" in names and "Lapsed, infrequent, low spend" in names


def test_a_week_of_nightly_runs_on_a_growing_order_file_keeps_segment_ids(tmp_path):
    # One growing file, run each night with --as-of: lines after the night are not yet known.
    orders = order_lines(1000, seed=11, dirt=False)
    source = write_order_lines(orders, tmp_path / "orders.csv")
    dates = pd.to_datetime(orders.lines["InvoiceDate"]).dt.normalize()
    previous = None
    kept = []
    for night in range(6, -1, -1):  # 7 nights, the last one is the day after the latest line
        as_of = orders.snapshot - pd.Timedelta(days=night).to_pytimedelta()
        manifest, folder = run(tmp_path, source, as_of=as_of, run_id=f"night-{as_of}")
        assert manifest["transactions"]["snapshot_date"] == as_of.isoformat()
        segments = pd.read_parquet(folder / "segments.parquet").set_index("customer_id")
        if previous is not None:
            day_before = as_of - pd.Timedelta(days=1).to_pytimedelta()
            new_lines = orders.lines.loc[dates == pd.Timestamp(day_before), "CustomerID"]
            unchanged = previous.index.intersection(segments.index).difference(new_lines)
            same = segments.loc[unchanged, "segment_id"] == previous.loc[unchanged, "segment_id"]
            kept.append(same.mean())
        previous = segments
    assert len(kept) == 6 and min(kept) >= 0.95


def test_parquet_order_lines_derived_out_of_core_give_the_csv_runs_segments(tmp_path):
    """The same lines as CSV (read in memory) and as Parquet (derived out of core in DuckDB,
    here under a low memory limit): the same customers, accounting and segments."""
    orders = order_lines(1500, seed=23)
    csv = write_order_lines(orders, tmp_path / "orders.csv")
    parquet = tmp_path / "orders.parquet"
    pd.read_csv(csv, dtype=str, keep_default_na=False).to_parquet(parquet, index=False)
    by_csv, csv_folder = run(tmp_path / "csv", csv)
    by_parquet, parquet_folder = run(tmp_path / "parquet", parquet, lines_memory_limit="50MB")
    assert by_csv["transactions"].pop("derivation") == "in memory"
    assert by_parquet["transactions"].pop("derivation") == (
        "out of core in DuckDB, 50MB of working memory"
    )
    assert by_parquet["transactions"] == by_csv["transactions"]
    for name in ("customers", "customers_without_purchases", "quarantine_lines", "segments"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(parquet_folder / f"{name}.parquet"),
            pd.read_parquet(csv_folder / f"{name}.parquet"),
            check_exact=False,
            rtol=1e-12,
        )
