"""Tests for the dated snapshot series of the sample generator and for picking a snapshot."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest

# The base sample's checks apply to every snapshot.
from helpers import (
    assert_dirt_counts_match,
    assert_planted_segments_recoverable,
    clean_sample_rows,
)

from tasks.errors import InputError
from tasks.sample_data import (
    MALL_HEADER,
    Snapshot,
    generate_customers,
    generate_snapshots,
    write_sample_csv,
    write_snapshots,
)
from tasks.store.snapshots import resolve_input, snapshot_date

ID, GENDER = MALL_HEADER[:2]
START = date(2026, 11, 20)
GROWING = 4


@pytest.fixture(scope="module")
def week() -> list[Snapshot]:
    return generate_snapshots(n=1000)


@pytest.fixture(scope="module")
def default_week() -> list[Snapshot]:
    return generate_snapshots()


def _truth(snapshot: Snapshot) -> pd.Series:
    return snapshot.sample.truth.set_index("customer_id")["planted_segment"]


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("CustomerID\n1\n")


def _consecutive(week: list[Snapshot]) -> list[tuple[pd.Series, pd.Series]]:
    return [(_truth(before), _truth(after)) for before, after in pairwise(week)]


# --- resolve_input ---


def test_a_file_is_returned_as_is(tmp_path: Path) -> None:
    _touch(tmp_path, "customers_2026-11-20.csv")
    file = tmp_path / "customers_2026-11-20.csv"
    assert resolve_input(file) == file
    assert resolve_input(str(file)) == file


def test_as_of_with_a_single_file_is_refused_not_ignored(tmp_path: Path) -> None:
    _touch(tmp_path, "customers_2026-11-20.csv")
    file = tmp_path / "customers_2026-11-20.csv"
    with pytest.raises(InputError) as raised:
        resolve_input(file, as_of=date(2026, 11, 20))
    assert str(raised.value) == (
        f"{file}: as_of picks a dated snapshot from a folder of snapshots, "
        "but this is a single file"
    )


def test_a_folder_gives_its_newest_snapshot_ignoring_undated_files(tmp_path: Path) -> None:
    _touch(tmp_path, "customers_2026-11-20.csv", "customers_2026-11-22.parquet")
    _touch(tmp_path, "customers.csv", "notes_latest.csv", "customers_2026-11-30.csv.bak")
    (tmp_path / "customers_2026-12-01.csv").mkdir()  # a folder, not a snapshot
    assert resolve_input(tmp_path) == tmp_path / "customers_2026-11-22.parquet"


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [(date(2026, 11, 21), "20"), (date(2026, 11, 22), "22"), (date(2027, 1, 1), "23")],
    ids=["between-dates", "on-a-date", "after-the-last"],
)
def test_as_of_gives_the_newest_snapshot_on_or_before_it(
    tmp_path: Path, as_of: date, expected: str
) -> None:
    _touch(tmp_path, *(f"customers_2026-11-{day}.csv" for day in ("20", "22", "23")))
    assert resolve_input(tmp_path, as_of=as_of) == tmp_path / f"customers_2026-11-{expected}.csv"


@pytest.mark.parametrize(
    "name",
    ["customers_2026-11-20.csv", "2026-11-20.parquet", "eu_shop_2026-11-20.pq", "X_2026-11-20.CSV"],
)
def test_snapshot_names_with_a_date(name: str) -> None:
    assert snapshot_date(Path(name)) == date(2026, 11, 20)


@pytest.mark.parametrize(
    "name",
    [
        "customers.csv",
        "customers_2026-11-20.txt",
        "customers_2026-11-20.csv.partial",
        "customers_2026-13-40.csv",
        "customers_20261120.csv",
        ".customers_2026-11-20.csv",
    ],
)
def test_names_that_are_not_snapshots(name: str) -> None:
    assert snapshot_date(Path(name)) is None


def test_two_files_with_the_picked_date_are_an_error_naming_both(tmp_path: Path) -> None:
    _touch(tmp_path, "customers_2026-11-20.csv", "customers_2026-11-20.parquet")
    with pytest.raises(InputError) as error:
        resolve_input(tmp_path)
    message = str(error.value)
    assert "customers_2026-11-20.csv" in message and "customers_2026-11-20.parquet" in message
    assert error.value.path == str(tmp_path)


def test_an_empty_folder_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "readme.txt")
    with pytest.raises(InputError, match="no dated snapshot file") as error:
        resolve_input(tmp_path, as_of=date(2026, 11, 26))
    assert error.value.path == str(tmp_path)
    assert "2026-11-26" in str(error.value)


def test_no_snapshot_on_or_before_as_of_names_as_of_and_the_dates_found(tmp_path: Path) -> None:
    _touch(tmp_path, "customers_2026-11-20.csv", "customers_2026-11-21.csv")
    _touch(tmp_path, "customers_2026-11-26.csv")
    with pytest.raises(InputError) as error:
        resolve_input(tmp_path, as_of=date(2026, 11, 19))
    message = str(error.value)
    assert message.startswith(str(tmp_path))
    assert "as_of 2026-11-19" in message
    assert "from 2026-11-20 to 2026-11-26" in message


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        resolve_input(tmp_path / "nowhere")


def test_the_picked_snapshot_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _touch(tmp_path, "customers_2026-11-20.csv", "customers_2026-11-21.csv")
    with caplog.at_level(logging.INFO, logger="tasks.store.snapshots"):
        resolve_input(tmp_path, as_of=date(2026, 11, 20))
    assert "customers_2026-11-20.csv" in caplog.text and "2026-11-20" in caplog.text


# --- generate_snapshots ---


def test_same_arguments_same_snapshots_other_seed_differs(week: list[Snapshot]) -> None:
    again = generate_snapshots(n=1000)
    for first, second in zip(week, again, strict=True):
        assert first.day == second.day and first.sample.dirt == second.sample.dirt
        pd.testing.assert_frame_equal(first.sample.frame, second.sample.frame)
        pd.testing.assert_frame_equal(first.sample.truth, second.sample.truth)
    other = generate_snapshots(n=1000, seed=7)
    assert not week[-1].sample.frame.equals(other[-1].sample.frame)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"days": 0}, "days=0"), ({"growing_segment": 6}, "growing_segment=6"), ({"n": 0}, "n=0")],
    ids=["no-days", "no-such-segment", "no-customers"],
)
def test_bad_arguments_are_rejected(arguments: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_snapshots(**arguments)


def test_one_snapshot_a_day_from_start_and_day_0_is_the_base_sample(week: list[Snapshot]) -> None:
    assert [snapshot.day for snapshot in week] == [START + timedelta(days=i) for i in range(7)]
    base = generate_customers(n=1000)
    pd.testing.assert_frame_equal(week[0].sample.frame, base.frame)
    pd.testing.assert_frame_equal(week[0].sample.truth, base.truth)


def test_continuing_customers_keep_their_id_gender_and_age(week: list[Snapshot]) -> None:
    first, last = (clean_sample_rows(s.sample.frame).set_index(ID) for s in (week[0], week[-1]))
    both = first.index.intersection(last.index)
    assert len(both) >= 0.8 * len(first)
    pd.testing.assert_frame_equal(first.loc[both, [GENDER, "Age"]], last.loc[both, [GENDER, "Age"]])


def test_joiners_get_fresh_ids_and_leavers_never_come_back(week: list[Snapshot]) -> None:
    seen: set[str] = set()
    for before, after in _consecutive(week):
        seen |= set(before.index)
        joiners = after.index.difference(before.index)
        leavers = before.index.difference(after.index)
        assert len(joiners) > 0 and len(leavers) > 0
        assert not seen & set(joiners)  # never an id used before, not even a leaver's
        assert min(joiners) > max(seen)  # the numbering continues
        assert all(len(i) == 5 and i.isdigit() for i in joiners)


def test_about_one_to_two_percent_leave_each_day(default_week: list[Snapshot]) -> None:
    rates = [len(b.index.difference(a.index)) / len(b) for b, a in _consecutive(default_week)]
    assert all(0.01 <= rate <= 0.02 for rate in rates)


def test_leavers_are_gone_from_the_file(week: list[Snapshot]) -> None:
    for before, after in pairwise(week):
        leavers = _truth(before).index.difference(_truth(after).index)
        assert not set(leavers) & set(after.sample.frame[ID])


def test_growing_segment_gains_at_least_four_points(default_week: list[Snapshot]) -> None:
    shares = [(_truth(s) == GROWING).mean() for s in default_week]
    assert shares[0] == pytest.approx(0.18)
    assert shares[-1] - shares[0] >= 0.04
    assert shares == sorted(shares)


def test_truth_has_one_row_per_id_in_the_file(week: list[Snapshot]) -> None:
    for snapshot in week:
        truth = snapshot.sample.truth
        assert truth["customer_id"].is_unique
        assert set(truth["customer_id"]) == set(snapshot.sample.frame[ID])
        assert set(truth["planted_segment"]) == {1, 2, 3, 4, 5}


def test_dirt_counts_match_each_file(week: list[Snapshot]) -> None:
    # counted from the rows alone; every kind present, 2-5 % of rows
    for snapshot in week:
        assert_dirt_counts_match(snapshot.sample)


def test_kmeans_recovers_the_planted_segments_every_day(week: list[Snapshot]) -> None:
    # KMeans(5, n_init=10, random_state=0) on scaled income + score of clean rows: ARI >= 0.9
    for snapshot in week:
        assert_planted_segments_recoverable(snapshot.sample)


def test_a_few_continuing_customers_switch_segment(default_week: list[Snapshot]) -> None:
    for before, after in _consecutive(default_week):
        both = before.index.intersection(after.index)
        switched = (before[both] != after[both]).mean()
        assert 0 < switched < 0.05


def test_write_snapshots_writes_one_dated_csv_a_day(week: list[Snapshot], tmp_path: Path) -> None:
    paths = write_snapshots(week, tmp_path / "snapshots")
    names = [f"customers_2026-11-{day}.csv" for day in range(20, 27)]
    assert [path.name for path in paths] == names
    assert sorted(path.name for path in (tmp_path / "snapshots").iterdir()) == names
    for snapshot, path in zip(week, paths, strict=True):
        write_sample_csv(snapshot.sample, tmp_path / "expected.csv")
        assert path.read_bytes() == (tmp_path / "expected.csv").read_bytes()
    assert resolve_input(tmp_path / "snapshots") == paths[-1]
