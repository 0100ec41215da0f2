"""A run with no spec infers its columns exactly as `segment init` would (tasks.spec_init), says
each decision in its log, and so gives the same segments as init + `--spec`."""

from __future__ import annotations

import pandas as pd
import pytest
from in_process import segment_in_process
from planted_tables import (
    mixed_marketing_table,
    wholesale_like_table,
    wide_behaviour_table,
    write_planted_table,
)
from sklearn.metrics import adjusted_rand_score

from schemas.spec import parse_spec
from tasks.ingest import SAMPLE_ROWS, read_file, table_for_file
from tasks.spec_init import infer_columns, inferred_spec, starter_spec

PLANTED = {
    "wide": (lambda: wide_behaviour_table(n=1500, seed=3), "cards.csv"),
    "mixed": (lambda: mixed_marketing_table(n=1200, seed=11), "marketing.tsv"),
    "wholesale": (lambda: wholesale_like_table(n=440, seed=3), "wholesale.csv"),
}


def planted(kind: str, folder) -> tuple:
    make, name = PLANTED[kind]
    table = make()
    return table, write_planted_table(table, folder / name)


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_the_run_uses_the_spec_init_writes(kind, tmp_path):
    _, source = planted(kind, tmp_path)
    raw = read_file(source)
    written = parse_spec(starter_spec(raw, str(source)))
    assert inferred_spec(infer_columns(raw.drop(columns="source_row"))) == written
    # the run's own inference: the same spec, but missing values follow --missing
    table = table_for_file(source)
    for column in table.columns:
        spec = written.columns[column.header]
        assert column.spec == spec.model_copy(update={"missing": None}), column.header
    assert table.feature_names == tuple(
        c for c in written.features if c in {col.header for col in table.columns}
    )


def test_skewed_columns_are_logged_codes_are_categories_and_the_log_says_why(tmp_path):
    _, source = planted("wide", tmp_path)
    table = table_for_file(source, missing="median")
    log1p = [c.header for c in table.features if c.spec.transform == "log1p"]
    assert {"BALANCE", "PURCHASES", "CASH_ADVANCE", "PAYMENTS"} <= set(log1p)
    tenure = table.column("TENURE")
    assert (tenure.role, tenure.kind) == ("profile", "categorical")  # codes 6-12, not a mean
    assert all(c.missing == "median" for c in table.features)  # --missing median
    notes = "\n".join(table.notes)
    assert f"from the first {min(SAMPLE_ROWS, 1500):,} rows" in notes
    assert f"log1p before scaling on {len(log1p)} right-skewed column(s)" in notes
    assert "BALANCE (skew" in notes
    assert "Whole-number codes, described by value shares (categories), not by means: " in notes
    assert "TENURE" in notes
    assert "filled with the column median (--missing median)" in notes
    quarantined = table_for_file(source)
    assert "rows quarantined (--missing median fills them" in "\n".join(quarantined.notes)


def test_command_line_roles_move_columns_between_the_inferred_roles(tmp_path):
    _, source = planted("wholesale", tmp_path)
    inferred = table_for_file(source, id_column="none")
    assert set(inferred.feature_names) == {
        "Fresh", "Milk", "Grocery", "Frozen", "Detergents_Paper", "Delicassen"
    }  # fmt: skip
    assert {c.name for c in inferred.profile} == {"Channel", "Region"}
    # a profile column named as a feature leaves the profile columns, and the other way round
    chosen = table_for_file(source, id_column="none", features=["Channel", "Fresh"])
    assert chosen.feature_names == ("Channel", "Fresh")
    assert [c.name for c in chosen.profile] == ["Region"]
    assert chosen.column("Channel").kind == "categorical"  # codes stay categories
    moved = table_for_file(source, id_column="none", profile=["Fresh", "Channel"])
    assert "Fresh" not in moved.feature_names and "Milk" in moved.feature_names
    assert {c.name for c in moved.profile} == {"Fresh", "Channel"}


def test_a_second_id_spelled_column_is_left_out_and_said(tmp_path):
    source = tmp_path / "ids.csv"
    rows = [f"C{i},{i},{(i * 37) % 101},{(i * 11) % 53 + 0.5}" for i in range(1, 80)]
    source.write_text("CUST_ID,ID,spend,visits\n" + "\n".join(rows) + "\n")
    table = table_for_file(source)
    assert table.id_header == "CUST_ID"
    assert table.feature_names == ("spend", "visits")
    assert "ID (spelled like a customer id)" in "\n".join(table.notes)


def test_the_mall_preset_is_still_chosen_for_a_mall_like_file(shared_data):
    table = table_for_file(shared_data / "mall_customers.csv")
    assert table.preset == "mall" and table.notes == ()
    assert all(c.spec.transform == "none" for c in table.columns)


def _segments(folder) -> pd.Series:
    return pd.read_parquet(folder / "segments.parquet").set_index("customer_id")["segment_id"]


def _same_segments(source, folder, options: dict) -> float:
    """ARI between a run with no spec and one with the spec `segment init` writes, both with
    the same command-line ``options``, over the customers both segmented (with no --missing,
    the run with no spec quarantines rows the spec fills)."""
    spec = folder / "spec.toml"
    spec.write_text(starter_spec(read_file(source), str(source)))
    inferred = segment_in_process(source, folder / "no-spec", "run-1", **options)
    written = segment_in_process(source, folder / "spec", "run-1", spec=spec, **options)
    a, b = _segments(inferred), _segments(written)
    both = a.index.intersection(b.index)
    assert len(both) >= 0.9 * len(b)
    return adjusted_rand_score(a.loc[both], b.loc[both])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("wide", {"missing": "median"}),  # the README's one-liner for a card-usage table
        ("mixed", {}),
    ],
)
def test_no_spec_gives_the_segments_of_init_and_spec_on_generated_tables(kind, options, tmp_path):
    _, source = planted(kind, tmp_path)
    assert _same_segments(source, tmp_path, options) >= 0.95


@pytest.mark.slow
def test_no_spec_gives_the_segments_of_init_and_spec_on_the_wholesale_file(shared_data, tmp_path):
    source = shared_data / "wholesale_customers.csv"
    options = {"profile": ["Channel", "Region"], "id_column": "none"}  # the README's one-liner
    assert _same_segments(source, tmp_path, options) >= 0.95


def test_order_lines_read_as_a_customer_table_are_refused_with_a_hint_to_add_transactions(
    tmp_path,
):
    """Order lines given without --transactions: one line suggesting it, before any run
    (was: invoices clustered as a feature, then 90 % of rows quarantined as conflicting ids)."""
    from planted_orders import order_lines, write_order_lines

    from tasks.errors import InputError

    source = write_order_lines(order_lines(customers=300, seed=5), tmp_path / "orders.csv")
    with pytest.raises(InputError) as caught:
        table_for_file(source)
    message = str(caught.value)
    assert message.startswith(f"{source}: looks like order lines, not one row per customer")
    assert "add --transactions" in message and "\n" not in message
    # asked for explicitly, the rows are segmented as they are
    assert table_for_file(source, features=["Quantity"]).feature_names == ("Quantity",)


def test_a_customer_table_with_repeated_ids_but_no_order_columns_is_not_taken_for_order_lines(
    tmp_path,
):
    source = tmp_path / "customers.csv"
    rows = [f"C{i % 50},{i % 7},{i * 3.5}" for i in range(300)]
    source.write_text("CustomerID,visits,spend\n" + "\n".join(rows) + "\n")
    assert set(table_for_file(source).feature_names) <= {"visits", "spend"}
