"""Validate and clean customer rows: each row is kept, quarantined with a reason, or dropped."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
import pyarrow.compute as pc

from schemas.columns import CUSTOMER_ID, REASON, SOURCE_ROW
from schemas.customers import NOT_FINITE, customers_schema
from schemas.outputs import quarantine_schema
from tasks.errors import InputError, shown_value
from tasks.ingest import numbers_as_text
from tasks.table import ColumnPlan, mall_table

log = logging.getLogger(__name__)

NOT_A_NUMBER = "not a number"
# A value is implausible (quarantined, named) when its magnitude is more than this factor above
# the upper quartile Q3 of the column's nonzero magnitudes, or (Q3/Q1)**FAR_SPREADS above it
# if that is larger: a long-tailed money column (max/median of 1000x) is far inside, 1e308 in
# an income column is not. README: "Implausible values".
FAR_FACTOR = 1e6
FAR_SPREADS = 3
QUARTILE_SAMPLE = 1_000_000  # quartiles from every n-th value of a larger column (10M: 0.1 s)
IMPLAUSIBLE = "implausible"


class RowAccounting:
    """What a cleaning result reports: every row read is kept, quarantined or a duplicate.

    Subclasses provide ``customers``, ``rows_read``, ``duplicates_dropped`` and ``quarantine``.
    """

    customers: Any  # the kept rows: a pandas DataFrame, or a Dask one in a partitioned run
    rows_read: int
    duplicates_dropped: int
    quarantine: pd.DataFrame

    @property
    def rows_kept(self) -> int:
        return len(self.customers)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine)

    def accounting(self) -> dict[str, int]:
        """Row counts for the manifest: read = kept + quarantined + duplicates_dropped."""
        return {
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_quarantined": self.rows_quarantined,
            "duplicates_dropped": self.duplicates_dropped,
        }


@dataclass(frozen=True)
class CleanResult(RowAccounting):
    """Clean customers, the quarantined rows with reasons, and the row accounting."""

    customers: pd.DataFrame
    quarantine: pd.DataFrame
    rows_read: int
    duplicates_dropped: int
    missing_filled: dict[str, int] = field(default_factory=dict)  # column -> values filled
    # column -> the value a missing one is filled with (every feature whose policy is median)
    fill_values: dict[str, object] = field(default_factory=dict)


def clean_customers(
    raw: pd.DataFrame,
    *,
    source: str = "input",
    max_quarantine_share: float | None,
    table: ColumnPlan | None = None,
    fill_values: Mapping[str, object] | None = None,
) -> CleanResult:
    """Drop exact duplicates, quarantine invalid or conflicting rows, return typed clean rows.

    ``raw`` is the output of ``tasks.ingest.canonical_frame`` (text values, ``source_row``,
    ``customer_id`` and the columns of ``table`` under their names; default: the Mall preset).
    Missing feature values of a column whose policy is ``median`` are filled with the median
    of the column (a categorical one: its most frequent value) and counted in
    ``missing_filled``; the values used are ``fill_values`` of the result. Given
    ``fill_values`` (a model's, when scoring new customers), those are used and nothing is
    computed from ``raw``: a missing value of a column without one quarantines its row.
    Raises ``InputError`` when no valid row remains or more than
    ``max_quarantine_share`` of the rows are quarantined (``None``: no such check, for one
    part of a partitioned input).
    """
    table = table or mall_table()
    names = [CUSTOMER_ID, *table.names]
    # No copies of the raw rows (copy-on-write): new columns are set on new frames.
    frame = raw.loc[:, [SOURCE_ROW, *names]]
    for column in table.columns:
        if column.spec.recode:
            frame[column.name] = recode(frame[column.name], column.spec.recode)
    # Numbers parsed once (text that is not a number -> NaN); text kept in `frame` for reasons.
    typed = frame.assign(**{name: _to_float(frame[name]) for name in table.numeric_names})
    # Hashing 10M text ids costs seconds: do it once, then work on integer codes.
    id_codes = pd.Series(pd.factorize(frame[CUSTOMER_ID])[0], index=frame.index)

    duplicated = _exact_duplicates(frame, typed, id_codes, table)
    if duplicated.any():  # filtering 10M rows copies them: only when there is something to drop
        frame, typed, id_codes = (
            frame.loc[~duplicated],
            typed.loc[~duplicated],
            id_codes[~duplicated],
        )
    typed, filled, used = _fill_missing(frame, typed, table, fill_values)

    # Every failed check of a row: a conflicting id first, then each invalid value.
    schema = _row_checks(table)
    conflicts = _conflicting_ids(frame, id_codes)
    invalid = _invalid_values(frame, typed, table, schema)
    if conflicts.empty or invalid.empty:
        reasons = invalid if conflicts.empty else conflicts
    else:
        reasons = pd.concat([conflicts, invalid]).groupby(level=0, sort=True).agg("; ".join)
        reasons = reasons.rename(REASON)

    quarantine = _quarantine_table(raw.loc[reasons.index], reasons, table)
    kept = typed.drop(index=reasons.index) if len(reasons) else typed
    # Ids are unique by construction (exact repeats dropped, conflicting ones quarantined):
    # checked on the integer codes, ~40x cheaper than the schema's check on 10M text ids.
    if id_codes.reindex(kept.index).duplicated().any():
        raise RuntimeError("clean customers with a repeated id: a bug in the cleaning")
    customers = schema.validate(kept.loc[:, names], inplace=True)
    customers = customers.reset_index(drop=True)
    filled_counts = {
        name: int(mask.reindex(kept.index, fill_value=False).sum()) for name, mask in filled.items()
    }

    result = CleanResult(
        customers=customers,
        quarantine=quarantine,
        rows_read=len(raw),
        duplicates_dropped=int(duplicated.sum()),
        missing_filled={name: n for name, n in filled_counts.items() if n},
        fill_values=used,
    )
    check_accounting(result)
    if max_quarantine_share is not None:
        _check_enough_left(result, source, max_quarantine_share, table)
    log.info(
        "Cleaned %s: %d rows read, %d kept, %d quarantined, %d exact duplicates dropped",
        source,
        result.rows_read,
        result.rows_kept,
        result.rows_quarantined,
        result.duplicates_dropped,
    )
    if result.missing_filled:
        log.info("Missing feature values filled with the column median: %s", result.missing_filled)
    return result


def recode(values: pd.Series, spellings: Mapping[str, str]) -> pd.Series:
    """Fold known spellings (compared without case or surrounding spaces) to their value;
    keep the others."""
    folded_map = {key.strip().lower(): value for key, value in spellings.items()}
    codes, found = pd.factorize(values)  # a handful of distinct spellings, many rows
    folded = [folded_map.get(str(s).strip().lower(), s) for s in found]
    return pd.Series(
        pd.array(folded, dtype=values.dtype).take(codes, allow_fill=True),
        index=values.index,
        name=values.name,
    )


def _fill_missing(
    frame: pd.DataFrame,
    typed: pd.DataFrame,
    table: ColumnPlan,
    fixed: Mapping[str, object] | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.Series], dict[str, object]]:
    """Fill missing values of features whose policy is ``median``: the filled cells per
    column, and the value of every such column (computed even when none is missing, so a
    model can fill tomorrow's; ``fixed``: use these values, compute none).

    Only values that are missing are filled, never text that is not a number (that row is
    quarantined naming the value)."""
    filled, used = {}, {}
    for column in table.features:
        if column.missing != "median":
            continue
        values = typed[column.name]
        if fixed is not None:
            fill = fixed.get(column.name)
        elif column.numeric:
            present = values[np.isfinite(values.to_numpy(dtype="float64"))]
            fill = float(present.median()) if len(present) else None
        else:
            modes = values.dropna().mode()
            fill = modes.iloc[0] if len(modes) else None
        if fill is None or (isinstance(fill, float) and np.isnan(fill)):
            continue
        used[column.name] = fill
        missing = frame[column.name].isna()  # as read: text that is not a number stays
        if not missing.any():
            continue
        typed = typed.assign(**{column.name: values.mask(missing, fill)})
        filled[column.name] = missing
    return typed, filled, used


def _exact_duplicates(
    frame: pd.DataFrame, typed: pd.DataFrame, id_codes: pd.Series, table: ColumnPlan
) -> pd.Series:
    """True for each row that repeats an earlier row exactly (numbers compared as numbers,
    text that is not a number compared as text)."""
    # Only rows whose id repeats (or is missing) can repeat another row: compare just those.
    candidates = id_codes.duplicated(keep=False).to_numpy() | (id_codes.to_numpy() < 0)
    duplicated = pd.Series(False, index=frame.index)
    if not candidates.any():
        return duplicated
    frame, typed = frame.loc[candidates], typed.loc[candidates]
    numeric = list(table.numeric_names)
    key = typed.loc[:, numeric].assign(**{CUSTOMER_ID: id_codes[candidates]})
    for column in table.columns:
        if not column.numeric:
            key[column.name] = pd.factorize(frame[column.name])[0]
    for name in numeric:
        text = frame[name].where(typed[name].isna())
        if text.notna().any():
            key[f"{name}\0text"] = text
    duplicated[key.index] = key.duplicated(keep="first")
    return duplicated


def _conflicting_ids(frame: pd.DataFrame, id_codes: pd.Series) -> pd.Series:
    """Reasons for rows whose customer id appears again with different values."""
    repeated = (id_codes >= 0) & id_codes.duplicated(keep=False)
    if not repeated.any():
        return pd.Series(dtype="str", name=REASON)
    listed = (
        frame.loc[repeated].groupby(CUSTOMER_ID)[SOURCE_ROW].agg(lambda r: ", ".join(map(str, r)))
    )
    reasons = {
        index: f"{CUSTOMER_ID}={customer_id!r}: id appears in rows {listed[customer_id]} with "
        "different values"
        for index, customer_id in frame.loc[repeated, CUSTOMER_ID].items()
    }
    return pd.Series(reasons, dtype="str", name=REASON)


def _to_float(values: pd.Series) -> pd.Series:
    """float64 values; text that is not a number becomes NaN.

    Arrow's cast parses a clean text column ~30x faster than ``pd.to_numeric``; in a column
    with some non-numbers, Arrow still parses the values written as plain decimal numbers and
    ``pd.to_numeric`` only the others (1M values with 1 % text: ~0.2 s instead of ~2 s).
    """
    if pd.api.types.is_float_dtype(values):
        return values.astype("float64")
    array = arrow.array(values, from_pandas=True)
    try:
        cast = pc.cast(array, arrow.float64())
        return pd.Series(cast.to_numpy(zero_copy_only=False), index=values.index, name=values.name)
    except (arrow.ArrowInvalid, arrow.ArrowTypeError):
        pass
    try:
        plain = pc.match_substring_regex(array, _PLAIN_NUMBER)
        cast = pc.cast(pc.if_else(plain, array, arrow.scalar(None, array.type)), "float64")
    except (arrow.ArrowInvalid, arrow.ArrowTypeError, arrow.ArrowNotImplementedError):
        return pd.to_numeric(values, errors="coerce").astype("float64")
    result = cast.to_numpy(zero_copy_only=False)
    others = ~plain.fill_null(True).to_numpy(zero_copy_only=False)  # present, not plain
    if others.any():  # inf, 1_000, ... as pandas reads them; text that is no number: NaN
        result[others] = pd.to_numeric(values[others], errors="coerce").astype("float64")
    return pd.Series(result, index=values.index, name=values.name)


_PLAIN_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def _not_numbers(frame: pd.DataFrame, typed: pd.DataFrame, table: ColumnPlan) -> pd.DataFrame:
    """Failure cases for values present as text that did not parse as numbers."""
    cases = [pd.DataFrame(columns=["index", "column", "check", "failure_case"])]
    for column in table.numeric_names:
        bad = frame[column].notna() & typed[column].isna()
        if not bad.any():
            continue
        cases.append(
            pd.DataFrame(
                {
                    "index": frame.index[bad],
                    "column": column,
                    "check": NOT_A_NUMBER,
                    "failure_case": frame.loc[bad, column].astype(object),
                }
            )
        )
    return pd.concat(cases, ignore_index=True).astype({"index": "int64"})


def plausible_limit(values: np.ndarray) -> tuple[float, float]:
    """The largest plausible magnitude of a column's values as (Q3, factor): the upper
    quartile of its nonzero finite magnitudes and ``max(FAR_FACTOR, (Q3 / Q1) ** FAR_SPREADS)``;
    (inf, 1) when there are none. Above QUARTILE_SAMPLE values, from an evenly spaced sample."""
    if len(values) > QUARTILE_SAMPLE:
        values = values[:: len(values) // QUARTILE_SAMPLE]
    magnitudes = np.abs(values[np.isfinite(values) & (values != 0)])
    if magnitudes.size == 0:
        return float("inf"), 1.0
    q1, q3 = np.percentile(magnitudes, [25, 75])
    with np.errstate(over="ignore"):
        return float(q3), float(max(FAR_FACTOR, (q3 / q1) ** FAR_SPREADS))


def _implausible(typed: pd.DataFrame, table: ColumnPlan) -> pd.DataFrame:
    """Failure cases for finite values whose magnitude is beyond ``plausible_limit`` of their
    column (a column whose spec sets both min and max is checked by those alone)."""
    cases = [pd.DataFrame(columns=["index", "column", "check", "failure_case"])]
    for column in table.columns:
        if not column.numeric or (column.spec.min is not None and column.spec.max is not None):
            continue
        values = typed[column.name].to_numpy(dtype="float64")
        quartile, factor = plausible_limit(values)
        with np.errstate(over="ignore"):
            limit = quartile * factor
        far = np.abs(values) > limit  # NaN: False
        far &= np.isfinite(values)  # inf is "not a finite number", said once
        if not far.any():
            continue
        check = (
            f"{IMPLAUSIBLE}, beyond {limit:.3g} in magnitude ({factor:.3g} times the column's "
            f"upper quartile {quartile:.3g})"
        )
        cases.append(
            pd.DataFrame(
                {
                    "index": typed.index[far],
                    "column": column.name,
                    "check": check,
                    "failure_case": pd.Series(values[far], dtype=object).to_numpy(),
                }
            )
        )
    return pd.concat(cases, ignore_index=True).astype({"index": "int64"})


def _invalid_values(
    frame: pd.DataFrame, typed: pd.DataFrame, table: ColumnPlan, schema: pa.DataFrameSchema
) -> pd.Series:
    """One reason string per invalid row, listing every failed check (lazy validation)."""
    names = [CUSTOMER_ID, *table.names]
    cases = pd.concat(
        [
            _not_numbers(frame, typed, table),
            _failure_cases(schema, typed.loc[:, names]),
            _implausible(typed, table),
        ],
        ignore_index=True,
    )
    if cases.empty:
        return pd.Series(dtype="str", name=REASON)
    cases = _one_reason_per_value(cases)
    allowed = {c.name: c.spec.allowed for c in table.columns if c.spec.allowed}
    cases["text"] = [
        _describe(column, check, value, allowed.get(column))
        for column, check, value in zip(
            cases["column"], cases["check"], cases["failure_case"], strict=True
        )
    ]
    cases["order"] = cases["column"].map({c: i for i, c in enumerate(names)})
    cases = cases.sort_values(["index", "order"], kind="stable")
    several = cases["index"].duplicated(keep=False).to_numpy()
    reasons = cases.loc[~several].set_index("index")["text"]  # most rows fail one check
    if several.any():  # joining per group runs Python per row: only where there are several
        joined = cases.loc[several].groupby("index")["text"].agg("; ".join)
        reasons = pd.concat([reasons, joined]).sort_index()
    return reasons.rename(REASON)


def _one_reason_per_value(cases: pd.DataFrame) -> pd.DataFrame:
    """Failure cases without the follow-on ones: text that is not a number is also missing
    after parsing, and ``inf`` or an implausible value also breaks the range checks; report
    what the value is."""
    checks = cases["check"].astype("str")
    primary = checks.isin([NOT_A_NUMBER, NOT_FINITE]) | checks.str.startswith(IMPLAUSIBLE)
    if not primary.any():
        return cases
    cells = pd.MultiIndex.from_frame(cases.loc[:, ["index", "column"]])
    return cases.loc[primary.to_numpy() | ~cells.isin(cells[primary.to_numpy()])]


def _row_checks(table: ColumnPlan) -> pa.DataFrameSchema:
    """The clean customers' row-level checks. Ids are unique here by construction (conflicts
    are already quarantined): that is checked on integer codes, not by the schema's costly
    check on text. Given exactly these columns, a frame is validated in place (10M rows are
    not copied)."""
    schema = customers_schema(table).update_column(CUSTOMER_ID, unique=False)
    schema.strict = True
    return schema


def _failure_cases(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Row-level failure cases of a lazy validation (empty when the frame is valid)."""
    columns = ["index", "column", "check", "failure_case"]
    try:
        schema.validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        schema_level = cases["index"].isna()
        if schema_level.any():  # a missing column etc.: the input is unusable as a whole
            first = cases.loc[schema_level].iloc[0]
            raise InputError(f"{first['check']} ({first['failure_case']})") from errors
        cases = cases.loc[:, columns].drop_duplicates(subset=["index", "column", "check"])
        return cases.astype({"index": "int64"})
    return pd.DataFrame(columns=columns).astype({"index": "int64"})


# Library internals: pandera names a failed bound check only as text in its failure cases
# ("greater_than_or_equal_to(0)"); no public field carries the bound. tests/test_clean.py's
# out-of-range reasons pin the format to the installed pandera.
_BOUND = re.compile(r"(greater|less)_than_or_equal_to\((.+)\)")


def _describe(
    column: str, check: str, value: object, allowed: tuple[str, ...] | None = None
) -> str:
    """A reason readable by a person, naming the column, the check and the offending value."""
    if check == "not_nullable":
        return f"{column}: missing value"
    if check == "field_uniqueness":
        return f"{column}={shown_value(value)}: duplicate id"
    shown = repr(value) if isinstance(value, str) else _format_number(value)
    bound = _BOUND.fullmatch(check)
    if bound:
        relation = ">=" if bound.group(1) == "greater" else "<="
        return f"{column}={shown}: must be {relation} {_format_number(bound.group(2))}"
    if check.startswith("isin("):
        return f"{column}={shown}: unknown code, expected one of {', '.join(allowed or ())}"
    if check.startswith("str_length"):
        return f"{column}: empty value"
    return f"{column}={shown}: {check}"


def _format_number(value: Any) -> str:  # anything float() takes; else shown by repr
    try:
        number = float(value)
    except (TypeError, ValueError):
        return repr(value)
    return f"{number:g}"


def _quarantine_table(
    raw_rows: pd.DataFrame, reasons: pd.Series, table: ColumnPlan
) -> pd.DataFrame:
    """The quarantined rows with their values as read (numbers read as numbers shown as text,
    as the file's own text would be) and their reasons."""
    names = [CUSTOMER_ID, *table.names]
    quarantine = raw_rows.loc[:, [SOURCE_ROW, *names]]
    quarantine = quarantine.assign(**{c: numbers_as_text(quarantine[c]) for c in names})
    quarantine[REASON] = reasons.reindex(quarantine.index)
    quarantine = quarantine.sort_values(SOURCE_ROW).reset_index(drop=True)
    return quarantine_schema(table).validate(quarantine)


def check_accounting(result: RowAccounting) -> None:
    """Every row read is kept, quarantined or a dropped duplicate: a bug if not."""
    accounted = result.rows_kept + result.rows_quarantined + result.duplicates_dropped
    if accounted != result.rows_read:
        raise RuntimeError(
            f"row accounting broken: read {result.rows_read} rows but kept {result.rows_kept} + "
            f"quarantined {result.rows_quarantined} + duplicates {result.duplicates_dropped} "
            f"= {accounted}"
        )


def _check_enough_left(
    result: CleanResult, source: str, max_share: float, table: ColumnPlan
) -> None:
    if result.rows_kept == 0:
        raise InputError(
            f"no valid customer rows remain: {result.rows_quarantined} quarantined "
            f"({_top_reasons(result.quarantine)})",
            path=source,
        )
    if result.rows_kept == 1:
        raise InputError(
            f"only 1 valid customer row remains of {result.rows_read} read: "
            "at least 2 different customers are needed to segment",
            path=source,
        )
    if _all_alike(result.customers, table):
        raise InputError(
            f"all {result.rows_kept} valid customers have the same {_listing(table)}: "
            "at least 2 different customers are needed to segment",
            path=source,
        )
    check_quarantine_share(result, source, max_share)


def _listing(table: ColumnPlan) -> str:
    labels = [c.label for c in table.columns]
    return ", ".join(labels[:-1]) + f" and {labels[-1]}" if len(labels) > 1 else labels[0]


def check_quarantine_share(result: RowAccounting, source: str | Path, max_share: float) -> None:
    """Refuse the input when more than ``max_share`` of its rows were quarantined."""
    share = result.rows_quarantined / max(result.rows_read, 1)
    if share > max_share:
        raise InputError(
            f"{share:.1%} of rows quarantined ({result.rows_quarantined} of {result.rows_read}), "
            f"above the limit of {max_share:.1%} (setting max_quarantine_share); "
            f"first problems: {_top_reasons(result.quarantine)}",
            path=source,
        )


def _all_alike(customers: pd.DataFrame, table: ColumnPlan) -> bool:
    """True when every customer has the same values (ids aside); cheap checks first."""
    numbers = customers.loc[:, list(table.numeric_names)]
    if (numbers.max() != numbers.min()).any():
        return False
    return all(customers[c.name].nunique() <= 1 for c in table.columns if not c.numeric)


def _top_reasons(quarantine: pd.DataFrame, limit: int = 3) -> str:
    first = quarantine.head(limit)
    return "; ".join(
        f"row {row}: {reason}" for row, reason in zip(first[SOURCE_ROW], first[REASON], strict=True)
    )
