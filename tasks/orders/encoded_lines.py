"""Order lines as integer codes into each column's distinct values, read once.

The derivation of ``tasks.orders.transactions`` compares, parses and prints values per distinct
value, never per line: a column is ``codes`` (one integer per line, -1 for a missing value) into
``values`` (its distinct values, cleaned as ``tasks.ingest.read_file`` cleans them: text
stripped with the NA tokens missing, numbers as float64). Equal codes mean equal values.

``encode_frame`` encodes a frame as ``read_file`` gives it (a CSV file, tests).
``read_encoded_lines`` reads a Parquet file straight into codes: each column in Parquet's own
type, string columns as Arrow dictionaries (the file's dictionary pages, no text copy of ten
million lines), and only the distinct values are cleaned. The values it gives are those
``read_file`` would give for the same file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as arrow
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.columns import SOURCE_ROW
from tasks.errors import InputError
from tasks.ingest import (
    NA_TOKENS,
    PARQUET_SUFFIXES,
    _arrow_to_text,
    _check_is_file,
    _check_unique,
    _clean_text,
    _header_name,
    _is_number,
    _parquet_errors,
    _unique_name,
    numbers_as_text,
    read_file,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class EncodedColumn:
    """One column: ``codes`` (int64, -1 missing) into ``values`` (distinct, text or float64)."""

    codes: np.ndarray
    values: pd.Series

    @property
    def present(self) -> np.ndarray:
        return self.codes >= 0

    @cached_property
    def text_array(self) -> arrow.Array:
        """The distinct values as the file shows them (``17850.0`` -> ``"17850"``), in Arrow."""
        values = numbers_as_text(self.values.reset_index(drop=True))
        return arrow.array(values, type=arrow.large_string(), from_pandas=True)

    def text(self) -> np.ndarray:
        """The distinct values as the file shows them, as Python strings."""
        return self.text_array.to_numpy(zero_copy_only=False)

    def shown(self, rows: np.ndarray) -> pd.Series:
        """The values of ``rows`` (positions) as text, missing as NA."""
        codes = self.codes[rows]
        taken = self.text_array.take(arrow.array(codes, mask=codes < 0))
        return pd.Series(pd.array(taken, dtype="str"))


@dataclass(frozen=True, eq=False)
class EncodedLines:
    """Every column of an order-line file, encoded, under the file's own headers, with each
    line's ``source_row`` (its 1-based data row in the file)."""

    source_row: np.ndarray
    columns: Mapping[str, EncodedColumn]

    def __len__(self) -> int:
        return len(self.source_row)

    def __getitem__(self, header: str) -> EncodedColumn:
        return self.columns[header]

    @property
    def headers(self) -> list[str]:
        return list(self.columns)


def encode_frame(lines: pd.DataFrame) -> EncodedLines:
    """Encode order lines as ``read_file`` gives them (``source_row``, then the columns)."""
    columns = {}
    for name in lines.columns[1:]:
        codes, uniques = pd.factorize(lines[name])
        columns[name] = EncodedColumn(codes.astype("int64", copy=False), pd.Series(uniques))
    return EncodedLines(lines[SOURCE_ROW].to_numpy(dtype="int64"), columns)


def read_order_file(source: Path, sep: str | None) -> tuple[EncodedLines, pd.DataFrame | None]:
    """An order-line file as codes, and the lines as read when the file is text (a run keeps
    them as raw.parquet; None for Parquet, read straight into codes in its own types)."""
    if source.suffix.lower() in PARQUET_SUFFIXES:
        return read_encoded_lines(source), None
    raw = read_file(source, sep)
    return encode_frame(raw), raw


def read_encoded_lines(path: str | Path, *, threads: int = 2) -> EncodedLines:
    """Read a Parquet file of order lines into codes, column by column in its own types (see
    the module docstring), ``threads`` columns at a time (Arrow reads and hashes without
    holding the GIL)."""
    path = Path(path)
    _check_is_file(path)
    headers, names, rows = _parquet_layout(path)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        encoded = list(pool.map(lambda name: encode_arrow(_read_column(path, name)), names))
    columns: dict[str, EncodedColumn] = {}
    for header, column in zip(headers, encoded, strict=True):
        columns[_unique_name(header, {SOURCE_ROW: None, **columns})] = column
    log.info("read %d rows and %d columns from %s", rows, len(columns), path)
    return EncodedLines(np.arange(1, rows + 1, dtype="int64"), columns)


def _parquet_layout(path: Path) -> tuple[list[str], list[str], int]:
    """(headers as ``read_file`` names them, the stored column names, rows); ``InputError``
    for a file Parquet cannot read, with repeated headers, or with no rows."""
    if path.stat().st_size == 0:
        raise InputError("is empty", path=path)
    with _parquet_errors(path):
        parquet = pq.ParquetFile(path)
        names = list(parquet.schema_arrow.names)
        rows = parquet.metadata.num_rows
    headers = [_header_name(name, position) for position, name in enumerate(names, 1)]
    _check_unique(path, headers)
    if rows == 0:
        raise InputError("has columns but no data rows", path=path)
    return headers, names, rows


# Read per row group as dictionaries when the first row group has at most this many distinct
# values per line; above, one dictionary over all lines is cheaper than unifying the groups'.
DICTIONARY_SHARE = 0.1


def _read_column(path: Path, name: str) -> arrow.ChunkedArray:
    """One column as stored. Text of few distinct values comes as a dictionary per row group
    (the file's own dictionary pages: no string is hashed per line); text of many (invoice
    ids, timestamps), where each row group's dictionary is nearly as long as the row group,
    as plain text (``encode_arrow`` builds one dictionary in one pass over the lines)."""
    with _parquet_errors(path):
        parquet = pq.ParquetFile(path)  # one per thread: a reader is not shared
        if _is_text(parquet.schema_arrow.field(name).type):
            by_group = pq.ParquetFile(path, read_dictionary=[name])
            probe = by_group.read_row_group(0, columns=[name], use_pandas_metadata=False)
            dictionaries = sum(len(chunk.dictionary) for chunk in probe.column(0).chunks)
            if dictionaries <= DICTIONARY_SHARE * probe.num_rows:
                return by_group.read(columns=[name], use_pandas_metadata=False).column(0)
        return parquet.read(columns=[name], use_pandas_metadata=False).column(0)


def encode_arrow(column: arrow.ChunkedArray) -> EncodedColumn:
    """Codes of an Arrow column into its distinct values cleaned as ``read_file`` cleans them
    (numbers as float64; anything else as stripped text with NA tokens missing); values that
    clean to the same one share a code. A dictionary column (each Parquet row group with its
    own dictionary) is unified here: its dictionaries are cleaned and factorized together,
    one pass over the distinct values of each row group, none over the lines."""
    if arrow.types.is_null(column.type) or not len(column):  # no value at all
        return EncodedColumn(np.full(len(column), -1, dtype="int64"), pd.Series([], dtype="str"))
    categorical = arrow.types.is_dictionary(column.type) and not _is_text(column.type.value_type)
    if not arrow.types.is_dictionary(column.type):  # one dictionary for the whole column
        column = arrow.chunked_array([pc.dictionary_encode(column.combine_chunks())])
    chunks = [chunk for chunk in column.chunks if len(chunk)]
    dictionaries = arrow.concat_arrays([chunk.dictionary for chunk in chunks])
    if _is_text(dictionaries.type) and not _any_padded(dictionaries):
        remap, values = _factorize_text(dictionaries, len(chunks) == 1)  # all in Arrow
    else:
        if not categorical and _is_number(dictionaries.type):
            cleaned = pd.Series(
                pc.cast(dictionaries, arrow.float64()).to_numpy(zero_copy_only=False),
                dtype="float64",
            )
        else:
            cleaned = _clean_text(_arrow_to_text(arrow.chunked_array([dictionaries])))
        remap, values = pd.factorize(cleaned)  # NaN and NA tokens -> -1; equal values merged
    remap = np.append(remap.astype("int64"), -1)  # the last entry: a missing line stays missing
    codes, start, offset = np.empty(len(column), dtype="int64"), 0, 0
    for chunk in chunks:
        indices = pc.fill_null(pc.cast(chunk.indices, arrow.int64()), -1).to_numpy()
        end = start + len(chunk)
        codes[start:end] = remap[np.where(indices < 0, len(remap) - 1, indices + offset)]
        start, offset = end, offset + len(chunk.dictionary)
    return EncodedColumn(codes, pd.Series(values))


# What Python's str.strip() strips (str.isspace), as code points (for Arrow's RE2 here and
# DuckDB's trim in tasks.orders.out_of_core).
STRIPPED = (
    *range(0x09, 0x0E),
    *range(0x1C, 0x21),
    0x85,
    0xA0,
    0x1680,
    *range(0x2000, 0x200B),
    0x2028,
    0x2029,
    0x202F,
    0x205F,
    0x3000,
)
_SPACE = "[" + "".join(f"\\x{{{code:x}}}" for code in STRIPPED) + "]"  # an RE2 class


def _any_padded(text: arrow.Array) -> bool:
    """Whether any value starts or ends with whitespace (that ``_clean_text`` strips)."""
    return bool(pc.any(pc.match_substring_regex(text, f"^{_SPACE}|{_SPACE}$")).as_py())


def _factorize_text(text: arrow.Array, distinct: bool) -> tuple[np.ndarray, pd.Series]:
    """``pd.factorize(_clean_text(text))`` for text with nothing to strip, in Arrow: the NA
    tokens missing, then (codes, -1 missing, into the distinct values in order of first
    appearance). ``distinct``: no value repeats (one dictionary), so only NA tokens move."""
    na = pc.is_in(text, value_set=arrow.array(NA_TOKENS, text.type))
    if distinct and not pc.any(na).as_py():
        return np.arange(len(text), dtype="int64"), text.to_pandas().astype("str")
    encoded = pc.dictionary_encode(pc.if_else(na, arrow.scalar(None, text.type), text))
    codes = pc.fill_null(pc.cast(encoded.indices, arrow.int64()), -1).to_numpy()
    return codes, encoded.dictionary.to_pandas().astype("str")


def _is_text(kind: arrow.DataType) -> bool:
    """Text that Arrow's string kernels take (string_view is cleaned as ``read_file`` does)."""
    return arrow.types.is_string(kind) or arrow.types.is_large_string(kind)
