"""Tests for the seeded planted-segment tables: card usage, marketing campaign, wholesale."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from planted_tables import (
    EDUCATION_LEVELS,
    MARITAL_STATUSES,
    MIXED_COLUMNS,
    MIXED_COUNT_COLUMNS,
    MIXED_FLAG_COLUMNS,
    MIXED_SPEND_COLUMNS,
    WHOLESALE_COLUMNS,
    WHOLESALE_SPEND_COLUMNS,
    WIDE_COLUMNS,
    WIDE_COUNT_COLUMNS,
    WIDE_FRACTION_COLUMNS,
    WIDE_MONEY_COLUMNS,
    PlantedTable,
    mixed_marketing_table,
    wholesale_like_table,
    wide_behaviour_table,
    write_planted_table,
)
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

MIN_ARI = 0.9


@pytest.fixture(scope="module")
def wide() -> PlantedTable:
    return wide_behaviour_table()


@pytest.fixture(scope="module")
def mixed() -> PlantedTable:
    return mixed_marketing_table()


@pytest.fixture(scope="module")
def wholesale() -> PlantedTable:
    return wholesale_like_table()


def _kmeans_ari(
    table: PlantedTable, logged: tuple[str, ...], raw: tuple[str, ...], k: int
) -> float:
    """ARI of K-Means on log1p(``logged``) + ``raw``, standard scaled, over complete rows."""
    frame = table.frame
    complete = frame[[*logged, *raw]].notna().all(axis=1).to_numpy()
    rows = frame[complete]
    features = np.column_stack(
        [np.log1p(rows[list(logged)].to_numpy(dtype=float)), rows[list(raw)].to_numpy(dtype=float)]
    )
    scaled = StandardScaler().fit_transform(features)
    found = KMeans(k, n_init=10, random_state=0).fit_predict(scaled)
    return adjusted_rand_score(table.labels[complete], found)


def _check_labels(table: PlantedTable, groups: int) -> None:
    assert table.labels.shape == (len(table.frame),)
    assert len(table.group_names) == groups
    assert set(np.unique(table.labels)) == set(range(1, groups + 1))
    shares = np.bincount(table.labels, minlength=groups + 1)[1:] / len(table.labels)
    assert np.all((shares >= 0.15) & (shares <= 0.40)), shares


def _is_integer(series: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(series)


# --- wide card-usage table ---------------------------------------------------------------------


def test_wide_shape_ids_and_labels(wide: PlantedTable) -> None:
    frame = wide.frame
    assert tuple(frame.columns) == WIDE_COLUMNS
    assert len(frame) == 3000
    assert wide.id_column == "CUST_ID"
    assert wide.sep == ","
    assert frame["CUST_ID"].iloc[0] == "C10001"
    assert frame["CUST_ID"].str.fullmatch(r"C\d{5}").all()
    assert frame["CUST_ID"].is_unique
    _check_labels(wide, 4)


def test_wide_missing_values(wide: PlantedTable) -> None:
    missing = wide.frame.isna().mean()
    assert missing["MINIMUM_PAYMENTS"] == pytest.approx(0.03, abs=0.005)
    assert missing["CREDIT_LIMIT"] == pytest.approx(0.005, abs=0.003)
    assert missing["CREDIT_LIMIT"] > 0
    others = missing.drop(["MINIMUM_PAYMENTS", "CREDIT_LIMIT"])
    assert (others == 0).all(), others[others > 0]


def test_wide_value_ranges(wide: PlantedTable) -> None:
    frame = wide.frame
    for column in WIDE_FRACTION_COLUMNS:
        assert frame[column].between(0, 1).all(), column
    for column in (*WIDE_COUNT_COLUMNS, "TENURE"):
        assert _is_integer(frame[column]), column
        assert (frame[column] >= 0).all(), column
    assert frame["TENURE"].between(6, 12).all()
    money = frame[list(WIDE_MONEY_COLUMNS)]
    assert (money.dropna() >= 0).all().all()
    assert (money.skew() > 1).all(), money.skew()  # heavily right-skewed
    limits = frame["CREDIT_LIMIT"].dropna()
    assert (limits % 1 == 0).all()
    parts = frame["ONEOFF_PURCHASES"] + frame["INSTALLMENTS_PURCHASES"]
    np.testing.assert_allclose(frame["PURCHASES"], parts, atol=0.011)
    assert ((frame["PURCHASES"] == 0) == (frame["PURCHASES_TRX"] == 0)).all()
    assert ((frame["CASH_ADVANCE"] == 0) == (frame["CASH_ADVANCE_TRX"] == 0)).all()
    assert ((frame["PURCHASES"] == 0) == (frame["PURCHASES_FREQUENCY"] == 0)).all()
    payments = frame["PAYMENTS"]
    typical = payments.groupby(wide.labels).transform("median").to_numpy()
    extreme = (payments > 10 * typical).sum()  # the planted 0.3 % with 20 times the spend
    assert 0.001 * len(frame) <= extreme <= 0.005 * len(frame)


def test_wide_groups_recovered_by_log_kmeans(wide: PlantedTable) -> None:
    ari = _kmeans_ari(
        wide,
        logged=(*WIDE_MONEY_COLUMNS, *WIDE_COUNT_COLUMNS),
        raw=(*WIDE_FRACTION_COLUMNS, "TENURE"),
        k=4,
    )
    assert ari >= MIN_ARI


def test_wide_is_deterministic(wide: PlantedTable) -> None:
    again = wide_behaviour_table()
    pd.testing.assert_frame_equal(again.frame, wide.frame)
    np.testing.assert_array_equal(again.labels, wide.labels)
    other = wide_behaviour_table(seed=8)
    assert not other.frame.equals(wide.frame)


def test_small_table_has_exact_sizes() -> None:
    table = wide_behaviour_table(n=101, seed=1)
    assert len(table.frame) == len(table.labels) == 101
    assert np.bincount(table.labels)[1:].tolist() == [20, 25, 36, 20]
    with pytest.raises(ValueError):
        wide_behaviour_table(n=5)


def test_planted_table_is_frozen(wide: PlantedTable) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        wide.sep = ";"  # type: ignore[misc]
    with pytest.raises(ValueError):
        wide.labels[0] = 2


# --- mixed marketing table ---------------------------------------------------------------------


def test_mixed_shape_types_and_labels(mixed: PlantedTable) -> None:
    frame = mixed.frame
    assert tuple(frame.columns) == MIXED_COLUMNS
    assert len(frame) == 2000
    assert mixed.id_column == "ID"
    assert mixed.sep == "\t"
    assert _is_integer(frame["ID"]) and frame["ID"].is_unique
    assert set(frame["Education"]) <= set(EDUCATION_LEVELS)
    assert set(frame["Marital_Status"]) <= set(MARITAL_STATUSES)
    _check_labels(mixed, 3)


def test_mixed_value_ranges(mixed: PlantedTable) -> None:
    frame = mixed.frame
    assert frame["Kidhome"].between(0, 2).all()
    assert frame["Recency"].between(0, 99).all()
    assert frame["Year_Birth"].between(1900, 2010).all()
    for column in (*MIXED_SPEND_COLUMNS, *MIXED_COUNT_COLUMNS, "Kidhome", "Recency"):
        assert _is_integer(frame[column]), column
        assert (frame[column] >= 0).all(), column
    for column in MIXED_FLAG_COLUMNS:
        assert set(frame[column]) <= {0, 1}, column
    income = frame["Income"]
    assert income.isna().mean() == pytest.approx(0.01, abs=0.003)
    assert (income.dropna() > 0).all() and (income.dropna() % 1 == 0).all()
    assert frame.drop(columns="Income").notna().all().all()


def test_mixed_text_and_flags_differ_by_group(mixed: PlantedTable) -> None:
    frame, labels = mixed.frame, mixed.labels
    affluent, budget = labels == 1, labels == 2
    higher = frame["Education"].isin(["PhD", "Master"])
    assert higher[affluent].mean() > higher[budget].mean() + 0.15
    assert frame["Response"][affluent].mean() > frame["Response"][budget].mean() + 0.1
    assert frame["Kidhome"][budget].mean() > frame["Kidhome"][affluent].mean() + 0.5


def test_mixed_groups_recovered_by_log_kmeans(mixed: PlantedTable) -> None:
    ari = _kmeans_ari(
        mixed,
        logged=MIXED_SPEND_COLUMNS,
        raw=("Income", "Kidhome", *MIXED_COUNT_COLUMNS),
        k=3,
    )
    assert ari >= MIN_ARI


def test_mixed_is_deterministic(mixed: PlantedTable) -> None:
    pd.testing.assert_frame_equal(mixed_marketing_table().frame, mixed.frame)


# --- wholesale table ---------------------------------------------------------------------------


def test_wholesale_shape_and_values(wholesale: PlantedTable) -> None:
    frame = wholesale.frame
    assert tuple(frame.columns) == WHOLESALE_COLUMNS
    assert len(frame) == 440
    assert wholesale.id_column is None
    assert wholesale.sep == ","
    assert set(frame["Channel"]) == {1, 2}
    assert set(frame["Region"]) == {1, 2, 3}
    for column in WHOLESALE_SPEND_COLUMNS:
        assert _is_integer(frame[column]) and (frame[column] > 0).all(), column
    assert frame.notna().all().all()
    _check_labels(wholesale, 3)
    pd.testing.assert_frame_equal(wholesale_like_table().frame, frame)


def test_wholesale_groups_recovered_by_log_kmeans(wholesale: PlantedTable) -> None:
    assert _kmeans_ari(wholesale, logged=WHOLESALE_SPEND_COLUMNS, raw=(), k=3) >= MIN_ARI


# --- writing -----------------------------------------------------------------------------------


def _sniffed_sep(path: Path) -> str:
    with path.open(encoding="utf-8") as handle:
        return csv.Sniffer().sniff(handle.readline()).delimiter


def test_write_wide_csv_reads_back(wide: PlantedTable, tmp_path: Path) -> None:
    path = write_planted_table(wide, tmp_path / "sub" / "cards.csv")
    assert path == tmp_path / "sub" / "cards.csv"
    assert _sniffed_sep(path) == ","
    back = pd.read_csv(path, sep=None, engine="python")
    pd.testing.assert_frame_equal(back, wide.frame, check_dtype=False)
    assert back["MINIMUM_PAYMENTS"].isna().sum() == wide.frame["MINIMUM_PAYMENTS"].isna().sum()
    text = pd.read_csv(path, dtype=str, keep_default_na=False)
    limits = text["CREDIT_LIMIT"]
    assert (limits == "").sum() == wide.frame["CREDIT_LIMIT"].isna().sum()
    assert limits[limits != ""].str.fullmatch(r"\d+").all()  # no "1500.0"
    assert text["TENURE"].str.fullmatch(r"\d+").all()
    assert b"\r" not in path.read_bytes()


def test_write_mixed_tsv_reads_back(mixed: PlantedTable, tmp_path: Path) -> None:
    path = write_planted_table(mixed, tmp_path / "campaign.tsv")
    assert _sniffed_sep(path) == "\t"
    back = pd.read_csv(path, sep=None, engine="python")
    pd.testing.assert_frame_equal(back, mixed.frame, check_dtype=False)
    assert back["Income"].isna().sum() == 20
    text = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    assert text["Income"][text["Income"] != ""].str.fullmatch(r"\d+").all()


def test_write_parquet_reads_back(wide: PlantedTable, tmp_path: Path) -> None:
    path = write_planted_table(wide, tmp_path / "cards.parquet")
    back = pd.read_parquet(path)
    assert str(back["CREDIT_LIMIT"].dtype) == "Int64"
    assert back["CREDIT_LIMIT"].isna().sum() == wide.frame["CREDIT_LIMIT"].isna().sum()
    pd.testing.assert_frame_equal(back, wide.frame, check_dtype=False)
    assert wide.frame["CREDIT_LIMIT"].dtype == np.float64  # the table itself is not changed
