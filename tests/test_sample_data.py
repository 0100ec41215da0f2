"""Tests for the seeded sample-customer generator and the committed default file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import (
    assert_dirt_counts_match,
    assert_planted_segments_recoverable,
    clean_sample_rows,
)

from tasks.sample_data import (
    MALL_HEADER,
    MIN_INCOME,
    SEGMENTS,
    SampleData,
    generate_customers,
    planted_population,
    write_sample_csv,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO_ROOT / "data" / "customers.csv"

ID, GENDER, AGE, INCOME, SCORE = MALL_HEADER


@pytest.fixture(scope="module")
def sample() -> SampleData:
    return generate_customers()


def test_committed_csv_matches_generator(sample: SampleData, tmp_path: Path) -> None:
    # data/customers.csv must be exactly what the default generator writes (guards against drift)
    written = tmp_path / "customers.csv"
    write_sample_csv(sample, written)
    assert DEFAULT_CSV.read_bytes() == written.read_bytes()


def test_written_csv_format(sample: SampleData, tmp_path: Path) -> None:
    # UTF-8, LF only, Mall header, trailing newline, and it reads back as the same strings
    written = tmp_path / "customers.csv"
    write_sample_csv(sample, written)
    data = written.read_bytes()
    assert b"\r" not in data and data.endswith(b"\n")
    assert data.split(b"\n", 1)[0].decode() == ",".join(MALL_HEADER)
    back = pd.read_csv(written, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(back, sample.frame, check_dtype=False)


def test_same_seed_same_sample_other_seed_differs(sample: SampleData) -> None:
    again = generate_customers()
    pd.testing.assert_frame_equal(sample.frame, again.frame)
    pd.testing.assert_frame_equal(sample.truth, again.truth)
    assert sample.dirt == again.dirt
    other = generate_customers(seed=7)
    assert not sample.frame.equals(other.frame)


def test_frame_and_truth_shapes(sample: SampleData) -> None:
    frame, truth = sample.frame, sample.truth
    assert tuple(frame.columns) == MALL_HEADER
    assert all(pd.api.types.is_string_dtype(frame[c]) for c in frame.columns)
    assert not frame.isna().any().any()
    assert list(truth.columns) == ["customer_id", "planted_segment", "segment_name"]
    assert truth["customer_id"].is_unique and len(truth) == 3000
    assert truth["customer_id"].iloc[0] == "00001" and truth["customer_id"].iloc[-1] == "03000"
    assert set(truth["planted_segment"]) == {1, 2, 3, 4, 5}
    # every id in the file (dirty rows included) has a planted label
    assert set(frame[ID]) == set(truth["customer_id"])


def test_dirt_counts_match_frame(sample: SampleData) -> None:
    assert_dirt_counts_match(sample)


def test_gender_variants_are_present_but_not_dirt(sample: SampleData) -> None:
    spellings = set(sample.frame[GENDER])
    assert spellings == {"Female", "Male", "female", "F", "M", "male ", "U"}


def test_planted_segments_recoverable_by_kmeans(sample: SampleData) -> None:
    assert_planted_segments_recoverable(sample)


def test_realistic_marginals(sample: SampleData) -> None:
    clean = clean_sample_rows(sample.frame)
    assert clean[AGE].between(18, 70).all()
    assert clean[INCOME].min() >= 5 and clean[INCOME].max() <= 150
    assert clean[SCORE].between(1, 100).all()
    female = (clean[GENDER] == "Female").mean()
    assert abs(female - 0.56) <= 0.05
    # young high spenders, older low spenders
    ages = clean.join(sample.truth.set_index("customer_id"), on=ID).groupby("planted_segment")[AGE]
    mean_age = ages.mean()
    assert mean_age[1] < mean_age[2] and mean_age[4] < mean_age[5]


def test_segment_shares_are_unequal(sample: SampleData) -> None:
    shares = sample.truth["planted_segment"].value_counts(normalize=True).sort_index()
    np.testing.assert_allclose(shares.to_numpy(), [0.12, 0.12, 0.40, 0.18, 0.18])


@pytest.mark.parametrize("n", [1, 37, 500], ids=["one", "small", "medium"])
def test_other_sizes(n: int) -> None:
    sample = generate_customers(n=n, seed=1)
    assert len(sample.truth) == n
    assert len(sample.frame) == n + sample.dirt["exact_duplicates"] + (
        sample.dirt["conflicting_id_rows"] // 2
    )


@pytest.mark.parametrize("n", [0, 100_000], ids=["zero", "too-many-for-5-digit-ids"])
def test_bad_size_is_rejected(n: int) -> None:
    with pytest.raises(ValueError, match=f"n={n}"):
        generate_customers(n=n)


def test_planted_population_is_the_population_behind_the_sample(sample: SampleData) -> None:
    # the same draws as generate_customers (defaults n=3000 and seed), before ids and dirt
    segment, values = planted_population(3000)
    truth = sample.truth.set_index("customer_id")["planted_segment"]
    ids = [f"{i:05d}" for i in range(1, 3001)]
    assert (truth.loc[ids].to_numpy() == segment + 1).all()
    clean = clean_sample_rows(sample.frame).set_index(ID)
    kept = [i for i, customer in enumerate(ids) if customer in clean.index]
    assert len(kept) >= 0.95 * 3000
    for column, name in ((AGE, "age"), (INCOME, "income"), (SCORE, "score")):
        assert clean.loc[[ids[i] for i in kept], column].tolist() == values[name][kept].tolist()


def test_planted_population_takes_any_size_beyond_the_sample_ids() -> None:
    segment, values = planted_population(150_000, seed=1)
    assert segment.shape == values["income"].shape == (150_000,)
    shares = np.array([s.share for s in SEGMENTS])
    assert np.abs(np.bincount(segment) - shares * 150_000).max() < 1  # exact shares
    assert values["income"].min() >= MIN_INCOME and values["score"].max() <= 100
    with pytest.raises(ValueError, match="at least 1"):
        planted_population(0)
