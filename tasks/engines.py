"""Where a run's steps compute: every step is the same for a customer table in this process
and for a folder of Parquet partitions on Dask; only the engine that does the work differs.

``Engine`` works on pandas frames in this process (tasks.clean, tasks.scale, tasks.fit,
tasks.describe); ``tasks.partitioned.Partitioned`` spreads the same functions over the
partitions on a Dask cluster. The flow picks one from the run's plan and hands it to each
step; no step looks at the mode again. ``scale`` returns ``Scaled``: the customers held in
memory (all of them, or a partitioned run's seeded sample) with their rows as K-Means sees
them, which the sweep, the plots and the report read alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from schemas.outputs import segments_schema
from tasks.clean import RowAccounting, clean_customers
from tasks.describe import Described, FittedRows, describe_segments
from tasks.fit import Segmentation, fit_final
from tasks.identity import PreviousRun
from tasks.ingest import canonical_frame, expected_types, read_file
from tasks.moves import moves_table
from tasks.scale import ClusterSpace, ScaledFeatures, check_features_vary, scale_features
from tasks.store.run_files import write_table
from tasks.table import ColumnPlan


@dataclass(frozen=True)
class Scaled:
    """The scaled features of the customers held in memory: ``features`` are the rows of
    ``customers`` (every clean customer, or a partitioned run's sample) as K-Means sees them;
    ``space`` turns any customers into rows of the same space."""

    features: ScaledFeatures
    customers: pd.DataFrame
    space: ClusterSpace

    def values(self) -> pd.DataFrame:
        """``customers``' features in original units (one-hot columns as scaled)."""
        return self.space.values(self.customers)


class Engine:
    """The engine of a run on a customer table in memory: every step on pandas frames in this
    process. ``tasks.partitioned.Partitioned`` does each step over partitions on Dask."""

    previous_assignments = True

    def read(self, source: Path, columns: ColumnPlan, sep: str | None, staging: Path) -> Any:
        """The customer table as read, and a raw Parquet copy (its own headers) in the run
        folder."""
        raw = read_file(source, sep, expected=expected_types(columns))
        write_table(raw, staging / "raw.parquet")
        return raw

    def clean(
        self, data: Any, columns: ColumnPlan, source: Path, max_quarantine_share: float
    ) -> RowAccounting:
        """Drop duplicates, quarantine invalid rows with reasons, keep typed customers."""
        return clean_customers(
            canonical_frame(data, columns),
            source=str(source),
            max_quarantine_share=max_quarantine_share,
            table=columns,
        )

    def scale(
        self, cleaned: Any, columns: ColumnPlan, scaler: str, *, sample_size: int, seed: int
    ) -> Scaled:
        """Transforms and scaling of the clustering features (``sample_size``: partitions)."""
        check_features_vary(cleaned.customers, columns)
        features = scale_features(cleaned.customers, None, scaler, columns, seed=seed)
        return Scaled(features, cleaned.customers, ClusterSpace.of(features, columns))

    def fit(
        self, cleaned: Any, scaled: Scaled, rows: np.ndarray, k: int, *, seed: int, n_init: int
    ) -> Segmentation:
        """The final K-Means over every customer, its restarts on the sweep's ``rows``."""
        return fit_final(scaled.features.matrix, rows, k, seed=seed, n_init=n_init)

    def describe(
        self,
        cleaned: Any,
        fitted: FittedRows,
        scaled: Scaled,
        previous: PreviousRun | None,
        folder: Path,
        *,
        max_shift: float,
        seed: int,
    ) -> Described:
        """Stable ids, names, profiles, transitions, the model; every customer's segment
        written into ``folder``."""
        table = scaled.space.table
        described = describe_segments(
            cleaned.customers,
            fitted,
            previous,
            max_shift=max_shift,
            table=table,
            fill_values=cleaned.fill_values,
            seed=seed,
        )
        write_table(described.segments, folder / "segments.parquet", segments_schema(table))
        return described

    def moves(self, described: Described, previous: PreviousRun, folder: Path) -> pd.DataFrame:
        """The customers who moved, joined or left since ``previous`` (``tasks.moves``);
        ``folder`` holds this run's segments table(s)."""
        return moves_table(
            previous.assignments, _segments(described), previous.names, described.names
        )

    def assigned(self, fitted: FittedRows, scaled: Scaled, described: Described) -> pd.DataFrame:
        """``scaled.customers``' ``customer_id``, ``segment_id`` and distance to centroid."""
        return _segments(described)


def _segments(described: Described) -> pd.DataFrame:
    if described.segments is None:  # never: the in-memory describe keeps them
        raise RuntimeError("an in-memory run has its segments table")
    return described.segments
