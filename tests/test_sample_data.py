"""Tests for the seeded sample-customer generator and the committed default file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from tasks.sample_data import MALL_HEADER, SampleData, generate_customers, write_sample_csv

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO_ROOT / "data" / "customers.csv"

ID, GENDER, AGE, INCOME, SCORE = MALL_HEADER
NUMERIC = [AGE, INCOME, SCORE]
MISSING_TOKENS = ["", "NA", "?"]
GENDER_SPELLINGS = {"female": "Female", "f": "Female", "male": "Male", "m": "Male"}


@pytest.fixture(scope="module")
def sample() -> SampleData:
    return generate_customers()


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[NUMERIC].apply(pd.to_numeric, errors="coerce")


def _out_of_range(numbers: pd.DataFrame) -> pd.Series:
    return (
        ~numbers[AGE].between(0, 120) | (numbers[INCOME] < 0) | ~numbers[SCORE].between(1, 100)
    ) & numbers.notna().all(axis=1)


def _clean_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows a simple cleaner keeps: numeric, in range, known gender, unique id."""
    frame = frame.drop_duplicates()
    numbers = _numbers(frame)
    gender = frame[GENDER].str.strip().str.lower().map(GENDER_SPELLINGS)
    keep = (
        numbers.notna().all(axis=1)
        & ~_out_of_range(numbers)
        & gender.notna()
        & ~frame[ID].duplicated(keep=False)
    )
    clean = numbers[keep].assign(**{ID: frame.loc[keep, ID], GENDER: gender[keep]})
    return clean.astype({AGE: int, INCOME: int, SCORE: int})


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
    frame, dirt = sample.frame, sample.dirt
    numbers = _numbers(frame)
    distinct = frame.drop_duplicates()
    counted = {
        "exact_duplicates": int(frame.duplicated().sum()),
        "missing_values_rows": int(frame[NUMERIC].isin(MISSING_TOKENS).any(axis=1).sum()),
        "out_of_range_rows": int(_out_of_range(numbers).sum()),
        "unknown_gender_rows": int((frame[GENDER] == "U").sum()),
        "conflicting_id_rows": int(distinct[ID].duplicated(keep=False).sum()),
    }
    assert counted == dirt
    # a small, realistic amount: every kind present, 2-5 % of rows in total
    assert all(count > 0 for count in dirt.values())
    assert 0.02 <= sum(dirt.values()) / len(frame) <= 0.05


def test_gender_variants_are_present_but_not_dirt(sample: SampleData) -> None:
    spellings = set(sample.frame[GENDER])
    assert spellings == {"Female", "Male", "female", "F", "M", "male ", "U"}


def test_planted_segments_recoverable_by_kmeans(sample: SampleData) -> None:
    # K-Means (k=5) on scaled income + score recovers the planted segments of the clean rows
    clean = _clean_rows(sample.frame)
    assert len(clean) >= 0.95 * len(sample.truth)
    truth = sample.truth.set_index("customer_id")["planted_segment"]
    features = StandardScaler().fit_transform(clean[[INCOME, SCORE]])
    labels = KMeans(5, n_init=10, random_state=0).fit_predict(features)
    assert adjusted_rand_score(truth.loc[clean[ID]].to_numpy(), labels) >= 0.9


def test_realistic_marginals(sample: SampleData) -> None:
    clean = _clean_rows(sample.frame)
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
