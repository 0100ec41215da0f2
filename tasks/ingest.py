"""Read a raw customer CSV or Parquet file as text columns; fail only on file problems.

Values are kept as text (``0001`` stays ``0001``); cleaning and typing happen later.
``read_file`` gives ``source_row`` then every column under the file's own header (the audit copy,
``raw.parquet``); ``canonical_frame`` renames the columns a ``tasks.table.ColumnPlan`` uses to their
names. Bad values are the cleaning step's job, not a reason to refuse the file.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as arrow
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.columns import CUSTOMER_ID, SOURCE_ROW
from schemas.spec import TableSpec
from tasks.errors import NOT_A_REGULAR_FILE, InputError
from tasks.orders.order_columns import order_lines_hint
from tasks.spec_init import Inferred, infer_columns, inference_notes, inferred_spec
from tasks.table import SEPARATOR, ColumnPlan, choose_spec, resolve_table

logger = logging.getLogger(__name__)

SAMPLE_ROWS = 10_000  # rows read before the run to resolve and check the columns
SAMPLE_BYTES = 8 * 2**20  # at most this much of a text file is read for that sample


# Whole-field tokens read as missing, compared after stripping whitespace, in their lower,
# upper and capitalised spellings (n/a, N/A, N/a; null, NULL, Null ...) and Excel's #N/A; NaN
# only as NaN or nan (pandas' spellings: "NAN" stays text, not a number). A lone
# "-" is a common placeholder; it never matches a negative number such as "-5", because matching
# is whole-field. (A tuple of spellings, not a lower-cased comparison: no extra pass over the data.)
_NA_WORDS = ("na", "n/a", "null", "none", "#n/a")
NA_TOKENS = ("", "?", "-", "NaN", "nan") + tuple(
    dict.fromkeys(v for w in _NA_WORDS for v in (w, w.upper(), w.capitalize()))
)
SEPARATORS = (",", ";", "\t", "|")
PARQUET_SUFFIXES = (".parquet", ".pq")

_MERGE_MARKER = re.compile(r"^(?:<<<<<<< |=======\r?$|>>>>>>> )", re.MULTILINE)
# Library internals: pandas' C parser reports a malformed row's line only in its message text
# (no attribute carries it), and pyarrow prefixes Parquet errors with the path. Kept for
# one-line errors that name the line; tests/test_bad_inputs.py and tests/test_ingest.py pin
# these messages to the installed pandas and pyarrow.
_PARSER_LINE = re.compile(r"line (\d+)")
_UNCLOSED_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


def read_header(path: str | Path, sep: str | None = None) -> list[str]:
    """The file's header as written (cheap: the Parquet schema, or the first lines of text)."""
    return list(read_file(path, sep, nrows=1).columns[1:])


def count_data_rows(path: str | Path) -> int:
    """At most how many data rows the file holds, cheaply: a Parquet file's row count from its
    footer; for text, its lines minus the header (an upper bound: blank lines, comment lines and
    line breaks inside quoted fields are counted too). For checks before the whole file is read.
    """
    path = Path(path)
    _check_is_file(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        with _parquet_errors(path):
            return pq.ParquetFile(path).metadata.num_rows
    newlines = carriage_returns = 0
    last = b""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(2**22):
                newlines += chunk.count(b"\n")
                carriage_returns += chunk.count(b"\r")
                last = chunk[-1:]
    except OSError as error:
        raise InputError(f"cannot be read: {error.strerror or error}", path=path) from error
    lines = newlines or carriage_returns  # old Mac line endings: CR only
    if last and last not in (b"\n", b"\r"):
        lines += 1  # a last line without a line break
    return max(lines - 1, 0)


def read_file(
    path: str | Path,
    sep: str | None = None,
    *,
    expected: Mapping[str, tuple[str, str]] | None = None,
    nrows: int | None = None,
) -> pd.DataFrame:
    """Read a CSV or Parquet file into ``source_row`` plus every column under its own header.

    Values are text (stripped, NA tokens missing), but a Parquet column stored as numbers is
    float64. ``expected`` (from ``expected_types``): what each used column may be stored as in
    Parquet; then only its "numbers or text" columns stay numbers. ``nrows``: the first rows.
    A text file's separator (given or sniffed) is in the result's ``attrs[SEPARATOR]``.
    """
    path = Path(path)
    _check_is_file(path)
    separator = None
    if path.suffix.lower() in PARQUET_SUFFIXES:
        header, table = _read_parquet(path, nrows)
        _check_unique(path, header)
        if expected is None:  # no table yet (a sample): every column stored as numbers stays so
            numeric = set(header)
        else:
            types = dict(zip(header, table.schema.types, strict=True))
            _check_parquet_types(path, types, expected)
            numeric = {h for h, (_, what) in expected.items() if what == "numbers or text"}
        columns = _parquet_columns(table, header, numeric)
        del table
    else:
        header, frame, separator = _read_text(path, sep, nrows)
        _check_unique(path, header)
        frame.columns = header
        columns = {name: frame[name] for name in header}
    result = _file_frame(columns)
    if separator is not None:
        result.attrs[SEPARATOR] = separator  # to tell thousands separators from decimal commas
    if nrows is None:
        logger.info("read %d rows and %d columns from %s", len(result), len(header), path)
    return result


def _check_unique(path: Path, header: list[str]) -> None:
    duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicates:
        raise InputError(f"duplicate column names in the header: {duplicates}", path=path)


def canonical_frame(raw: pd.DataFrame, table: ColumnPlan) -> pd.DataFrame:
    """``source_row``, ``customer_id`` (the data row number when the file has no id), the
    table's columns renamed to their names, then the other columns of the file."""
    data = {SOURCE_ROW: raw[SOURCE_ROW]}
    if table.id_header is None:
        data[CUSTOMER_ID] = raw[SOURCE_ROW].astype("str")
    else:
        data[CUSTOMER_ID] = raw[table.id_header]
    for column in table.columns:
        data[column.name] = raw[column.header]
    used = {table.id_header, *(c.header for c in table.columns)}
    for name in raw.columns[1:]:
        if name not in used:
            data[_unique_name(name, data)] = raw[name]
    return pd.DataFrame(data)


def _check_is_file(path: Path) -> None:
    """Raise InputError unless ``path`` is an existing regular file (a pipe is refused: with
    no writer, opening it waits forever; with one, its contents can be read only once)."""
    if not path.exists():
        raise InputError("no such file", path=path)
    if path.is_dir():
        raise InputError("is a directory, expected a CSV or Parquet file", path=path)
    if not path.is_file():
        raise InputError(NOT_A_REGULAR_FILE, path=path)


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    """Read the whole file once (or its first ``limit`` bytes, cut after the last whole line),
    turning OS errors into InputError."""
    try:
        if limit is None:
            return path.read_bytes()
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as error:
        raise InputError(f"cannot be read: {error.strerror or error}", path=path) from error
    if len(raw) <= limit or raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw if len(raw) <= limit else path.read_bytes()
    return raw[: raw.rfind(b"\n") + 1] or raw


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


def _read_text(
    path: Path, sep: str | None, nrows: int | None = None
) -> tuple[list[str], pd.DataFrame, str]:
    """Read delimited text into (header names, all-text data frame, separator); with
    ``nrows``, only the first rows, from the start of the file."""
    text = _decode(path, _read_bytes(path, None if nrows is None else SAMPLE_BYTES))
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
            nrows=None if nrows is None else nrows + 1,
        )
    except pd.errors.ParserError as error:
        raise InputError(_parser_message(error, header_line_no), path=path) from error
    if len(frame) < 2:
        raise InputError("has a header but no data rows", path=path)
    header = [_header_name(value, position) for position, value in enumerate(frame.iloc[0], 1)]
    data = frame.iloc[1:].reset_index(drop=True)
    _check_rows_split(path, data, sep)
    return header, data, sep


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


def _read_parquet(path: Path, nrows: int | None = None) -> tuple[list[str], arrow.Table]:
    """Read a Parquet file (or its first ``nrows`` rows) into (header names, Arrow table)."""
    if path.stat().st_size == 0:
        raise InputError("is empty", path=path)
    with _parquet_errors(path):
        if nrows is None:
            table = pq.read_table(path)
        else:
            parquet = pq.ParquetFile(path)
            batch = next(parquet.iter_batches(batch_size=nrows), None)
            table = (
                arrow.Table.from_batches([batch])
                if batch is not None
                else parquet.schema_arrow.empty_table()
            )
    if table.num_rows == 0:
        raise InputError("has columns but no data rows", path=path)
    header = [_header_name(name, position) for position, name in enumerate(table.column_names, 1)]
    return header, table


@contextmanager
def _parquet_errors(path: Path) -> Iterator[None]:
    """Arrow's errors reading a Parquet file as one ``InputError`` naming the file (once)."""
    try:
        yield
    except (arrow.ArrowException, OSError) as error:
        reason = re.sub(r"^Could not open Parquet input source '.*?': ", "", str(error))
        raise InputError(f"not a readable Parquet file: {reason}", path=path) from error


def _parquet_columns(
    table: arrow.Table, header: list[str], numeric: set[str]
) -> dict[str, pd.Series]:
    """The table's columns by name as pandas: those named in ``numeric`` and stored as numbers
    become float64 (missing: NaN); every other column becomes text. (Not yet one frame: that
    would copy the numbers once more.)"""
    columns = {}
    for name, column in zip(header, table.columns, strict=True):
        if name in numeric and _is_number(column.type):
            values = pc.cast(column, arrow.float64()).to_numpy(zero_copy_only=False)
            columns[name] = pd.Series(values, dtype="float64")
        else:
            columns[name] = _arrow_to_text(column)
    return columns


def _arrow_to_text(column: arrow.ChunkedArray) -> pd.Series:
    """Convert an Arrow column to pandas text; ints print without ``.0``, NaN/None become NA."""
    try:
        text = pc.cast(column, arrow.string())
    except (arrow.ArrowNotImplementedError, arrow.ArrowInvalid):  # lists, bytes not UTF-8
        text = arrow.array([None if value is None else str(value) for value in column.to_pylist()])
    return text.to_pandas().astype("str")


def numbers_as_text(values: pd.Series) -> pd.Series:
    """A column read as numbers, as the file's own text would show it (``30.0`` -> ``"30"``,
    NaN -> missing); a text column as it is."""
    if pd.api.types.is_string_dtype(values):
        return values
    text = pc.cast(arrow.array(values, from_pandas=True), arrow.string())
    return pd.Series(text.to_pylist(), index=values.index, dtype="str")


def _is_text(kind: arrow.DataType) -> bool:
    return (
        arrow.types.is_string(kind)
        or arrow.types.is_large_string(kind)
        or arrow.types.is_string_view(kind)
    )


def _is_number(kind: arrow.DataType) -> bool:
    return (
        arrow.types.is_integer(kind)
        or arrow.types.is_floating(kind)
        or arrow.types.is_decimal(kind)
    )


def _check_parquet_types(
    path: Path, types: Mapping[str, arrow.DataType], expected: Mapping[str, tuple[str, str]]
) -> None:
    """Refuse a used column whose Parquet type cannot hold its values (dates, booleans...).
    ``expected``: header -> (column name, one of PARQUET_TYPES)."""
    for header, (name, what) in expected.items():
        kind = types.get(header)
        if kind is None:
            continue
        if arrow.types.is_dictionary(kind):  # e.g. a pandas categorical
            kind = kind.value_type
        if not (arrow.types.is_null(kind) or PARQUET_TYPES[what](kind)):
            raise InputError(
                f"Parquet type {kind} cannot hold {name}: expected {what}", path=path, column=header
            )


# The Parquet types a used column may have (text is cleaned like a CSV's values).
PARQUET_TYPES = {
    "numbers or text": lambda kind: _is_number(kind) or _is_text(kind),
    "text or integers": lambda kind: _is_text(kind) or arrow.types.is_integer(kind),
    "text": _is_text,
    "text or booleans": lambda kind: _is_text(kind) or arrow.types.is_boolean(kind),
}


def expected_types(table: ColumnPlan) -> dict[str, tuple[str, str]]:
    """What each used column of ``table`` may be stored as in Parquet: header -> (name, types)."""
    expected = {}
    if table.id_header is not None:
        expected[table.id_header] = (CUSTOMER_ID, "text or integers")
    for column in table.columns:
        if column.numeric:
            what = "numbers or text"
        else:
            allowed = column.spec.allowed or ()
            if allowed and {v.lower() for v in allowed} <= {"true", "false"}:
                what = "text or booleans"  # a 0/1 answer stored as a Parquet bool
            elif allowed and not all(v.lstrip("-").isdigit() for v in allowed):
                what = "text"
            else:
                what = "text or integers"  # e.g. region codes 1, 2, 3
        expected[column.header] = (column.name, what)
    return expected


def _clean_text(values: pd.Series) -> pd.Series:
    """Return text values stripped of whitespace, with NA tokens as missing."""
    text = values.astype("str").str.strip()
    return text.mask(text.isin(NA_TOKENS))


def _file_frame(columns: Mapping[str, pd.Series]) -> pd.DataFrame:
    """``source_row`` then every column under its header: text cleaned, numbers as they are."""
    rows = len(next(iter(columns.values())))
    data = {SOURCE_ROW: pd.Series(np.arange(1, rows + 1, dtype="int64"))}
    for name, values in columns.items():
        column = values if pd.api.types.is_float_dtype(values) else _clean_text(values)
        data[_unique_name(name, data)] = column
    return pd.DataFrame(data)


def _unique_name(name: str, taken: Mapping[str, object]) -> str:
    """Return ``name``, or ``name_extra``/``name_extra2``... if it would clash with ``taken``."""
    candidate, number = name, 1
    while candidate in taken:
        candidate = f"{name}_extra" + (str(number) if number > 1 else "")
        number += 1
    return candidate


def table_for_file(
    path: str | Path,
    *,
    sep: str | None = None,
    spec: TableSpec | None = None,
    columns: Mapping[str, str] | None = None,
    **choices: object,
) -> ColumnPlan:
    """Resolve the columns of a customer file from its header and first rows: ``spec`` (else
    the Mall preset for a Mall-like file, else the spec ``segment init`` infers from those
    rows) with the command line's ``choices`` (features, profile, id_column, missing, pca) on
    top; the table's ``notes`` say what was inferred and why. Cheap: run before the flow so
    that a wrong column name fails at once, and again inside it (same rows, same result)."""
    path = Path(path)
    sample = read_file(path, sep, nrows=SAMPLE_ROWS)
    header = list(sample.columns[1:])
    numeric_stored = [name for name in header if pd.api.types.is_float_dtype(sample[name])]
    inferred: list[Inferred] = []

    def infer() -> TableSpec:
        if not choices.get("features") and (hint := order_lines_hint(sample)) is not None:
            raise InputError(hint)
        inferred.extend(infer_columns(sample.drop(columns=SOURCE_ROW)))
        return inferred_spec(inferred, fill_missing=False)

    try:
        chosen = choose_spec(header, spec, columns, infer, **choices)
        table = resolve_table(header, sample, chosen, columns, numeric_headers=numeric_stored)
    except InputError as error:
        raise error.with_path(path) from error
    if inferred:
        notes = inference_notes(inferred, table, len(sample))
        table = table.model_copy(update={"notes": notes})
    if path.suffix.lower() in PARQUET_SUFFIXES:
        schema = pq.read_schema(path)
        types = dict(zip(schema.names, schema.types, strict=True))
        _check_parquet_types(path, types, expected_types(table))
    return table
