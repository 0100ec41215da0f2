"""Quality gates: a run that breaches one fails, and `latest` stays on the previous good run."""

from __future__ import annotations

from dataclasses import dataclass


class GateError(RuntimeError):
    """One or more quality gates failed; the message names each gate and its figures."""

    def __init__(self, breaches: list[str]) -> None:
        self.breaches = breaches
        super().__init__("quality gate failed: " + "; ".join(breaches))

    def __reduce__(self):  # keep the breaches when Prefect pickles the exception
        return (GateError, (self.breaches,))


@dataclass(frozen=True)
class Gates:
    """Limits a run must respect; None turns a gate off."""

    min_segment_share: float | None = 0.01
    silhouette_floor: float | None = 0.2
    max_moved_share: float | None = 0.25


def gate_breaches(
    gates: Gates, *, smallest_share: float, silhouette: float | None, moved_share: float | None
) -> list[str]:
    """Every breached gate as a readable sentence with the figures (empty when all pass)."""
    breaches = []
    if gates.min_segment_share is not None and smallest_share < gates.min_segment_share:
        breaches.append(
            f"min_segment_share: the smallest segment holds {smallest_share:.2%} of customers, "
            f"below {gates.min_segment_share:.2%}"
        )
    floor = gates.silhouette_floor
    if floor is not None and silhouette is not None and silhouette < floor:
        breaches.append(f"silhouette_floor: silhouette {silhouette:.3f} is below {floor}")
    limit = gates.max_moved_share
    if limit is not None and moved_share is not None and moved_share > limit:
        breaches.append(
            f"max_moved_share: {moved_share:.2%} of returning customers changed segment, "
            f"above {limit:.2%}"
        )
    return breaches
