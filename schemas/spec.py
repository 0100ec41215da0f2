"""The segmentation spec: which columns of a customer table are the id, the features and the
profile columns, and per column its kind, label, unit, checks, transform and weight.

A spec is data (a TOML file a team keeps in version control, ``segment run --spec FILE``); the
Mall recipe is one of them (``schemas/presets/mall.toml``). ``tasks.table.resolve_table`` matches a
spec against a file's header and values and gives the resolved ``ColumnPlan`` every step works from.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tasks.errors import InputError

Kind = Literal["numeric", "categorical"]
Transform = Literal["none", "log1p", "yeo-johnson", "clip"]
Missing = Literal["quarantine", "median"]
Role = Literal["feature", "profile"]

NUMERIC = "numeric"  # in ``features``: every numeric column except the id and profile columns
NO_ID = "none"  # as ``id_column``: the file has no id; ids are the 1-based data row numbers

# A column's weight: beyond these, it drowns every other column, or the squared distances of
# K-Means overflow (1e200 is finite, its square is not).
MIN_WEIGHT = 0.001
MAX_WEIGHT = 1000.0

PRESETS = Path(__file__).resolve().parent / "presets"
MALL_PRESET = PRESETS / "mall.toml"
RFM_PRESET = PRESETS / "rfm.toml"  # the derived per-customer table of order lines

# Headers taken as the customer id when none is named, compared without case and punctuation.
ID_SPELLINGS = (
    "CustomerID",
    "Customer ID",
    "customer_id",
    "Cust ID",
    "CUST_ID",
    "Client ID",
    "ClientID",
    "Customer Number",
    "Customer No",
    "Account ID",
    "Member ID",
    "User ID",
    "ID",
)


class ColumnSpec(BaseModel):
    """What the spec says of one column; every key is optional. Every number is finite (TOML's
    ``inf`` and ``nan`` are refused) and in its range."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: Kind | None = Field(
        None, description="numeric or categorical; unset: inferred from the values"
    )
    label: str | None = Field(
        None, description="readable name for segment names and plots (default: the header)"
    )
    unit: str | None = Field(None, description="unit shown in plots and tables, e.g. k$")
    aliases: tuple[str, ...] = Field(
        (), description="other headers accepted for this column (matched without case/punct.)"
    )
    min: float | None = Field(None, description="check: smallest allowed value")
    max: float | None = Field(None, description="check: largest allowed value")
    allowed: tuple[str, ...] | None = Field(
        None, description="check for a categorical column: the allowed values"
    )
    recode: dict[str, str] = Field(
        default_factory=dict,
        description="categorical: spellings (compared without case) folded to a value",
    )
    nullable: bool | None = Field(
        None, description="may be missing (default: no for features, yes for profile columns)"
    )
    transform: Transform = Field(
        "none", description="applied before scaling: none, log1p, yeo-johnson or clip"
    )
    clip: tuple[float, float] = Field(
        (0.01, 0.99), description="with transform = clip: the lower and upper quantiles"
    )
    missing: Missing | None = Field(
        None, description="missing feature values: quarantine the row or fill with the median"
    )
    weight: float = Field(
        1.0,
        ge=MIN_WEIGHT,
        le=MAX_WEIGHT,
        description=f"multiplies the column after scaling ({MIN_WEIGHT:g} to {MAX_WEIGHT:g})",
    )
    words: tuple[str, str, str] | None = Field(
        None, description="words for low / average / high values in segment names"
    )

    @model_validator(mode="after")
    def _check(self) -> ColumnSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min={self.min} > max={self.max}")
        low, high = self.clip
        if not 0 <= low < high <= 1:
            raise ValueError(f"clip quantiles must satisfy 0 <= low < high <= 1, got {self.clip}")
        if self.kind == "numeric" and (self.allowed is not None or self.recode):
            raise ValueError("allowed and recode are for categorical columns")
        if self.kind == "categorical" and (self.min is not None or self.max is not None):
            raise ValueError("min and max are for numeric columns")
        return self


class TableSpec(BaseModel):
    """Which columns play which role, and how each is read, checked and transformed."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id_column: str | None = Field(
        None, description="header of the customer id; 'none': no id (row numbers); unset: found"
    )
    features: tuple[str, ...] = Field(
        (NUMERIC,), min_length=1, description="columns to cluster on; 'numeric': every numeric one"
    )
    profile: tuple[str, ...] = Field(
        (), description="columns described per segment but not clustered on"
    )
    missing: Missing = Field("quarantine", description="missing feature values: the default policy")
    pca: float | None = Field(
        None, gt=0, description="PCA before K-Means: components (>= 1) or share of variance (< 1)"
    )
    columns: dict[str, ColumnSpec] = Field(
        default_factory=dict, description="per column, keyed by its header (or a preset's name)"
    )
    preset: str | None = Field(None, description="name of a built-in spec this one comes from")
    rfm_grid: dict[str, tuple[str, ...]] | None = Field(
        None,
        description="order lines (--transactions): RFM name -> its recency x frequency cells "
        "('54': r_score 5, f_score 4), every one of the 25 cells exactly once; unset: the "
        "classic 10-name grid",
    )

    @model_validator(mode="after")
    def _check(self) -> TableSpec:
        if self.rfm_grid is not None:
            from tasks.orders.rfm import check_grid

            check_grid(self.rfm_grid)
        if self.pca is not None and self.pca >= 1 and self.pca != int(self.pca):
            raise ValueError(f"pca={self.pca}: a whole number of components or a share below 1")
        return self

    def with_overrides(self, **choices: object) -> TableSpec:
        """This spec with the choices given on the command line (None: not given) on top."""
        given = {key: value for key, value in choices.items() if value is not None}
        try:
            return self.model_validate({**self.model_dump(), **given})
        except ValidationError as error:
            first = error.errors()[0]
            key = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise InputError(f"{key}: {first['msg']}") from error


def load_spec(path: str | Path) -> TableSpec:
    """Read a spec file; an invalid one raises ``InputError`` naming the key and its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such spec file", path=path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read the spec file: {error}", path=path) from error
    return parse_spec(text, path)


def parse_spec(text: str, path: str | Path = "spec.toml") -> TableSpec:
    """Parse a spec's TOML text; errors name the key and the line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"not valid TOML: {error}", path=path) from error
    try:
        return TableSpec.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        keys = [str(part) for part in first["loc"]]
        key = ".".join(keys) or "(top level)"
        line = _line_of(text, keys)
        where = f"line {line}, " if line else ""
        raise InputError(f"{where}key {key}: {first['msg']}", path=path) from error


def mall_spec() -> TableSpec:
    """The classic Mall-customers recipe, as shipped in ``schemas/presets/mall.toml``."""
    return load_spec(MALL_PRESET)


def _line_of(text: str, keys: list[str]) -> int | None:
    """The 1-based line where the deepest findable key of ``keys`` is set (best effort)."""
    for depth in range(len(keys), 0, -1):
        key = keys[depth - 1]
        if key.isdigit():
            continue
        pattern = re.compile(rf'^\s*(?:\[.*)?["\']?{re.escape(key)}["\']?\s*(?:=|\])', re.M)
        match = pattern.search(text)
        if match:
            return text.count("\n", 0, match.start()) + 1
    return None
