"""The classic RFM scores and names: quintile scores 1-5 and the recency x frequency grid.

``rfm_scores`` adds ``r_score``, ``f_score``, ``m_score`` (5 = most recent / most frequent /
highest spend) and ``rfm_segment``, the name of the customer's (r_score, f_score) cell in the
grid. Scores are fair to ties: with s the share of customers with a strictly smaller value,
F and M are 1 + floor(5 s), R is 5 - floor(5 s) (fewer days since the last purchase score
higher). Equal values get equal scores (and equal R, F and M the same grid name); the smallest
value is the anchor: a one-time buyer has F = 1 (never a champion or loyal customer), a
customer of the latest purchase day has R = 5 (never hibernating); a score may be empty when
many tie. The grid maps each of the 25 cells exactly once (``check_grid``); it is data, kept in
the spec file (``rfm_grid``), the widely used 10-name map by default (``DEFAULT_GRID``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

RFM_SEGMENT = "rfm_segment"
CELLS = tuple(f"{r}{f}" for r in range(1, 6) for f in range(1, 6))  # "RF": recency, frequency

# The widely used 10-name map of (R, F) cells (rows: r_score; columns: f_score).
DEFAULT_GRID: dict[str, tuple[str, ...]] = {
    "champions": ("54", "55"),
    "loyal customers": ("34", "35", "44", "45"),
    "potential loyalists": ("42", "43", "52", "53"),
    "new customers": ("51",),
    "promising": ("41",),
    "need attention": ("33",),
    "about to sleep": ("31", "32"),
    "at risk": ("13", "14", "23", "24"),
    "can't lose them": ("15", "25"),
    "hibernating": ("11", "12", "21", "22"),
}


def check_grid(grid: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """The grid if every one of the 25 cells ("RF", e.g. "54": r_score 5, f_score 4) is
    mapped exactly once; else ``ValueError`` naming the missing, repeated or unknown cells."""
    seen: dict[str, str] = {}
    repeated, unknown = [], []
    for name, cells in grid.items():
        for cell in cells:
            cell = str(cell)
            if cell not in CELLS:
                unknown.append(f"{cell!r} ({name})")
            elif cell in seen:
                repeated.append(f"{cell} ({seen[cell]} and {name})")
            else:
                seen[cell] = name
    missing = [cell for cell in CELLS if cell not in seen]
    problems = []
    if unknown:
        problems.append(f"unknown cells {', '.join(unknown)} (cells are RF digits 1-5, e.g. '54')")
    if repeated:
        problems.append(f"cells mapped twice: {', '.join(repeated)}")
    if missing:
        problems.append(f"cells not mapped: {', '.join(missing)}")
    if problems:
        raise ValueError(
            "rfm_grid must map each of the 25 R x F cells once: " + "; ".join(problems)
        )
    return {name: tuple(str(c) for c in cells) for name, cells in grid.items()}


def quintile_scores(values: pd.Series, *, ascending: bool = True) -> np.ndarray:
    """Scores 1-5 by quintile of the share of customers with a strictly smaller value:
    1 + floor(5 x that share), so equal values score the same and the smallest scores 1;
    ``ascending=False``: 5 - floor(5 x that share) (the smallest values score 5)."""
    smaller = values.rank(method="min").to_numpy() - 1
    step = (smaller * 5 // len(values)).astype("int64")  # 0-4; none: an empty array
    return step + 1 if ascending else 5 - step


def rfm_scores(
    customers: pd.DataFrame, grid: Mapping[str, Sequence[str]] | None = None
) -> pd.DataFrame:
    """``r_score``, ``f_score``, ``m_score`` and ``rfm_segment`` for a frame with
    ``recency_days``, ``frequency`` and ``monetary`` (same index)."""
    grid = check_grid(grid if grid is not None else DEFAULT_GRID)
    r = quintile_scores(customers["recency_days"], ascending=False)
    f = quintile_scores(customers["frequency"])
    m = quintile_scores(customers["monetary"])
    lookup = {cell: name for name, cells in grid.items() for cell in cells}
    cell_names = np.array([lookup[c] for c in CELLS], dtype=object)
    cell_index = (r - 1) * 5 + (f - 1)  # CELLS order: r major, f minor
    return pd.DataFrame(
        {
            "r_score": r,
            "f_score": f,
            "m_score": m,
            RFM_SEGMENT: pd.array(cell_names[cell_index], dtype="str"),
        },
        index=customers.index,
    )
