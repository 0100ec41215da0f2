"""Score new customers into a finished run's segments with its ``model.json``.

The model carries the run's resolved table (columns, kinds, checks, recodes), the values a
missing feature was filled with, the transforms and scaler parameters, the projection and the
centroids: new customers are read and checked as the run read its file, transformed with the
stored parameters (nothing is fitted again) and given their nearest segment. Rows that fail a
check are quarantined with every reason, as in a run; exact repeats are dropped and counted.
A customer beyond every segment's training radius is flagged ``outlier``, not forced silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from schemas.columns import (
    CUSTOMER_ID,
    DISTANCE,
    OUTLIER,
    REASON,
    SEGMENT_ID,
    SEGMENT_NAME,
    SOURCE_ROW,
)
from schemas.spec import ID_SPELLINGS
from tasks.clean import (
    RowAccounting,
    check_accounting,
    check_quarantine_share,
    clean_customers,
)
from tasks.errors import InputError
from tasks.ingest import canonical_frame, expected_types, numbers_as_text, read_file, read_header
from tasks.model import MODEL_FORMAT, Scores, score_frame
from tasks.scale import FeatureTransform
from tasks.scoring.export import check_output_path, sidecar_path, write_table_files
from tasks.scoring.model_file import ModelFile, OrderLinesFile, first_defect
from tasks.store.paths import LATEST, MANIFEST
from tasks.table import ColumnPlan, normalise

log = logging.getLogger(__name__)

MODEL_FILE = "model.json"
MODEL_KEYS = ("table", "transforms", "segments")


class ModelError(ValueError):
    """The model cannot be used: missing, not JSON, not a segmentation model, inconsistent, or
    changed after its run was published. One line naming the file."""


@dataclass(frozen=True)
class Model:
    """A model read from ``path`` and checked: its JSON and its resolved table."""

    path: Path
    data: dict
    table: ColumnPlan
    order_lines: OrderLinesFile | None = None  # how its run derived customers from order lines

    @property
    def names(self) -> dict[int, str]:
        return {int(s["id"]): str(s["name"]) for s in self.data["segments"]}

    @property
    def has_radii(self) -> bool:
        return all("max_distance" in s for s in self.data["segments"])


@dataclass(frozen=True)
class Assignment(RowAccounting):
    """Assigned customers, quarantined rows with reasons, and the row accounting."""

    customers: pd.DataFrame  # customer_id, the table's columns, segment id, name, distance, outlier
    quarantine: pd.DataFrame  # source_row, customer_id, the table's columns as read, reason
    rows_read: int
    duplicates_dropped: int
    # order lines (``tasks.scoring.assign_lines``): the derivation's line accounting record,
    # its quarantined lines, and the model's profile columns the new lines lack (left empty)
    order_lines: dict | None = None
    quarantine_lines: pd.DataFrame | None = None
    missing_profile: tuple[str, ...] = ()

    @property
    def outliers(self) -> int:
        return int(self.customers[OUTLIER].sum()) if len(self.customers) else 0

    def sizes(self) -> dict[int, int]:
        """Customers per segment id."""
        return {int(k): int(v) for k, v in self.customers[SEGMENT_ID].value_counts().items()}


# --- the model ------------------------------------------------------------------------------


def find_model(path: str | Path) -> Path:
    """``model.json`` itself, in a run folder, or (an output folder) in its ``latest`` run."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / MODEL_FILE, path / LATEST / MODEL_FILE):
            if candidate.is_file():
                return candidate
        raise ModelError(
            f"{path}: no {MODEL_FILE} in this folder; give a run folder (e.g. outputs/latest) "
            f"or its {MODEL_FILE}"
        )
    if not path.exists():
        raise ModelError(f"{path}: no such file or folder")
    return path


def read_model(path: str | Path) -> Model:
    """Read and check a model: its JSON, format marker, table, transforms and centroids, and,
    in a run folder, its checksum against the run's manifest."""
    path = find_model(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: cannot be read: {error}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelError(
            f"{path}: not JSON ({error.msg} at line {error.lineno}); expected a run's {MODEL_FILE}"
        ) from error
    except RecursionError as error:
        raise ModelError(f"{path}: not a run's {MODEL_FILE} (JSON nested too deeply)") from error
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ModelError(f"{path}: not a {MODEL_FORMAT} model (format={found!r})")
    missing = [key for key in MODEL_KEYS if not data.get(key)]
    if missing:
        raise ModelError(f"{path}: incomplete model, no {', '.join(missing)}")
    whole = _checked_whole(path, data)
    _check_manifest(path)
    return Model(path, data, whole.table, whole.order_lines)


def _checked_whole(path: Path, data: dict) -> ModelFile:
    """``data`` validated against the contract of ``model.json``: every field typed, every
    number finite, shapes that agree; a defect is a ``ModelError`` naming the field."""
    try:
        return ModelFile.model_validate(data)
    except ValidationError as error:
        raise ModelError(f"{path}: invalid model: {first_defect(error)}") from error
    except RecursionError as error:
        raise ModelError(f"{path}: invalid model: values nested too deeply") from error


def _check_manifest(path: Path) -> None:
    """In a published run folder, the model must match the checksum its manifest recorded."""
    manifest = path.parent / MANIFEST
    if not manifest.is_file():
        return
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return  # not a run's manifest: nothing to compare against
    expected = recorded.get(path.name) if isinstance(recorded, dict) else None
    if not isinstance(expected, dict) or "sha256" not in expected:
        return
    with path.open("rb") as handle:
        actual = hashlib.file_digest(handle, "sha256").hexdigest()
    if actual != expected["sha256"]:
        raise ModelError(
            f"{path}: does not match the checksum in {manifest}; the model was changed after "
            "its run was published"
        )


# --- the new customers' columns -------------------------------------------------------------


def table_for_header(
    model: Model, header: Sequence[str], optional: Collection[str] = ()
) -> ColumnPlan:
    """The model's table with the headers of the new file: each column found by its header in
    the run's file, else by its name or the spec's aliases (without case and punctuation).
    Categorical features accept only the categories the model was fitted on (a new value is
    quarantined with the reason, since no centroid knows it). A column the model needs and
    the file lacks is bad input naming it; a column named in ``optional`` is left out of the
    table instead."""
    table = model.table
    header = list(header)
    missing: list[str] = []
    missing_profile: list[str] = []

    def find(names: Sequence[str]) -> str | None:
        exact = [h for h in names if h in header]
        if exact:
            return exact[0]
        wanted = {normalise(n) for n in names}
        found = [h for h in header if normalise(h) in wanted]
        if len(found) > 1:
            raise InputError(f"several headers match {names[0]!r}: {found}")
        return found[0] if found else None

    id_header = table.id_header
    if id_header is not None:
        spellings = (id_header, *(ID_SPELLINGS if table.preset else ()))
        id_header = find(spellings)
        if id_header is None:
            missing.append(f"{table.id_header} (the customer id)")
    categories = _categories(model.data["transforms"])
    columns = []
    for column in table.columns:
        found = find((column.header, column.name, *column.spec.aliases))
        if found is None and column.name not in optional:
            (missing if column.role == "feature" else missing_profile).append(column.header)
        if found is None:
            continue
        spec = column.spec
        if column.name in categories and not spec.allowed:
            spec = spec.model_copy(update={"allowed": tuple(categories[column.name])})
        columns.append(column.model_copy(update={"header": found, "spec": spec}))
    if missing or missing_profile:
        parts = [f"the model was fitted with {', '.join(missing)}"] if missing else []
        if missing_profile:  # described per segment, not fitted on
            parts.append(f"the model's profile column(s) {', '.join(missing_profile)}")
        raise InputError(
            f"missing column(s): {'; '.join(parts)}; headers found: {', '.join(header)}"
        )
    return table.model_copy(update={"id_header": id_header, "columns": tuple(columns)})


def _categories(transforms: list[dict]) -> dict[str, list[str]]:
    """Each categorical feature's values, as the model's one-hot columns know them."""
    found: dict[str, list[str]] = {}
    for t in transforms:
        if t.get("category") is not None and t.get("source"):
            found.setdefault(t["source"], []).append(t["category"])
    return found


# --- scoring --------------------------------------------------------------------------------


def assign_customers(
    raw: pd.DataFrame,
    model: Model,
    table: ColumnPlan,
    *,
    source: str = "input",
    max_quarantine_share: float | None = None,
) -> Assignment:
    """Clean ``raw`` (``tasks.ingest.canonical_frame`` of the new file for ``table``) with the
    run's checks and the model's fill values, then give each valid customer its nearest
    segment, the distance to its centroid and the outlier flag. Raises ``InputError`` when
    more than ``max_quarantine_share`` of the rows are quarantined (None: no limit)."""
    cleaned = clean_customers(
        raw,
        source=source,
        max_quarantine_share=None,
        table=table,
        fill_values=model.data.get("fill_values") or {},
    )
    customers, quarantine = cleaned.customers, cleaned.quarantine
    scores = score_frame(model.data, customers)
    assigned = _with_segments(customers, scores, model.names)
    if not scores.finite.all():  # e.g. log1p of a value below -1: no place in the model's space
        bad = ~scores.finite
        quarantine = _with_unscorable(quarantine, raw, customers.loc[bad], model, table)
        assigned = assigned.loc[~bad].reset_index(drop=True)
    assignment = Assignment(
        customers=assigned,
        quarantine=quarantine,
        rows_read=cleaned.rows_read,
        duplicates_dropped=cleaned.duplicates_dropped,
    )
    check_accounting(assignment)
    if max_quarantine_share is not None:
        check_quarantine_share(assignment, source, max_quarantine_share)
    log.info(
        "Assigned %s: %d rows read, %d assigned (%d outliers), %d quarantined, %d exact "
        "duplicates dropped",
        source,
        assignment.rows_read,
        assignment.rows_kept,
        assignment.outliers,
        assignment.rows_quarantined,
        assignment.duplicates_dropped,
    )
    return assignment


def _with_segments(customers: pd.DataFrame, scores: Scores, names: dict[int, str]) -> pd.DataFrame:
    ordered = sorted(names)
    outlier = (
        pd.array(np.full(len(customers), pd.NA), dtype="boolean")
        if scores.outlier is None
        else scores.outlier.astype("bool")
    )
    return customers.assign(
        **{
            SEGMENT_ID: scores.segment_ids.astype("int64"),
            SEGMENT_NAME: pd.Categorical.from_codes(
                np.searchsorted(ordered, scores.segment_ids),
                categories=[names[i] for i in ordered],
            ),
            DISTANCE: scores.distances.astype("float64"),
            OUTLIER: outlier,
        }
    )


def _with_unscorable(
    quarantine: pd.DataFrame,
    raw: pd.DataFrame,
    bad: pd.DataFrame,
    model: Model,
    table: ColumnPlan,
) -> pd.DataFrame:
    """The quarantine plus clean rows whose values the model's transforms cannot take (the
    first row of the file with that id: later ones were exact repeats)."""
    first = raw.loc[raw[CUSTOMER_ID].isin(bad[CUSTOMER_ID])].drop_duplicates(CUSTOMER_ID)
    first = first.set_index(CUSTOMER_ID).loc[bad[CUSTOMER_ID]].reset_index()
    names = [CUSTOMER_ID, *table.names]
    rows = first.loc[:, [SOURCE_ROW, *names]]
    rows = rows.assign(**{c: numbers_as_text(rows[c]) for c in names})
    rows[REASON] = [_unscorable_reason(row, model) for _, row in bad.iterrows()]
    combined = pd.concat([quarantine, rows], ignore_index=True)
    return combined.sort_values(SOURCE_ROW, ignore_index=True)


def _unscorable_reason(row: pd.Series, model: Model) -> str:
    reasons = []
    for transform in (FeatureTransform(**t) for t in model.data["transforms"]):
        if transform.category is not None:
            continue
        name = transform.source or transform.column
        value = float(row[name])
        with np.errstate(invalid="ignore", divide="ignore"):
            scaled = transform.apply(np.array([value]))
        if not np.isfinite(scaled).all():
            reasons.append(
                f"{name}={value:g}: outside what the model's {transform.kind} transform takes"
            )
    return "; ".join(reasons) or "no finite distance to the model's centroids"


# --- the files ------------------------------------------------------------------------------

QUARANTINE_LABEL = "quarantine"  # out.parquet -> out.quarantine.parquet
LINES_LABEL = "quarantine_lines"  # order lines: out.parquet -> out.quarantine_lines.parquet


@dataclass(frozen=True)
class AssignedFiles:
    """What ``assign_file`` did: the model used, the files written and the counts."""

    model: Path
    input: Path
    output: Path
    quarantine_file: Path
    assignment: Assignment
    names: dict[int, str]
    has_radii: bool


def read_new_customers(path: str | Path, model: Model, sep: str | None = None):
    """The new customer file as the run read its own: headers matched to the model's table,
    values as text (Parquet numbers kept), ``canonical_frame``'s columns. Returns
    ``(frame, table)``; bad files raise ``InputError`` naming them."""
    path = Path(path)
    header = read_header(path, sep)
    try:
        table = table_for_header(model, header)
    except InputError as error:
        if model.order_lines is not None:  # order lines without --transactions, most likely
            error = InputError(
                f"{error.message}; the model's run derived its customers from order lines: "
                "add --transactions to score order lines"
            )
        raise error.with_path(path) from error
    raw = read_file(path, sep, expected=expected_types(table))
    return canonical_frame(raw, table), table


def assign_file(
    model_path: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    sep: str | None = None,
    max_quarantine_share: float | None = None,
) -> AssignedFiles:
    """Read the model and the new customers, assign them, write the assigned customers to
    ``output_path`` (.parquet or spreadsheet-safe .csv) and the quarantined rows with their
    reasons beside it (``<stem>.quarantine.<suffix>``, written even when empty, so an old one
    is never taken for today's). Raises ``ModelError``, ``InputError`` or ``ValueError`` (an
    output that is neither .parquet nor .csv) before anything is written."""
    output = check_output_path(output_path)
    model = read_model(model_path)
    frame, table = read_new_customers(input_path, model, sep)
    assignment = assign_customers(
        frame,
        model,
        table,
        source=str(input_path),
        max_quarantine_share=max_quarantine_share,
    )
    return write_files(model, Path(input_path), output, assignment)


def write_files(model: Model, source: Path, output: Path, assignment: Assignment) -> AssignedFiles:
    """``write_assignment``, and what was done: the model, the files and the counts."""
    written, quarantine_file = write_assignment(assignment, output)
    return AssignedFiles(
        model.path, source, written, quarantine_file, assignment, model.names, model.has_radii
    )


def write_assignment(assignment: Assignment, output: Path) -> tuple[Path, Path]:
    """Write the assigned customers to ``output`` and the quarantine beside it
    (``<stem>.quarantine.<suffix>``, even when empty, so an old one is never taken for
    today's). Both are written to temporary names and renamed only when both are complete
    (the quarantine first), so a failure such as a full disk (``OutputError`` naming the file)
    leaves yesterday's pair as it was, never today's quarantine beside yesterday's output."""
    tables = [
        (assignment.quarantine, sidecar_path(output, QUARANTINE_LABEL)),
        (assignment.customers, output),
    ]
    if assignment.quarantine_lines is not None:  # order lines: their quarantine too, first
        tables.insert(0, (assignment.quarantine_lines, sidecar_path(output, LINES_LABEL)))
    *_, quarantine, written = write_table_files(tables)
    log.info("Wrote %s and %s", written, quarantine)
    return written, quarantine
