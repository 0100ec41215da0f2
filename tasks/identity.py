"""Stable segment identity from run to run, and what changed since the previous run.

K-Means numbers its clusters arbitrarily on every fit. To let "segment 3" mean the same group
tomorrow as today, each run matches its centroids to the previous complete run's: both are put
in *today's* scaled feature space (the previous centroids are stored in original units in its
model.json), an optimal one-to-one assignment (Hungarian algorithm) pairs them, and a pair
closer than ``max_shift`` keeps the previous id and name. Unmatched centroids get fresh ids
(never reused); previous ids left unmatched are retired.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from schemas.columns import CUSTOMER_ID, PREVIOUS_SEGMENT_ID, SEGMENT_ID
from tasks.scale import FeatureTransform, ScaledFeatures

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreviousRun:
    """What a run needs of the previous complete run: its model and its customers' segments."""

    run_id: str
    model: dict
    assignments: pd.DataFrame  # customer_id, segment_id (empty when left on disk)
    files: tuple[Path, ...] = ()  # its segments table(s)

    @property
    def k(self) -> int:
        return len(self.model["segments"])

    @property
    def names(self) -> dict[int, str]:
        """Its segment names by id."""
        return {int(s["id"]): str(s["name"]) for s in self.model["segments"]}


@dataclass(frozen=True)
class Identity:
    """Stable ids for the provisional segments 1..k of a fit, and the id registry after it."""

    ids: tuple[int, ...]  # ids[i] is the stable id of provisional segment i + 1
    kept_names: dict[int, str]  # stable id -> name carried over from the previous run
    new_ids: tuple[int, ...]
    retired_ids: tuple[int, ...]  # every id ever retired, this run's included
    next_id: int
    shift: dict[int, float] = field(default_factory=dict)  # matched id -> centroid move (scaled)

    def relabel(self, provisional: np.ndarray) -> np.ndarray:
        """Stable id of each row, from provisional labels 1..k."""
        return np.asarray(self.ids, dtype="int64")[np.asarray(provisional) - 1]


def first_identity(k: int) -> Identity:
    """Ids 1..k for a run with no previous run."""
    return Identity(tuple(range(1, k + 1)), {}, tuple(range(1, k + 1)), (), k + 1)


def match_segments(
    centroids: np.ndarray,
    scaled: ScaledFeatures,
    previous: PreviousRun | None,
    *,
    max_shift: float,
) -> Identity:
    """Give each current centroid (in the space K-Means works in, row i = provisional segment
    i + 1) a stable id.

    ``max_shift`` is the largest distance, in today's scaled units, at which a current centroid
    still counts as the same segment as a previous one.
    """
    columns, transforms = scaled.columns, scaled.transforms
    k = len(centroids)
    if previous is None:
        return first_identity(k)
    model = previous.model
    retired = tuple(model.get("retired_segment_ids", ()))
    ever_used = [int(s["id"]) for s in model["segments"]] + list(retired)
    registry_next = int(model.get("next_segment_id", 1 + max(ever_used)))
    if set(model["columns"]) != set(columns):  # the order of features does not matter
        log.warning(
            "Features changed since run %s (%s -> %s): every segment gets a new id, and this "
            "run is not compared with that one (no transitions, no moved-customers gate, its "
            "k is not kept)",
            previous.run_id,
            model["columns"],
            list(columns),
        )
        pairs = []
    else:
        old = scaled.to_cluster_space(_previous_centroids_scaled(model, transforms))
        distance = np.linalg.norm(centroids[:, None, :] - old[None, :, :], axis=2)
        rows, cols = linear_sum_assignment(distance)
        pairs = [(i, j, distance[i, j]) for i, j in zip(rows, cols, strict=True)]
        pairs = [(i, j, d) for i, j, d in pairs if d <= max_shift]

    old_segments = model["segments"]
    ids = [0] * k
    kept_names, shift = {}, {}
    for i, j, d in pairs:
        ids[i] = int(old_segments[j]["id"])
        kept_names[ids[i]] = old_segments[j]["name"]
        shift[ids[i]] = float(d)
    new_ids = []
    for i in [i for i, stable in enumerate(ids) if stable == 0]:  # in canonical centroid order
        ids[i] = registry_next
        new_ids.append(registry_next)
        registry_next += 1
    matched_old = {int(s["id"]) for s in old_segments} & set(ids)
    newly_retired = sorted(int(s["id"]) for s in old_segments if int(s["id"]) not in matched_old)
    if newly_retired or new_ids:
        log.info("Segments retired: %s; new segments: %s", newly_retired, new_ids)
    return Identity(
        tuple(ids),
        kept_names,
        tuple(new_ids),
        tuple(sorted(set(retired) | set(newly_retired))),
        registry_next,
        shift,
    )


def _previous_centroids_scaled(model: dict, transforms: tuple[FeatureTransform, ...]) -> np.ndarray:
    return np.array(
        [
            [t.apply(np.array([s["centroid"][t.column]]))[0] for t in transforms]
            for s in model["segments"]
        ],
        dtype="float64",
    )


def _in_both(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Customers present in both runs: columns previous_segment_id, segment_id.

    Uses the current table's previous_segment_id when it has one (a hash join on 10M text ids
    costs seconds and gigabytes: it is done once, in ``previous_segments``).
    """
    if PREVIOUS_SEGMENT_ID in current.columns:
        known = current[PREVIOUS_SEGMENT_ID].notna()
        return pd.DataFrame(
            {
                PREVIOUS_SEGMENT_ID: current.loc[known, PREVIOUS_SEGMENT_ID].astype("int64"),
                SEGMENT_ID: current.loc[known, SEGMENT_ID].astype("int64"),
            }
        )
    both = previous[[CUSTOMER_ID, SEGMENT_ID]].merge(
        current[[CUSTOMER_ID, SEGMENT_ID]], on=CUSTOMER_ID, suffixes=("_previous", "")
    )
    return both.rename(columns={f"{SEGMENT_ID}_previous": PREVIOUS_SEGMENT_ID})[
        [PREVIOUS_SEGMENT_ID, SEGMENT_ID]
    ]


def transitions(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Counts of customers present in both runs, by previous and current segment id."""
    both = _in_both(previous, current)
    table = both.groupby([PREVIOUS_SEGMENT_ID, SEGMENT_ID]).size().rename("customers")
    return table.reset_index().astype("int64")


def positions(values: pd.Series, lookup: pd.Series) -> np.ndarray:
    """Where each of the text ``values`` is in ``lookup`` (its first row with it), -1 where it
    is not. Arrow's hash lookup: 4x faster than pandas' ``Index.get_indexer`` on 2M text ids
    here (1.2 s against 5.4 s), and the nightly run does it on every customer."""
    import pyarrow as arrow
    import pyarrow.compute as pc

    text = arrow.large_string()
    found = pc.index_in(arrow.array(values, type=text), value_set=arrow.array(lookup, type=text))
    return found.fill_null(-1).to_numpy().astype(np.int64)


def previous_segments(previous: PreviousRun | None, customer_ids: pd.Series) -> pd.Series:
    """Each customer's segment in the previous run (missing for new customers)."""
    if previous is None:
        return pd.Series(pd.NA, index=customer_ids.index, dtype="Int64")
    assignments = previous.assignments
    position = positions(customer_ids, assignments[CUSTOMER_ID])
    ids = assignments[SEGMENT_ID].to_numpy(dtype="int64")
    found = position >= 0
    result = pd.array(np.where(found, ids[position], 0), dtype="Int64")
    result[~found] = pd.NA
    return pd.Series(result, index=customer_ids.index)


def change_summary(
    previous: PreviousRun | None, current: pd.DataFrame, moves: pd.DataFrame, identity: Identity
) -> dict | None:
    """Figures of what changed since the previous run (None for a first run): ``current`` is
    this run's segments table, ``moves`` its ``transitions`` from the previous run's."""
    if previous is None:
        return None
    return changes_since(
        previous.run_id,
        previous.model,
        previous.assignments[SEGMENT_ID].value_counts(),
        current[SEGMENT_ID].value_counts(),
        moves,
        identity,
    )


def changes_since(
    previous_run_id: str,
    previous_model: dict,
    previous_sizes: pd.Series,
    current_sizes: pd.Series,
    moves: pd.DataFrame,
    identity: Identity,
) -> dict:
    """What changed since the previous run, from the segment sizes of both runs and the
    ``transitions`` table (customers in both runs by previous and current segment): the one
    summary of the in-memory and the partitioned runs."""
    both = int(moves["customers"].sum())
    moved = int(moves.loc[moves[PREVIOUS_SEGMENT_ID] != moves[SEGMENT_ID], "customers"].sum())
    ids = sorted(set(previous_sizes.index) | set(current_sizes.index))
    retired = set(int(s["id"]) for s in previous_model["segments"]) - set(identity.ids)
    continued = continued_as(moves, retired, set(identity.new_ids))
    follows = moves[PREVIOUS_SEGMENT_ID].map(lambda p: continued.get(int(p), int(p)))
    changed_group = int(moves.loc[follows != moves[SEGMENT_ID], "customers"].sum())
    return {
        "previous_run_id": previous_run_id,
        "customers_in_both": both,
        "customers_joined": int(current_sizes.sum()) - both,
        "customers_left": int(previous_sizes.sum()) - both,
        "customers_moved": moved,
        "moved_share": moved / both if both else 0.0,
        "customers_changed_group": changed_group,
        "continued_as": continued,
        "adjusted_rand_index": adjusted_rand_index(moves) if both else None,
        "size_change": {
            int(i): int(current_sizes.get(i, 0)) - int(previous_sizes.get(i, 0)) for i in ids
        },
        "centroid_shift": {int(i): round(d, 6) for i, d in identity.shift.items()},
        "new_segment_ids": list(identity.new_ids),
        "retired_segment_ids": sorted(
            set(int(s["id"]) for s in previous_model["segments"]) - set(identity.ids)
        ),
    }


def continued_as(moves: pd.DataFrame, retired: set[int], new: set[int]) -> dict[int, int]:
    """Retired segments that continue under a new id: a retired segment whose returning
    customers went mostly to one new segment (its centroid moved beyond --identity-max-shift,
    the group stayed). Its customers who followed it changed id, not group."""
    found: dict[int, int] = {}
    for previous_id, cells in moves.groupby(PREVIOUS_SEGMENT_ID):
        top = cells.loc[cells["customers"].idxmax()]
        share = top["customers"] / cells["customers"].sum()
        if int(previous_id) in retired and int(top[SEGMENT_ID]) in new and share > 0.5:
            found[int(previous_id)] = int(top[SEGMENT_ID])
    return found


def moved_words(changes: dict) -> str:
    """How many returning customers changed segment, in words; when retired segments continue
    under new ids, also how many changed group (the others only changed id)."""
    words = (
        f"{changes['customers_moved']:,} of {changes['customers_in_both']:,} returning "
        f"customers changed segment ({changes['moved_share']:.1%})"
    )
    continued = changes.get("continued_as") or {}
    if continued:
        group = changes["customers_changed_group"]
        both = changes["customers_in_both"]
        old = ", ".join(str(p) for p in continued)
        new = ", ".join(str(s) for s in continued.values())
        plural = "s" if len(continued) > 1 else ""
        words += (
            f", {group:,} ({group / both if both else 0.0:.1%}) changed group: segment{plural} "
            f"{old} moved beyond --identity-max-shift and continue{'' if plural else 's'} as "
            f"{new} (the other {changes['customers_moved'] - group:,} changed id only)"
        )
    return words


def adjusted_rand_index(moves: pd.DataFrame) -> float:
    """scikit-learn's adjusted Rand index of the previous and current segments of the
    customers in both runs, from their contingency table (``transitions``) rather than one
    label per customer (the pair-confusion form of ``sklearn.metrics.adjusted_rand_score``)."""
    table = moves.pivot_table(
        index=PREVIOUS_SEGMENT_ID, columns=SEGMENT_ID, values="customers", aggfunc="sum"
    ).fillna(0)
    counts = table.to_numpy(dtype="float64")
    n = counts.sum()
    rows, cols = counts.sum(axis=1), counts.sum(axis=0)
    sum_squares = float((counts**2).sum())
    tp = sum_squares - n
    fp = float(counts.dot(cols).sum()) - sum_squares
    fn = float(counts.T.dot(rows).sum()) - sum_squares
    tn = n * n - fp - fn - sum_squares
    if fn == 0 and fp == 0:
        return 1.0
    return float(2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)))
