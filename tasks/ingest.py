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


def read_customers(
    path: str | Path, columns: Mapping[str, str] | None = None, sep: str | None = None
) -> pd.DataFrame:
    """Read a customer CSV or Parquet file into ``source_row`` plus canonical text columns."""
    path = Path(path)
    _check_is_file(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        header, frame = _read_parquet(path)
    else:
        header, frame = _read_text(path, sep)
    duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicates:
        raise InputError(f"duplicate column names in the header: {duplicates}", path=path)
    frame.columns = header
    mapping = _resolve_columns(path, header, columns)
    result = _canonical_frame(frame, mapping)
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
    """Decode UTF-8 (BOM optional), falling back to cp1252 with a warning."""
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        logger.warning(
            "%s is not valid UTF-8 (%s); decoding it as cp1252 instead", path, error.reason
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
    raw = _read_bytes(path)
    if b"\x00" in raw:
        raise InputError("looks like a binary file, not CSV (it contains NUL bytes)", path=path)
    text = _decode(path, raw)
    if "\n" not in text:
        text = text.replace("\r", "\n")  # old Mac line endings: CR only
    _check_merge_markers(path, text)
    offset, header_line_no, header_line = _find_header(text)
    if offset < 0:
        raise InputError("is empty (no header line)", path=path)
    sep = sep or _sniff_sep(header_line)
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
    return header, frame.iloc[1:].reset_index(drop=True)


def _parser_message(error: Exception, header_line_no: int) -> str:
    """Describe a pandas tokenizing error with line numbers counted from the top of the file."""
    reason = str(error).removeprefix("Error tokenizing data. C error: ").strip()
    match = _PARSER_LINE.search(reason)
    if match is None:
        return f"cannot be parsed as delimited text: {reason}"
    line = int(match.group(1)) + header_line_no - 1
    reason = _PARSER_LINE.sub(f"line {line}", reason, count=1)
    return f"malformed row at line {line}: {reason}"


def _header_name(value: object, position: int) -> str:
    """Return a stripped header name; a blank one becomes ``unnamed_<position>``."""
    name = "" if value is None or pd.isna(value) else str(value).strip()
    return name or f"unnamed_{position}"


def _read_parquet(path: Path) -> tuple[list[str], pd.DataFrame]:
    """Read a Parquet file into (header names, all-text data frame)."""
    if path.stat().st_size == 0:
        raise InputError("is empty", path=path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"not a readable Parquet file: {error}", path=path) from error
    if table.num_rows == 0:
        raise InputError("has columns but no data rows", path=path)
    header = [_header_name(name, position) for position, name in enumerate(table.column_names, 1)]
    frame = pd.DataFrame(
        {position: _arrow_to_text(column) for position, column in enumerate(table.columns)}
    )
    return header, frame


def _arrow_to_text(column: pa.ChunkedArray) -> pd.Series:
    """Convert an Arrow column to pandas text; ints print without ``.0``, NaN/None become NA."""
    try:
        text = pc.cast(column, pa.string())
    except pa.ArrowNotImplementedError:
        text = pa.array([None if value is None else str(value) for value in column.to_pylist()])
    return text.to_pandas().astype("str")


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


def _canonical_frame(frame: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """Build ``source_row``, the canonical columns, then the extra columns, all cleaned."""
    data = {SOURCE_ROW: pd.Series(np.arange(1, len(frame) + 1, dtype="int64"), index=frame.index)}
    for canon in COLUMNS:
        data[canon] = _clean_text(frame[mapping[canon]])
    used = set(mapping.values())
    for name in frame.columns:
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
