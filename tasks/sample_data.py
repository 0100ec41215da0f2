"""Seeded sample customers in the Mall file layout, with planted segments and a little dirt.

The generator is pure (numpy/pandas only, no I/O); ``write_sample_csv`` is the only function
that touches the disk. ``n`` counts distinct customers (ids ``00001`` .. ``f"{n:05d}"``); the
written file has a few more rows because exact duplicates and conflicting second rows are added.

Every injected problem is counted in ``SampleData.dirt``; each kind of problem is put on its own
set of customers, so a dirty row has exactly one problem and the counts can be checked from the
file alone:

- ``exact_duplicates``: extra copies of clean rows (``frame.duplicated().sum()``);
- ``missing_values_rows``: one of age / income / score is ``""``, ``"NA"`` or ``"?"``;
- ``out_of_range_rows``: age 150 or -3, spending score 0 or 140, or a negative income;
- ``unknown_gender_rows``: gender ``"U"``;
- ``conflicting_id_rows``: rows whose id appears twice with different values (2 rows per id).

Harmless gender spellings (``female``, ``F``, ``M``, ``male ``) are also planted on some clean rows;
cleaning normalises them, so they are not counted as dirt.

``generate_snapshots`` makes a series of daily snapshots of one drifting customer base (customers
join and leave, values move a little, a few switch segment, one segment grows); each snapshot is a
``SampleData`` with its own dirt, and ``write_snapshots`` writes them as
``customers_YYYY-MM-DD.csv``.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

MALL_HEADER = ("CustomerID", "Gender", "Age", "Annual Income (k$)", "Spending Score (1-100)")
_ID, _GENDER, _AGE, _INCOME, _SCORE = MALL_HEADER
ID_WIDTH = 5


@dataclass(frozen=True)
class _Segment:
    """One planted segment: share of customers and Gaussian centres/spreads."""

    name: str
    share: float
    income: tuple[float, float]  # mean, sd (k$)
    score: tuple[float, float]  # mean, sd (1-100)
    age: tuple[float, float]  # mean, sd (years)


# Modelled on the five groups of the Kaggle Mall tutorial, but well separated.
# Planted segment numbers are 1-based positions in this tuple.
SEGMENTS: tuple[_Segment, ...] = (
    _Segment("low income, high spending", 0.12, (25, 5), (80, 6), (25, 5)),
    _Segment("low income, low spending", 0.12, (25, 5), (20, 6), (46, 11)),
    _Segment("mid income, mid spending", 0.40, (55, 6), (50, 6), (42, 13)),
    _Segment("high income, high spending", 0.18, (87, 6), (82, 6), (32, 5)),
    _Segment("high income, low spending", 0.18, (88, 6), (17, 6), (41, 11)),
)

FEMALE_SHARE = 0.56
AGE_RANGE = (18, 70)
MIN_INCOME = 5
SCORE_RANGE = (1, 100)

# Dirt, as fractions of n (rounded); each kind goes on its own customers.
_DUPLICATE_SHARE = 0.010
_MISSING_SHARE = 0.010
_OUT_OF_RANGE_SHARE = 0.005
_UNKNOWN_GENDER_SHARE = 0.0025
_CONFLICTING_ID_SHARE = 0.002  # ids; each gives two rows
_GENDER_VARIANT_SHARE = 0.010  # harmless spellings, not dirt

# Daily drift of a snapshot series, as fractions of the customers.
_LEAVE_RATE = 0.015  # of yesterday's customers leave
_JOIN_RATE = 0.025  # of yesterday's count join (new ids)
_GROWING_JOINER_SHARE = 0.6  # of the joiners go to the growing segment
_DRIFT_RATE = 0.05  # of the continuing customers move a little in income and score
_DRIFT_SD = 2.0  # k$ and score points
_SWITCH_RATE = 0.005  # of the continuing customers switch to another segment

_SEGMENT = "segment"  # 0-based planted segment column of a population frame
_MISSING_TOKENS = ("", "NA", "?")
_OUT_OF_RANGE = ((2, "150"), (2, "-3"), (4, "0"), (4, "140"))  # (column, value): age, score
_GENDER_VARIANTS = {"Female": ("female", "F"), "Male": ("M", "male ")}


@dataclass(frozen=True)
class SampleData:
    """A generated sample: the rows to write, the planted truth and the injected dirt.

    ``frame``: columns ``MALL_HEADER``, every value a string (``""`` for missing), in file order.
    ``truth``: one row per distinct id: ``customer_id`` (str), ``planted_segment`` (int 1..5),
    ``segment_name`` (str).
    ``dirt``: counts of injected problems (see the module docstring).
    """

    frame: pd.DataFrame
    truth: pd.DataFrame
    dirt: dict[str, int]


@dataclass(frozen=True)
class Snapshot:
    """One day of a snapshot series: the customers as they stood that day."""

    day: date
    sample: SampleData


def generate_customers(n: int = 3000, seed: int = 20261126) -> SampleData:
    """Generate ``n`` customers in five planted segments, plus a small counted amount of dirt.

    Deterministic for a given ``(n, seed)``: all randomness comes from
    ``numpy.random.default_rng(seed)``.
    """
    _check_size(n)
    rng = np.random.default_rng(seed)
    sample = _with_dirt(rng, _draw_population(rng, n))
    logger.info(
        "generated %d customers in %d rows (seed %d), dirt %s",
        n,
        len(sample.frame),
        seed,
        sample.dirt,
    )
    return sample


def generate_snapshots(
    days: int = 7,
    start: date = date(2026, 11, 20),
    n: int = 3000,
    seed: int = 20261126,
    growing_segment: int = 4,
) -> list[Snapshot]:
    """Generate ``days`` daily snapshots of a drifting customer base, starting with ``n`` customers.

    Day 0 is exactly ``generate_customers(n, seed)``. Each later day, from the same random stream:
    about 1.5 % of yesterday's customers leave; about 2.5 % (of yesterday's count) join with fresh
    ids continuing the numbering (a leaver's id is never reused), 60 % of them in
    ``growing_segment`` (1-based; default 4, high income and high spending), so its share rises
    from 18 % to about 25 % over a week; 5 % of the continuing customers move a little in income
    and score (Gaussian, sd 2, clipped); 0.5 % switch to another segment (drawn like a joiner) and
    take a fresh income and score around its centre. Ids, gender and age of continuing customers
    never change, nor do the segment centres. Every snapshot gets its own counted dirt, as in
    ``generate_customers``. Deterministic for the same arguments.
    """
    _check_size(n)
    if days < 1:
        raise ValueError(f"days={days} should be at least 1.")
    if not 1 <= growing_segment <= len(SEGMENTS):
        raise ValueError(
            f"growing_segment={growing_segment} should be between 1 and {len(SEGMENTS)}."
        )
    rng = np.random.default_rng(seed)
    mix = _joiner_mix(growing_segment - 1)
    population = _draw_population(rng, n)
    next_id = n + 1
    snapshots = []
    for offset in range(days):
        if offset:
            stayers = _stay_and_move(rng, population, mix)
            joining = rng.choice(
                len(SEGMENTS), size=rng.binomial(len(population), _JOIN_RATE), p=mix
            )
            joiners = _new_customers(rng, joining, next_id)
            next_id += len(joiners)
            population = pd.concat([stayers, joiners], ignore_index=True)
        snapshots.append(Snapshot(start + timedelta(days=offset), _with_dirt(rng, population)))
    logger.info(
        "generated %d snapshots from %s: %d -> %d customers", days, start, n, len(population)
    )
    return snapshots


def planted_population(n: int, seed: int = 20261126) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` clean customers in the planted segments, in a random order, with no ids or dirt.

    The 0-based planted segment of each customer and its values (``gender``, ``age``,
    ``income``, ``score``), drawn exactly as ``generate_customers`` draws its population before
    adding dirt; any ``n`` (the benchmarks use it for 10M customers). Deterministic for
    ``(n, seed)``.
    """
    if n < 1:
        raise ValueError(f"n={n} should be at least 1.")
    rng = np.random.default_rng(seed)
    segment = rng.permutation(_segment_sizes(n))
    return segment, _draw_values(rng, segment)


def write_sample_csv(sample: SampleData, path: str | Path) -> None:
    """Write ``sample.frame`` as CSV: UTF-8, LF line ends, header line, minimal quoting."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(MALL_HEADER)
        writer.writerows(sample.frame.itertuples(index=False, name=None))
    logger.info("wrote %d rows to %s", len(sample.frame), path)


def write_snapshots(snapshots: list[Snapshot], folder: str | Path) -> list[Path]:
    """Write each snapshot to ``folder/customers_YYYY-MM-DD.csv``; return the paths in order."""
    paths = [Path(folder) / f"customers_{snapshot.day.isoformat()}.csv" for snapshot in snapshots]
    for snapshot, path in zip(snapshots, paths, strict=True):
        write_sample_csv(snapshot.sample, path)
    return paths


def _check_size(n: int) -> None:
    """Reject a customer count the 5-digit ids cannot hold."""
    if not 1 <= n < 10**ID_WIDTH:
        raise ValueError(f"n={n} should be between 1 and {10**ID_WIDTH - 1}.")


def _draw_population(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """``n`` clean customers (ids from 1) in the exact planted shares, in a random order."""
    return _new_customers(rng, rng.permutation(_segment_sizes(n)), first_id=1)


def _new_customers(rng: np.random.Generator, segment: np.ndarray, first_id: int) -> pd.DataFrame:
    """Clean customers of the given 0-based segments, numbered from ``first_id``: a population."""
    last_id = first_id + segment.size - 1
    if last_id >= 10**ID_WIDTH:
        raise ValueError(f"customer id {last_id} does not fit in {ID_WIDTH} digits.")
    ids = [f"{i:0{ID_WIDTH}d}" for i in range(first_id, last_id + 1)]
    values = _draw_values(rng, segment)
    return pd.DataFrame(
        {
            _ID: pd.Series(ids, dtype="str"),
            _GENDER: values["gender"],
            _AGE: values["age"],
            _INCOME: values["income"],
            _SCORE: values["score"],
            _SEGMENT: segment,
        }
    )


def _with_dirt(rng: np.random.Generator, population: pd.DataFrame) -> SampleData:
    """The population as file rows with counted dirt added, and its planted truth."""
    n = len(population)
    segment = population[_SEGMENT].to_numpy()
    columns = population[list(MALL_HEADER)].itertuples(index=False, name=None)
    rows = [[str(value) for value in row] for row in columns]

    counts = {
        "missing": _count(n, _MISSING_SHARE),
        "out_of_range": _count(n, _OUT_OF_RANGE_SHARE),
        "unknown_gender": _count(n, _UNKNOWN_GENDER_SHARE),
        "conflicting_ids": _count(n, _CONFLICTING_ID_SHARE),
    }
    order = rng.permutation(n)
    start = 0
    picked: dict[str, np.ndarray] = {}
    for kind, count in counts.items():
        picked[kind] = order[start : start + count]
        start += count
    clean = np.sort(order[start:])

    for i in picked["missing"]:
        _make_missing(rng, rows[i])
    for i in picked["out_of_range"]:
        _make_out_of_range(rng, rows[i])
    for i in picked["unknown_gender"]:
        rows[i][1] = "U"
    variants = rng.choice(
        clean, size=min(_count(n, _GENDER_VARIANT_SHARE), clean.size), replace=False
    )
    for i in variants:
        rows[i][1] = str(rng.choice(_GENDER_VARIANTS[rows[i][1]]))

    conflicts = [_conflicting_row(rng, rows[i], segment[i]) for i in picked["conflicting_ids"]]
    sources = rng.choice(clean, size=min(_count(n, _DUPLICATE_SHARE), clean.size), replace=False)
    duplicates = [list(rows[i]) for i in sources]
    rows = _insert_at_random(rng, rows, conflicts + duplicates)

    frame = pd.DataFrame(rows, columns=list(MALL_HEADER), dtype="str")
    truth = pd.DataFrame(
        {
            "customer_id": population[_ID].reset_index(drop=True),
            "planted_segment": (segment + 1).astype("int64"),
            "segment_name": pd.Series([SEGMENTS[s].name for s in segment], dtype="str"),
        }
    )
    dirt = {
        "exact_duplicates": len(duplicates),
        "missing_values_rows": len(picked["missing"]),
        "out_of_range_rows": len(picked["out_of_range"]),
        "unknown_gender_rows": len(picked["unknown_gender"]),
        "conflicting_id_rows": 2 * len(conflicts),
    }
    return SampleData(frame=frame, truth=truth, dirt=dirt)


def _stay_and_move(
    rng: np.random.Generator, population: pd.DataFrame, mix: np.ndarray
) -> pd.DataFrame:
    """Yesterday's customers minus the leavers; a few drift a little, a few switch segment."""
    stayers = population[rng.random(len(population)) >= _LEAVE_RATE].reset_index(drop=True)
    drift = np.flatnonzero(rng.random(len(stayers)) < _DRIFT_RATE)
    moves = np.rint(rng.normal(0.0, _DRIFT_SD, size=(2, drift.size)))
    stayers.loc[drift, _INCOME] = _clip_income(stayers.loc[drift, _INCOME] + moves[0])
    stayers.loc[drift, _SCORE] = _clip_score(stayers.loc[drift, _SCORE] + moves[1])
    switch = np.flatnonzero(rng.random(len(stayers)) < _SWITCH_RATE)
    segment = np.array(
        [_other_segment(rng, s, mix) for s in stayers.loc[switch, _SEGMENT]], dtype=int
    )
    income, score = _draw_money(rng, segment)
    stayers.loc[switch, [_SEGMENT, _INCOME, _SCORE]] = np.column_stack([segment, income, score])
    return stayers


def _joiner_mix(growing: int) -> np.ndarray:
    """Segment probabilities of a joiner: the growing segment's share, the rest as planted."""
    shares = np.array([s.share for s in SEGMENTS])
    shares[growing] = 0.0
    mix = shares / shares.sum() * (1 - _GROWING_JOINER_SHARE)
    mix[growing] = _GROWING_JOINER_SHARE
    return mix


def _other_segment(rng: np.random.Generator, segment: int, mix: np.ndarray) -> int:
    """A segment other than ``segment``, drawn with the joiner mix."""
    weights = mix.copy()
    weights[segment] = 0.0
    return int(rng.choice(len(SEGMENTS), p=weights / weights.sum()))


def _count(n: int, share: float) -> int:
    return round(n * share)


def _segment_sizes(n: int) -> np.ndarray:
    """Segment index per customer, in exact shares (largest remainder), not yet shuffled."""
    shares = np.array([s.share for s in SEGMENTS])
    exact = shares * n
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[i] += 1
    return np.repeat(np.arange(len(SEGMENTS)), sizes)


def _draw_values(rng: np.random.Generator, segment: np.ndarray) -> dict[str, np.ndarray]:
    """Gender, age, income and score for each customer, as in-range integers / labels."""
    income, score = _draw_money(rng, segment)
    age_mean, age_sd = _params(segment, "age")
    age = np.clip(np.rint(rng.normal(age_mean, age_sd)), *AGE_RANGE)
    female = rng.random(segment.size) < FEMALE_SHARE
    return {
        "gender": np.where(female, "Female", "Male"),
        "age": age.astype(int),
        "income": income,
        "score": score,
    }


def _draw_money(rng: np.random.Generator, segment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Income and score around each customer's segment centre, as in-range integers."""
    income_mean, income_sd = _params(segment, "income")
    score_mean, score_sd = _params(segment, "score")
    income = _clip_income(np.rint(rng.normal(income_mean, income_sd)))
    score = _clip_score(np.rint(rng.normal(score_mean, score_sd)))
    return income, score


def _clip_income(income: np.ndarray | pd.Series) -> np.ndarray:
    """Incomes raised to ``MIN_INCOME``, as integers."""
    return np.maximum(np.asarray(income), MIN_INCOME).astype(int)


def _clip_score(score: np.ndarray | pd.Series) -> np.ndarray:
    """Scores clipped to ``SCORE_RANGE``, as integers."""
    return np.clip(np.asarray(score), *SCORE_RANGE).astype(int)


def _params(segment: np.ndarray, field: str) -> tuple[np.ndarray, np.ndarray]:
    table = np.array([getattr(s, field) for s in SEGMENTS], dtype=float)
    return table[segment, 0], table[segment, 1]


def _make_missing(rng: np.random.Generator, row: list[str]) -> None:
    column = int(rng.integers(2, 5))  # age, income or score
    row[column] = str(rng.choice(_MISSING_TOKENS))


def _make_out_of_range(rng: np.random.Generator, row: list[str]) -> None:
    kind = int(rng.integers(0, len(_OUT_OF_RANGE) + 1))
    if kind < len(_OUT_OF_RANGE):
        column, value = _OUT_OF_RANGE[kind]
        row[column] = value
    else:  # a negative income
        row[3] = str(-int(rng.integers(5, 60)))


def _conflicting_row(rng: np.random.Generator, row: list[str], segment: int) -> list[str]:
    """A second row for the same id: same gender, fresh values from the same segment."""
    spec = SEGMENTS[segment]
    while True:
        age = int(np.clip(np.rint(rng.normal(*spec.age)), *AGE_RANGE))
        income = int(max(np.rint(rng.normal(*spec.income)), MIN_INCOME))
        score = int(np.clip(np.rint(rng.normal(*spec.score)), *SCORE_RANGE))
        other = [row[0], row[1], str(age), str(income), str(score)]
        if other != row:
            return other


def _insert_at_random(
    rng: np.random.Generator, rows: list[list[str]], extra: list[list[str]]
) -> list[list[str]]:
    """Put each extra row before a random base row (or at the end); base order is kept."""
    positions = rng.integers(0, len(rows) + 1, size=len(extra))
    keys = np.concatenate([np.arange(len(rows)), positions])
    before = np.concatenate([np.ones(len(rows), dtype=int), np.zeros(len(extra), dtype=int)])
    order = np.lexsort((before, keys))  # by position, extras just before the base row there
    combined = rows + extra
    return [combined[i] for i in order]
