"""Resolve a segmentation spec against a file: which header is the id, which columns are
features and profile columns, and each column's kind.

``resolve_table`` is pure: it takes the file's header and some of its values (a sample before
the run starts, for early errors; all rows inside the flow) and returns a ``ColumnPlan``, the one
description every later step works from. Bad choices raise ``InputError`` with one line that
names the column and lists what the file has.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import cast

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from schemas.columns import CUSTOMER_ID, PREVIOUS_SEGMENT_ID, SEGMENT_ID, SEGMENT_NAME, SOURCE_ROW
from schemas.spec import (
    ID_SPELLINGS,
    MALL_PRESET,
    NO_ID,
    NUMERIC,
    ColumnSpec,
    Kind,
    Missing,
    Role,
    TableSpec,
    mall_spec,
)
from tasks.errors import ColumnMappingError, InputError, shown_value

log = logging.getLogger(__name__)

RESERVED = (CUSTOMER_ID, SOURCE_ROW, SEGMENT_ID, PREVIOUS_SEGMENT_ID, SEGMENT_NAME)
MAX_CATEGORIES = 50  # a categorical feature with more values is refused (suggest --profile)
NUMERIC_SHARE = 0.95  # a column is numeric when this share of its present values are numbers
_DECIMAL_COMMA = r"[-+]?(?:\d{1,3}(?:\.\d{3})+|\d+),\d+"  # 1,5  -12,25  1.234,5
_THOUSANDS = r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?"  # 36,419  1,234,567  -1,234.50
_SEVERAL_GROUPS = r"[-+]?\d{1,3}(?:,\d{3}){2,}(?:\.\d+)?|.*,\d{3}\.\d+"  # only thousands
SEPARATOR = "separator"  # attrs key of a text file's values: its field separator


class Column(BaseModel):
    """One used column of the table, resolved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # in the cleaned tables (a preset's canonical name, else the file's header)
    header: str  # as written in the file
    role: Role
    kind: Kind
    spec: ColumnSpec = ColumnSpec()
    missing: Missing = "quarantine"  # for features: quarantine the row or fill with the median

    @property
    def label(self) -> str:
        return self.spec.label or self.name

    @property
    def unit(self) -> str | None:
        return self.spec.unit

    @property
    def nullable(self) -> bool:
        """May the value be missing in a clean row (a filled feature is never missing)?"""
        return self.role == "profile" and self.spec.nullable is not False

    @property
    def numeric(self) -> bool:
        return self.kind == "numeric"

    def titled(self) -> str:
        """The label with its unit, for axes and table headers: ``income (k$)``."""
        label = self.label[:1].upper() + self.label[1:]
        return f"{label} ({self.unit})" if self.unit else label


class ColumnPlan(BaseModel):
    """The column plan of a customer table, as a run sees it (not the table itself): the id,
    the features and the profile columns in output order, each with its spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id_header: str | None  # None: no id in the file; ids are the data row numbers
    id_found: bool = True  # False: no id was named or found, row numbers used
    columns: tuple[Column, ...]
    pca: float | None = None
    preset: str | None = None
    # what was inferred and why, one line each (logged by the run; not part of the model)
    notes: tuple[str, ...] = Field((), exclude=True)

    @property
    def features(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.role == "feature")

    @property
    def profile(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.role == "profile")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def numeric_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.numeric)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.features)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


def value_order(values) -> list[str]:
    """Values in reading order: numerically when every one is a number (codes 2, 10, 12:
    not "10" before "2"), else alphabetically."""
    values = sorted(str(v) for v in values)
    try:
        return sorted(values, key=float)
    except ValueError:
        return values


def normalise(header: str) -> str:
    """A header without case and punctuation: ``Annual Income (k$)`` -> ``annualincomek``."""
    return "".join(char for char in str(header).lower() if char.isalnum())


def _unmatched(spec: TableSpec, header: Sequence[str], explicit: Mapping[str, str]) -> list[str]:
    """The columns of ``spec`` not found (or found ambiguously) in ``header``."""
    missing = []
    for name in spec.columns:
        try:
            found = _find_spec_column(name, spec, header, explicit, "column")
        except InputError:
            found = None
        if found is None:
            missing.append(name)
    return missing


def choose_spec(
    header: Sequence[str],
    spec: TableSpec | None = None,
    explicit: Mapping[str, str] | None = None,
    infer: Callable[[], TableSpec] | None = None,
    **overrides: object,
) -> TableSpec:
    """The spec for a file: the one given; else the Mall preset when the file has every column
    of the preset and ``features`` (if given) names only preset columns; else the spec
    ``infer`` makes from the file's values (``segment init``'s; without ``infer``, every
    numeric column a feature). Then the command line's choices (``features``, ``profile``,
    ``id_column``, ``missing``, ``pca``) on top.

    So ``--spec FILE`` (any spec) or ``--features numeric`` (or any column outside the preset)
    never gets the preset, and a file that only shares the income and score headers with the
    Mall file (a credit score, other columns) is segmented on its own columns. Over a preset or
    an inferred spec, ``--features`` takes its columns out of the profile columns and
    ``--profile`` takes its columns out of the features."""
    # the command line's --features: column names (the spec's validation checks them)
    features = cast("Sequence[str] | None", overrides.get("features"))
    profile = cast("Sequence[str] | None", overrides.get("profile"))
    ours = spec is None or spec.preset is not None  # not a spec file the user wrote
    if spec is None:
        spec = _mall_or_none(header, explicit or {}, features)
    if spec is None:
        spec = infer() if infer is not None else TableSpec()
    if ours and features and not profile:
        # new features: the preset's or inferred profile columns among them are features now
        taken = {_spec_key_for_alias(name, spec) or name for name in features}
        overrides["profile"] = tuple(name for name in spec.profile if name not in taken)
    if ours and profile and not features and NUMERIC not in spec.features:
        taken = {_spec_key_for_alias(name, spec) or name for name in profile}
        kept = tuple(name for name in spec.features if name not in taken)
        overrides["features"] = kept or None
    return spec.with_overrides(**overrides)


def _mall_or_none(
    header: Sequence[str], explicit: Mapping[str, str], features: Sequence[str] | None
) -> TableSpec | None:
    mall = mall_spec()
    missing = _unmatched(mall, header, explicit)
    outside = [  # features (``numeric`` included) that are no Mall column by name or alias
        name
        for name in features or ()
        if name == NUMERIC or (name not in mall.columns and not _spec_key_for_alias(name, mall))
    ]
    if not missing and not outside:
        return mall
    if len(missing) < len(mall.columns):  # some Mall-like headers: say why it is not the preset
        why = f"no {', '.join(missing)} column" if missing else f"--features {' '.join(outside)}"
        log.info(
            "Mall preset not used (%s): the columns are inferred from the file; --spec %s "
            "forces the preset",
            why,
            MALL_PRESET,
        )
    return None


def resolve_table(
    header: Sequence[str],
    values: pd.DataFrame | None,
    spec: TableSpec,
    explicit: Mapping[str, str] | None = None,
    *,
    numeric_headers: Sequence[str] = (),
) -> ColumnPlan:
    """Match ``spec`` against a file: ``header`` as written; ``values``: rows of the file as
    text (missing as NA), columns named by header, or None to trust the spec's kinds;
    ``explicit``: spec column name -> header given with ``--column``; ``numeric_headers``:
    columns stored as numbers (Parquet)."""
    explicit = dict(explicit or {})
    header = list(header)
    absent = {name: h for name, h in explicit.items() if h not in header}
    if absent:
        raise InputError(f"mapped header(s) not in the file: {absent}; {_found(header)}")
    unknown = sorted(set(explicit) - set(spec.columns) - {CUSTOMER_ID})
    if unknown and spec.preset:
        known = ", ".join([CUSTOMER_ID, *spec.columns])
        raise ColumnMappingError(
            f"unknown canonical column(s) in the mapping: {unknown} (--column NAME=HEADER "
            f"takes one of: {known})"
        )

    id_header, id_found = _resolve_id(spec, header, explicit)
    if spec.preset:
        _check_preset_columns(spec, header, explicit, id_found)
    else:
        _check_spec_columns(spec, header, explicit)
    roles: dict[str, tuple[str, Role]] = {}  # header -> (name, role)

    def take(name: str, role: Role) -> None:
        found = _find_spec_column(name, spec, header, explicit, role)
        if found is None:
            raise InputError(
                f"{role} column {name!r} is not in the file; {_found(header)}", column=name
            )
        canonical, column_header = found
        if column_header == id_header:
            raise InputError(
                f"column {column_header!r} is the customer id and cannot also be a {role}",
                column=column_header,
            )
        if column_header in roles:
            other = roles[column_header][1]
            if other == role:
                raise InputError(f"column {column_header!r} is listed twice as a {role}")
            raise InputError(
                f"column {column_header!r} is given two roles: {other} and {role}",
                column=column_header,
            )
        roles[column_header] = (canonical, role)

    wants_numeric = NUMERIC in spec.features
    for name in spec.features:
        if name != NUMERIC:
            take(name, "feature")
    for name in spec.profile:
        take(name, "profile")
    if spec.preset:  # a preset keeps all its columns: those not clustered on are profile ones
        for name in spec.columns:
            found = _find_spec_column(name, spec, header, explicit, "profile")
            if found is None:
                raise InputError(_missing_message([name], spec, header))
            if found[1] not in roles and found[1] != id_header:
                roles[found[1]] = (found[0], "profile")

    named = {name for name, _ in roles.values()} | set(spec.columns) | {CUSTOMER_ID}
    unused = sorted(set(explicit) - named)
    if unused:  # a typo in --column NAME=HEADER would otherwise be silently ignored
        raise ColumnMappingError(
            f"--column {', '.join(unused)}: no column of this run has that name; NAME must "
            "be customer_id, a column of the spec or a name given with --features or "
            f"--profile (here: {', '.join(sorted(named))})"
        )
    kinds = {h: _kind(h, roles.get(h, (h, None))[0], spec, values, numeric_headers) for h in header}
    _check_decimal_commas(header, roles, id_header, values, spec, wants_numeric)
    if wants_numeric:
        _add_numeric_features(header, kinds, roles, id_header, values)
    columns = []
    for column_header in _ordered(header, roles, spec):
        name, role = roles[column_header]
        column_spec = _spec_for(name, column_header, spec)
        columns.append(
            Column(
                name=f"{name}_column" if name in RESERVED else name,
                header=column_header,
                role=role,
                kind=kinds[column_header],
                spec=column_spec,
                missing=column_spec.missing or spec.missing,
            )
        )
    table = ColumnPlan(
        id_header=id_header,
        id_found=id_found,
        columns=tuple(columns),
        pca=spec.pca,
        preset=spec.preset,
    )
    _check_features(table, values)
    return table


@cache
def mall_table() -> ColumnPlan:
    """The Mall preset resolved against its own canonical names (the classic default)."""
    spec = mall_spec()
    header = [CUSTOMER_ID, *spec.columns]
    return resolve_table(header, None, spec)


def _found(header: Sequence[str]) -> str:
    return f"headers found: {', '.join(header)}"


def _missing_message(names: Sequence[str], spec: TableSpec, header: Sequence[str]) -> str:
    def accepted(name: str) -> str:
        if name == CUSTOMER_ID:
            return ", ".join(ID_SPELLINGS)
        return ", ".join(spec.columns[name].aliases or (name,))

    wanted = "; ".join(f"{name} (accepted: {accepted(name)})" for name in names)
    return f"missing required column(s): {wanted}; {_found(header)}"


def _check_preset_columns(
    spec: TableSpec, header: Sequence[str], explicit: Mapping[str, str], id_found: bool
) -> None:
    """Every column of a preset is required: list all the missing ones at once."""
    missing = [] if id_found else [CUSTOMER_ID]
    for name in spec.columns:
        if _find_spec_column(name, spec, header, explicit, "column") is None:
            missing.append(name)
    if missing:
        raise InputError(_missing_message(missing, spec, header))


def _check_spec_columns(
    spec: TableSpec, header: Sequence[str], explicit: Mapping[str, str]
) -> None:
    """Refuse a ``[columns.X]`` section of a spec whose X (or alias) is no header of the file:
    a typo or a renamed column would otherwise lose its checks and transform silently."""
    for key in spec.columns:
        if _find_spec_column(key, spec, header, explicit, "column") is None:
            raise InputError(
                f"spec section [columns.{key}] names a column that is not in the file; "
                f"{_found(header)}",
                column=key,
            )


def _resolve_id(
    spec: TableSpec, header: Sequence[str], explicit: Mapping[str, str]
) -> tuple[str | None, bool]:
    """The id's header (None: no id) and whether the file has one."""
    if CUSTOMER_ID in explicit:
        return explicit[CUSTOMER_ID], True
    if spec.id_column is not None:
        if spec.id_column.strip().lower() == NO_ID:
            return None, True
        matches = _matching(spec.id_column, header)
        if len(matches) != 1:
            raise InputError(
                f"id column {spec.id_column!r} is not in the file; {_found(header)}",
                column=spec.id_column,
            )
        return matches[0], True
    accepted = {normalise(s) for s in ID_SPELLINGS}
    found = [h for h in header if normalise(h) in accepted]
    if len(found) > 1:
        exact = [h for h in found if h == CUSTOMER_ID]
        if len(exact) != 1:
            raise InputError(
                f"several headers match {CUSTOMER_ID!r}: {found}; name one with --id-column "
                f"(or --column {CUSTOMER_ID}=HEADER)"
            )
        found = exact
    if found:
        return found[0], True
    if spec.preset:
        return None, False  # reported with the preset's other missing columns
    log.warning(
        "No customer id column found (tried %s): customers are numbered by their data row; "
        "name the id with --id-column, or --id-column none to silence this",
        ", ".join(ID_SPELLINGS),
    )
    return None, False


def _matching(name: str, header: Sequence[str]) -> list[str]:
    """Headers equal to ``name``, else equal without case and punctuation."""
    if name in header:
        return [name]
    return [h for h in header if normalise(h) == normalise(name)]


def _find_spec_column(
    name: str,
    spec: TableSpec,
    header: Sequence[str],
    explicit: Mapping[str, str],
    role: str,
) -> tuple[str, str] | None:
    """(name in the cleaned tables, header in the file) of a column named in the spec or on
    the command line: a spec column by its name or aliases, else a header of the file."""
    if name in explicit:
        return name, explicit[name]
    key = name if name in spec.columns else _spec_key_for_alias(name, spec)
    if key is not None:
        if key in explicit:
            return key, explicit[key]
        candidates = (key, *spec.columns[key].aliases)
        accepted = {normalise(c) for c in candidates}
        found = [h for h in header if h == key] or [h for h in header if normalise(h) in accepted]
        if len(found) > 1:
            raise InputError(
                f"several headers match {key!r}: {found}; pass an explicit column mapping"
            )
        if found:
            return (key if spec.preset else found[0]), found[0]
        return None
    matches = _matching(name, header)
    if len(matches) > 1:
        raise InputError(f"several headers match {role} {name!r}: {matches}; use the exact header")
    return (matches[0], matches[0]) if matches else None


def _spec_key_for_alias(name: str, spec: TableSpec) -> str | None:
    wanted = normalise(name)
    for key, column in spec.columns.items():
        if wanted in {normalise(a) for a in column.aliases}:
            return key
    return None


def _spec_for(name: str, header: str, spec: TableSpec) -> ColumnSpec:
    if name in spec.columns:
        return spec.columns[name]
    if header in spec.columns:
        return spec.columns[header]
    key = _spec_key_for_alias(header, spec)
    return spec.columns[key] if key is not None else ColumnSpec()


def _ordered(header: Sequence[str], roles: Mapping[str, tuple[str, Role]], spec: TableSpec):
    """Columns named in the spec's column table first (in its order), then the file's order."""
    by_name = {name: h for h, (name, _) in roles.items()}
    first = [by_name[name] for name in spec.columns if name in by_name]
    return first + [h for h in header if h in roles and h not in first]


def _kind(
    column_header: str,
    name: str,
    spec: TableSpec,
    values: pd.DataFrame | None,
    numeric_headers: Sequence[str],
) -> Kind:
    """The spec's kind; else numeric when stored as numbers or when nearly every present value
    parses as a number; else categorical."""
    declared = _spec_for(name, column_header, spec).kind
    if declared is not None:
        return declared
    if column_header in numeric_headers or values is None or column_header not in values:
        return "numeric"
    present = values[column_header].dropna()
    if present.empty:
        return "numeric"
    parsed = pd.to_numeric(present, errors="coerce")
    return "numeric" if parsed.notna().mean() >= NUMERIC_SHARE else "categorical"


def _check_decimal_commas(
    header: Sequence[str],
    roles: Mapping[str, tuple[str, Role]],
    id_header: str | None,
    values: pd.DataFrame | None,
    spec: TableSpec,
    wants_numeric: bool,
) -> None:
    """Refuse a feature (or, with ``numeric``, any candidate column) holding numbers written
    with decimal commas (``1,5``, ``1.234,5``): read as text, it would be taken for a category
    or left out of the features, and the error would blame something else."""
    if values is None:
        return
    for column_header in header:
        if column_header == id_header or column_header not in values:
            continue
        role = roles.get(column_header, (column_header, None))
        if role[1] != "feature" and not (wants_numeric and role[1] is None):
            continue
        if _spec_for(role[0], column_header, spec).kind == "categorical":
            continue
        separator = values.attrs.get(SEPARATOR)
        grouped = thousands_example(values[column_header], separator)
        if grouped is not None:
            raise InputError(_thousands_message(grouped, separator), column=column_header)
        example = decimal_comma_example(values[column_header])
        if example is not None:
            raise InputError(
                f"numbers with decimal commas (e.g. {example!r}) read as text, not numbers: "
                "convert the file to decimal points first, e.g. "
                "pandas.read_csv(path, sep=';', decimal=',', thousands='.').to_csv(new_path, "
                "index=False)" + _thousands_hint(example),
                column=column_header,
            )


def thousands_example(values: pd.Series, separator: str | None) -> str | None:
    """A value of ``values`` written with thousands separators (``36,419``, ``1,234,567``),
    when nearly every present value is a number once commas are removed but not as written,
    every comma is followed by a group of 3 digits, and the commas cannot be decimal ones: the
    file is comma-separated (a decimal comma there is rare), or a value has several groups or a
    decimal point after them (``1,234,567``, ``1,234.5``); else None."""
    if pd.api.types.is_numeric_dtype(values):
        return None
    present = values.dropna().astype("str")
    commas = present[present.str.contains(",", regex=False)]
    if commas.empty or not commas.str.fullmatch(_THOUSANDS).all():
        return None
    if pd.to_numeric(present, errors="coerce").notna().mean() >= NUMERIC_SHARE:
        return None
    removed = present.str.replace(",", "", regex=False)
    if pd.to_numeric(removed, errors="coerce").notna().mean() < NUMERIC_SHARE:
        return None
    several = commas[commas.str.fullmatch(_SEVERAL_GROUPS)]
    if separator == ",":
        return str(commas.iloc[0])
    return None if several.empty else str(several.iloc[0])


def _thousands_message(example: str, separator: str | None) -> str:
    sep = "" if separator in (None, ",") else f", sep={separator!r}"
    return (
        f"numbers with thousands separators (e.g. {example!r}, that is "
        f"{example.replace(',', '')}) read as text, not numbers: remove the separators first, "
        f"e.g. pandas.read_csv(path{sep}, thousands=',').to_csv(new_path, index=False)"
    )


def _thousands_hint(example: str) -> str:
    """For a decimal-comma example that could also be a thousands group (``1,234``)."""
    if not re.fullmatch(_THOUSANDS, example):
        return ""
    plain = example.replace(",", "")
    return f"; if {example!r} means {plain}, the comma separates thousands: use thousands=','"


def decimal_comma_example(values: pd.Series) -> str | None:
    """A value of ``values`` written with a decimal comma, when nearly every present value is
    a number once commas are read as decimal points (and points as thousands separators) but
    not as written; else None."""
    if pd.api.types.is_numeric_dtype(values):
        return None
    present = values.dropna().astype("str")
    commas = present[present.str.fullmatch(_DECIMAL_COMMA)]
    if present.empty or commas.empty:
        return None
    if pd.to_numeric(present, errors="coerce").notna().mean() >= NUMERIC_SHARE:
        return None
    converted = present.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    if pd.to_numeric(converted, errors="coerce").notna().mean() < NUMERIC_SHARE:
        return None
    return str(commas.iloc[0])


def _add_numeric_features(
    header: Sequence[str],
    kinds: Mapping[str, Kind],
    roles: dict[str, tuple[str, Role]],
    id_header: str | None,
    values: pd.DataFrame | None,
) -> None:
    """``features = numeric``: every numeric column without a role becomes a feature, except
    (each said in the log) a column spelled like an id (with ``--id-column none`` or another
    id: clustering on an id is meaningless), a constant one (it cannot separate segments) and a
    0/1 flag (a profile column instead: its rate per segment is described)."""
    id_like, constant, flags = [], [], []
    accepted = {normalise(s) for s in ID_SPELLINGS}
    for column_header in header:
        if column_header in roles or column_header == id_header:
            continue
        if kinds[column_header] != "numeric":
            continue
        if normalise(column_header) in accepted:
            id_like.append(column_header)
        elif _constant(values, column_header):
            constant.append(column_header)
        elif _flag(values, column_header):
            flags.append(column_header)
            roles[column_header] = (column_header, "profile")
        else:
            roles[column_header] = (column_header, "feature")
    if id_like:
        log.warning(
            "Left out of the numeric features: %s (spelled like a customer id; kept in "
            "raw.parquet): name it in --features to cluster on it",
            ", ".join(id_like),
        )
    if constant:
        log.warning(
            "Left out of the numeric features: %s (one value in every row, cannot separate "
            "segments)",
            ", ".join(constant),
        )
    if flags:
        log.info(
            "0/1 flag column(s) described per segment as profile columns, not clustered on: %s "
            "(name them in --features to cluster on them)",
            ", ".join(flags),
        )


def _constant(values: pd.DataFrame | None, column_header: str) -> bool:
    if values is None or column_header not in values:
        return False
    return values[column_header].dropna().nunique() <= 1


def _flag(values: pd.DataFrame | None, column_header: str) -> bool:
    """Only the numbers 0 and 1 (both) among the present values: a yes/no flag."""
    if values is None or column_header not in values:
        return False
    present = pd.to_numeric(values[column_header].dropna(), errors="coerce")
    return bool(present.notna().all()) and set(present.unique()) == {0, 1}


def _check_features(table: ColumnPlan, values: pd.DataFrame | None) -> None:
    """Refuse features that cannot work, before any clustering: none at all, text given as
    numeric, one distinct value, or a categorical one with too many values."""
    if not table.features:
        raise InputError(
            "no feature columns: the file has no numeric column besides the id and the "
            "profile columns; name the features with --features"
        )
    if values is None:
        return
    used = [c.header for c in table.columns if c.header in values]
    alike = all(values[h].dropna().nunique() <= 1 for h in used)  # the cleaning says it better
    for column in table.features:
        if column.header not in values:
            continue
        present = values[column.header].dropna()
        if column.numeric and not pd.api.types.is_numeric_dtype(present):
            parsed = pd.to_numeric(present, errors="coerce")
            if len(present) and parsed.notna().mean() < 0.5:
                example = present[parsed.isna()].iloc[0]
                raise InputError(
                    f"feature {column.header!r} is declared numeric but holds text "
                    f"(e.g. {example!r}); make it categorical or a profile column",
                    column=column.header,
                )
        distinct = present.nunique()
        if distinct == 1 and len(values) > 1 and not alike:
            raise InputError(
                f"feature {column.header!r} has one value ({shown_value(present.iloc[0])}) in "
                "every row: it cannot separate segments; leave it out of --features",
                column=column.header,
            )
        if not column.numeric and distinct > MAX_CATEGORIES:
            raise InputError(
                f"categorical feature {column.header!r} has {distinct} different values "
                f"(more than {MAX_CATEGORIES}); describe it with --profile instead",
                column=column.header,
            )


def describe_table(table: ColumnPlan) -> dict:
    """The resolved table for the manifest and the model (JSON-ready)."""
    return table.model_dump(mode="json")


def check_partitioned_table(table: ColumnPlan, folder: str | Path) -> None:
    """What a partitioned input cannot do yet: fill missing values with the median (each
    partition would fill with its own)."""
    filled = [c.header for c in table.features if c.missing == "median"]
    if filled:
        raise InputError(
            f"missing values filled with the median ({', '.join(filled)}) are not supported "
            "for a partitioned input yet: use --missing quarantine (or fill them upstream)",
            path=folder,
        )


def columns_line(table: ColumnPlan, spec: str | Path | None) -> str:
    """One log line: where the columns came from, the features, profile columns and id."""
    if spec:
        origin = f"Spec {spec}"
    elif table.preset:
        origin = f"{table.preset.capitalize()} preset (opt out: --spec FILE or --features numeric)"
    else:
        origin = "Inferred from the file (no --spec, not the Mall preset)"
    return "{}. Features: {}; profile columns: {}; id: {}".format(
        origin,
        ", ".join(c.header for c in table.features),
        ", ".join(c.header for c in table.profile) or "none",
        table.id_header or "none (data row numbers)",
    )
