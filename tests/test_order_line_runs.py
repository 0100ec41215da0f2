"""Runs on order lines through the flow's own steps (``task.fn``, no Prefect server): a
degenerate file (every order on one day) still segments, and report.html shows the line
accounting next to the derived customers."""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path

import pandas as pd
import pytest
from in_process import segment_in_process
from planted_orders import order_lines, write_order_lines

from tasks.ingest import read_file, read_header
from tasks.orders.order_columns import find_order_columns
from tasks.orders.transactions import derive_customers
from tasks.reporting.html_report import REPORT

pytestmark = pytest.mark.slow


def quality_section(folder: Path) -> str:
    """The data-quality section of report.html as plain text (tags dropped)."""
    page = (folder / REPORT).read_text(encoding="utf-8")
    section = page[page.index('<section id="quality">') :]
    section = section[: section.index("</section>")]
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section)))


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


def test_report_of_an_order_line_run_shows_the_line_accounting(tmp_path):
    source = write_order_lines(order_lines(300, seed=4), tmp_path / "orders.csv")
    expected = derive_customers(read_file(source), find_order_columns(read_header(source)))
    lines = expected.accounting
    assert lines.lines_quarantined and lines.duplicates_dropped and lines.lines_not_purchases

    folder = segment_in_process(source, tmp_path / "out", "r1", transactions=True)

    text = quality_section(folder)
    assert f"lines read {lines.lines_read:,}" in text
    assert f"used (purchases) {lines.lines_used:,}" in text
    assert f"quantity or price <= 0) {lines.lines_not_purchases:,}" in text
    assert f"quarantined {lines.lines_quarantined:,}" in text
    assert f"exact duplicates dropped {lines.duplicates_dropped:,}" in text
    assert f"no customer id {expected.reasons['no customer id']:,}" in text
    assert f"{len(expected.customers):,} customers with purchases" in text
    assert "Derived customers rows read" in text  # then the derived table's own rows
