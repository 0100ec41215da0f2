"""Which columns of an order-line file are the customer id, invoice, date, quantity, unit
price or amount (found by their common spellings, or named with ``--column``), and whether a
file read as a customer table is order lines after all. No file reading here: ``tasks.ingest``
asks it about a file's first rows without an import cycle."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from schemas.columns import CUSTOMER_ID, SOURCE_ROW
from tasks.errors import ColumnMappingError, InputError
from tasks.table import normalise

# Accepted headers per order-line field, compared without case and punctuation; the first
# spelling found wins. ``--column FIELD=HEADER`` names one explicitly.
ORDER_SPELLINGS: dict[str, tuple[str, ...]] = {
    CUSTOMER_ID: (
        "CustomerID", "Customer ID", "customer_id", "Customer", "Cust ID", "CUST_ID",
        "Client ID", "ClientID", "Client", "Customer Number", "Customer No", "Account ID",
        "Member ID", "User ID",
    ),
    "invoice": (
        "InvoiceNo", "Invoice", "Invoice No", "Invoice Number", "Invoice ID", "order_id",
        "Order ID", "Order No", "Order Number", "Order", "Transaction ID", "Transaction",
        "Receipt", "Receipt No", "Bill No",
    ),
    "date": (
        "InvoiceDate", "Invoice Date", "order_date", "Order Date", "Order Datetime",
        "Transaction Date", "Purchase Date", "Date", "Datetime", "Timestamp", "Created At",
    ),
    "quantity": ("Quantity", "Qty", "Units", "Quantity Ordered", "Items"),
    "price": ("UnitPrice", "Unit Price", "Price", "Price Each", "Unit Cost"),
    "amount": (
        "Amount", "Line Total", "Total", "Total Price", "Revenue", "Sales", "Sales Amount",
        "Order Value", "Value", "Spend",
    ),
}  # fmt: skip
FIELDS = tuple(ORDER_SPELLINGS)


@dataclass(frozen=True)
class OrderColumns:
    """The headers of the order-line fields in the file (None: not in the file)."""

    customer_id: str
    invoice: str
    date: str
    quantity: str | None = None
    price: str | None = None
    amount: str | None = None
    profile: tuple[str, ...] = ()

    @property
    def used(self) -> dict[str, str]:
        """Field -> header of every field read (profile columns not included)."""
        return {f: getattr(self, f) for f in FIELDS if getattr(self, f) is not None}

    @property
    def by_amount(self) -> bool:
        """Line values from an amount column (no quantity x unit price)."""
        return self.quantity is None or self.price is None


def find_order_columns(
    header: Sequence[str],
    mapping: Mapping[str, str] | None = None,
    profile: Sequence[str] = (),
    advice: str = "name them with --column NAME=HEADER",
) -> OrderColumns:
    """The order-line columns of a file with ``header``: ``mapping`` (field -> header, from
    ``--column``) first, else the first spelling of ``ORDER_SPELLINGS`` found. Needs a customer
    id, an invoice and a date, and quantity with unit price or an amount; raises
    ``ColumnMappingError`` for an unknown field name, ``InputError`` for a missing column
    (ending with ``advice``: what to do)."""
    header = list(header)
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - set(FIELDS))
    if unknown:
        raise ColumnMappingError(
            f"unknown order-line field(s) in the mapping: {unknown} (--column NAME=HEADER "
            f"takes one of: {', '.join(FIELDS)})"
        )
    absent = {name: h for name, h in mapping.items() if h not in header}
    if absent:
        raise InputError(f"mapped header(s) not in the file: {absent}; {_found(header)}")
    found: dict[str, str] = {}  # field -> header, for the fields in the file
    for name in FIELDS:
        if chosen := mapping.get(name) or _first_spelling(ORDER_SPELLINGS[name], header):
            found[name] = chosen
    if "quantity" in found and "price" in found and "amount" not in mapping:
        found.pop("amount", None)  # quantity x unit price wins over a total column
    required = [CUSTOMER_ID, "invoice", "date"]
    if "amount" not in found:
        required += ["quantity", "price"]
    missing = [name for name in required if name not in found]
    if missing:
        wanted = "; ".join(
            f"{name} (accepted: {', '.join(ORDER_SPELLINGS[name][:4])} ...)" for name in missing
        )
        also = " (or one amount column instead of quantity and price)" if "price" in missing else ""
        raise InputError(f"order lines need column(s) {wanted}{also}; {_found(header)}; {advice}")
    used = set(found.values())
    repeated = sorted(h for h, times in Counter(found.values()).items() if times > 1)
    if repeated:
        raise InputError(f"column(s) {repeated} matched two order-line fields; use --column")
    for name in profile:
        if name not in header:
            raise InputError(f"profile column {name!r} is not in the file; {_found(header)}")
        if name in used:
            raise InputError(f"column {name!r} is an order-line field, not a profile column")
    return OrderColumns(**found, profile=tuple(profile))


REPEATED_IDS = 0.8  # ids per row below this in a sample: several rows per customer


def order_lines_hint(sample: pd.DataFrame) -> str | None:
    """When a file read as a customer table (``sample``: its first rows, as text) is order
    lines (an id, invoice and date column, quantity and price or an amount, and the ids
    repeated: several rows per customer), what to say: add ``--transactions``; else None."""
    header = [h for h in sample.columns if h != SOURCE_ROW]
    try:
        columns = find_order_columns(header)
    except InputError:
        return None
    ids = sample[columns.customer_id].dropna()
    distinct = ids.nunique()
    if len(ids) < 2 or distinct >= REPEATED_IDS * len(ids):
        return None
    return (
        f"looks like order lines, not one row per customer: {len(ids):,} rows of the first "
        f"{len(sample):,} hold only {distinct:,} distinct {columns.customer_id!r} values, with "
        f"order columns {', '.join(repr(h) for h in columns.used.values())}; add "
        "--transactions to derive one row per customer (recency, frequency, monetary value), or "
        "give --features (or --spec) to segment the rows as they are"
    )


def _first_spelling(spellings: Sequence[str], header: Sequence[str]) -> str | None:
    by_form: dict[str, str] = {}
    for h in header:
        by_form.setdefault(normalise(h), h)  # the first header of each form
    return next((by_form[form] for form in map(normalise, spellings) if form in by_form), None)


def _found(header: Sequence[str]) -> str:
    return f"headers found: {', '.join(header)}"


def columns_line(columns: OrderColumns) -> str:
    """One log line: which header plays which order-line field."""
    parts = [f"{name}={header!r}" for name, header in columns.used.items()]
    value = "amount" if columns.by_amount else "quantity x unit price"
    extra = f"; profile: {', '.join(columns.profile)}" if columns.profile else ""
    return f"Order lines: {', '.join(parts)}; line value = {value}{extra}"
