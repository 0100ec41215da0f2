"""Runs on order lines through the flow's own steps (``task.fn``, no Prefect server): a
degenerate file (every order on one day) still segments."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from in_process import segment_in_process
from planted_orders import order_lines, write_order_lines

from tasks.reporting.html_report import REPORT

pytestmark = pytest.mark.slow


def test_an_order_file_of_one_day_segments_without_recency(tmp_path, caplog):
    orders = order_lines(300, seed=3, dirt=False)
    day = pd.to_datetime(orders.lines["InvoiceDate"]).dt.strftime("2026-11-28 %H:%M:%S")
    source = write_order_lines(orders, tmp_path / "one_day.csv")
    source.write_text(orders.lines.assign(InvoiceDate=day).to_csv(index=False))
    caplog.set_level(logging.WARNING, logger="tasks")

    folder = segment_in_process(source, tmp_path / "out", "r1", transactions=True)

    assert (folder / REPORT).is_file()
    customers = pd.read_parquet(folder / "customers.parquet")
    assert customers["recency_days"].nunique() == 1 and len(customers) == 300
    segments = pd.read_parquet(folder / "segments.parquet")
    assert len(segments) == 300 and segments["segment_id"].nunique() >= 2
    assert set(segments["r_score"]) == {5}  # all bought on the latest day: none hibernating
    profiles = pd.read_parquet(folder / "profiles.parquet")
    assert not any(name.startswith(("Recent", "Lapsed")) for name in profiles["segment_name"])
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("Left out of the features: recency_days" in line for line in warned), warned
