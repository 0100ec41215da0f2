"""Order lines in a folder of Parquet parts -> one row per customer, derived on a Dask cluster.

The result is the in-memory derivation's (``tasks.orders.transactions.derive_customers``) on the
parts concatenated in name order: the same customers in the same order, the same R, F, M and
extras, quarantine lines and reasons, line accounting. How:

- each line's ``source_row`` is its 1-based position in that concatenation (each part's offset
  from the Parquet footers, ``tasks.store.snapshots.row_count``);
- each part is read on a worker (``read_encoded_lines``: values cleaned as one file's are) and
  split into buckets by a hash of the cleaned customer id text, lines without an id in bucket
  0: every line of a customer, and so every exact duplicate (equal in every column, the id
  included), lands in one bucket; each part also gives its distinct date texts. The pieces
  stay encoded (codes into the distinct values they use): no text per line is shipped;
- the date reading (ISO, day-first, month-first, ``--date-format``) is decided once in this
  process over the distinct dates of all parts (``decide_date_reading``: the same decision and
  the same refusals as on one file);
- each bucket is derived on a worker by ``derive_customers`` itself (``part=True``, its lines
  in ``source_row`` order, so "an earlier line" is earlier in the concatenation);
- ``merge_derivations`` (pure, here) adds up the buckets: customers ordered by their first
  valid line, the snapshot date over all buckets (recency and tenure recomputed from it), the
  accounting and reasons summed, "no purchase line left" judged over all lines.

The derived customers are small (one row per customer): the run then goes on in memory.
Functions here build and compute Dask collections on whatever Dask client is current (the
flow's ``DaskTaskRunner`` cluster: ``on_cluster``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, fields
from datetime import date
from pathlib import Path

import dask
import numpy as np
import pandas as pd

from schemas.columns import SOURCE_ROW
from tasks.errors import InputError
from tasks.ingest import numbers_as_text
from tasks.orders.encoded_lines import EncodedColumn, EncodedLines, read_encoded_lines
from tasks.orders.order_columns import OrderColumns
from tasks.orders.transactions import (
    DateReading,
    Derivation,
    LineAccounting,
    accounting_line,
    decide_date_reading,
    derive_customers,
    no_purchase_left,
)
from tasks.store.snapshots import row_count

log = logging.getLogger(__name__)


def derive_partitioned(
    files: Sequence[Path],
    columns: OrderColumns,
    *,
    as_of: date | None = None,
    date_format: str | None = None,
    buckets: int | None = None,
    on_cluster: Callable[[], AbstractContextManager] = nullcontext,
) -> Derivation:
    """The customers of the order lines in ``files`` (Parquet, in this order), derived over
    ``buckets`` buckets (default: one per file with rows) on the Dask client ``on_cluster``
    makes current. ``InputError`` as ``derive_customers`` on the concatenated lines."""
    files = tuple(Path(f) for f in files)
    counts = [row_count(path) for path in files]
    offsets = np.cumsum([0, *counts[:-1]])
    readable = [(p, int(o)) for p, o, n in zip(files, offsets, counts, strict=True) if n]
    if not readable:
        raise InputError("every Parquet file in the folder has no data rows", path=files[0].parent)
    size = buckets or len(readable)
    with on_cluster():
        split = [
            dask.delayed(split_part, nout=size + 1)(path, offset, columns, size)
            for path, offset in readable
        ]
        split = list(dask.persist(*split))  # read once, kept on the workers
        distinct = dask.compute(*[part[0] for part in split])
        try:
            reading = decide_date_reading(_union(distinct), date_format)
        except InputError as error:
            raise InputError(error.message, column=columns.date) from error
        derived = dask.compute(
            *[
                dask.delayed(derive_bucket)(
                    [part[i + 1] for part in split], columns, as_of, date_format, reading
                )
                for i in range(size)
            ]
        )
    merged = merge_derivations(
        [d for d in derived if d is not None], columns, as_of=as_of, reading=reading
    )
    if merged.accounting.lines_read != sum(counts):
        raise RuntimeError(f"{sum(counts)} lines in the files, {merged.accounting.lines_read} read")
    log.info(
        "Order lines in %d Parquet files (%d buckets): %s; %d customers with purchases, %d with "
        "none (only cancellations or non-positive lines); snapshot date %s; dates read as %s",
        len(files),
        size,
        accounting_line(asdict(merged.accounting)),
        len(merged.customers),
        len(merged.without_purchases),
        merged.snapshot.isoformat(),
        merged.date_reading,
    )
    return merged


def split_part(path: Path, offset: int, columns: OrderColumns, buckets: int) -> tuple:
    """One part's lines (``source_row`` from ``offset`` + 1) split by customer id into
    ``buckets`` pieces, after the part's distinct date texts: ``(dates, bucket 0, ..., bucket
    n-1)``. A piece is ``EncodedLines``: each column's codes (int32) into the distinct values
    its lines use (cleaned as one file's: text or float64), no text per line to ship."""
    lines = read_encoded_lines(path, threads=1)
    missing = [h for h in (*columns.used.values(), *columns.profile) if h not in lines.columns]
    if missing:
        raise InputError(
            f"no column {missing[0]!r}: every part needs the order-line columns of the first "
            "file with rows",
            path=path,
        )
    ids = lines[columns.customer_id]
    bucket = np.append(bucket_of(ids.text(), buckets), 0)[ids.codes]  # no id: bucket 0
    order = np.argsort(bucket, kind="stable")  # each bucket's lines keep their order
    bounds = np.cumsum(np.bincount(bucket, minlength=buckets))[:-1]
    pieces = [_take(lines, rows, offset) for rows in np.split(order, bounds)]
    dates = lines[columns.date].text()
    return (dates, *pieces)


def _take(lines: EncodedLines, rows: np.ndarray, offset: int) -> EncodedLines:
    """The lines ``rows`` (positions), each column's values cut to those they use."""
    columns = {}
    for header, column in lines.columns.items():
        codes = column.codes[rows]
        used = np.zeros(len(column.values) + 1, dtype=bool)
        used[codes] = True  # a missing code (-1) marks the extra last entry
        used = used[:-1]
        renumber = np.append(np.cumsum(used, dtype="int64") - 1, -1).astype("int32")
        values = column.values.iloc[np.flatnonzero(used)].reset_index(drop=True)
        columns[header] = EncodedColumn(renumber[codes], values)
    return EncodedLines(lines.source_row[rows] + offset, columns)


def bucket_of(ids: np.ndarray, buckets: int) -> np.ndarray:
    """The bucket of each id text: a hash that every process computes alike (pandas' keyed
    SipHash; Python's ``hash`` of a str differs between processes)."""
    if not len(ids):
        return np.zeros(0, dtype="int64")
    hashed = pd.util.hash_array(np.asarray(ids, dtype=object))
    return (hashed % np.uint64(buckets)).astype("int64")


def derive_bucket(
    pieces: Sequence[EncodedLines],
    columns: OrderColumns,
    as_of: date | None,
    date_format: str | None,
    reading: DateReading,
) -> Derivation | None:
    """The derivation of one bucket's lines (its pieces from every part, in part order), or
    None for a bucket with no line."""
    pieces = [piece for piece in pieces if len(piece)]
    if not pieces:
        return None
    return derive_customers(
        concat_lines(pieces),
        columns,
        as_of=as_of,
        date_format=date_format,
        reading=reading,
        part=True,
    )


def concat_lines(pieces: Sequence[EncodedLines]) -> EncodedLines:
    """Encoded lines of several parts as one, in ``source_row`` order: each column's values
    joined and factorized (equal values of two parts share a code), the codes remapped. A
    column numeric in some parts and text in others is text (numbers as the file shows them,
    ``3.0`` -> ``"3"``); a column some parts lack is missing on their lines."""
    source_row = np.concatenate([piece.source_row for piece in pieces])
    order = None
    if len(source_row) > 1 and (np.diff(source_row) < 0).any():
        order = np.argsort(source_row, kind="stable")
        source_row = source_row[order]
    headers = dict.fromkeys(header for piece in pieces for header in piece.headers)
    columns = {}
    for header in headers:
        present = [piece[header] for piece in pieces if header in piece.columns]
        numeric = all(pd.api.types.is_numeric_dtype(c.values) for c in present)
        values, codes, size = [], [], 0
        for piece in pieces:
            if header not in piece.columns:
                codes.append(np.full(len(piece), -1, dtype="int64"))
                continue
            column = piece[header]
            shown = column.values
            if not numeric and pd.api.types.is_numeric_dtype(shown):
                shown = numbers_as_text(shown)
            codes.append(np.where(column.codes >= 0, column.codes.astype("int64") + size, -1))
            values.append(shown.reset_index(drop=True))
            size += len(shown)
        joined = pd.concat(values, ignore_index=True)
        remap, distinct = pd.factorize(joined)
        remap = np.append(remap.astype("int64"), -1)  # a missing line (-1) stays missing
        line_codes = remap[np.concatenate(codes)]
        if order is not None:
            line_codes = line_codes[order]
        columns[header] = EncodedColumn(line_codes, pd.Series(distinct))
    return EncodedLines(source_row, columns)


def merge_derivations(
    parts: Sequence[Derivation],
    columns: OrderColumns,
    *,
    as_of: date | None,
    reading: DateReading,
) -> Derivation:
    """The derivation of all lines from those of buckets that each hold every line of their
    customers (``derive_customers(part=True)``): customers (and those without purchases) in
    the order of their first valid line, the snapshot date (without ``as_of``: the day after
    the latest purchase of all) with recency and tenure from it, the quarantine lines by
    ``source_row``, the accounting and the reason counts summed (most frequent first, ties in
    the order of the checks). ``InputError`` when no bucket has a purchase line."""
    accounting = LineAccounting(
        **{
            f.name: sum(getattr(p.accounting, f.name) for p in parts)
            for f in fields(LineAccounting)
        }
    )
    counts: Counter[str] = Counter(dict.fromkeys((k for p in parts for k in p.reason_kinds), 0))
    for part in parts:
        counts.update(part.reasons)
    reasons = {kind: n for kind, n in counts.most_common() if n}
    if accounting.lines_used == 0:
        raise no_purchase_left(accounting, reasons)
    customers = _by_first_row([p.customers for p in parts], [p.first_rows for p in parts])
    without = _by_first_row(
        [p.without_purchases for p in parts], [p.without_first_rows for p in parts]
    )
    quarantine = _concat([p.quarantine for p in parts])
    quarantine = quarantine.sort_values(SOURCE_ROW, kind="stable", ignore_index=True)
    if as_of is None:
        snapshot_day = customers["last_purchase"].max().normalize() + pd.Timedelta(days=1)
        for name, since in (("recency_days", "last_purchase"), ("tenure_days", "first_purchase")):
            days = (snapshot_day - customers[since].dt.normalize()).dt.days
            customers[name] = days.astype("int64")
    else:
        snapshot_day = pd.Timestamp(as_of)
    return Derivation(
        customers=customers,
        quarantine=quarantine,
        without_purchases=without,
        accounting=accounting,
        snapshot=snapshot_day.date(),
        date_reading=reading.text,
        columns=columns,
        reasons=reasons,
        derivation="on the Dask cluster, per bucket of customers",
    )


def _by_first_row(frames: list[pd.DataFrame], rows: list[np.ndarray | None]) -> pd.DataFrame:
    if any(r is None for r in rows):
        raise ValueError("merge_derivations takes derivations of parts (part=True)")
    frame = _concat(frames)
    order = np.argsort(np.concatenate([np.asarray(r, dtype="int64") for r in rows]), kind="stable")
    return frame.take(order).reset_index(drop=True)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames of one layout, one after the other (empty ones only keep the types)."""
    full = [frame for frame in frames if len(frame)]
    return pd.concat(full or frames[:1], ignore_index=True)


def _union(distinct: Sequence[np.ndarray]) -> pd.Series:
    """The distinct values of several parts, in order of first appearance."""
    values = [np.asarray(d, dtype=object) for d in distinct]
    joined = np.concatenate(values) if values else np.zeros(0, dtype=object)
    return pd.Series(pd.unique(joined), dtype="str")
