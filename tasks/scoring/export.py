"""Tables written for people: Parquet, or CSV that is safe to open in a spreadsheet.

A spreadsheet runs a cell that begins with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or
carriage return) as a formula: ``=HYPERLINK(...)`` in a customer id would run on opening. In a
CSV written here every text cell that begins with one of them gets a leading apostrophe (the
usual rule, OWASP "CSV injection"), which the spreadsheet shows as text; so does every header
cell (a header comes from the input file). Numbers stay numbers (``-5`` in a numeric column is
written as it is). Each file is written to a temporary name
beside it and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

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
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        if path.suffix.lower() == ".csv":
            table = pa.Table.from_pandas(spreadsheet_safe(frame), preserve_index=False)
            pa_csv.write_csv(table, tmp, pa_csv.WriteOptions(quoting_style="needed"))
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
