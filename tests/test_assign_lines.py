"""`segment assign --transactions`: new order lines derived as the model's run derived its own,
then scored into its segments (issue 23, item 3).

Most tests fit a model with the run's own step functions on planted order lines (the flow's
tasks call exactly these: order columns, derive, the customer frame, clean, scale, fit,
describe, the model's order_lines record); one test under the Prefect harness runs the real
`segment run --transactions` flow, then assigns the same lines with its model.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import model_like_a_run
from planted_orders import order_lines, write_order_lines

from schemas.columns import CUSTOMER_ID, DISTANCE, REASON, SEGMENT_ID
from segment.cli.main import EXIT_BAD_INPUT, EXIT_BAD_MODEL, EXIT_OK, EXIT_USAGE, main
from tasks.errors import InputError
from tasks.model import model_to_json
from tasks.orders.encoded_lines import read_order_file
from tasks.orders.order_table import (
    order_columns_for,
    order_lines_record,
    order_spec,
    segmentable_customers,
)
from tasks.orders.transactions import derive_customers
from tasks.scoring.assign import ModelError, assign_file
from tasks.scoring.assign_lines import LineOptions, assign_lines_file


def fit_lines_like_a_run(
    source: Path, folder: Path, k: int, *, profile=(), date_format=None
) -> tuple[Path, pd.DataFrame]:
    """A run's steps on order lines as plain functions: its model.json (with the order_lines
    record flows/steps.identify adds) in ``folder`` and its segments table."""
    orders = order_columns_for(source, None, {}, profile)
    spec = order_spec(None, None, orders.profile)
    lines, _ = read_order_file(source, None)
    derivation = derive_customers(lines, orders, date_format=date_format)
    _, frame, table = segmentable_customers(derivation.customers, spec)
    described = model_like_a_run(frame, table, k)
    model = {**described.model, "order_lines": order_lines_record(orders, spec, date_format)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(model_to_json(model), encoding="utf-8")
    return folder / "model.json", described.segments


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Planted order lines (dirt included: no-id lines, cancellations, zero prices, duplicates,
    unparseable quantities) as CSV, and a model fitted on them with Country as a profile."""
    folder = tmp_path_factory.mktemp("lines")
    orders = order_lines(600, seed=5)
    source = write_order_lines(orders, folder / "orders.csv")
    model, segments = fit_lines_like_a_run(source, folder / "run", k=4, profile=["Country"])
    return source, model, segments


def assert_same_segments(segments: pd.DataFrame, output: Path) -> pd.DataFrame:
    assigned = pd.read_parquet(output)
    merged = segments.merge(assigned, on=CUSTOMER_ID, suffixes=("_run", ""), validate="1:1")
    assert len(merged) == len(segments) == len(assigned)  # every customer of the run, no other
    np.testing.assert_array_equal(merged["segment_id_run"], merged[SEGMENT_ID])
    np.testing.assert_allclose(merged["distance_to_centroid_run"], merged[DISTANCE], atol=1e-9)
    return assigned


def test_assigning_the_runs_own_lines_reproduces_every_customers_segment_id(planted, tmp_path):
    source, model, segments = planted
    done = assign_lines_file(model, source, tmp_path / "out.parquet")
    assigned = assert_same_segments(segments, tmp_path / "out.parquet")
    assert assigned["Country"].notna().all() and not done.assignment.missing_profile
    for column in ("recency_days", "frequency", "monetary", "r_score", "rfm_segment"):
        run = segments.set_index(CUSTOMER_ID)[column]
        new = assigned.set_index(CUSTOMER_ID)[column].loc[run.index]
        assert (run.astype(str) == new.astype(str)).all(), column


def test_the_same_lines_as_parquet_are_derived_out_of_core_to_the_same_segments(planted, tmp_path):
    """A Parquet file of order lines is derived out of core (DuckDB) by assign too: the run's
    own lines as Parquet give every customer's segment id and distance."""
    source, model, segments = planted
    parquet = tmp_path / "orders.parquet"
    pd.read_csv(source, dtype=str, keep_default_na=False).to_parquet(parquet, index=False)
    assign_lines_file(model, parquet, tmp_path / "out.parquet")
    assert_same_segments(segments, tmp_path / "out.parquet")


def test_nothing_is_lost_customers_without_purchases_and_quarantined_lines(planted, tmp_path):
    source, model, segments = planted
    done = assign_lines_file(model, source, tmp_path / "out.csv")
    result = done.assignment
    lines = result.order_lines["lines"]
    assert lines["lines_read"] == (
        lines["lines_used"]
        + lines["lines_not_purchases"]
        + lines["lines_quarantined"]
        + lines["duplicates_dropped"]
    )
    quarantined_lines = pd.read_csv(tmp_path / "out.quarantine_lines.csv", dtype=str)
    assert len(quarantined_lines) == lines["lines_quarantined"] > 0
    assert quarantined_lines[REASON].str.contains("no customer id").any()
    assert quarantined_lines[REASON].str.contains("Quantity='twelve': not a number").any()
    quarantine = pd.read_csv(tmp_path / "out.quarantine.csv", dtype=str)
    without = result.order_lines["customers"]["customers_without_purchases"]
    no_purchase = quarantine[quarantine[REASON].str.startswith("no purchase line")]
    assert len(no_purchase) == without
    assert result.rows_read == len(segments) + without == result.rows_kept + len(quarantine)
    assert not set(no_purchase[CUSTOMER_ID]) & set(segments[CUSTOMER_ID])


def test_a_profile_column_the_new_lines_lack_is_empty_in_the_output_not_refused(planted, tmp_path):
    source, model, segments = planted
    lines = pd.read_csv(source, dtype=str).drop(columns="Country")
    lines.to_csv(tmp_path / "no_country.csv", index=False)
    done = assign_lines_file(model, tmp_path / "no_country.csv", tmp_path / "out.parquet")
    assert done.assignment.missing_profile == ("Country",)
    assigned = assert_same_segments(segments, tmp_path / "out.parquet")
    assert "Country" in assigned.columns and assigned["Country"].isna().all()


def test_new_lines_get_their_own_snapshot_date_or_as_of(planted, tmp_path):
    source, model, _ = planted
    lines = pd.read_csv(source, dtype=str)
    when = pd.to_datetime(lines["InvoiceDate"])
    latest = when.max().normalize()
    early = lines[when < latest - pd.Timedelta(days=30)]  # "yesterday's" lines, a month ago
    early.to_csv(tmp_path / "early.csv", index=False)
    done = assign_lines_file(model, tmp_path / "early.csv", tmp_path / "a.parquet")
    snapshot = pd.to_datetime(early["InvoiceDate"]).max().normalize() + pd.Timedelta(days=1)
    assert done.assignment.order_lines["snapshot_date"] == snapshot.date().isoformat()
    as_of = date(2026, 10, 1)
    done = assign_lines_file(
        model, source, tmp_path / "b.parquet", options=LineOptions(as_of=as_of)
    )
    assert done.assignment.order_lines["snapshot_date"] == "2026-10-01"
    reasons = pd.read_parquet(tmp_path / "b.quarantine_lines.parquet")[REASON]
    assert reasons.str.contains("on or after the snapshot date 2026-10-01").any()


def test_the_runs_date_format_and_headers_are_used_for_the_new_lines(tmp_path):
    orders = order_lines(300, seed=9, dirt=False)
    frame = orders.lines.assign(
        InvoiceDate=pd.to_datetime(orders.lines["InvoiceDate"]).dt.strftime("%d/%m/%Y %H:%M")
    )
    source = tmp_path / "orders.csv"
    frame.to_csv(source, index=False)
    fmt = "%d/%m/%Y %H:%M"
    model, segments = fit_lines_like_a_run(source, tmp_path / "run", k=4, date_format=fmt)
    recorded = json.loads(model.read_text())["order_lines"]
    assert recorded["date_format"] == fmt and recorded["columns"]["date"] == "InvoiceDate"
    assign_lines_file(model, source, tmp_path / "out.parquet")  # no --date-format: the run's
    assert_same_segments(segments, tmp_path / "out.parquet")


def test_new_lines_without_a_field_say_the_runs_headers_not_an_option_assign_lacks(
    planted, tmp_path
):
    source, model, _ = planted
    lines = pd.read_csv(source, dtype=str).drop(columns="CustomerID")
    lines.to_csv(tmp_path / "no_id.csv", index=False)
    with pytest.raises(InputError, match="order lines need column") as error:
        assign_lines_file(model, tmp_path / "no_id.csv", tmp_path / "out.parquet")
    assert "customer_id='CustomerID'" in error.value.message
    assert "give the new file those headers" in error.value.message
    assert "--column" not in error.value.message


def test_a_customer_table_model_and_an_old_order_lines_model_are_refused(planted, tmp_path):
    source, model, _ = planted
    old = json.loads(model.read_text())
    old.pop("order_lines")
    (tmp_path / "model.json").write_text(json.dumps(old))
    with pytest.raises(ModelError, match=r"model\.json: no order_lines in the model"):
        assign_lines_file(tmp_path / "model.json", source, tmp_path / "out.parquet")
    with pytest.raises(InputError, match=r"orders\.csv: missing column.*add --transactions"):
        assign_file(model, source, tmp_path / "out.parquet")  # lines, but no --transactions


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("rfm_grid", {"champions": ["55"]}, r"order_lines\.rfm_grid: .*cells not mapped: 54"),
        ("columns", {"client": "CustomerID"}, r"order_lines\.columns: unknown .*\['client'\]"),
    ],
)
def test_a_defective_order_lines_record_is_refused_naming_the_field(
    planted, tmp_path, field, value, expected
):
    source, model, _ = planted
    bad = json.loads(model.read_text())
    bad["order_lines"][field].update(value)
    (tmp_path / "model.json").write_text(json.dumps(bad))
    with pytest.raises(ModelError, match=expected):
        assign_lines_file(tmp_path / "model.json", source, tmp_path / "out.parquet")


def test_cli_assigns_order_lines_and_refuses_line_options_without_transactions(
    planted, tmp_path, capsys
):
    source, model, segments = planted
    out = tmp_path / "out.parquet"
    argv = ["assign", "--model", str(model), "--input", str(source), "--output", str(out)]
    assert main([*argv, "--transactions"]) == EXIT_OK
    printed = capsys.readouterr().out
    assert f"Assigned {len(segments):,} customers from {source}" in printed
    assert "Lines: " in printed and "quarantine_lines" in printed
    assert_same_segments(segments, out)
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--as-of", "2026-10-01"])
    assert stop.value.code == EXIT_USAGE
    assert "--as-of" in capsys.readouterr().err
    assert main([*argv, "--transactions", "--date-format", "%Y"]) == EXIT_BAD_INPUT
    assert "no date matches --date-format %Y" in capsys.readouterr().err
    old = json.loads(model.read_text())
    old.pop("order_lines")
    (tmp_path / "model.json").write_text(json.dumps(old))
    argv[2] = str(tmp_path / "model.json")
    assert main([*argv, "--transactions"]) == EXIT_BAD_MODEL
    assert capsys.readouterr().err.count("\n") == 1


# --- the real run ---------------------------------------------------------------------------


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_assign_transactions_reproduces_a_real_runs_segment_ids(tmp_path):
    """`segment run --transactions` (the real flow) on planted order lines, then the
    assign-segments flow with --transactions on the same lines: every customer of the run gets
    the segment id segments.parquet gave it; the model records how the run derived them."""
    from flows.assign import assign_segments
    from flows.segmentation import segment_customers
    from segment.settings import SegmentationSettings

    source = write_order_lines(order_lines(800, seed=3), tmp_path / "orders.parquet")
    output = tmp_path / "outputs"
    segment_customers(
        SegmentationSettings(
            input=source, output_dir=output, transactions=True, profile=["Country"]
        )
    )
    recorded = json.loads((output / "latest" / "model.json").read_text())["order_lines"]
    assert recorded["columns"]["customer_id"] == "CustomerID" and recorded["profile"] == ["Country"]
    summary = assign_segments(
        model=output / "latest", input=source, output=tmp_path / "a.parquet", transactions=True
    )
    segments = pd.read_parquet(output / "latest" / "segments.parquet")
    assert_same_segments(segments, tmp_path / "a.parquet")
    assert summary["rows_kept"] == len(segments)
    run = json.loads((output / "latest" / "manifest.json").read_text())["transactions"]
    assert summary["lines"] == run["lines"]  # the same line accounting as the run's
