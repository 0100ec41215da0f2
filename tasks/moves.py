"""Who moved since the previous run (issue 24): the customers whose segment changed, the new
customers and the customers gone, one row each, for a CRM to pick up.

Customers are matched by ``customer_id`` (with no id column in the input, ids are data row
numbers, so identity follows row positions). A customer in both runs with the same segment id
is not listed: segment ids are stable from run to run (``tasks.identity``), so the same id is
the same segment.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from schemas.columns import CUSTOMER_ID, PREVIOUS_SEGMENT_ID, SEGMENT_ID, SEGMENT_NAME
from tasks.identity import positions

PREVIOUS_SEGMENT_NAME = "previous_segment_name"
COLUMNS = (CUSTOMER_ID, PREVIOUS_SEGMENT_ID, PREVIOUS_SEGMENT_NAME, SEGMENT_ID, SEGMENT_NAME)


def moves_table(
    previous: pd.DataFrame,
    current: pd.DataFrame,
    previous_names: Mapping[int, str],
    names: Mapping[int, str],
) -> pd.DataFrame:
    """The customers who moved, joined or left since the previous run.

    ``previous`` and ``current`` hold one row per customer with ``customer_id`` and
    ``segment_id`` (the previous run's ``PreviousRun.assignments`` and this run's segments);
    ``previous_names`` and ``names`` the segment names of each run by id. Columns ``COLUMNS``:
    customer_id (text), previous_segment_id and segment_id (Int64, null on the side a customer
    is missing from: null previous = joined, null current = left), previous_segment_name and
    segment_name (text, null where the id is). Rows: the customers of this run who moved or
    joined, in this run's order, then those who left, in the previous run's order.
    """
    previous_ids = previous[CUSTOMER_ID].astype("string")
    current_ids = current[CUSTOMER_ID].astype("string")
    # a lookup, not a merge: a hash join of 10M text ids costs seconds and gigabytes
    position = positions(current_ids, previous_ids)
    found = position >= 0
    previous_segment = previous[SEGMENT_ID].to_numpy(dtype="int64")
    segment = current[SEGMENT_ID].to_numpy(dtype="int64")
    before = np.zeros(len(current), dtype="int64")  # 0: not in the previous run
    before[found] = previous_segment[position[found]]
    listed = ~found | (before != segment)
    seen = np.zeros(len(previous), dtype=bool)
    seen[position[found]] = True

    present = pd.DataFrame(
        {
            CUSTOMER_ID: current_ids.to_numpy()[listed],
            PREVIOUS_SEGMENT_ID: pd.arrays.IntegerArray(before[listed], ~found[listed]),
            SEGMENT_ID: pd.array(segment[listed], dtype="Int64"),
        }
    )
    left = int((~seen).sum())
    gone = pd.DataFrame(
        {
            CUSTOMER_ID: previous_ids.to_numpy()[~seen],
            PREVIOUS_SEGMENT_ID: pd.array(previous_segment[~seen], dtype="Int64"),
            SEGMENT_ID: pd.arrays.IntegerArray(np.zeros(left, "int64"), np.ones(left, bool)),
        }
    )
    table = pd.concat([present, gone], ignore_index=True)
    table[PREVIOUS_SEGMENT_NAME] = _names(table[PREVIOUS_SEGMENT_ID], previous_names)
    table[SEGMENT_NAME] = _names(table[SEGMENT_ID], names)
    return table.astype({CUSTOMER_ID: pd.StringDtype()})[list(COLUMNS)]


def _names(ids: pd.Series, names: Mapping[int, str]) -> pd.Series:
    """The name of each id as text (null for a null id or an id with no name)."""
    lookup = {int(i): str(name) for i, name in names.items()}
    return ids.map(lookup, na_action="ignore").astype(pd.StringDtype())


def moves_counts(moves: pd.DataFrame) -> tuple[int, int, int]:
    """(moved, joined, left) of a ``moves_table``: customers in both runs who changed segment,
    customers new in this run, customers of the previous run no longer here."""
    had, has = moves[PREVIOUS_SEGMENT_ID].notna(), moves[SEGMENT_ID].notna()
    return int((had & has).sum()), int((~had & has).sum()), int((had & ~has).sum())
