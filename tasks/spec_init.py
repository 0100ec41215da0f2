"""Infer a segmentation spec from a file's values: ``segment init`` writes it as a starter spec
to edit, and a run with no ``--spec`` (and no Mall preset) uses the same spec directly.

Every column gets a kind and a role: the id guess; numbers as features (``log1p`` first when
non-negative and right-skewed); text with up to 50 values, 0/1 flags and a few whole-number
codes as profile columns (codes as categories); free text, constant and id-like columns left
out. The observed range and values are comments in the written spec, not checks (the only
check: ``min = 0`` where no value is negative).

Kinds and ranges come from ``pandera.infer_schema`` on the typed frame (the library that holds
the project's contracts); the rest (roles, skew, labels) is decided here, in pure functions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import partial
from typing import cast

import numpy as np
import pandas as pd
import pandera.pandas as pa

from schemas.spec import ID_SPELLINGS, NO_ID, ColumnSpec, TableSpec, parse_spec
from tasks.table import (
    MAX_CATEGORIES,
    NUMERIC_SHARE,
    SEPARATOR,
    ColumnPlan,
    decimal_comma_example,
    normalise,
    thousands_example,
    value_order,
)

SKEW_FOR_LOG = 1.0  # a non-negative column skewed more than this gets log1p suggested
MAX_CODES = 10  # whole numbers with at most this many values are codes or counts to profile
# "Annual Income (k$)" -> label and unit; a unit is short and plain (no quotes, commas or
# brackets): '=HYPERLINK("http://h","inc")' is a header shown as written, not a label and unit
_UNIT = re.compile(r"^(?P<label>.*?)\s*[\(\[](?P<unit>[^\)\]\(\[\"',]{1,20})[\)\]]\s*$")


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
    group: str = "numbers"  # why: id, id-like, text, free text, constant, flag, codes, numbers


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
    id_like = {normalise(s) for s in ID_SPELLINGS}
    inferred = []
    for header in typed.columns:
        column = _infer(header, typed[header], schema.columns[header], header == id_header)
        if typed[header].dtype != "float64" and _commas(raw[header], raw.attrs.get(SEPARATOR)):
            # numbers, once converted: a feature, so that the run refuses it and says how
            column = _decimal_commas(column)
        elif column.role != "id" and normalise(header) in id_like:
            column = replace(
                column,
                role="unused",
                group="id-like",
                note="spelled like a customer id: not clustered on",
            )
        inferred.append(column)
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
        return common(
            kind="categorical", role="id", group="id", note="the customer id (unique values)"
        )
    if not numeric:
        if distinct > MAX_CATEGORIES or distinct <= 1:
            why = f"{distinct} different values" if distinct > 1 else "one value"
            return common(
                kind="categorical", role="unused", group="free text" if distinct else "constant",
                note=f"text with {why}: not used (name it in profile to describe it)",
            )  # fmt: skip
        allowed = tuple(value_order(present.unique()))
        return common(
            kind="categorical", role="profile", allowed=allowed, group="text",
            note=f"text with {distinct} values: described per segment",
        )  # fmt: skip
    x = present.to_numpy(dtype="float64")
    whole = bool(len(x)) and np.array_equal(x, np.round(x))
    if distinct <= 1:
        return common(
            kind="numeric", role="unused", minimum=low, maximum=high, group="constant",
            note="one value in every row: cannot separate segments",
        )  # fmt: skip
    if whole and distinct <= 2 and set(np.unique(x)) <= {0.0, 1.0}:
        return common(
            kind="numeric", role="profile", minimum=low, maximum=high, group="flag",
            note="a 0/1 flag: its rate is described per segment",
        )  # fmt: skip
    small_codes = whole and distinct <= MAX_CODES
    if small_codes and low is not None and high is not None and low >= 0 and high <= 20:
        return common(
            kind="categorical", role="profile", allowed=tuple(str(int(v)) for v in np.unique(x)),
            group="codes",
            note=f"{distinct} whole-number codes: described per segment as categories",
        )  # fmt: skip
    skew = _skew(x)
    transform = "log1p" if low is not None and low >= 0 and skew > SKEW_FOR_LOG else "none"
    note = "numeric: clustered on"
    if transform == "log1p":
        note += f"; right-skewed (skew {skew:.1f}), so log1p before scaling"
    return common(
        kind="numeric", role="feature", minimum=low, maximum=high,
        skew=skew, transform=transform, note=note,
    )  # fmt: skip


def _commas(values: pd.Series, separator: str | None) -> bool:
    """Numbers written with decimal commas or thousands separators (read as text)."""
    found = thousands_example(values, separator) or decimal_comma_example(values)
    return found is not None


def _decimal_commas(column: Inferred) -> Inferred:
    return replace(
        column,
        kind="numeric",
        role="feature",
        group="decimal commas",
        allowed=None,
        note="numbers written with commas (decimal or thousands): convert the file first",
    )


def _skew(x: np.ndarray) -> float:
    """The sample skewness (Fisher-Pearson, as ``scipy.stats.skew``): 0 for fewer than 3
    values or no spread."""
    if len(x) < 3:
        return 0.0
    scale = float(np.abs(x).max()) or 1.0  # cubes of large amounts stay finite
    d = x / scale - float(np.mean(x / scale))
    m2 = float(np.mean(d**2))
    return float(np.mean(d**3)) / m2**1.5 if m2 > 0 else 0.0


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


def column_spec(column: Inferred) -> ColumnSpec:
    """The spec of a feature or profile column: its kind, label and unit; ``min = 0`` on a
    numeric column with no negative value (amounts, counts; ``log1p`` needs it); a feature's
    transform, and the median fill of a feature that has missing values."""
    feature = column.role == "feature"
    numeric = column.kind == "numeric"
    return ColumnSpec(
        kind="numeric" if numeric else "categorical",
        label=column.label,
        unit=column.unit,
        min=0.0 if numeric and column.minimum is not None and column.minimum >= 0 else None,
        nullable=column.missing > 0 or column.role == "profile",
        transform=column.transform if feature else "none",
        missing="median" if feature and column.missing else None,
    )


def chosen_roles(columns: list[Inferred]) -> tuple[list[str], list[str]]:
    """(features, profile columns) by header; with no numeric feature, the categorical
    profile columns are the features (the user should choose, but the spec must run)."""
    features = [c.header for c in columns if c.role == "feature"]
    profile = [c.header for c in columns if c.role == "profile"]
    if not features:
        features = [c.header for c in columns if c.kind == "categorical" and c.role == "profile"]
        profile = [p for p in profile if p not in features]
    return features, profile


def inferred_spec(columns: list[Inferred], *, fill_missing: bool = True) -> TableSpec:
    """The spec ``segment init`` writes for ``columns``, as a ``TableSpec`` (a run with no
    spec uses it). ``fill_missing`` False: no column fills its missing values with the median
    by itself (the run's ``--missing`` decides); an id not found is left to the run to find."""
    id_column = next((c.header for c in columns if c.role == "id"), None)
    features, profile = chosen_roles(columns)
    used = set(features) | set(profile)
    specs = {c.header: column_spec(c) for c in columns if c.header in used}
    if not fill_missing:
        specs = {h: spec.model_copy(update={"missing": None}) for h, spec in specs.items()}
    return TableSpec(
        id_column=id_column or (NO_ID if fill_missing else None),
        features=tuple(features),
        profile=tuple(profile),
        columns=specs,
    )


def inference_notes(columns: list[Inferred], table: ColumnPlan, rows: int) -> tuple[str, ...]:
    """One log line per decision the inference made for ``table`` (the resolved columns, with
    the command line's choices on top), each with its reason."""
    inferred = {c.header: c for c in columns}
    used = {c.header: c for c in table.columns if c.header in inferred}
    notes = [
        f"Columns inferred from the first {rows:,} rows, as `segment init` does (it writes "
        "them as a spec to edit and pass with --spec)"
    ]
    skewed = [
        f"{h} (skew {inferred[h].skew:.1f})"
        for h, c in used.items()
        if c.spec.transform == "log1p" and inferred[h].skew is not None
    ]
    if skewed:
        notes.append(
            f"log1p before scaling on {len(skewed)} right-skewed column(s) (skew above "
            f"{SKEW_FOR_LOG:g}, no negative value): {', '.join(skewed)}"
        )
    groups = {
        "codes": "Whole-number codes, described by value shares (categories), not by means",
        "flag": "0/1 flags, described by their rate per segment",
    }
    for group, what in groups.items():
        headers = [h for h in used if inferred[h].group == group]
        if headers:
            notes.append(f"{what}: {', '.join(headers)}")
    left_out = [
        f"{c.header} ({c.note.split(':')[0]})"
        for c in columns
        if c.role == "unused" and c.header not in used and c.header != table.id_header
    ]
    if left_out:
        notes.append(
            f"Left out (name them in --features or --profile to use them): {', '.join(left_out)}"
        )
    gaps = [h for h, c in used.items() if c.role == "feature" and inferred[h].missing]
    if gaps:
        filled = all(used[h].missing == "median" for h in gaps)
        what = (
            "filled with the column median (--missing median)"
            if filled
            else "rows quarantined (--missing median fills them with the column median)"
        )
        listed = ", ".join(f"{h} ({inferred[h].missing:,})" for h in gaps)
        notes.append(f"Missing feature values in those rows: {listed}: {what}")
    return tuple(notes)


def render_spec(columns: list[Inferred], source: str, rows: int) -> str:
    """The starter spec as TOML text, with a comment on each key."""
    spec = inferred_spec(columns)
    lines = [
        f"# Segmentation spec for {_plain(source)}, written by `segment init` from {rows:,} rows.",
        f"# Edit it, then run: segment run --input {_plain(source)} --spec THIS_FILE.toml",
        "# Options given on the command line (--features, --profile, ...) override this file.",
        "",
        '# The customer id column ("none": the file has no id; customers are numbered by row).',
        f"id_column = {_q(spec.id_column or NO_ID)}",
        "",
        '# Columns to cluster on ("numeric": every numeric column but the id and profile ones).',
        f"features = {_list(spec.features)}",
        "",
        "# Columns described per segment but not clustered on.",
        f"profile = {_list(spec.profile)}",
        "",
        '# A missing feature value: "quarantine" the row, or fill the column "median".',
        "# (a column's own `missing` key overrides this)",
        'missing = "quarantine"',
        "",
        "# PCA before K-Means: a number of components (3) or a share of variance (0.9).",
        "# pca = 0.9",
    ]
    for column in columns:
        lines += ["", f"# {_plain(column.header)}: {_plain(column.note)}"]
        if column.header not in spec.columns:
            lines.append(f"# [columns.{_q(column.header)}] is not used")
            continue
        keys = spec.columns[column.header]
        lines += [f"[columns.{_q(column.header)}]", *_column_lines(column, keys)]
    return "\n".join(lines) + "\n"


def _column_lines(column: Inferred, spec: ColumnSpec) -> list[str]:
    """The keys of one column (``spec``), with comments. What this one file holds is written
    as comments, not checks: tomorrow's file may hold larger values or new codes, and a check
    would quarantine them. The one check kept is the natural bound ``min = 0`` of a column
    with no negative value (amounts, counts; ``log1p`` needs it)."""
    lines = [
        f"kind = {_q(str(spec.kind))}  # numeric or categorical",
        f"label = {_q(str(spec.label))}  # in segment names, plots and tables",
    ]
    if spec.unit:
        lines.append(f"unit = {_q(spec.unit)}")
    if spec.kind == "numeric":
        if column.minimum is not None and column.maximum is not None:
            lines.append(
                f"# seen in this file: {_n(column.minimum)} to {_n(column.maximum)} (not checked; "
                "add min/max to quarantine values outside a range)"
            )
        if spec.min is not None:
            lines.append(
                "min = 0  # check: no value here is negative, so a negative one is quarantined"
            )
    elif column.allowed is not None:
        lines.append(
            f"# allowed = {_list(column.allowed)}  # the values seen; uncomment to quarantine "
            "any other value"
        )
    lines.append(f"nullable = {str(spec.nullable).lower()}  # may the value be missing?")
    if column.role == "feature":
        lines.append(
            f"transform = {_q(spec.transform)}  # none, log1p, yeo-johnson or clip (quantiles "
            "in clip = [0.01, 0.99])"
        )
        if spec.missing:
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
