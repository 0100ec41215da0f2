"""Quality gates: a run that breaches one fails, and `latest` stays on the previous good run."""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from schemas.columns import SEGMENT_ID


class GateError(RuntimeError):
    """One or more quality gates failed; the message names each gate and its figures."""

    def __init__(self, breaches: list[str]) -> None:
        self.breaches = breaches
        super().__init__("quality gate failed: " + "; ".join(breaches))

    def __reduce__(self):  # keep the breaches when Prefect pickles the exception
        return (GateError, (self.breaches,))


class Gates(BaseModel):
    """Limits a run must respect; None (on the command line: off) turns a gate off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_segment_share: float | None = Field(
        0.01, ge=0, lt=1, description="fail the run if a segment holds a smaller share"
    )
    silhouette_floor: float | None = Field(
        0.2, ge=-1, le=1, description="fail the run if the silhouette score is lower"
    )
    max_moved_share: float | None = Field(
        0.25,
        ge=0,
        le=1,
        description="fail the run if a larger share of returning customers changed segment",
    )
    max_psi: float | None = Field(
        None,
        ge=0,
        description="fail the run if a feature's population stability index (PSI) over all "
        "customers against the previous run is higher (0.25: large drift); unset: off",
    )


def gate_breaches(
    gates: Gates,
    *,
    profiles: pd.DataFrame,
    elbow: pd.DataFrame,
    k: int,
    changes: dict | None,
    drift: pd.DataFrame | None = None,
) -> list[str]:
    """Every breached gate as a readable sentence with the figures (empty when all pass). No
    silhouette gate for a k the elbow table has no silhouette for, no moved gate in a first run,
    no drift gate without a drift table (``tasks.drift.drift_table``: a first run) nor on a
    feature whose overall PSI is null (too few customers to judge)."""
    smallest_share = float(profiles["share"].min())
    silhouette = elbow.set_index("k")["silhouette"].get(k)
    moved_share = (changes or {}).get("moved_share")
    breaches = []
    if gates.min_segment_share is not None and smallest_share < gates.min_segment_share:
        breaches.append(
            f"min_segment_share: the smallest segment holds {smallest_share:.2%} of customers, "
            f"below {gates.min_segment_share:.2%}"
        )
    floor = gates.silhouette_floor
    if floor is not None and silhouette is not None and pd.notna(silhouette) and silhouette < floor:
        breaches.append(f"silhouette_floor: silhouette {silhouette:.3f} is below {floor}")
    limit = gates.max_moved_share
    if limit is not None and moved_share is not None and moved_share > limit:
        breaches.append(
            f"max_moved_share: {moved_share:.2%} of returning customers changed segment, "
            f"above {limit:.2%}"
        )
    if gates.max_psi is not None and drift is not None:
        breaches += _drift_breach(drift, gates.max_psi)
    return breaches


def _drift_breach(drift: pd.DataFrame, limit: float) -> list[str]:
    """The max_psi breach naming the feature of largest overall PSI above ``limit`` (and any
    other feature above it), or nothing."""
    overall = drift[drift[SEGMENT_ID].isna()]
    above = overall[overall["psi"].gt(limit).fillna(False)].sort_values("psi", ascending=False)
    if above.empty:
        return []
    first, *others = zip(above["feature"], above["psi"], strict=True)
    message = f"max_psi: {first[0]} has PSI {first[1]:.2f} overall, above {limit:g}"
    if others:
        message += " (also " + ", ".join(f"{name} {value:.2f}" for name, value in others) + ")"
    return [message]
