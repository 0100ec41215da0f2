"""Seeded order lines (UCI Online Retail's columns) with planted behaviour groups.

``order_lines`` draws customers from four groups that differ in recency and frequency (and so
in spend): recent frequent big spenders, recent one-off newcomers, lapsed regulars and lapsed
one-off buyers, in the log space where the RFM clustering looks. Then it adds the dirt real
order files have: lines with no customer id, cancellations (``C`` invoices, negative quantity),
lines with a zero price, exact duplicate lines and a few unparseable quantities. Every draw
comes from ``numpy.random.default_rng(seed)``; no Python loop over lines (10M lines for the
benchmark take seconds). Pure: ``write_order_lines`` is the only function that touches disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

HEADER = (
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
    "CustomerID", "Country",
)  # fmt: skip
# name, recency days (low, high), invoices (low, high), lines per invoice, quantity, unit price
GROUPS = (
    ("recent, frequent, high spend", (1, 20), (12, 30), (3, 8), (4, 12), (2.0, 9.0)),
    ("recent, one-off, low spend", (1, 20), (1, 1), (1, 3), (1, 3), (0.5, 3.0)),
    ("lapsed, frequent, high spend", (180, 330), (12, 30), (3, 8), (4, 12), (2.0, 9.0)),
    ("lapsed, one-off, low spend", (180, 330), (1, 1), (1, 3), (1, 3), (0.5, 3.0)),
)
COUNTRIES = np.array(["United Kingdom", "Germany", "France", "EIRE", "Spain"])


@dataclass(frozen=True, eq=False)
class PlantedOrders:
    """Order lines as written (text and numbers), and the planted group of each customer."""

    lines: pd.DataFrame
    groups: pd.Series  # customer id (text) -> group 1..4
    snapshot: date  # the day after the latest purchase


def order_lines(
    customers: int = 2000,
    seed: int = 20261129,
    *,
    last_day: date = date(2026, 11, 28),
    dirt: bool = True,
) -> PlantedOrders:
    """About 25 lines per customer (frequent groups many more, one-off groups a few)."""
    rng = np.random.default_rng(seed)
    group = np.sort(np.arange(customers) % len(GROUPS))
    ids = 10_000 + rng.permutation(customers)
    spec = [GROUPS[g] for g in group]

    def draw(index: int, integer: bool) -> np.ndarray:
        low = np.array([s[index][0] for s in spec], dtype="float64")
        high = np.array([s[index][1] for s in spec], dtype="float64")
        if integer:
            return rng.integers(low.astype(int), high.astype(int) + 1)
        return np.round(rng.uniform(low, high), 2)

    recency = draw(1, True)
    invoices = draw(2, True)
    recency[0] = 1  # one purchase on the last day: the snapshot is the day after it
    # invoice dates: the last one at the customer's recency, earlier ones up to a year before
    customer_of_invoice = np.repeat(np.arange(customers), invoices)
    first_of_customer = np.concatenate([[0], np.cumsum(invoices)[:-1]])
    is_last = np.zeros(len(customer_of_invoice), dtype=bool)
    is_last[first_of_customer] = True
    back = recency[customer_of_invoice] + np.where(
        is_last, 0, rng.integers(1, 300, len(customer_of_invoice))
    )
    minutes = rng.integers(8 * 60, 18 * 60, len(customer_of_invoice))
    when = (
        pd.Timestamp(last_day)
        + pd.Timedelta(days=1)
        - pd.to_timedelta(back, unit="D")
        + pd.to_timedelta(minutes, unit="min")
    )
    invoice_no = 500_000 + np.arange(len(customer_of_invoice))

    lines_per = np.array([spec[c][3] for c in customer_of_invoice])
    count = rng.integers(lines_per[:, 0], lines_per[:, 1] + 1)
    invoice_of_line = np.repeat(np.arange(len(customer_of_invoice)), count)
    customer_of_line = customer_of_invoice[invoice_of_line]
    quantity = draw_per_line(rng, spec, customer_of_line, 4, integer=True)
    price = draw_per_line(rng, spec, customer_of_line, 5, integer=False)
    stock = rng.integers(20_000, 23_000, len(invoice_of_line))
    country = COUNTRIES[np.minimum(rng.geometric(0.6, customers) - 1, len(COUNTRIES) - 1)]
    frame = pd.DataFrame(
        {
            "InvoiceNo": invoice_no[invoice_of_line].astype(str),
            "StockCode": stock.astype(str),
            "Description": "ITEM " + pd.Series(stock.astype(str)),
            "Quantity": quantity.astype("int64"),
            "InvoiceDate": when[invoice_of_line].strftime("%Y-%m-%d %H:%M:%S"),
            "UnitPrice": price,
            "CustomerID": ids[customer_of_line].astype(str),
            "Country": country[customer_of_line],
        }
    )
    if dirt:
        frame = _add_dirt(frame, rng)
    groups = pd.Series(group + 1, index=ids.astype(str), name="group")
    return PlantedOrders(frame, groups, last_day + pd.Timedelta(days=1).to_pytimedelta())


def draw_per_line(rng, spec, customer_of_line, index: int, *, integer: bool) -> np.ndarray:
    bounds = np.array([spec[c][index] for c in range(len(spec))], dtype="float64")
    low, high = bounds[customer_of_line, 0], bounds[customer_of_line, 1]
    if integer:
        return rng.integers(low.astype(int), high.astype(int) + 1)
    return np.round(rng.uniform(low, high), 2)


def _add_dirt(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """No-id lines (10 %), cancellations (2 %), zero prices (0.5 %), exact duplicates (0.5 %),
    unparseable quantities (0.1 %): each drawn from lines of the clean frame."""
    n = len(frame)
    pick = rng.permutation(n)
    cuts = np.cumsum([int(n * s) for s in (0.02, 0.005, 0.001)])
    cancel, zero, bad = np.split(pick[: cuts[-1]], cuts[:-1])
    cancellations = frame.iloc[cancel].assign(
        InvoiceNo="C" + frame["InvoiceNo"].iloc[cancel], Quantity=-frame["Quantity"].iloc[cancel]
    )
    zeros = frame.iloc[zero].assign(UnitPrice=0.0, InvoiceNo="Z" + frame["InvoiceNo"].iloc[zero])
    text = frame.astype({"Quantity": "str"})
    broken = text.iloc[bad].assign(Quantity="twelve")
    no_id = frame.sample(frac=0.10, random_state=rng).assign(CustomerID=None)
    dirty = pd.concat(
        [text, cancellations, zeros, broken, no_id.astype({"Quantity": "str"})],
        ignore_index=True,
    ).astype({"Quantity": "str"})
    duplicates = dirty.sample(frac=0.005, random_state=rng)
    dirty = pd.concat([dirty, duplicates], ignore_index=True)
    return dirty.sample(frac=1.0, random_state=rng).reset_index(drop=True)


def write_order_lines(orders: PlantedOrders, path: str | Path) -> Path:
    """Write the lines as CSV (or Parquet for a ``.parquet`` path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        orders.lines.to_parquet(path, index=False)
    else:
        orders.lines.to_csv(path, index=False)
    return path
