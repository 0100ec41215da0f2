"""Seeded customer tables of other shapes than the Mall file, with known planted segments.

Three generators, modelled on public customer tables, for end-to-end tests of a general
segmentation tool; each returns a ``PlantedTable`` (the frame as it would be written, the planted
group 1..G of every row, the id column, the group names and the field separator):

- ``wide_behaviour_table``: a credit-card usage table (``CUST_ID`` like ``C10001`` and 14
  behaviour columns), 4 planted groups, right-skewed money columns, missing ``MINIMUM_PAYMENTS``
  (about 3 % of rows) and ``CREDIT_LIMIT`` (about 0.5 %), a few customers with 20 times the
  spend; comma separated.
- ``mixed_marketing_table``: a marketing campaign table (integer ``ID``, birth year, education and
  marital status as text, income with about 1 % missing, spend per category, purchase counts,
  0/1 campaign flags), 3 planted groups; tab separated.
- ``wholesale_like_table``: a wholesale customers table without an id column (``Channel``,
  ``Region`` and six annual spend columns), 3 planted groups; comma separated.

The groups are separated in the log of the money columns (and in income), so that ``log1p`` of
the non-negative money and count columns, standard scaling and K-Means with the planted number of
groups recover them (adjusted Rand index above 0.9 on the complete rows). Group sizes are the
planted shares exactly (largest remainder), rows are in random order, and all randomness comes
from ``numpy.random.default_rng(seed)``: the same arguments give the same frame.

The generators are pure (numpy/pandas only); ``write_planted_table`` is the only function that
touches the disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class PlantedTable:
    """A generated table, its planted group per row (1..G) and how it is written."""

    frame: pd.DataFrame
    labels: np.ndarray
    id_column: str | None
    group_names: tuple[str, ...]
    sep: str


# --- wide credit-card behaviour table ------------------------------------------------------------

WIDE_ID = "CUST_ID"
WIDE_MONEY_COLUMNS = (
    "BALANCE",
    "PURCHASES",
    "ONEOFF_PURCHASES",
    "INSTALLMENTS_PURCHASES",
    "CASH_ADVANCE",
    "CREDIT_LIMIT",
    "PAYMENTS",
    "MINIMUM_PAYMENTS",
)
WIDE_COUNT_COLUMNS = ("CASH_ADVANCE_TRX", "PURCHASES_TRX")
WIDE_FRACTION_COLUMNS = (
    "BALANCE_FREQUENCY",
    "PURCHASES_FREQUENCY",
    "PRC_FULL_PAYMENT",
)
WIDE_COLUMNS = (
    WIDE_ID,
    "BALANCE",
    "BALANCE_FREQUENCY",
    "PURCHASES",
    "ONEOFF_PURCHASES",
    "INSTALLMENTS_PURCHASES",
    "CASH_ADVANCE",
    "PURCHASES_FREQUENCY",
    "CASH_ADVANCE_TRX",
    "PURCHASES_TRX",
    "CREDIT_LIMIT",
    "PAYMENTS",
    "MINIMUM_PAYMENTS",
    "PRC_FULL_PAYMENT",
    "TENURE",
)
WIDE_MISSING_SHARES = {"MINIMUM_PAYMENTS": 0.03, "CREDIT_LIMIT": 0.005}
WIDE_EXTREME_SHARE = 0.003  # customers with 20 times the spend and payments
WIDE_EXTREME_FACTOR = 20.0
TENURE_RANGE = (6, 12)
_FULL_TENURE_SHARE = 0.85


@dataclass(frozen=True)
class _CardGroup:
    """One planted card-usage group: log-normal (median, sigma[, zero share]) per money column."""

    name: str
    share: float
    balance: tuple[float, float]
    oneoff: tuple[float, float, float]
    installments: tuple[float, float, float]
    cash_advance: tuple[float, float, float]
    credit_limit: tuple[float, float]
    payments: tuple[float, float]
    minimum_payments: tuple[float, float]
    purchases_trx: float  # mean transactions when the customer buys at all
    cash_advance_trx: float  # mean cash advances when the customer takes any
    balance_frequency: tuple[float, float]  # beta(a, b)
    purchase_months: float  # monthly chance of a purchase, when the customer buys at all
    full_payment: tuple[float, float, float]  # share never paying in full, beta(a, b) otherwise


# Planted group numbers are 1-based positions in this tuple.
CARD_GROUPS: tuple[_CardGroup, ...] = (
    _CardGroup(
        "big spenders",
        0.20,
        balance=(1800, 0.5),
        oneoff=(2600, 0.5, 0.0),
        installments=(700, 0.6, 0.05),
        cash_advance=(300, 0.8, 0.85),
        credit_limit=(9000, 0.3),
        payments=(3800, 0.45),
        minimum_payments=(550, 0.5),
        purchases_trx=45,
        cash_advance_trx=2,
        balance_frequency=(12, 1),
        purchase_months=0.92,
        full_payment=(0.3, 3, 3),
    ),
    _CardGroup(
        "cash-advance users",
        0.25,
        balance=(3800, 0.45),
        oneoff=(150, 0.9, 0.6),
        installments=(100, 0.9, 0.65),
        cash_advance=(2800, 0.5, 0.0),
        credit_limit=(5000, 0.35),
        payments=(2400, 0.5),
        minimum_payments=(1300, 0.45),
        purchases_trx=3,
        cash_advance_trx=10,
        balance_frequency=(15, 1),
        purchase_months=0.15,
        full_payment=(0.9, 1, 6),
    ),
    _CardGroup(
        "low-activity revolvers",
        0.35,
        balance=(900, 0.55),
        oneoff=(150, 0.7, 0.15),
        installments=(100, 0.7, 0.2),
        cash_advance=(200, 0.9, 0.85),
        credit_limit=(2200, 0.35),
        payments=(600, 0.55),
        minimum_payments=(350, 0.5),
        purchases_trx=4,
        cash_advance_trx=1.5,
        balance_frequency=(5, 2),
        purchase_months=0.25,
        full_payment=(0.8, 1, 4),
    ),
    _CardGroup(
        "instalment buyers",
        0.20,
        balance=(450, 0.6),
        oneoff=(40, 1.0, 0.75),
        installments=(1300, 0.5, 0.0),
        cash_advance=(150, 0.9, 0.9),
        credit_limit=(3500, 0.35),
        payments=(1200, 0.5),
        minimum_payments=(200, 0.5),
        purchases_trx=25,
        cash_advance_trx=1,
        balance_frequency=(6, 2),
        purchase_months=0.85,
        full_payment=(0.4, 2, 3),
    ),
)


# --- mixed marketing campaign table --------------------------------------------------------------

MIXED_ID = "ID"
MIXED_SPEND_COLUMNS = (
    "MntWines",
    "MntFruits",
    "MntMeatProducts",
    "MntFishProducts",
    "MntSweetProducts",
    "MntGoldProds",
)
MIXED_COUNT_COLUMNS = (
    "NumWebPurchases",
    "NumCatalogPurchases",
    "NumStorePurchases",
    "NumWebVisitsMonth",
)
MIXED_FLAG_COLUMNS = ("AcceptedCmp1", "AcceptedCmp2", "Response")
MIXED_CATEGORY_COLUMNS = ("Education", "Marital_Status")
EDUCATION_LEVELS = ("Basic", "Graduation", "Master", "PhD", "2n Cycle")
MARITAL_STATUSES = ("Single", "Married", "Together", "Divorced", "Widow")
MIXED_COLUMNS = (
    MIXED_ID,
    "Year_Birth",
    "Education",
    "Marital_Status",
    "Income",
    "Kidhome",
    "Recency",
    *MIXED_SPEND_COLUMNS,
    *MIXED_COUNT_COLUMNS,
    *MIXED_FLAG_COLUMNS,
)
MIXED_MISSING_SHARES = {"Income": 0.01}
YEAR_BIRTH_RANGE = (1940, 2002)
RECENCY_RANGE = (0, 99)
KIDHOME_RANGE = (0, 2)
MIN_INCOME = 2000
MAX_WEB_VISITS = 20
_SPEND_SIGMA = 0.45
_COUNT_SIGMA = 0.2


@dataclass(frozen=True)
class _ShopperGroup:
    """One planted marketing group: income, household, spend, counts and text/flag mixes."""

    name: str
    share: float
    income: tuple[float, float]  # mean, sd ($)
    year_birth: tuple[float, float]  # mean, sd
    kidhome: tuple[float, float, float]  # P(0), P(1), P(2)
    spend: tuple[float, ...]  # median per MIXED_SPEND_COLUMNS ($ over two years)
    counts: tuple[float, ...]  # mean per MIXED_COUNT_COLUMNS
    education: tuple[float, ...]  # P per EDUCATION_LEVELS
    marital: tuple[float, ...]  # P per MARITAL_STATUSES
    flags: tuple[float, ...]  # P(1) per MIXED_FLAG_COLUMNS


SHOPPER_GROUPS: tuple[_ShopperGroup, ...] = (
    _ShopperGroup(
        "affluent high spenders",
        0.30,
        income=(76000, 8000),
        year_birth=(1963, 10),
        kidhome=(0.92, 0.08, 0.0),
        spend=(650, 60, 420, 85, 60, 70),
        counts=(5.5, 6.0, 9.0, 2.5),
        education=(0.0, 0.40, 0.22, 0.30, 0.08),
        marital=(0.20, 0.40, 0.25, 0.10, 0.05),
        flags=(0.22, 0.05, 0.30),
    ),
    _ShopperGroup(
        "budget families",
        0.40,
        income=(31000, 7000),
        year_birth=(1978, 9),
        kidhome=(0.15, 0.65, 0.20),
        spend=(20, 3, 15, 4, 3, 10),
        counts=(2.0, 0.5, 3.0, 7.0),
        education=(0.07, 0.55, 0.12, 0.12, 0.14),
        marital=(0.22, 0.40, 0.27, 0.09, 0.02),
        flags=(0.0, 0.0, 0.09),
    ),
    _ShopperGroup(
        "mid-range web shoppers",
        0.30,
        income=(54000, 6500),
        year_birth=(1970, 11),
        kidhome=(0.60, 0.37, 0.03),
        spend=(280, 20, 95, 25, 20, 45),
        counts=(7.0, 2.0, 6.0, 5.0),
        education=(0.01, 0.50, 0.16, 0.22, 0.11),
        marital=(0.21, 0.38, 0.26, 0.11, 0.04),
        flags=(0.03, 0.01, 0.14),
    ),
)


# --- wholesale customers table -------------------------------------------------------------------

WHOLESALE_SPEND_COLUMNS = (
    "Fresh",
    "Milk",
    "Grocery",
    "Frozen",
    "Detergents_Paper",
    "Delicassen",
)
WHOLESALE_COLUMNS = ("Channel", "Region", *WHOLESALE_SPEND_COLUMNS)
_WHOLESALE_SIGMA = 0.6
_REGION_MIX = (0.18, 0.11, 0.71)  # Lisbon, Oporto, other


@dataclass(frozen=True)
class _TradeGroup:
    """One planted wholesale group: chance of Channel 1 (Horeca) and median annual spend."""

    name: str
    share: float
    horeca: float
    spend: tuple[float, ...]  # median per WHOLESALE_SPEND_COLUMNS (monetary units a year)


TRADE_GROUPS: tuple[_TradeGroup, ...] = (
    _TradeGroup("hotel/restaurant/cafe", 0.35, 0.92, (20000, 2500, 2800, 5000, 350, 1500)),
    _TradeGroup("retail", 0.30, 0.08, (5000, 10000, 16000, 1200, 7000, 1500)),
    _TradeGroup("small shops", 0.35, 0.70, (3000, 1000, 1300, 450, 200, 300)),
)


# --- public functions ----------------------------------------------------------------------------


def wide_behaviour_table(n: int = 3000, seed: int = 7) -> PlantedTable:
    """Generate ``n`` credit-card customers in 4 planted behaviour groups (comma separated)."""
    _check_size(n)
    rng = np.random.default_rng(seed)
    group = rng.permutation(_group_sizes([g.share for g in CARD_GROUPS], n))

    def param(field: str, index: int | None = None) -> np.ndarray:
        values = np.array([getattr(g, field) for g in CARD_GROUPS], dtype=float)
        return values[group] if index is None else values[group, index]

    tenure = np.where(
        rng.random(n) < _FULL_TENURE_SHARE,
        TENURE_RANGE[1],
        rng.integers(TENURE_RANGE[0], TENURE_RANGE[1], size=n),
    )
    balance = _lognormal(rng, param("balance", 0), param("balance", 1))
    oneoff = _lognormal_or_zero(rng, *(param("oneoff", i) for i in range(3)))
    installments = _lognormal_or_zero(rng, *(param("installments", i) for i in range(3)))
    cash = _lognormal_or_zero(rng, *(param("cash_advance", i) for i in range(3)))
    credit_limit = np.maximum(
        np.rint(_lognormal(rng, param("credit_limit", 0), param("credit_limit", 1)) / 50) * 50,
        300,
    )
    payments = _lognormal(rng, param("payments", 0), param("payments", 1))
    minimum_payments = _lognormal(rng, param("minimum_payments", 0), param("minimum_payments", 1))

    extreme = rng.choice(n, size=_count(n, WIDE_EXTREME_SHARE), replace=False)
    for values in (oneoff, installments, payments):
        values[extreme] *= WIDE_EXTREME_FACTOR
    oneoff, installments, cash = (np.round(v, 2) for v in (oneoff, installments, cash))
    purchases = np.round(oneoff + installments, 2)

    buys = purchases > 0
    purchases_trx = np.where(buys, 1 + rng.poisson(_noisy(rng, param("purchases_trx") - 1)), 0)
    purchases_trx[extreme] *= 3
    advances = cash > 0
    cash_trx = np.where(advances, 1 + rng.poisson(_noisy(rng, param("cash_advance_trx") - 1)), 0)

    purchase_months = _active_months(rng, tenure, param("purchase_months"), buys)
    balance_frequency = rng.beta(param("balance_frequency", 0), param("balance_frequency", 1))
    balance_frequency = np.round(np.rint(balance_frequency * tenure) / tenure, 6)
    full = rng.random(n) >= param("full_payment", 0)
    paid_in_full = np.where(full, rng.beta(param("full_payment", 1), param("full_payment", 2)), 0.0)

    frame = pd.DataFrame(
        {
            WIDE_ID: pd.Series([f"C{10000 + i}" for i in range(1, n + 1)], dtype="str"),
            "BALANCE": np.round(balance, 2),
            "BALANCE_FREQUENCY": balance_frequency,
            "PURCHASES": purchases,
            "ONEOFF_PURCHASES": oneoff,
            "INSTALLMENTS_PURCHASES": installments,
            "CASH_ADVANCE": cash,
            "PURCHASES_FREQUENCY": _fraction(purchase_months, tenure),
            "CASH_ADVANCE_TRX": cash_trx.astype("int64"),
            "PURCHASES_TRX": purchases_trx.astype("int64"),
            "CREDIT_LIMIT": credit_limit,
            "PAYMENTS": np.round(payments, 2),
            "MINIMUM_PAYMENTS": np.round(minimum_payments, 2),
            "PRC_FULL_PAYMENT": np.round(paid_in_full, 6),
            "TENURE": tenure.astype("int64"),
        }
    )
    _blank_out(rng, frame, WIDE_MISSING_SHARES)
    return _planted(frame, group, WIDE_ID, CARD_GROUPS, ",", seed)


def mixed_marketing_table(n: int = 2000, seed: int = 11) -> PlantedTable:
    """Generate ``n`` marketing-campaign customers in 3 planted groups (tab separated)."""
    _check_size(n)
    rng = np.random.default_rng(seed)
    group = rng.permutation(_group_sizes([g.share for g in SHOPPER_GROUPS], n))

    def param(field: str) -> np.ndarray:
        return np.array([getattr(g, field) for g in SHOPPER_GROUPS], dtype=float)[group]

    ids = rng.choice(max(11200, 5 * n), size=n, replace=False)
    income = param("income")
    year_birth = param("year_birth")
    columns: dict[str, np.ndarray | pd.Series] = {
        MIXED_ID: ids.astype("int64"),
        "Year_Birth": np.clip(
            np.rint(rng.normal(year_birth[:, 0], year_birth[:, 1])), *YEAR_BIRTH_RANGE
        ).astype("int64"),
        "Education": pd.Series(
            np.asarray(EDUCATION_LEVELS)[_categorical(rng, param("education"))], dtype="str"
        ),
        "Marital_Status": pd.Series(
            np.asarray(MARITAL_STATUSES)[_categorical(rng, param("marital"))], dtype="str"
        ),
        "Income": np.maximum(np.rint(rng.normal(income[:, 0], income[:, 1])), MIN_INCOME),
        "Kidhome": _categorical(rng, param("kidhome")).astype("int64"),
        "Recency": rng.integers(RECENCY_RANGE[0], RECENCY_RANGE[1] + 1, size=n),
    }
    spend = param("spend")
    for i, name in enumerate(MIXED_SPEND_COLUMNS):
        columns[name] = np.rint(_lognormal(rng, spend[:, i], _SPEND_SIGMA)).astype("int64")
    counts = param("counts")
    for i, name in enumerate(MIXED_COUNT_COLUMNS):
        columns[name] = rng.poisson(_noisy(rng, counts[:, i], _COUNT_SIGMA)).astype("int64")
    columns["NumWebVisitsMonth"] = np.minimum(columns["NumWebVisitsMonth"], MAX_WEB_VISITS)
    flags = param("flags")
    for i, name in enumerate(MIXED_FLAG_COLUMNS):
        columns[name] = (rng.random(n) < flags[:, i]).astype("int64")

    frame = pd.DataFrame(columns)
    _blank_out(rng, frame, MIXED_MISSING_SHARES)
    return _planted(frame, group, MIXED_ID, SHOPPER_GROUPS, "\t", seed)


def wholesale_like_table(n: int = 440, seed: int = 3) -> PlantedTable:
    """Generate ``n`` wholesale customers (no id column) in 3 planted groups (comma separated)."""
    _check_size(n)
    rng = np.random.default_rng(seed)
    group = rng.permutation(_group_sizes([g.share for g in TRADE_GROUPS], n))
    horeca = np.array([g.horeca for g in TRADE_GROUPS])[group]
    spend = np.array([g.spend for g in TRADE_GROUPS], dtype=float)[group]
    columns: dict[str, np.ndarray] = {
        "Channel": np.where(rng.random(n) < horeca, 1, 2).astype("int64"),
        "Region": (1 + rng.choice(3, size=n, p=_REGION_MIX)).astype("int64"),
    }
    for i, name in enumerate(WHOLESALE_SPEND_COLUMNS):
        values = np.rint(_lognormal(rng, spend[:, i], _WHOLESALE_SIGMA))
        columns[name] = np.maximum(values, 3).astype("int64")
    return _planted(pd.DataFrame(columns), group, None, TRADE_GROUPS, ",", seed)


def write_planted_table(table: PlantedTable, path: str | Path) -> Path:
    """Write ``table.frame`` as Parquet (``.parquet`` path) or text with ``table.sep``; return it.

    Text files are UTF-8 with LF line ends and a header line; a missing value is an empty field,
    and a float column holding only whole numbers (and missing values) is written as integers
    (``1500``, not ``1500.0``). Parquet gets the same nullable integer columns.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = _integer_columns(table.frame)
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, sep=table.sep, index=False, na_rep="", lineterminator="\n")
    logger.info("wrote %d rows x %d columns to %s", len(frame), frame.shape[1], path)
    return path


# --- helpers -------------------------------------------------------------------------------------


def _check_size(n: int) -> None:
    """Reject a table too small to hold every planted group."""
    if n < 20:
        raise ValueError(f"n={n} should be at least 20.")


def _count(n: int, share: float) -> int:
    """``share`` of ``n``, rounded to a whole number of rows."""
    return round(n * share)


def _group_sizes(shares: list[float], n: int) -> np.ndarray:
    """0-based group per row in exact shares (largest remainder), not yet shuffled."""
    exact = np.asarray(shares) * n
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[i] += 1
    return np.repeat(np.arange(len(shares)), sizes)


def _lognormal(
    rng: np.random.Generator, median: np.ndarray, sigma: np.ndarray | float
) -> np.ndarray:
    """Log-normal draws with the given medians and log-space spreads."""
    return rng.lognormal(np.log(median), sigma)


def _lognormal_or_zero(
    rng: np.random.Generator, median: np.ndarray, sigma: np.ndarray, zero_share: np.ndarray
) -> np.ndarray:
    """Log-normal draws, set to zero with the given chance (customers who never do this)."""
    values = _lognormal(rng, median, sigma)
    return np.where(rng.random(values.size) < zero_share, 0.0, values)


def _noisy(rng: np.random.Generator, mean: np.ndarray, sigma: float = 0.3) -> np.ndarray:
    """Per-customer Poisson rates: the group mean times a log-normal factor of median 1."""
    return np.maximum(mean, 0.0) * rng.lognormal(0.0, sigma, size=np.shape(mean))


def _active_months(
    rng: np.random.Generator, tenure: np.ndarray, chance: np.ndarray, active: np.ndarray
) -> np.ndarray:
    """Months with some activity: binomial over the tenure, at least 1 when active, else 0."""
    months = rng.binomial(tenure, chance)
    return np.where(active, np.maximum(months, 1), 0)


def _fraction(months: np.ndarray, tenure: np.ndarray) -> np.ndarray:
    """Share of the tenure months, rounded to 6 decimals as in the card-usage file."""
    return np.round(months / tenure, 6)


def _categorical(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One category index per row from that row's probabilities (rows sum to 1)."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0
    return (rng.random((len(probabilities), 1)) >= cumulative).sum(axis=1)


def _blank_out(rng: np.random.Generator, frame: pd.DataFrame, shares: dict[str, float]) -> None:
    """Set ``round(n * share)`` random cells of each named column to NaN, in place."""
    for column, share in shares.items():
        rows = rng.choice(len(frame), size=_count(len(frame), share), replace=False)
        frame[column] = frame[column].astype("float64")
        frame.loc[rows, column] = np.nan


def _planted(
    frame: pd.DataFrame,
    group: np.ndarray,
    id_column: str | None,
    groups: tuple,
    sep: str,
    seed: int,
) -> PlantedTable:
    """Wrap a generated frame and its 0-based groups as a ``PlantedTable`` (labels 1..G)."""
    labels = (group + 1).astype("int64")
    labels.flags.writeable = False
    names = tuple(g.name for g in groups)
    logger.info(
        "generated %d rows x %d columns in %d planted groups (seed %d): %s",
        len(frame),
        frame.shape[1],
        len(names),
        seed,
        dict(zip(names, np.bincount(labels, minlength=len(names) + 1)[1:].tolist(), strict=True)),
    )
    return PlantedTable(frame=frame, labels=labels, id_column=id_column, group_names=names, sep=sep)


def _integer_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with float columns of whole numbers (and NaN) as nullable ``Int64``."""
    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_float_dtype(values):
            continue
        present = values.dropna()
        if len(present) and np.all(np.mod(present.to_numpy(), 1) == 0):
            frame[column] = values.astype("Int64")
    return frame
