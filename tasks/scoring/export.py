"""Tables written for people: Parquet, or CSV that is safe to open in a spreadsheet.

A spreadsheet runs a cell that begins with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or
carriage return) as a formula: ``=HYPERLINK(...)`` in a customer id would run on opening. In a
CSV written here every text cell that begins with one of them gets a leading apostrophe (the
usual rule, OWASP "CSV injection"), which the spreadsheet shows as text; so does every header
cell (a header comes from the input file). Numbers stay numbers (``-5`` in a numeric column is
written as it is). Each file is written to a temporary name beside it and renamed into place,
so a reader never sees half a file; files that belong together (the assigned customers and
their quarantine) are renamed only once all of them are complete, so a failure (a full disk)
leaves the previous pair as it was, never a new file beside an old one. A write that fails is
an ``OutputError`` naming the file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as arrow
import pyarrow.csv as arrow_csv
import pyarrow.parquet as pq

from tasks.errors import cannot_write
from tasks.store.paths import open_new_file

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"
SUFFIXES = (".parquet", ".csv")


def check_output_path(path: str | Path) -> Path:
    """``path`` if it ends in .parquet or .csv; else ValueError naming what is expected."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(
            f"{path}: the output must end in .parquet or .csv (got {path.suffix or 'no suffix'!r})"
        )
    return path


def sidecar_path(path: str | Path, label: str) -> Path:
    """A file beside ``path`` with the same suffix: ``out.csv`` -> ``out.<label>.csv``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.{label}{path.suffix}")


def safe_header(name: object) -> object:
    """A column name as a CSV header cell: with a leading apostrophe when a spreadsheet would
    run it as a formula (the header row is cells too); other names unchanged."""
    if isinstance(name, str) and name.startswith(FORMULA_STARTS):
        return ESCAPE + name
    return name


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell and header that a spreadsheet would run as a formula
    escaped by a leading apostrophe and categorical columns as their text (a CSV has no
    dictionary columns); numeric, boolean and missing cells unchanged."""
    escaped = {}
    for name in frame.columns:
        values = frame[name]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype("str").mask(frame[name].isna())
        elif not (pd.api.types.is_string_dtype(values) or values.dtype == object):
            continue
        text = values.astype("str")
        risky = text.str.startswith(FORMULA_STARTS) & values.notna()
        escaped[name] = (ESCAPE + text).where(risky, values) if risky.any() else values
    safe = frame.assign(**escaped) if escaped else frame
    return safe.rename(columns=safe_header)


def write_table_file(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as Parquet or (spreadsheet-safe) CSV by the suffix of ``path``,
    atomically (a temporary name beside it, then a rename)."""
    return write_table_files([(frame, Path(path))])[0]


def write_table_files(tables: Sequence[tuple[pd.DataFrame, Path]]) -> list[Path]:
    """Write each ``(frame, path)`` as ``write_table_file`` does, all or none: every frame goes
    to a temporary file beside its path, and only when all are complete are they renamed into
    place, in the order given. An OS error (disk full, read-only, a folder that cannot be
    created) raises ``OutputError`` naming the path; the temporary files are removed and the
    files already at the paths are left as they were."""
    paths = [check_output_path(path) for _, path in tables]
    temporaries: list[Path] = []
    try:
        for (frame, _), path in zip(tables, paths, strict=True):
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                temporaries.append(tmp)
                with open_new_file(tmp) as handle:
                    _write_table(frame, path.suffix.lower(), handle)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as error:
                raise cannot_write(path, error) from error
        for tmp, path in zip(temporaries, paths, strict=True):
            try:
                os.replace(tmp, path)
            except OSError as error:
                raise cannot_write(path, error) from error
    finally:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)
    return paths


def _write_table(frame: pd.DataFrame, suffix: str, handle: BinaryIO) -> None:
    if suffix == ".csv":
        table = arrow.Table.from_pandas(spreadsheet_safe(frame), preserve_index=False)
        arrow_csv.write_csv(table, handle, arrow_csv.WriteOptions(quoting_style="needed"))
    else:
        pq.write_table(arrow.Table.from_pandas(frame, preserve_index=False), handle)
