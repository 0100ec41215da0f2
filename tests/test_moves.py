"""tasks.moves: the customers who moved, joined or left since the previous run (unchanged ones
are not listed), its exact columns and dtypes, its contract, and the counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from schemas.outputs import Moves
from tasks.moves import COLUMNS, moves_counts, moves_table

PREVIOUS_NAMES = {1: "Savers", 2: "Spenders", 3: "Retired name"}
NAMES = {1: "Careful savers", 2: "Spenders", 4: "Newcomers"}


def assignments(pairs: list[tuple[str, int]]) -> pd.DataFrame:
    """customer_id, segment_id as a run's segments table has them (text ids, int64 segments)."""
    ids, segments = zip(*pairs, strict=True) if pairs else ((), ())
    return pd.DataFrame(
        {"customer_id": pd.Series(ids, dtype="str"), "segment_id": np.array(segments, "int64")}
    )


PREVIOUS = assignments([("a", 1), ("b", 2), ("c", 3), ("d", 1), ("e", 2)])
CURRENT = assignments([("f", 4), ("b", 2), ("a", 2), ("c", 1), ("e", 2), ("g", 1)])


def test_moved_joined_and_left_customers_are_listed_and_unchanged_ones_are_not():
    moves = moves_table(PREVIOUS, CURRENT, PREVIOUS_NAMES, NAMES)
    # this run's order (f, a, c, g: b and e kept their segment), then those gone (d)
    assert moves.astype(object).where(moves.notna(), None).values.tolist() == [
        ["f", None, None, 4, "Newcomers"],  # joined
        ["a", 1, "Savers", 2, "Spenders"],  # moved
        ["c", 3, "Retired name", 1, "Careful savers"],  # moved, from a retired segment
        ["g", None, None, 1, "Careful savers"],  # joined
        ["d", 1, "Savers", None, None],  # left
    ]
    assert moves_counts(moves) == (2, 2, 1)
    Moves.validate(moves)


def test_the_table_has_the_exact_columns_and_dtypes():
    moves = moves_table(PREVIOUS, CURRENT, PREVIOUS_NAMES, NAMES)
    assert list(moves.columns) == [
        "customer_id",
        "previous_segment_id",
        "previous_segment_name",
        "segment_id",
        "segment_name",
    ]
    assert tuple(moves.columns) == COLUMNS
    assert moves.dtypes.astype(str).to_dict() == {
        "customer_id": "string",
        "previous_segment_id": "Int64",
        "previous_segment_name": "string",
        "segment_id": "Int64",
        "segment_name": "string",
    }


def test_a_segment_keeps_its_name_of_each_run():
    # the same id on both sides is the same segment; a rename shows as its two names
    moves = moves_table(assignments([("x", 1)]), assignments([("x", 2)]), {1: "Old"}, {2: "New"})
    assert moves[["previous_segment_name", "segment_name"]].values.tolist() == [["Old", "New"]]


def test_an_id_with_no_name_has_a_null_name():
    moves = moves_table(assignments([("x", 1)]), assignments([("x", 5)]), {}, {5: "Five"})
    assert moves["previous_segment_name"].isna().tolist() == [True]
    assert moves["segment_name"].tolist() == ["Five"]


def test_identical_runs_have_no_moves():
    moves = moves_table(PREVIOUS, PREVIOUS.copy(), PREVIOUS_NAMES, PREVIOUS_NAMES)
    assert moves.empty and tuple(moves.columns) == COLUMNS
    assert moves_counts(moves) == (0, 0, 0)
    Moves.validate(moves)


def test_everyone_new_or_everyone_gone():
    empty = assignments([])
    joined = moves_table(empty, CURRENT, {}, NAMES)
    assert moves_counts(joined) == (0, len(CURRENT), 0)
    assert joined["customer_id"].tolist() == CURRENT["customer_id"].tolist()
    left = moves_table(PREVIOUS, empty, PREVIOUS_NAMES, {})
    assert moves_counts(left) == (0, 0, len(PREVIOUS))
    assert left["previous_segment_id"].tolist() == PREVIOUS["segment_id"].tolist()
    for table in (joined, left):
        Moves.validate(table)


def test_ids_are_matched_as_text():
    # ids read as numbers on one side still match the same ids as text on the other
    previous = pd.DataFrame({"customer_id": [1, 2, 3], "segment_id": [1, 1, 2]})
    current = assignments([("1", 1), ("2", 2), ("3", 2)])
    moves = moves_table(previous, current, {}, {})
    assert moves["customer_id"].tolist() == ["2"]
    assert moves_counts(moves) == (1, 0, 0)


def test_counts_agree_with_the_transitions_of_a_larger_run():
    rng = np.random.default_rng(7)
    ids = np.array([f"c{i}" for i in range(2_000)])
    previous = pd.DataFrame({"customer_id": ids[:1_500], "segment_id": rng.integers(1, 5, 1_500)})
    current = pd.DataFrame({"customer_id": ids[300:], "segment_id": rng.integers(1, 5, 1_700)})
    moves = moves_table(previous, current, {}, {})
    both = previous.merge(current, on="customer_id", suffixes=("_before", ""))
    moved = int((both["segment_id_before"] != both["segment_id"]).sum())
    assert moves_counts(moves) == (moved, 500, 300)
    assert len(moves) == moved + 500 + 300
    Moves.validate(moves)


def test_the_contract_refuses_an_unchanged_customer_or_a_wrong_dtype():
    moves = moves_table(PREVIOUS, CURRENT, PREVIOUS_NAMES, NAMES)
    unchanged = moves.copy()
    unchanged.loc[1, "segment_id"] = 1  # a: 1 -> 1 is not a move
    with pytest.raises(pa.errors.SchemaError, match="unchanged customer"):
        Moves.validate(unchanged)
    with pytest.raises(pa.errors.SchemaError):
        Moves.validate(moves.astype({"segment_id": "float64"}))
    with pytest.raises(pa.errors.SchemaError):
        Moves.validate(moves.drop(columns="segment_name"))
    with pytest.raises(pa.errors.SchemaError):  # a customer twice
        Moves.validate(pd.concat([moves, moves.head(1)], ignore_index=True))
