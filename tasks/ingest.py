"""Read a raw customer CSV or Parquet file into canonical text columns; fail only on file problems.

Values are kept as text (``0001`` stays ``0001``); cleaning and typing happen later. The result has
``source_row`` first, then the canonical columns, then any extra columns of the file. It is not
validated against ``RawCustomers`` here, because that schema rejects non-numeric text such as
``abc`` in ``age``, and bad values are the cleaning step's job, not a reason to refuse the file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.customers import (
    AGE,
    ANNUAL_INCOME,
    COLUMNS,
    CUSTOMER_ID,
    GENDER,
    NUMERIC_COLUMNS,
    SOURCE_ROW,
    SPENDING_SCORE,
)
from tasks.errors import InputError

logger = logging.getLogger(__name__)

DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    CUSTOMER_ID: ("CustomerID", "Customer ID", "customer_id", "Cust ID", "Client ID", "ID"),
    GENDER: ("Genre", "Gender", "Sex"),
    AGE: ("Age", "Age (years)"),
    ANNUAL_INCOME: (
        "Annual Income (k$)",
        "Annual Income",
        "Annual_Income",
        "Annual Income k$",
        "Income (k$)",
        "Income",
    ),
    SPENDING_SCORE: (
        "Spending Score (1-100)",
        "Spending Score",
        "Spending_Score",
        "Score",
    ),
}

# Whole-field tokens read as missing, compared after stripping whitespace. A lone "-" is a common
# placeholder; it never matches a negative number such as "-5", because matching is whole-field.
NA_TOKENS = ("", "?", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "-")
SEPARATORS = (",", ";", "\t", "|")
PARQUET_SUFFIXES = (".parquet", ".pq")

_MERGE_MARKER = re.compile(r"^(?:<<<<<<< |=======\r?$|>>>>>>> )", re.MULTILINE)
_PARSER_LINE = re.compile(r"line (\d+)")
_UNCLOSED_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


def read_customers(
    path: str | Path, columns: Mapping[str, str] | None = None, sep: str | None = None
) -> pd.DataFrame:
    """Read a customer CSV or Parquet file into ``source_row`` plus the canonical columns.

    Values are text as read (stripped, NA tokens missing), except the numeric columns of a
    Parquet file stored as numbers: those stay numbers (float64), so ten million rows are not
    printed as text here to be parsed back in the cleaning.
    """
    path = Path(path)
    _check_is_file(path)
    parquet = path.suffix.lower() in PARQUET_SUFFIXES
    if parquet:
        header, table = _read_parquet(path)
    else:
        header, frame = _read_text(path, sep)
    duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicates:
        raise InputError(f"duplicate column names in the header: {duplicates}", path=path)
    mapping = _resolve_columns(path, header, columns)
    if parquet:
        _check_parquet_types(path, mapping, dict(zip(header, table.schema.types, strict=True)))
        columns = _parquet_columns(table, header, {mapping[c] for c in NUMERIC_COLUMNS})
        del table
    else:
        frame.columns = header
        columns = {name: frame[name] for name in header}
    result = _canonical_frame(columns, mapping)
    logger.info("read %d rows and %d columns from %s", len(result), len(header), path)
    return result


def file_sha256(path: str | Path) -> str:
    """Return the hex SHA-256 digest of the file's bytes, read in chunks."""
    path = Path(path)
    _check_is_file(path)
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _normalise(header: str) -> str:
    """Lowercase a header and drop every non-alphanumeric character."""
    return "".join(char for char in header.lower() if char.isalnum())


def _check_is_file(path: Path) -> None:
    """Raise InputError unless ``path`` is an existing regular file."""
    if not path.exists():
        raise InputError("no such file", path=path)
    if path.is_dir():
        raise InputError("is a directory, expected a CSV or Parquet file", path=path)


def _read_bytes(path: Path) -> bytes:
    """Read the whole file once, turning OS errors into InputError."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot be read: {error.strerror or error}", path=path) from error


def _decode(path: Path, raw: bytes) -> str:
    """Decode UTF-16 with a BOM, or UTF-8 (BOM optional) falling back to cp1252 with a warning.

    Text with NUL bytes that is not UTF-16 is refused as binary.
    """
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")  # the codec reads and drops the BOM
        except UnicodeDecodeError as error:
            raise InputError(
                f"starts with a UTF-16 byte-order mark but is not valid UTF-16: {error.reason}",
                path=path,
            ) from error
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise InputError(
            f"NUL byte at line {line}: looks like a binary file, not CSV text", path=path
        )
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        logger.warning(
            "%s is not valid UTF-8 (%s at line %d); decoding it as cp1252 instead",
            path,
            error.reason,
            line,
        )
        return raw.decode("cp1252", errors="replace")


def _check_merge_markers(path: Path, text: str) -> None:
    """Raise InputError listing the 1-based lines of any git merge-conflict markers."""
    if not any(marker in text for marker in ("<<<<<<< ", "=======", ">>>>>>> ")):
        return  # fast path: a substring test is much cheaper than the multiline regex
    lines, line_no, last = [], 1, 0
    for match in _MERGE_MARKER.finditer(text):
        line_no += text.count("\n", last, match.start())
        last = match.start()
        lines.append(line_no)
    if lines:
        where = ", ".join(str(line) for line in lines)
        raise InputError(
            f"unresolved git merge-conflict markers at lines {where}; "
            "resolve the conflict and re-run",
            path=path,
        )


def _find_header(text: str) -> tuple[int, int, str]:
    """Return (offset, 1-based line number, text) of the first non-blank, non-comment line."""
    pos, line_no = 0, 1
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end == -1 else end
        line = text[pos:end].strip()
        if line and not line.startswith("#"):
            return pos, line_no, line
        pos, line_no = end + 1, line_no + 1
    return -1, line_no, ""


def _sniff_sep(header_line: str) -> str:
    """Pick the candidate separator that splits the header into the most fields (ties: first)."""
    counts = [len(next(csv.reader([header_line], delimiter=sep))) for sep in SEPARATORS]
    return SEPARATORS[counts.index(max(counts))]


def _read_text(path: Path, sep: str | None) -> tuple[list[str], pd.DataFrame]:
    """Read delimited text into (header names, all-text data frame)."""
    text = _decode(path, _read_bytes(path))
    if "\n" not in text:
        text = text.replace("\r", "\n")  # old Mac line endings: CR only
    _check_merge_markers(path, text)
    offset, header_line_no, header_line = _find_header(text)
    if offset < 0:
        raise InputError("is empty (no header line)", path=path)
    sep = sep or _sniff_sep(header_line)
    _check_header_splits(path, header_line, sep)
    logger.debug("%s: header on line %d, separator %r", path, header_line_no, sep)
    try:
        frame = pd.read_csv(
            io.StringIO(text[offset:]),
            sep=sep,
            header=None,
            dtype=str,
            na_filter=False,
            skip_blank_lines=True,
            engine="c" if len(sep) == 1 else "python",
        )
    except pd.errors.ParserError as error:
        raise InputError(_parser_message(error, header_line_no), path=path) from error
    if len(frame) < 2:
        raise InputError("has a header but no data rows", path=path)
    header = [_header_name(value, position) for position, value in enumerate(frame.iloc[0], 1)]
    data = frame.iloc[1:].reset_index(drop=True)
    _check_rows_split(path, data, sep)
    return header, data


def _other_separator(text: str, sep: str) -> str | None:
    """The first candidate separator other than ``sep`` that occurs in ``text``, if any."""
    return next((other for other in SEPARATORS if other != sep and other in text), None)


def _check_header_splits(path: Path, header_line: str, sep: str) -> None:
    """Refuse a header that ``sep`` leaves whole while another separator would split it."""
    other = _other_separator(header_line, sep)
    if other is not None and sep not in header_line:
        raise InputError(
            f"the header is one field when split by {sep!r} but contains {other!r}: "
            f"set the separator to {other!r} (or leave it unset to sniff it)",
            path=path,
        )


def _check_rows_split(path: Path, data: pd.DataFrame, sep: str) -> None:
    """Refuse mixed separators: a data row left whole by ``sep`` that another one would split."""
    if data.shape[1] < 2:
        return
    short = data.loc[data.iloc[:, -1].eq("")]  # the parser pads short rows with ""
    single = short.loc[short.iloc[:, 1:].eq("").all(axis=1)]  # rows of a single field
    for position, value in zip(single.index, single.iloc[:, 0], strict=True):
        other = _other_separator(str(value), sep)
        if other is not None:
            raise InputError(
                f"mixed separators: the header is split by {sep!r}, this row by {other!r}",
                path=path,
                row=int(position) + 1,
            )


def _parser_message(error: Exception, header_line_no: int) -> str:
    """Describe a pandas tokenizing error with line numbers counted from the top of the file."""
    reason = str(error).removeprefix("Error tokenizing data. C error: ").strip()
    quote = _UNCLOSED_QUOTE.search(reason)
    if quote is not None:  # the parser counts lines from 0 here
        line = int(quote.group(1)) + header_line_no
        return f"unclosed quote: the quoted field starting at line {line} never ends"
    match = _PARSER_LINE.search(reason)
    if match is None:
        return f"cannot be parsed as delimited text: {reason}"
    line = int(match.group(1)) + header_line_no - 1
    detail = re.sub(r",? (?:in|at) line \d+", "", reason, count=1)  # the line is said once
    return f"malformed row at line {line}: {detail[:1].lower()}{detail[1:]}"


def _header_name(value: object, position: int) -> str:
    """Return a stripped header name; a blank one becomes ``unnamed_<position>``."""
    name = "" if value is None or pd.isna(value) else str(value).strip()
    return name or f"unnamed_{position}"


def _read_parquet(path: Path) -> tuple[list[str], pa.Table]:
    """Read a Parquet file into (header names, Arrow table)."""
    if path.stat().st_size == 0:
        raise InputError("is empty", path=path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        reason = re.sub(r"^Could not open Parquet input source '.*?': ", "", str(error))
        raise InputError(f"not a readable Parquet file: {reason}", path=path) from error
    if table.num_rows == 0:
        raise InputError("has columns but no data rows", path=path)
    header = [_header_name(name, position) for position, name in enumerate(table.column_names, 1)]
    return header, table


def _parquet_columns(table: pa.Table, header: list[str], numeric: set[str]) -> dict[str, pd.Series]:
    """The table's columns by name as pandas: those named in ``numeric`` and stored as numbers
    become float64 (missing: NaN); every other column becomes text. (Not yet one frame: that
    would copy the numbers once more.)"""
    columns = {}
    for name, column in zip(header, table.columns, strict=True):
        if name in numeric and _is_number(column.type):
            values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
            columns[name] = pd.Series(values, dtype="float64")
        else:
            columns[name] = _arrow_to_text(column)
    return columns


def _arrow_to_text(column: pa.ChunkedArray) -> pd.Series:
    """Convert an Arrow column to pandas text; ints print without ``.0``, NaN/None become NA."""
    try:
        text = pc.cast(column, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):  # e.g. lists, bytes that are not UTF-8
        text = pa.array([None if value is None else str(value) for value in column.to_pylist()])
    return text.to_pandas().astype("str")


def numbers_as_text(values: pd.Series) -> pd.Series:
    """A column read as numbers, as the file's own text would show it (``30.0`` -> ``"30"``,
    NaN -> missing); a text column as it is."""
    if pd.api.types.is_string_dtype(values):
        return values
    text = pc.cast(pa.array(values, from_pandas=True), pa.string())
    return pd.Series(text.to_pylist(), index=values.index, dtype="str")


def _is_text(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


# The Parquet types each canonical column may have (text is cleaned like a CSV's values).
PARQUET_TYPES = {
    CUSTOMER_ID: ("text or integers", lambda kind: _is_text(kind) or pa.types.is_integer(kind)),
    GENDER: ("text", _is_text),
    AGE: ("numbers or text", lambda kind: _is_number(kind) or _is_text(kind)),
    ANNUAL_INCOME: ("numbers or text", lambda kind: _is_number(kind) or _is_text(kind)),
    SPENDING_SCORE: ("numbers or text", lambda kind: _is_number(kind) or _is_text(kind)),
}


def _check_parquet_types(
    path: Path, mapping: Mapping[str, str], types: Mapping[str, pa.DataType]
) -> None:
    """Refuse a canonical column whose Parquet type cannot hold its values (dates, booleans...)."""
    for canon, name in mapping.items():
        kind = types[name]
        if pa.types.is_dictionary(kind):  # e.g. a pandas categorical
            kind = kind.value_type
        expected, accepts = PARQUET_TYPES[canon]
        if not (pa.types.is_null(kind) or accepts(kind)):
            raise InputError(
                f"Parquet type {kind} cannot hold {canon}: expected {expected}",
                path=path,
                column=name,
            )


def _resolve_columns(
    path: Path, header: list[str], columns: Mapping[str, str] | None
) -> dict[str, str]:
    """Map each canonical column to a header of the file: explicit mapping first, then aliases."""
    explicit = dict(columns or {})
    unknown = sorted(set(explicit) - set(COLUMNS))
    if unknown:
        raise InputError(f"unknown canonical column(s) in the mapping: {unknown}", path=path)
    absent = {canon: name for canon, name in explicit.items() if name not in header}
    if absent:
        raise InputError(
            f"mapped header(s) not in the file: {absent}; headers found: {header}", path=path
        )
    mapping = dict(explicit)
    missing = []
    for canon in COLUMNS:
        if canon in mapping:
            continue
        accepted = {_normalise(alias) for alias in DEFAULT_ALIASES[canon]}
        taken = set(mapping.values())
        found = [name for name in header if name not in taken and _normalise(name) in accepted]
        if len(found) > 1:
            raise InputError(
                f"several headers match {canon!r}: {found}; pass an explicit column mapping",
                path=path,
            )
        if found:
            mapping[canon] = found[0]
        else:
            missing.append(canon)
    if missing:
        wanted = "; ".join(
            f"{canon} (accepted: {', '.join(DEFAULT_ALIASES[canon])})" for canon in missing
        )
        raise InputError(
            f"missing required column(s): {wanted}; headers found: {', '.join(header)}",
            path=path,
        )
    logger.debug("%s: column mapping %s", path, mapping)
    return mapping


def _clean_text(values: pd.Series) -> pd.Series:
    """Return text values stripped of whitespace, with NA tokens as missing."""
    text = values.astype("str").str.strip()
    return text.mask(text.isin(NA_TOKENS))


def _canonical_frame(frame: Mapping[str, pd.Series], mapping: dict[str, str]) -> pd.DataFrame:
    """Build ``source_row``, the canonical columns, then the extra columns, all cleaned."""
    rows = len(next(iter(frame.values())))
    data = {SOURCE_ROW: pd.Series(np.arange(1, rows + 1, dtype="int64"))}
    for canon in COLUMNS:
        values = frame[mapping[canon]]
        data[canon] = values if pd.api.types.is_float_dtype(values) else _clean_text(values)
    used = set(mapping.values())
    for name in frame:
        if name not in used:
            data[_unique_name(name, data)] = _clean_text(frame[name])
    return pd.DataFrame(data)


def _unique_name(name: str, taken: Mapping[str, object]) -> str:
    """Return ``name``, or ``name_extra``/``name_extra2``... if it would clash with ``taken``."""
    candidate, number = name, 1
    while candidate in taken:
        candidate = f"{name}_extra" + (str(number) if number > 1 else "")
        number += 1
    return candidate
