"""Order lines -> customers out of core: ``derive_customers`` for a Parquet file of any size,
in DuckDB.

DuckDB reads the file row group by row group, works in at most ``memory_limit`` and spills
the rest to ``spill_dir``: the lines are never all in memory (at 10M lines the in-memory
derivation needs ~2 GiB, growing with the lines). The rules, the reasons, the line accounting
and the columns of the result are those of ``tasks.orders.transactions`` (README "Order
lines"), and so are the values, computed the same way:

- every column is cleaned as the reader cleans it (text stripped as ``str.strip`` strips it and
  the NA tokens missing; numbers as float64 with NaN missing; other types as themselves), so
  lines are exact duplicates when every cleaned column is equal: each line is stood for by two
  64-bit hashes of its cleaned columns (in two orders; a false duplicate needs both to collide),
  the first line of equal ones (smallest ``source_row``) is kept and the others are counted as
  duplicates;
- what needs the project's parsing (dates, numbers written as text, ids shown as text) is
  parsed by the same Python functions once per distinct value, as a small table joined to the
  lines; the day-first / month-first decision is taken over all distinct dates, as in memory;
- per customer: the first valid line orders the customers, sums are exact sums (``fsum``) and
  the most frequent profile value breaks ties by the text's order, as in memory.

Only the per-customer table and the quarantined lines come back to Python; the quarantined lines
are capped at ``quarantine_cap`` rows (their counts and reasons stay exact; ``quarantine_capped``
in the manifest says so).
"""

# ruff: noqa: S608 -- SQL names only the columns' aliases c0, c1, ... (never a header) and
# the constants above; the file's path is a quoted literal of a symlink in a fresh folder.
from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as arrow
import pyarrow.parquet as pq

from tasks.errors import InputError
from tasks.ingest import (
    NA_TOKENS,
    PARQUET_SUFFIXES,
    _arrow_to_text,
    _clean_text,
    _is_number,
    numbers_as_text,
)
from tasks.orders.encoded_lines import (
    STRIPPED,
    EncodedColumn,
    EncodedLines,
    _is_text,
    _parquet_layout,
    read_order_file,
)
from tasks.orders.order_columns import OrderColumns
from tasks.orders.transactions import (
    Derivation,
    LineAccounting,
    PerCustomer,
    _number,
    check_messages,
    derive_customers,
    finish_derivation,
    no_purchase_left,
    parse_dates,
    quarantine_frame,
    reason_counts,
)

log = logging.getLogger(__name__)

MEMORY_LIMIT = "500MB"  # DuckDB's working memory; beyond it, it spills to disk
QUARANTINE_CAP = 1_000_000  # quarantined lines written at most (counts stay exact)

# What str.strip() strips, for DuckDB's trim(text, characters), and the NA tokens, as SQL.
_WHITESPACE = "||".join(f"chr({code})" for code in STRIPPED)
_NA = ", ".join("'" + token.replace("'", "''") + "'" for token in NA_TOKENS)
_NA_BYTES = max(len(token.encode()) for token in NA_TOKENS)


@dataclass(frozen=True)
class _Column:
    """A file column in SQL: its position's alias ``c<i>`` and how it is cleaned."""

    alias: str
    kind: str  # "text", "number" or "other" (kept as read)

    @property
    def key(self) -> str:
        """The cleaned value, equal for values the reader cleans to the same one."""
        if self.kind == "text":
            # trim with a set of characters costs ~1 us a line, so only a value that starts or
            # ends with a character outside ASCII ! to ~ gets it; only a value of at most
            # 4 bytes can be an NA token
            text = f"({self.alias}::VARCHAR)"
            trimmed = f"trim({text}, {_WHITESPACE})"
            return (
                f"CASE WHEN {text}[1] BETWEEN '!' AND '~' AND {text}[-1] BETWEEN '!' AND '~' "
                f"THEN (CASE WHEN strlen({text}) > {_NA_BYTES} THEN {text} "
                f"WHEN {text} IN ({_NA}) THEN NULL ELSE {text} END) "
                f"WHEN {trimmed} IN ({_NA}) THEN NULL ELSE {trimmed} END"
            )
        if self.kind == "number":
            return f"CASE WHEN isnan({self.alias}::DOUBLE) THEN NULL ELSE {self.alias}::DOUBLE END"
        return self.alias


def order_lines(
    path: str | Path, sep: str | None
) -> tuple[EncodedLines | Path, pd.DataFrame | None]:
    """The order lines of ``path`` to derive: a Parquet file stays on disk (``derive_lines``
    reads it out of core; its layout is checked here), a text file is read whole and encoded
    (and returned as read too, for the run's raw.parquet)."""
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        _parquet_layout(path)  # InputError: unreadable, repeated headers, no rows
        return path, None
    return read_order_file(path, sep)


def order_headers(lines: EncodedLines | Path) -> list[str]:
    """The headers of order lines as ``order_lines`` gives them."""
    return lines.headers if isinstance(lines, EncodedLines) else _parquet_layout(lines)[0]


def derive_lines(
    lines: EncodedLines | Path,
    columns: OrderColumns,
    *,
    as_of: date | None = None,
    date_format: str | None = None,
    memory_limit: str = MEMORY_LIMIT,
    spill_dir: str | Path | None = None,
) -> Derivation:
    """``derive_out_of_core`` for a Parquet file, ``derive_customers`` for lines in memory."""
    if isinstance(lines, Path):
        return derive_out_of_core(
            lines,
            columns,
            as_of=as_of,
            date_format=date_format,
            memory_limit=memory_limit,
            spill_dir=spill_dir,
        )
    return derive_customers(lines, columns, as_of=as_of, date_format=date_format)


def derive_out_of_core(
    path: str | Path,
    columns: OrderColumns,
    *,
    as_of: date | None = None,
    date_format: str | None = None,
    memory_limit: str = MEMORY_LIMIT,
    spill_dir: str | Path | None = None,
    quarantine_cap: int = QUARANTINE_CAP,
) -> Derivation:
    """``derive_customers`` on the Parquet file ``path`` in DuckDB (see the module docstring):
    the same customers, quarantine (at most ``quarantine_cap`` lines), accounting and reasons.
    ``spill_dir``: where DuckDB may spill (a temporary folder there, removed after)."""
    path = Path(path)
    headers, _, rows = _parquet_layout(path)  # InputError: unreadable, repeated headers, empty
    schema = pq.read_schema(path)
    table = {
        header: _Column(f"c{i}", _kind(schema.field(i).type)) for i, header in enumerate(headers)
    }
    with _duckdb(path, table, memory_limit, spill_dir) as con:
        derived = _derive(con, path, rows, table, columns, as_of, date_format, quarantine_cap)
    return replace(derived, derivation=f"out of core in DuckDB, {memory_limit} of working memory")


def _kind(kind: arrow.DataType) -> str:
    if arrow.types.is_dictionary(kind):
        kind = kind.value_type
    if _is_text(kind) or arrow.types.is_string_view(kind):
        return "text"
    return "number" if _is_number(kind) else "other"


@contextmanager
def _duckdb(
    path: Path, table: Mapping[str, _Column], memory_limit: str, spill_dir: str | Path | None
) -> Iterator:
    """A DuckDB connection with a view ``lines`` (``source_row`` and the columns ``c0, c1,
    ...`` by position: no header reaches SQL). The file is read through a symlink of a plain
    name (DuckDB would read ``*`` or ``[`` in a path as a glob)."""
    import duckdb

    folder = Path(tempfile.mkdtemp(prefix="segment-lines-", dir=spill_dir))
    try:
        link = folder / "lines.parquet"
        link.symlink_to(path.resolve())
        con = duckdb.connect(
            config={
                "memory_limit": memory_limit,
                "temp_directory": str(folder / "spill"),
                "preserve_insertion_order": False,
            }
        )
        aliases = ", ".join(column.alias for column in table.values())
        con.execute(
            f"CREATE VIEW lines AS SELECT file_row_number + 1 AS source_row, * EXCLUDE "
            f"(file_row_number) FROM read_parquet('{_literal(link)}', file_row_number = true) "
            f"AS t({aliases}, file_row_number)"
        )
        try:
            yield con
        finally:
            con.close()
    except duckdb.OutOfMemoryException as error:
        first = str(error).splitlines()[0]
        raise InputError(
            f"deriving the order lines ran out of --lines-memory-limit {memory_limit} (what "
            f"could not spill to disk, or the disk under the run folder is full): give a larger "
            f"--lines-memory-limit, e.g. 2GB ({first})",
            path=path,
        ) from error
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")


def _derive(
    con,
    path: Path,
    rows: int,
    table: Mapping[str, _Column],
    columns: OrderColumns,
    as_of: date | None,
    date_format: str | None,
    cap: int,
) -> Derivation:
    used = {header: table[header] for header in dict.fromkeys(columns.used.values())}
    profile = {header: table[header] for header in columns.profile}
    keys = ", ".join(f"{column.key} AS {column.alias}" for column in table.values())
    con.execute(f"CREATE TEMP VIEW cleaned AS SELECT source_row, {keys} FROM lines")
    reading = _lookups(con, columns, table, profile, date_format)
    view = _classified(con, columns, table, as_of)
    duplicates = _mark_duplicates(con, view)
    messages = check_messages(columns, as_of)
    per, counts = _per_customer(con, view, profile, len(messages))
    accounting = LineAccounting(
        lines_read=rows,
        lines_used=int(counts["bought"]),
        lines_not_purchases=int(counts["lines"] - counts["bought"]),
        lines_quarantined=int(counts["quarantined"]),
        duplicates_dropped=duplicates,
        lines_without_customer_id=int(counts["no_id"]),
        cancellation_lines=int(counts["cancellations"]),
    )
    if counts["lines"] + accounting.lines_quarantined + duplicates != rows:
        raise RuntimeError(f"order lines not all accounted for: {accounting}")
    reasons = reason_counts([int(counts[f"b{i}"]) for i in range(len(messages))], messages)
    if not accounting.lines_used:
        raise no_purchase_left(accounting, reasons)
    quarantine = _quarantine(con, view, used, messages, columns, cap)
    derivation = finish_derivation(
        per, quarantine, accounting, reasons, columns, as_of=as_of, date_reading=reading
    )
    capped = accounting.lines_quarantined > len(quarantine)
    if capped:
        log.warning(
            "%s quarantined order lines: the first %s written to quarantine_lines.parquet "
            "(counts and reasons cover all of them)",
            f"{accounting.lines_quarantined:,}",
            f"{len(quarantine):,}",
        )
    return replace(derivation, quarantine_capped=capped)


def _mark_duplicates(con, view: str) -> int:
    """Mark the exact duplicates (``duplicate``: every cleaned column equal to an earlier
    line's) and return how many. Two 64-bit hashes of every cleaned column, in two orders, stand
    for the line (a false duplicate needs both to collide: about 1 in 10^20 pairs of lines at
    10^9 lines); only lines whose first hash repeats are compared, by the pair, in line order."""
    con.execute(
        f"CREATE TEMP TABLE duplicate_rows AS SELECT source_row FROM ("
        f"SELECT source_row, row_number() OVER (PARTITION BY h1, h2 ORDER BY source_row) AS n "
        f"FROM {view} WHERE h1 IN (SELECT h1 FROM {view} GROUP BY h1 HAVING count(*) > 1)) "
        f"WHERE n > 1"
    )
    con.execute(
        f"UPDATE {view} SET duplicate = true "
        f"WHERE source_row IN (SELECT source_row FROM duplicate_rows)"
    )
    return int(con.sql("SELECT count(*) FROM duplicate_rows").fetchall()[0][0])


# ---------------------------------------------------------------- per distinct value


def _lookups(
    con,
    columns: OrderColumns,
    table: Mapping[str, _Column],
    profile: Mapping[str, _Column],
    date_format: str | None,
) -> str:
    """The lookup tables from each distinct value of a column to what the project's functions
    make of it: ``text_<alias>`` (the value as the file shows it) for the customer id, the
    invoice and the profile columns; ``when_<alias>`` (the date) and ``number_<alias>``;
    returns how the dates were read."""
    for header in dict.fromkeys([columns.customer_id, columns.invoice, *profile]):
        column = table[header]
        if column.kind != "text":
            values = _distinct(con, column)
            _register(con, f"text_{column.alias}", values, _shown(values, column.kind))
    date = table[columns.date]
    values = _distinct(con, date)
    try:
        when, reading = parse_dates(_encoded(_shown(values, date.kind)), date_format)
    except InputError as error:
        raise InputError(error.message, column=columns.date) from error
    _register(con, f"when_{date.alias}", values, arrow.array(when, arrow.timestamp("ns")))
    for field in (columns.quantity, columns.price, columns.amount):
        if field is not None and table[field].kind != "number":
            column = table[field]
            values = _distinct(con, column)
            parsed = _number(_encoded(_shown(values, column.kind)))
            _register(con, f"number_{column.alias}", values, arrow.array(parsed, arrow.float64()))
    return reading


def _distinct(con, column: _Column) -> arrow.Array:
    """The distinct present (cleaned) values of a column."""
    found = con.sql(
        f"SELECT DISTINCT {column.alias} AS v FROM cleaned WHERE {column.alias} IS NOT NULL"
    ).to_arrow_table()
    return found.column(0).combine_chunks()


def _shown(values: arrow.Array, kind: str) -> arrow.Array:
    """Values as the in-memory reader shows them: text as it is, numbers without ``.0``,
    other types as their text, cleaned."""
    if kind == "text":
        return values
    if kind == "number":
        series = pd.Series(values.to_numpy(zero_copy_only=False), dtype="float64")
        return arrow.array(numbers_as_text(series), arrow.large_string(), from_pandas=True)
    text = _clean_text(_arrow_to_text(arrow.chunked_array([values])))
    return arrow.array(text, arrow.large_string(), from_pandas=True)


def _encoded(text: arrow.Array) -> EncodedColumn:
    """Distinct text as a column whose lines are its values once each (codes 0..n-1; a NA
    cleaned from it stays missing)."""
    values = pd.Series(pd.array(text, dtype="str"))
    codes = np.where(values.isna().to_numpy(), -1, np.arange(len(values)))
    return EncodedColumn(codes.astype("int64"), values)


def _register(con, name: str, keys: arrow.Array, values: arrow.Array) -> None:
    con.register(f"{name}_arrow", arrow.table({"k": keys, "v": values}))
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")


# ---------------------------------------------------------------- per line


def _classified(
    con, columns: OrderColumns, table: Mapping[str, _Column], as_of: date | None
) -> str:
    """The table ``classified``: every line with its two hashes (``h1``, ``h2``), the customer
    id and invoice as text, the date, the line's value, ``bits`` (the checks of
    ``check_messages`` it fails), ``no_id``, ``cancellation``, ``used`` (a valid purchase
    line) and ``duplicate`` (false until ``_mark_duplicates``)."""
    joins: dict[str, str] = {}  # lookup table -> its join, once each

    def looked_up(lookup: str, column: _Column) -> str:
        name = f"{lookup}_{column.alias}"
        joins[name] = f"LEFT JOIN {name} ON {name}.k = d.{column.alias}"
        return f"{name}.v"

    def text_of(header: str) -> str:
        column = table[header]
        return f"d.{column.alias}" if column.kind == "text" else looked_up("text", column)

    def number_of(header: str) -> str:
        column = table[header]
        return f"d.{column.alias}" if column.kind == "number" else looked_up("number", column)

    field = {"customer": text_of(columns.customer_id), "invoice": text_of(columns.invoice)}
    date = table[columns.date]
    field["when"] = looked_up("when", date)
    checks = [
        f"d.{table[columns.customer_id].alias} IS NULL",
        f"d.{table[columns.invoice].alias} IS NULL",
        f"d.{date.alias} IS NULL",
        f"d.{date.alias} IS NOT NULL AND {field['when']} IS NULL",
    ]
    if columns.quantity is not None and columns.price is not None:
        quantity, price = number_of(columns.quantity), number_of(columns.price)
        for header, parsed in ((columns.quantity, quantity), (columns.price, price)):
            alias = table[header].alias
            checks += [
                f"d.{alias} IS NULL",
                f"d.{alias} IS NOT NULL AND isnan(coalesce({parsed}, 'NaN'::DOUBLE))",
            ]
        field["value"] = f"{quantity} * {price}"
        positive = f"{quantity} > 0 AND {price} > 0"
    elif columns.amount is not None:
        amount = number_of(columns.amount)
        alias = table[columns.amount].alias
        checks += [
            f"d.{alias} IS NULL",
            f"d.{alias} IS NOT NULL AND isnan(coalesce({amount}, 'NaN'::DOUBLE))",
        ]
        field["value"] = amount
        positive = f"{amount} > 0"
    else:  # find_order_columns never returns these
        raise ValueError(f"order columns without an amount or quantity and price: {columns}")
    if as_of is not None:
        checks.append(f"{field['when']} >= TIMESTAMP_NS '{as_of.isoformat()}'")
    bits = " | ".join(
        f"(CASE WHEN {check} THEN {1 << i} ELSE 0 END)" for i, check in enumerate(checks)
    )
    profile = "".join(
        f", {text_of(header)} AS p_{table[header].alias}" for header in columns.profile
    )
    cancellation = f"coalesce(starts_with(lower({field['invoice']}), 'c'), false)"
    aliases = [f"hash(d.{column.alias})" for column in table.values()]  # each hashed once
    every, every_reversed = ", ".join(aliases), ", ".join(reversed(aliases))
    con.execute(
        f"CREATE TEMP TABLE classified AS SELECT *, NOT cancellation AND positive AS used FROM ("
        f"SELECT d.source_row, hash({every}) AS h1, hash({every_reversed}) AS h2, "
        f"false AS duplicate, {field['customer']} AS customer, "
        f"{field['invoice']} AS invoice, {field['when']} AS when_, {field['value']} AS value, "
        f"({bits})::BIGINT AS bits, d.{table[columns.customer_id].alias} IS NULL AS no_id, "
        f"{cancellation} AS cancellation, coalesce({positive}, false) AS positive{profile} "
        f"FROM cleaned d {' '.join(joins.values())})"
    )
    return "classified"


def _quarantine(
    con, view: str, used: Mapping[str, _Column], messages: list, columns: OrderColumns, cap: int
) -> pd.DataFrame:
    """The first ``cap`` quarantined lines (by source_row) as ``quarantine_frame`` builds them."""
    keys = ", ".join(f"{column.key} AS {column.alias}" for column in used.values())
    found = con.sql(  # the lines joined first: only the quarantined ones are cleaned
        f"SELECT q.source_row, q.bits, {keys} FROM (SELECT source_row, bits FROM {view} "
        f"WHERE bits <> 0 AND NOT duplicate ORDER BY source_row LIMIT {int(cap)}) q "
        f"JOIN lines USING (source_row) ORDER BY q.source_row"
    ).to_arrow_table()
    shown = {
        header: pd.Series(
            pd.array(_shown(found.column(2 + i).combine_chunks(), column.kind), dtype="str")
        )
        for i, (header, column) in enumerate(used.items())
    }
    return quarantine_frame(
        found.column(0).to_numpy(),
        found.column(1).to_numpy(),
        messages,
        columns,
        lambda header, at: shown[header].iloc[at].reset_index(drop=True),
    )


def _per_customer(
    con, view: str, profile: Mapping[str, _Column], checks: int
) -> tuple[PerCustomer, pd.Series]:
    """Each customer with a valid line, in the order of its first valid line, and the line
    counts of all lines but the duplicates (``quarantined``, ``no_id``, ``b<i>``: lines
    failing check i, ``lines``: valid, ``bought``, ``cancellations``); the distinct invoices of
    each customer's purchase lines are counted apart (one distinct over pairs)."""
    bits = "".join(f", count(*) FILTER (bits >> {i} & 1 = 1) AS b{i}" for i in range(checks))
    per = con.sql(
        f"SELECT customer, count(*) FILTER (bits <> 0) AS quarantined, "
        f"count(*) FILTER (no_id) AS no_id, count(*) FILTER (bits = 0) AS lines, "
        f"min(source_row) FILTER (bits = 0) AS first_row, "
        f"count(*) FILTER (bits = 0 AND cancellation) AS cancellations, "
        f"count(*) FILTER (bits = 0 AND used) AS bought, "
        f"min(when_) FILTER (bits = 0 AND used) AS first, "
        f"max(when_) FILTER (bits = 0 AND used) AS last, "
        f"coalesce(fsum(value) FILTER (bits = 0 AND used), 0) AS monetary, "
        f"coalesce(fsum(abs(value)) FILTER (bits = 0 AND cancellation), 0) AS returned{bits} "
        f"FROM {view} WHERE NOT duplicate GROUP BY customer"
    ).df()
    invoices = con.sql(
        f"SELECT customer, count(*) AS frequency FROM (SELECT DISTINCT customer, invoice "
        f"FROM {view} WHERE bits = 0 AND used AND NOT duplicate) GROUP BY customer"
    ).df()
    frequency = pd.Series(invoices["frequency"].to_numpy(), index=invoices["customer"].to_numpy())
    counts = per.drop(columns=["customer", "first", "last"]).sum()
    per = per[per["lines"] > 0].sort_values("first_row", kind="stable")
    bought = per["bought"].to_numpy() > 0
    values = {}
    for header, column in profile.items():
        top = con.sql(
            f"SELECT customer, first(p ORDER BY n DESC, p) AS top FROM ("
            f"SELECT customer, p_{column.alias} AS p, count(*) AS n FROM {view} "
            f"WHERE bits = 0 AND used AND NOT duplicate AND p_{column.alias} IS NOT NULL "
            f"GROUP BY ALL) "
            f"GROUP BY customer"
        ).df()
        found = pd.Series(top["top"].to_numpy(), index=top["customer"].to_numpy())
        values[header] = pd.array(
            found.reindex(per["customer"][bought].to_numpy()).to_numpy(), dtype="str"
        )
    customers = PerCustomer(
        ids=per["customer"].to_numpy(dtype=object),
        first=per["first"][bought].to_numpy(dtype="datetime64[ns]"),
        last=per["last"][bought].to_numpy(dtype="datetime64[ns]"),
        monetary=per["monetary"].to_numpy(dtype="float64"),
        frequency=frequency.reindex(per["customer"].to_numpy()).fillna(0).to_numpy(dtype="int64"),
        returned=per["returned"].to_numpy(dtype="float64"),
        bought=bought,
        lines=per["lines"].to_numpy(dtype="int64"),
        cancellations=per["cancellations"].to_numpy(dtype="int64"),
        profile=values,
    )
    return customers, counts
