"""Write a starter segmentation spec for a file (``segment init``): every column with its
inferred kind and role, the id guess, the observed range and values as comments (the only check:
``min = 0`` where no value is negative), a suggested ``log1p`` for strongly right-skewed
amounts, and a comment on each key.

Kinds and ranges come from ``pandera.infer_schema`` on the typed frame (the library that holds
the project's contracts); the rest (roles, skew, labels) is decided here, in pure functions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import partial
from typing import cast

import numpy as np
import pandas as pd
import pandera.pandas as pa
from scipy import stats

from schemas.spec import ID_SPELLINGS, NO_ID, parse_spec
from tasks.table import MAX_CATEGORIES, NUMERIC_SHARE, normalise

SKEW_FOR_LOG = 1.0  # a non-negative column skewed more than this gets log1p suggested
MAX_CODES = 10  # whole numbers with at most this many values are codes or counts to profile
_UNIT = re.compile(r"^(?P<label>.*?)\s*[\(\[](?P<unit>[^\)\]]{1,20})[\)\]]\s*$")


@dataclass(frozen=True)
class Inferred:
    """What ``segment init`` found out about one column."""

    header: str
    kind: str  # numeric, categorical, or "unused" (ids, free text, dates)
    role: str  # id, feature, profile or unused
    label: str
    unit: str | None
    nullable: bool
    missing: int
    note: str
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | None = None
    skew: float | None = None
    transform: str = "none"


def typed_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """The columns as numbers where nearly every present value is one, else as text."""
    typed = {}
    for name in raw.columns:
        values = raw[name]
        present = values.dropna()
        if pd.api.types.is_numeric_dtype(values):
            typed[name] = values.astype("float64")
            continue
        parsed = pd.to_numeric(present, errors="coerce")
        if len(present) and parsed.notna().mean() >= NUMERIC_SHARE:
            typed[name] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            typed[name] = values.astype("str")
    return pd.DataFrame(typed, index=raw.index)


def infer_columns(raw: pd.DataFrame) -> list[Inferred]:
    """Infer each column of ``raw`` (values as read, columns by header, no ``source_row``)."""
    typed = typed_frame(raw)
    # a DataFrame in, a DataFrameSchema out (pandera types the result as either kind of schema)
    schema = cast(pa.DataFrameSchema, pa.infer_schema(typed))
    id_header = _guess_id(typed)
    inferred = []
    for header in typed.columns:
        inferred.append(_infer(header, typed[header], schema.columns[header], header == id_header))
    return inferred


def _guess_id(typed: pd.DataFrame) -> str | None:
    """The first header spelled like an id (repeats are the cleaning's business), preferring
    one with unique values."""
    accepted = {normalise(s) for s in ID_SPELLINGS}
    named = [h for h in typed.columns if normalise(h) in accepted]
    unique = [h for h in named if typed[h].dropna().is_unique]
    return (unique or named or [None])[0]


def _infer(header: str, values: pd.Series, column: pa.Column, is_id: bool) -> Inferred:
    label, unit = _label_and_unit(header)
    present = values.dropna()
    missing = int(values.isna().sum())
    numeric = pd.api.types.is_float_dtype(values)
    low, high = _range(column) if numeric else (None, None)
    distinct = int(present.nunique())
    common = partial(
        Inferred,
        header=header,
        label=label,
        unit=unit,
        nullable=bool(column.nullable),
        missing=missing,
    )
    if is_id:
        return common(kind="categorical", role="id", note="the customer id (unique values)")
    if not numeric:
        if distinct > MAX_CATEGORIES or distinct <= 1:
            why = f"{distinct} different values" if distinct > 1 else "one value"
            return common(
                kind="categorical", role="unused",
                note=f"text with {why}: not used (name it in profile to describe it)",
            )  # fmt: skip
        allowed = tuple(sorted(str(v) for v in present.unique()))
        return common(
            kind="categorical", role="profile", allowed=allowed,
            note=f"text with {distinct} values: described per segment",
        )  # fmt: skip
    x = present.to_numpy(dtype="float64")
    whole = bool(len(x)) and np.array_equal(x, np.round(x))
    if distinct <= 1:
        return common(
            kind="numeric", role="unused", minimum=low, maximum=high,
            note="one value in every row: cannot separate segments",
        )  # fmt: skip
    if whole and distinct <= 2 and set(np.unique(x)) <= {0.0, 1.0}:
        return common(
            kind="numeric", role="profile", minimum=low, maximum=high,
            note="a 0/1 flag: its rate is described per segment",
        )  # fmt: skip
    small_codes = whole and distinct <= MAX_CODES
    if small_codes and low is not None and high is not None and low >= 0 and high <= 20:
        return common(
            kind="categorical", role="profile", allowed=tuple(str(int(v)) for v in np.unique(x)),
            note=f"{distinct} whole-number codes: described per segment as categories",
        )  # fmt: skip
    skew = float(stats.skew(x)) if len(x) > 2 else 0.0
    transform = "log1p" if low is not None and low >= 0 and skew > SKEW_FOR_LOG else "none"
    note = "numeric: clustered on"
    if transform == "log1p":
        note += f"; right-skewed (skew {skew:.1f}), so log1p before scaling"
    return common(
        kind="numeric", role="feature", minimum=low, maximum=high,
        skew=skew, transform=transform, note=note,
    )  # fmt: skip


def _range(column: pa.Column) -> tuple[float | None, float | None]:
    """The observed minimum and maximum, from pandera's inferred checks."""
    low = high = None
    for check in column.checks:
        statistics = check.statistics or {}
        if "min_value" in statistics:
            low = float(statistics["min_value"])
        if "max_value" in statistics:
            high = float(statistics["max_value"])
    return low, high


def _label_and_unit(header: str) -> tuple[str, str | None]:
    """``Annual Income (k$)`` -> (``Annual Income``, ``k$``); else (header, None)."""
    match = _UNIT.match(header)
    if match and match.group("label"):
        return match.group("label"), match.group("unit")
    return header, None


def render_spec(columns: list[Inferred], source: str, rows: int) -> str:
    """The starter spec as TOML text, with a comment on each key."""
    id_column = next((c.header for c in columns if c.role == "id"), None)
    features = [c.header for c in columns if c.role == "feature"]
    profile = [c.header for c in columns if c.role == "profile"]
    if not features:  # nothing numeric to cluster on: let the user choose
        features = [c.header for c in columns if c.kind == "categorical" and c.role == "profile"]
        profile = [p for p in profile if p not in features]
    lines = [
        f"# Segmentation spec for {_plain(source)}, written by `segment init` from {rows:,} rows.",
        f"# Edit it, then run: segment run --input {_plain(source)} --spec THIS_FILE.toml",
        "# Options given on the command line (--features, --profile, ...) override this file.",
        "",
        '# The customer id column ("none": the file has no id; customers are numbered by row).',
        f"id_column = {_q(id_column or NO_ID)}",
        "",
        '# Columns to cluster on ("numeric": every numeric column but the id and profile ones).',
        f"features = {_list(features)}",
        "",
        "# Columns described per segment but not clustered on.",
        f"profile = {_list(profile)}",
        "",
        '# A missing feature value: "quarantine" the row, or fill the column "median".',
        "# (a column's own `missing` key overrides this)",
        'missing = "quarantine"',
        "",
        "# PCA before K-Means: a number of components (3) or a share of variance (0.9).",
        "# pca = 0.9",
    ]
    for column in columns:
        lines += ["", f"# {_plain(column.header)}: {column.note}"]
        if column.role in ("id", "unused"):
            lines.append(f"# [columns.{_q(column.header)}] is not used")
            continue
        lines += [f"[columns.{_q(column.header)}]", *_column_lines(column)]
    return "\n".join(lines) + "\n"


def _column_lines(column: Inferred) -> list[str]:
    """The keys of one column. What this one file holds is written as comments, not checks:
    tomorrow's file may hold larger values or new codes, and a check would quarantine them.
    The one check kept is the natural bound ``min = 0`` of a column with no negative value
    (amounts, counts; ``log1p`` needs it)."""
    lines = [
        f"kind = {_q(column.kind)}  # numeric or categorical",
        f"label = {_q(column.label)}  # in segment names, plots and tables",
    ]
    if column.unit:
        lines.append(f"unit = {_q(column.unit)}")
    if column.kind == "numeric":
        if column.minimum is not None and column.maximum is not None:
            lines.append(
                f"# seen in this file: {_n(column.minimum)} to {_n(column.maximum)} (not checked; "
                "add min/max to quarantine values outside a range)"
            )
        if column.minimum is not None and column.minimum >= 0:
            lines.append(
                "min = 0  # check: no value here is negative, so a negative one is quarantined"
            )
    elif column.allowed is not None:
        lines.append(
            f"# allowed = {_list(column.allowed)}  # the values seen; uncomment to quarantine "
            "any other value"
        )
    may_miss = column.missing > 0 or column.role == "profile"
    lines.append(f"nullable = {str(may_miss).lower()}  # may the value be missing?")
    if column.role == "feature":
        lines.append(
            f"transform = {_q(column.transform)}  # none, log1p, yeo-johnson or clip (quantiles "
            "in clip = [0.01, 0.99])"
        )
        if column.missing:
            lines.append(
                f'missing = "median"  # {column.missing:,} missing values: filled with the median'
            )
        lines.append("weight = 1.0  # multiplies the column after scaling")
    return lines


def _q(text: str) -> str:
    """``text`` as a TOML basic string: JSON's escapes of quotes, backslashes and control
    characters are TOML's too, but JSON leaves DEL as it is and TOML refuses it raw."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _plain(text: str) -> str:
    """``text`` (a header, a path) escaped as in ``_q`` but unquoted, safe in a comment line:
    a line break in a header would otherwise end the comment."""
    return _q(text)[1:-1]


def _list(items) -> str:
    return "[" + ", ".join(_q(str(i)) for i in items) + "]"


def _n(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(float(value))


def starter_spec(raw: pd.DataFrame, source: str) -> str:
    """The spec text for ``raw`` (as ``tasks.ingest.read_file`` gives it); checked to parse."""
    frame = raw.drop(columns=["source_row"], errors="ignore")
    text = render_spec(infer_columns(frame), source, len(frame))
    parse_spec(text, "the written spec")  # a bug if what we write does not read back
    return text
