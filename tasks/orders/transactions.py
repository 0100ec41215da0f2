"""Order lines -> one row per customer: recency, frequency and monetary value (RFM).

Pure functions, no I/O. ``find_order_columns`` finds the customer id, invoice, date, quantity
and unit price (or amount) headers by their common spellings or a ``--column`` mapping;
``derive_customers`` classifies every line (duplicate, quarantined with its reason, not a
purchase, or used), checks the line accounting and aggregates the used lines per customer with
vectorised group-bys (no Python loop over rows).

The rules (README "Order lines"):
- exact duplicate lines (every column equal to an earlier line) are dropped and counted;
- a line with no customer id is quarantined ("no customer id"), as is a line whose invoice is
  missing, or whose date, quantity or price (amount) is missing or cannot be parsed, or whose
  date falls on or after the snapshot date given with ``--as-of``;
- a cancellation (invoice starting with ``C``) or a line with quantity <= 0 or unit price <= 0
  (amount <= 0) is not a purchase: counted, left out of R, F and M; the value of a customer's
  cancellations is ``returned_value``;
- snapshot = ``as_of``, else the day after the latest purchase; recency_days = whole days from
  the last purchase's date to the snapshot; frequency = distinct invoices; monetary = sum of
  quantity x unit price (or amount) over the purchase lines.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as arrow
import pyarrow.compute as pc

from schemas.columns import CUSTOMER_ID, REASON, SOURCE_ROW
from tasks.errors import InputError
from tasks.orders.encoded_lines import EncodedColumn, EncodedLines, encode_frame
from tasks.orders.order_columns import OrderColumns

log = logging.getLogger(__name__)

NO_CUSTOMER_ID = "no customer id"

# The features derived per customer, R, F and M then the extras (the order of customers.parquet,
# after the customer id and the first and last purchase).
RFM = ("recency_days", "frequency", "monetary")
EXTRAS = ("tenure_days", "average_order_value", "returned_value")

_ISO = r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
_DMY = r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4}|\d{2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?"


# ---------------------------------------------------------------- dates


@dataclass(frozen=True)
class DateReading:
    """How the dates of order lines are read, decided once over all their distinct values
    (``decide_date_reading``): ``text`` as the manifest says it, and whether numeric dates are
    month-first. Given to ``parse_dates`` for lines that are a part of the whole (a bucket of a
    partitioned derivation), so that every part reads the dates as the whole would."""

    text: str
    month_first: bool = False


def parse_dates(
    column: EncodedColumn, date_format: str | None = None, reading: DateReading | None = None
) -> tuple[np.ndarray, str]:
    """The order dates of an encoded column, one per line as datetime64[ns], and how they were
    read: ISO (``2011-12-09 12:50:00``) and numeric day-first or month-first
    (``09/12/2011 12:50``, ``12/9/2011``), or exactly ``date_format`` (strftime codes) when given.

    Each distinct value is parsed once. When both the day-first and the month-first reading
    parse every numeric date and they disagree on one, raise ``InputError`` asking for
    ``--date-format`` (a wrong guess silently corrupts recency); so do dates of which some
    only parse day-first and others only month-first. Missing values and values that fit no
    form are NaT. With ``reading`` (decided over a larger whole), nothing is decided or
    refused here: the numeric dates are read in its order and it is the reading returned.
    """
    if pd.api.types.is_datetime64_any_dtype(column.values):
        parsed = column.values.astype("datetime64[ns]").to_numpy()
        text = "timestamps"
    else:
        distinct = pd.Series(pd.array(column.text_array, dtype="str"))
        if date_format is not None:
            parsed = pd.to_datetime(distinct, format=date_format, errors="coerce")
            text = f"--date-format {date_format}"
            if reading is None:
                _check_date_format(distinct, parsed, date_format)
        else:
            parsed, decided = _parse_forms(distinct, reading)
            text = decided.text
        parsed = parsed.astype("datetime64[ns]").to_numpy()
    parsed = np.append(parsed, np.datetime64("NaT", "ns"))  # a missing code (-1) is NaT
    return parsed[column.codes], (text if reading is None else reading.text)


def decide_date_reading(distinct: pd.Series, date_format: str | None = None) -> DateReading:
    """How ``parse_dates`` reads dates whose distinct texts (over all lines) are ``distinct``:
    the same decision and the same ``InputError`` as ``parse_dates`` on all the lines at once."""
    distinct = pd.Series(pd.array(distinct, dtype="str")).dropna().reset_index(drop=True)
    if date_format is not None:
        parsed = pd.to_datetime(distinct, format=date_format, errors="coerce")
        _check_date_format(distinct, parsed, date_format)
        return DateReading(f"--date-format {date_format}")
    return _parse_forms(distinct)[1]


def _check_date_format(distinct: pd.Series, parsed: pd.Series, date_format: str) -> None:
    if len(distinct) and parsed.isna().all():  # a wrong format, not bad lines
        raise InputError(
            f"no date matches --date-format {date_format} (e.g. {distinct.iloc[0]!r}): "
            "give the format the dates are written in, or leave --date-format out to "
            "read ISO and numeric dates"
        )


def _parse_forms(
    distinct: pd.Series, given: DateReading | None = None
) -> tuple[pd.Series, DateReading]:
    """Parse ISO and numeric dates; the numeric ones in the order ``given``, else in the order
    decided here (refusing ambiguous or mixed orders)."""
    parsed = pd.Series(pd.NaT, index=distinct.index, dtype="datetime64[ns]")
    forms = []
    iso = distinct.str.fullmatch(_ISO)
    if iso.any():
        # with a UTC offset: taken in UTC (times without one are kept as written)
        when = pd.to_datetime(distinct[iso], format="ISO8601", errors="coerce", utc=True)
        parsed[iso] = when.dt.tz_localize(None)
        forms.append("ISO")
    parts = distinct[~iso].str.extract(f"^{_DMY}$").astype("float64")
    parts = parts[parts[0].notna()]
    month_first_order = False
    if not parts.empty and given is not None:
        month_first_order = given.month_first
        day, month = (1, 0) if month_first_order else (0, 1)
        parsed[parts.index] = _from_parts(parts, day=day, month=month)
    elif not parts.empty:
        day_first = _from_parts(parts, day=0, month=1)
        month_first = _from_parts(parts, day=1, month=0)
        only_day = day_first.notna() & month_first.isna()
        only_month = month_first.notna() & day_first.isna()
        if only_day.any() and only_month.any():
            raise InputError(
                "dates in both day-first and month-first order (e.g. "
                f"{distinct[only_day.idxmax()]!r} and {distinct[only_month.idxmax()]!r}): give "
                "the format with --date-format, e.g. --date-format '%d/%m/%Y %H:%M'"
            )
        differ = day_first.notna() & month_first.notna() & (day_first != month_first)
        if not only_day.any() and not only_month.any() and differ.any():
            example = differ.idxmax()
            raise InputError(
                f"ambiguous dates: every date reads both day-first and month-first (e.g. "
                f"{distinct[example]!r} is {day_first[example]:%d %B %Y} day-first, "
                f"{month_first[example]:%d %B %Y} month-first); a wrong guess would corrupt "
                "recency: give the format with --date-format, e.g. --date-format "
                "'%d/%m/%Y %H:%M' (day first) or '%m/%d/%Y %H:%M' (month first)"
            )
        month_first_order = bool(only_month.any())
        chosen, form = (
            (month_first, "month-first") if month_first_order else (day_first, "day-first")
        )
        if not differ.any() and not only_day.any() and not only_month.any():
            form = "day-first or month-first (the same dates)"
        parsed[chosen.index] = chosen
        forms.append(form)
    reading = " and ".join(forms) or "no date recognised"
    return parsed, DateReading(given.text if given else reading, month_first_order)


def _from_parts(parts: pd.DataFrame, *, day: int, month: int) -> pd.Series:
    year = parts[2].where(parts[2] >= 100, parts[2] + 2000)
    frame = pd.DataFrame(
        {
            "year": year,
            "month": parts[month],
            "day": parts[day],
            "hour": parts[3].fillna(0),
            "minute": parts[4].fillna(0),
            "second": parts[5].fillna(0),
        }
    )
    valid = frame["month"].between(1, 12) & frame["day"].between(1, 31)
    valid &= frame["hour"].lt(24) & frame["minute"].lt(60) & frame["second"].lt(60)
    result = pd.Series(pd.NaT, index=parts.index, dtype="datetime64[ns]")
    if valid.any():
        result[valid] = pd.to_datetime(frame[valid], errors="coerce")
    return result


# ---------------------------------------------------------------- derivation


@dataclass(frozen=True)
class LineAccounting:
    """Every order line read is used, not a purchase, quarantined, or a duplicate."""

    lines_read: int
    lines_used: int
    lines_not_purchases: int
    lines_quarantined: int
    duplicates_dropped: int
    lines_without_customer_id: int
    cancellation_lines: int


@dataclass(frozen=True)
class Derivation:
    """The per-customer table, the quarantined lines, customers with no purchase line, the
    line accounting and the snapshot date."""

    customers: pd.DataFrame
    quarantine: pd.DataFrame
    without_purchases: pd.DataFrame
    accounting: LineAccounting
    snapshot: date
    date_reading: str
    columns: OrderColumns
    reasons: dict[str, int]
    quarantine_capped: bool = False  # only the first quarantined lines are in ``quarantine``
    derivation: str = "in memory"  # which derivation ran, for the manifest
    # Only for a part of the lines (``derive_customers(part=True)``), what a merge of parts
    # needs: the source_row of each customer's first valid line (customers, then those without
    # purchases) and every kind of quarantine reason in the order of the checks.
    first_rows: np.ndarray | None = field(default=None, compare=False, repr=False)
    without_first_rows: np.ndarray | None = field(default=None, compare=False, repr=False)
    reason_kinds: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def manifest_record(self) -> dict:
        """JSON-ready: accounting at line and customer level, rules' inputs, where from."""
        return {
            "lines": asdict(self.accounting),
            "customers": {
                "customers_with_lines": len(self.customers) + len(self.without_purchases),
                "customers": len(self.customers),
                "customers_without_purchases": len(self.without_purchases),
            },
            "without_purchases": self.without_purchases.head(100).to_dict("records"),
            "quarantine_reasons": self.reasons,
            "quarantine_lines_written": len(self.quarantine),
            "quarantine_capped": self.quarantine_capped,
            "derivation": self.derivation,
            "snapshot_date": self.snapshot.isoformat(),
            "date_reading": self.date_reading,
            "columns": {**self.columns.used, "profile": list(self.columns.profile)},
            "line_value": "amount" if self.columns.by_amount else "quantity x unit price",
        }


def derive_customers(
    lines: pd.DataFrame | EncodedLines,
    columns: OrderColumns,
    *,
    as_of: date | None = None,
    date_format: str | None = None,
    reading: DateReading | None = None,
    part: bool = False,
) -> Derivation:
    """One row per customer with a purchase line, from order lines as read by
    ``tasks.orders.encoded_lines.read_encoded_lines`` (or as ``tasks.ingest.read_file`` gives them:
    ``source_row`` then the file's columns, text or float64).

    Columns: ``customer_id`` (text), ``first_purchase``, ``last_purchase``, ``recency_days``,
    ``frequency``, ``monetary``, ``tenure_days``, ``average_order_value``, ``returned_value``,
    then the profile columns (each customer's most frequent value over its purchase lines).
    Raises ``InputError`` when no purchase line is left.

    ``part``: the lines are a part of the whole, holding every line of their customers (a
    bucket of ``tasks.orders.partitioned_lines``), with their dates read as ``reading`` (decided
    over the whole). Then no purchase line is not an error, the snapshot (without ``as_of``) is
    provisional and nothing is logged: ``merge_derivations`` decides these over all parts, and
    uses ``first_rows``, ``without_first_rows`` and ``reason_kinds``."""
    if isinstance(lines, pd.DataFrame):
        lines = encode_frame(lines)
    n = len(lines)
    # Each column is codes into its distinct values: the codes find the exact duplicates,
    # number the customers and invoices; values are parsed and printed once per distinct value.
    duplicate = _duplicates(lines)

    ids, invoices = lines[columns.customer_id], lines[columns.invoice]
    id_text = ids.text()
    no_id = ~ids.present
    starts_c = pc.starts_with(invoices.text_array, "C", ignore_case=True)
    cancellation = np.append(starts_c.to_numpy(zero_copy_only=False), False)[invoices.codes]
    try:
        when, date_reading = parse_dates(lines[columns.date], date_format, reading)
    except InputError as error:
        raise InputError(error.message, column=columns.date) from error
    present = {header: lines[header].present for header in columns.used.values()}
    masks = [
        no_id,
        ~invoices.present,
        ~present[columns.date],
        present[columns.date] & np.isnat(when),
    ]
    if columns.quantity is not None and columns.price is not None:  # not columns.by_amount
        quantity, price = _number(lines[columns.quantity]), _number(lines[columns.price])
        for header, parsed in ((columns.quantity, quantity), (columns.price, price)):
            masks += [~present[header], present[header] & np.isnan(parsed)]
        value = quantity * price
        positive = (quantity > 0) & (price > 0)
    elif columns.amount is not None:
        amount = _number(lines[columns.amount])
        masks += [~present[columns.amount], present[columns.amount] & np.isnan(amount)]
        value = amount
        positive = amount > 0
    else:  # find_order_columns never returns these
        raise ValueError(f"order columns without an amount or quantity and price: {columns}")
    if as_of is not None:
        masks.append(~np.isnat(when) & (when >= np.datetime64(as_of, "ns")))
    checks: list[Check] = list(zip(masks, check_messages(columns, as_of), strict=True))

    # Each line is exactly one of: duplicate, quarantined, not a purchase, used.
    bad = np.zeros(n, dtype=bool)
    for mask, _ in checks:
        bad |= mask
    quarantined = bad & ~duplicate
    valid = ~bad & ~duplicate
    not_purchase = valid & (cancellation | ~positive)
    used = valid & ~not_purchase

    quarantine = _quarantine(lines, columns, quarantined, checks)
    accounting = LineAccounting(
        lines_read=n,
        lines_used=int(used.sum()),
        lines_not_purchases=int(not_purchase.sum()),
        lines_quarantined=int(quarantined.sum()),
        duplicates_dropped=int(duplicate.sum()),
        lines_without_customer_id=int((no_id & ~duplicate).sum()),
        cancellation_lines=int((valid & cancellation).sum()),
    )
    reasons = _reason_counts(quarantined, checks)
    if not used.any() and not part:
        raise no_purchase_left(accounting, reasons)

    # Customers are numbered over every valid line (those with only cancellations included),
    # in the order of their first valid line.
    codes, first_codes = _number_by_first_line(ids.codes[valid], len(id_text))
    customer_ids = id_text[first_codes]
    k = len(customer_ids)
    used_v, cancel_v = used[valid], cancellation[valid]
    c_used = codes[used_v]
    days = when[used].view("int64")
    first = _group_reduce(np.minimum, c_used, days, k, np.iinfo("int64").max)
    last = _group_reduce(np.maximum, c_used, days, k, np.iinfo("int64").min)
    monetary = np.bincount(c_used, weights=value[used], minlength=k)
    frequency = _distinct_per_group(c_used, invoices.codes[used], k)
    returned = np.bincount(
        codes[cancel_v], weights=np.abs(value[valid & cancellation]), minlength=k
    )
    bought = np.bincount(c_used, minlength=k) > 0

    profile = {
        name: _most_frequent(lines[name], used, c_used, k)[bought] for name in columns.profile
    }
    customers = PerCustomer(
        ids=customer_ids,
        first=pd.to_datetime(first[bought]).as_unit("ns").to_numpy(),
        last=pd.to_datetime(last[bought]).as_unit("ns").to_numpy(),
        monetary=monetary,
        frequency=frequency,
        returned=returned,
        bought=bought,
        lines=np.bincount(codes, minlength=k),
        cancellations=np.bincount(codes[cancel_v], minlength=k),
        profile=profile,
    )
    derivation = finish_derivation(
        customers,
        quarantine,
        accounting,
        reasons,
        columns,
        as_of=as_of,
        date_reading=date_reading,
        quiet=part,
    )
    if not part:
        return derivation
    # codes are numbered in order of first line: their running maximum steps up there
    steps = np.flatnonzero(np.diff(np.maximum.accumulate(codes), prepend=-1) > 0)
    first_rows = lines.source_row[valid][steps]
    return replace(
        derivation,
        first_rows=first_rows[bought],
        without_first_rows=first_rows[~bought],
        reason_kinds=tuple(dict.fromkeys(_kind(message) for _, message in checks)),
    )


@dataclass(frozen=True)
class PerCustomer:
    """The aggregates of each customer with a valid line, in the order of its first valid
    line: its id (text), purchase line counts and sums; ``first`` and ``last`` (datetime64[ns])
    and ``profile`` (each column's most frequent value) only for those who ``bought``."""

    ids: np.ndarray
    first: np.ndarray
    last: np.ndarray
    monetary: np.ndarray
    frequency: np.ndarray
    returned: np.ndarray
    bought: np.ndarray
    lines: np.ndarray
    cancellations: np.ndarray
    profile: Mapping[str, object]


def finish_derivation(
    per: PerCustomer,
    quarantine: pd.DataFrame,
    accounting: LineAccounting,
    reasons: dict[str, int],
    columns: OrderColumns,
    *,
    as_of: date | None,
    date_reading: str,
    quiet: bool = False,
) -> Derivation:
    """The derivation from the per-customer aggregates: the snapshot date, R, F, M and the
    extras of the customers with a purchase line, and those without one with the reason
    (``quiet``: a part of the lines, not logged; with no purchase line its snapshot is a
    placeholder that the merge of the parts replaces)."""
    bought = per.bought
    first_ts, last_ts = pd.DatetimeIndex(per.first), pd.DatetimeIndex(per.last)
    if as_of is not None:
        snapshot_day = pd.Timestamp(as_of)
    elif len(last_ts):
        snapshot_day = last_ts.max().normalize() + pd.Timedelta(days=1)
    else:  # a part without a purchase line: its snapshot is decided by the merge
        snapshot_day = pd.Timestamp(0)
    monetary, frequency = per.monetary[bought].astype("float64"), per.frequency[bought]
    returned = per.returned.astype("float64")  # numpy's bincount of no line is int64
    customers = pd.DataFrame(
        {
            CUSTOMER_ID: pd.array(per.ids[bought], dtype="str"),
            "first_purchase": first_ts,
            "last_purchase": last_ts,
            "recency_days": (snapshot_day - last_ts.normalize()).days.astype("int64"),
            "frequency": frequency.astype("int64"),
            "monetary": monetary,
            "tenure_days": (snapshot_day - first_ts.normalize()).days.astype("int64"),
            "average_order_value": monetary / frequency,
            "returned_value": returned[bought],
        }
    )
    for name, values in per.profile.items():
        customers[name] = values
    none = ~bought
    only_cancel = per.cancellations[none] == per.lines[none]
    reason = np.where(
        only_cancel,
        "no purchase line: only cancellations",
        "no purchase line: only cancellations and lines with quantity or unit price <= 0",
    )
    without = pd.DataFrame(
        {
            CUSTOMER_ID: pd.array(per.ids[none], dtype="str"),
            "lines": per.lines[none].astype("int64"),
            "returned_value": returned[none],
            REASON: pd.array(reason, dtype="str"),
        }
    )
    if not quiet:
        log.info(
            "Order lines: %s; %s customers with purchases, %s with none (only cancellations or "
            "non-positive lines); snapshot date %s; dates read as %s",
            accounting_line(asdict(accounting)),
            f"{len(customers):,}",
            f"{len(without):,}",
            snapshot_day.date().isoformat(),
            date_reading,
        )
    return Derivation(
        customers=customers,
        quarantine=quarantine,
        without_purchases=without,
        accounting=accounting,
        snapshot=snapshot_day.date(),
        date_reading=date_reading,
        columns=columns,
        reasons=reasons,
    )


def no_purchase_left(accounting: LineAccounting, reasons: Mapping[str, int]) -> InputError:
    """The error of order lines with no purchase line left, with their accounting and the top
    reasons."""
    return InputError(
        "no purchase line left to segment: "
        + accounting_line(asdict(accounting))
        + (f"; quarantine reasons: {_top(reasons)}" if reasons else "")
    )


def accounting_line(lines: Mapping[str, int]) -> str:
    """``Lines: N read = used + not purchases + quarantined + duplicates`` in words."""
    return (
        f"{lines['lines_read']:,} read = {lines['lines_used']:,} used + "
        f"{lines['lines_not_purchases']:,} not purchases + {lines['lines_quarantined']:,} "
        f"quarantined + {lines['duplicates_dropped']:,} duplicates"
    )


def _duplicates(lines: EncodedLines) -> np.ndarray:
    """Lines equal in every column to an earlier line. A 64-bit hash of each line's codes
    finds the candidates (lines whose hash occurs more than once: every duplicate, and rarely
    a collision) with one sort; the exact comparison runs on the candidates only."""
    n = len(lines)
    mixed = np.zeros(n, dtype="uint64")
    with np.errstate(over="ignore"):
        for column in lines.columns.values():
            mixed = _mix(mixed ^ (column.codes + 1).astype("uint64"))
    ordered = np.sort(mixed)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    candidates = np.flatnonzero(pd.Series(mixed).isin(repeated).to_numpy())
    duplicate = np.zeros(n, dtype=bool)
    if len(candidates):
        codes = pd.DataFrame({i: c.codes[candidates] for i, c in enumerate(lines.columns.values())})
        duplicate[candidates] = codes.duplicated().to_numpy()
    return duplicate


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit changes about half of the output bits."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _distinct_per_group(groups: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """How many distinct ``values`` (codes >= 0) each of ``k`` groups has. Values seen in one
    group only (an invoice of one customer) are counted with a scatter; only values shared by
    several groups are paired and sorted."""
    if not len(values):
        return np.zeros(k, dtype="int64")
    owner = np.full(int(values.max()) + 1, -1, dtype="int64")
    owner[values] = groups  # one of the groups each value occurs in
    seen = owner >= 0
    shared = np.zeros(len(owner), dtype=bool)
    shared[values[owner[values] != groups]] = True  # a value in more than one group
    counts = np.bincount(owner[seen & ~shared], minlength=k)
    if shared.any():
        mine = shared[values]
        size = len(owner)
        pairs = np.unique(groups[mine].astype("int64") * size + values[mine])
        counts += np.bincount(pairs // size, minlength=k)
    return counts


def _number_by_first_line(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` of codes in 0..size-1 (none missing) by a scatter, not a hash table:
    (new codes numbered in the order of their first line, the old code of each new one)."""
    first = np.full(size, len(codes), dtype="int64")
    np.minimum.at(first, codes, np.arange(len(codes)))
    order = np.argsort(first, kind="stable")[: int((first < len(codes)).sum())]
    renumber = np.empty(size, dtype="int64")
    renumber[order] = np.arange(len(order))
    return renumber[codes], order


def _number(column: EncodedColumn) -> np.ndarray:
    """float64 per line; text that is not a number (or missing) is NaN. Each distinct value is
    parsed once: by Arrow's cast when every one is a clean number, else by ``pd.to_numeric``."""
    values = column.values
    if pd.api.types.is_numeric_dtype(values):
        parsed = values.to_numpy(dtype="float64", na_value=np.nan)
    else:
        try:
            parsed = pc.cast(arrow.array(values, from_pandas=True), arrow.float64()).to_numpy(
                zero_copy_only=False
            )
        except (arrow.ArrowInvalid, arrow.ArrowTypeError):  # some text that is not a number
            parsed = pd.to_numeric(values, errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan
            )
    return np.append(parsed.astype("float64", copy=False), np.nan)[column.codes]


# A check's reason: a text, or (header, problem) for a value shown as read (built only for the
# quarantined lines, not for every line); a check: the lines it fails, and its reason.
Reason = str | tuple[str, str]
Check = tuple[np.ndarray, Reason]


def check_messages(columns: OrderColumns, as_of: date | None) -> list[Reason]:
    """The quarantine checks in order: no customer id, a missing invoice, then for the date,
    the quantity and the unit price (or the amount) a missing value and a value that does not
    parse (shown in the reason), then a date on or after ``--as-of``."""
    messages: list[Reason] = [NO_CUSTOMER_ID, f"{columns.invoice}: missing value"]
    fields = [(columns.date, "not a date")]
    if columns.quantity is not None and columns.price is not None:
        fields += [(columns.quantity, "not a number"), (columns.price, "not a number")]
    elif columns.amount is not None:
        fields.append((columns.amount, "not a number"))
    for header, problem in fields:
        messages += [f"{header}: missing value", (header, problem)]
    if as_of is not None:
        messages.append(
            f"{columns.date}: on or after the snapshot date {as_of.isoformat()} (--as-of)"
        )
    return messages


def _quarantine(
    lines: EncodedLines,
    columns: OrderColumns,
    quarantined: np.ndarray,
    checks: list[Check],
) -> pd.DataFrame:
    """The quarantined lines of ``quarantine_frame``, from the checks' masks."""
    rows = np.flatnonzero(quarantined)
    pattern = np.zeros(len(rows), dtype="int64")  # which checks each line fails, as bits
    for bit, (mask, _) in enumerate(checks):
        pattern |= mask[rows].astype("int64") << bit
    return quarantine_frame(
        lines.source_row[rows],
        pattern,
        [message for _, message in checks],
        columns,
        lambda header, at: lines[header].shown(rows[at]),
    )


def quarantine_frame(
    source_rows: np.ndarray,
    pattern: np.ndarray,
    messages: Sequence[Reason],
    columns: OrderColumns,
    shown: Callable[[str, np.ndarray], pd.Series],
) -> pd.DataFrame:
    """The quarantined lines: ``source_row``, each field's value as read, and every reason.
    ``pattern``: per line, the checks it fails as bits (bit i: ``messages[i]``); ``shown(header,
    positions)``: those lines' values of a column as text (NA missing). Lines failing the same
    checks share one reason text, unless a value is shown in it."""
    reason = pd.Series("", index=np.arange(len(pattern)), dtype="str")
    for bits in np.unique(pattern):
        hit = pattern == bits
        parts = [message for bit, message in enumerate(messages) if bits >> bit & 1]
        texts = [part for part in parts if isinstance(part, str)]
        if len(texts) == len(parts):  # no value to show: one text for them all
            reason[hit] = "; ".join(texts)
            continue
        text = pd.Series("", index=np.flatnonzero(hit), dtype="str")
        for part in parts:
            if not isinstance(part, str):
                header, problem = part
                values = shown(header, np.flatnonzero(hit)).fillna("").to_numpy(dtype=object)
                part = header + "='" + values + f"': {problem}"
            text = text.where(text == "", text + "; ") + part
        reason[hit] = text.to_numpy()
    every = np.arange(len(pattern))
    frame = {SOURCE_ROW: source_rows}
    for name, header in columns.used.items():
        frame[name] = shown(header, every).array
    frame[REASON] = reason.to_numpy()
    return pd.DataFrame(frame).astype({REASON: "str"})


def _group_reduce(ufunc, codes: np.ndarray, values: np.ndarray, k: int, start) -> np.ndarray:
    out = np.full(k, start, dtype=values.dtype)
    ufunc.at(out, codes, values)
    return out


def _most_frequent(column: EncodedColumn, used: np.ndarray, c_used: np.ndarray, k: int):
    """Per customer code, the most frequent value over its used lines (ties: the first in
    sorted order of the text)."""
    text = column.text()
    value_codes = column.codes[used]
    keep = value_codes >= 0
    order = np.argsort(text, kind="stable")  # the distinct values in sorted order
    rank = np.empty(len(text), dtype="int64")  # each distinct value's place in that order
    rank[order] = np.arange(len(text))
    m = max(len(text), 1)
    pairs, counts = np.unique(
        c_used[keep].astype("int64") * m + rank[value_codes[keep]], return_counts=True
    )
    customer, value_rank = pairs // m, pairs % m
    top = np.lexsort((value_rank, -counts, customer))  # per customer: most lines, then first
    first = top[np.flatnonzero(np.diff(customer[top], prepend=-1))]  # each customer's first
    out = np.full(k, None, dtype=object)
    out[customer[first]] = text[order][value_rank[first]]
    return pd.array(out, dtype="str")


def _reason_counts(quarantined: np.ndarray, checks: list[Check]) -> dict[str, int]:
    return reason_counts(
        [int((mask & quarantined).sum()) for mask, _ in checks],
        [message for _, message in checks],
    )


def reason_counts(counts: Sequence[int], messages: Sequence[Reason]) -> dict[str, int]:
    """Quarantined lines per kind of reason (``counts[i]`` lines fail ``messages[i]``; a shown
    value and an --as-of date left out), most frequent first."""
    total: Counter[str] = Counter()
    for count, message in zip(counts, messages, strict=True):
        if count:
            total[_kind(message)] += count
    return dict(total.most_common())  # ties keep their order


def _kind(message: str | tuple[str, str]) -> str:
    """A check's kind of reason: its text without a shown value or an --as-of date."""
    kind = f"{message[0]}: {message[1]}" if isinstance(message, tuple) else message
    return re.sub(r" \d{4}-\d{2}-\d{2} ", " ", kind)


def _top(reasons: Mapping[str, int]) -> str:
    return ", ".join(f"{k} ({v:,})" for k, v in list(reasons.items())[:3])
