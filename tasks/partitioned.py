"""Customers beyond one machine's memory: partitioned Parquet cleaned, scaled, fitted on Dask.

Only what must differ from the in-memory run lives here: how the work is spread over the
partitions. The statistics themselves are the in-memory run's functions, applied per partition
and combined: each file is read and cleaned by the same reader and ``clean_customers`` (rows
numbered as if the files were one file, in name order, and shuffled by customer id so that
duplicates and conflicting ids are found across files); the scaling's moments come from
``tasks.scale.Moments`` per partition, combined exactly (the shape of each transform, e.g. a
Yeo-Johnson lambda or clip bounds, and the robust scaler's quartiles come from the seeded
sample); the profiles from ``tasks.profile.segment_statistics``, written on operations pandas
and Dask share; names, stable ids and the change summary from ``tasks.describe`` and
``tasks.identity``. The final K-Means is dask-ml's Lloyd iterations over all partitions,
started from the centroids of ``n_init`` k-means++ fits on the sample (dask-ml's own k-means||
start reached a 1.42x worse inertia than scikit-learn on these machines at 1M rows).

The functions here build and compute Dask collections; they run on whatever Dask client is
current (the flow's ``DaskTaskRunner`` cluster).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from schemas.columns import CUSTOMER_ID, DISTANCE, PREVIOUS_SEGMENT_ID, SEGMENT_ID, SOURCE_ROW
from schemas.outputs import segments_schema
from tasks.clean import (
    CleanResult,
    RowAccounting,
    check_accounting,
    check_quarantine_share,
    clean_customers,
)
from tasks.describe import (
    Described,
    FittedRows,
    centroid_frame,
    clustered_on,
    compared_previous,
    effect_sizes,
    names_and_summaries,
    stability_by_id,
)
from tasks.engines import Engine, Scaled
from tasks.errors import InputError
from tasks.fit import Segmentation, canonical_order, fit_segments
from tasks.identity import (
    PreviousRun,
    changes_since,
    match_segments,
)
from tasks.ingest import canonical_frame, expected_types, numbers_as_text, read_file
from tasks.model import build_model, nearest_centroid
from tasks.moves import moves_table
from tasks.profile import (
    named_profiles,
    profiles_from_statistics,
    segment_statistics,
    segment_table,
    shared_values,
)
from tasks.scale import (
    ClusterSpace,
    FeatureTransform,
    Moments,
    ScaledFeatures,
    feature_frame,
    finish_transforms,
    fit_shapes,
    prepare_frame,
    scaled_features,
)
from tasks.store.run_files import write_table
from tasks.store.snapshots import row_count
from tasks.table import ColumnPlan, check_partitioned_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Partitions(RowAccounting):
    """Clean customers spread over the cluster, quarantine per partition, row accounting."""

    customers: dd.DataFrame  # persisted on the cluster
    quarantine: pd.DataFrame  # rows numbered as if the files were one, in name order
    rows_read: int
    duplicates_dropped: int
    sizes: tuple[int, ...]  # clean customers in each partition of ``customers``

    @property
    def rows_kept(self) -> int:
        return sum(self.sizes)  # known without computing the Dask frame's length


def clean_partitions(
    files: tuple[Path, ...], table: ColumnPlan, max_quarantine_share: float
) -> Partitions:
    """Read every file on the workers, bring each id's rows together, clean each part.

    Rows are numbered as if the files were one file (in name order), and rows are shuffled by
    customer id before cleaning, so duplicates and conflicting ids are found across files: the
    result is the same as cleaning the concatenated file.
    """
    check_partitioned_table(table, files[0].parent)
    counts = [row_count(path) for path in files]
    offsets = np.cumsum([0, *counts[:-1]])
    readable = [(path, int(o)) for path, o, n in zip(files, offsets, counts, strict=True) if n]
    if not readable:
        raise InputError("every Parquet file in the folder has no data rows", path=files[0].parent)
    first, _ = readable[0]
    meta = _read_part(first, table, 0).iloc[:0]
    raw = dd.from_delayed(
        [dask.delayed(_read_part)(path, table, offset) for path, offset in readable],
        meta=meta,
        verify_meta=False,
    )
    by_id = raw.shuffle(on=CUSTOMER_ID, npartitions=len(files))
    source = str(files[0].parent)
    # An empty frame cleaned: the types of the results, and the result of an empty partition.
    with _silent(logging.getLogger("tasks.clean")):
        empty = clean_customers(meta, source=source, max_quarantine_share=None, table=table)
    cleaned = dask.persist(
        *[dask.delayed(_clean_part)(part, source, table, empty) for part in by_id.to_delayed()]
    )
    customers = dd.from_delayed(
        [result.customers for result in cleaned], meta=empty.customers, verify_meta=False
    ).persist()
    tallies = dask.compute(
        *[(r.quarantine, r.rows_read, r.duplicates_dropped, r.rows_kept) for r in cleaned]
    )
    quarantine = pd.concat([q for q, *_ in tallies], ignore_index=True)
    quarantine = quarantine.sort_values(SOURCE_ROW, ignore_index=True)  # validated when written
    result = Partitions(
        customers=customers,
        quarantine=quarantine,
        rows_read=sum(read for _, read, _, _ in tallies),
        duplicates_dropped=sum(dropped for _, _, dropped, _ in tallies),
        sizes=tuple(kept for _, _, _, kept in tallies),
    )
    check_accounting(result)
    _check_enough_left(result, files[0].parent, max_quarantine_share)
    log.info(
        "Cleaned %d partition files: %d rows read, %d kept, %d quarantined, "
        "%d exact duplicates dropped",
        len(files),
        result.rows_read,
        result.rows_kept,
        result.rows_quarantined,
        result.duplicates_dropped,
    )
    return result


def _read_part(path: Path, table: ColumnPlan, offset: int) -> pd.DataFrame:
    """One file's used columns under their names, every value as text: files that store a
    column as numbers and files that store it as text (or all-null) then shuffle into one
    frame. Rows numbered from ``offset`` (ids from row numbers follow them)."""
    raw = read_file(path, expected=expected_types(table))
    raw[SOURCE_ROW] = raw[SOURCE_ROW] + offset
    frame = canonical_frame(raw, table).loc[:, [SOURCE_ROW, CUSTOMER_ID, *table.names]]
    text = {name: numbers_as_text(frame[name]) for name in [CUSTOMER_ID, *table.names]}
    return frame.assign(**text)


@contextmanager
def _silent(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _clean_part(
    part: pd.DataFrame, source: str, table: ColumnPlan, empty: CleanResult
) -> CleanResult:
    if part.empty:
        return empty
    part = part.sort_values(SOURCE_ROW, ignore_index=True)  # deterministic "first" rows
    return clean_customers(part, source=source, max_quarantine_share=None, table=table)


def _check_enough_left(result: Partitions, folder: Path, max_share: float) -> None:
    if result.rows_kept < 2:
        raise InputError(
            f"only {result.rows_kept} valid customer row(s) remain of {result.rows_read} read: "
            "at least 2 different customers are needed to segment",
            path=folder,
        )
    check_quarantine_share(result, folder, max_share)


def check_features_vary(customers: dd.DataFrame, table: ColumnPlan) -> None:
    """Refuse a feature with one value for every clean customer (as the in-memory run does)."""
    counts = dask.compute(*[customers[c.name].nunique() for c in table.features])
    for column, count in zip(table.features, counts, strict=True):
        if count <= 1:
            raise InputError(
                f"feature {column.header!r} has one value for all valid customers: it cannot "
                "separate segments; leave it out of the features",
                column=column.header,
            )


def categories_of(customers: dd.DataFrame, table: ColumnPlan) -> dict[str, list[str]]:
    """The values of each categorical feature over all partitions (the spec's allowed values
    first): every partition then has the same one-hot columns."""
    categories = {}
    for column in table.features:
        if column.numeric:
            continue
        allowed = list(column.spec.allowed or ())
        present = customers[column.name].dropna().unique().compute()
        categories[column.name] = allowed + sorted({str(v) for v in present} - set(allowed))
    return categories


def draw_sample(customers: dd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """A seeded random sample of about ``size`` clean customers, in memory."""
    total = len(customers)
    frac = min(1.0, size / max(total, 1))
    sample = customers.sample(frac=frac, random_state=seed) if frac < 1 else customers
    return sample.compute().reset_index(drop=True)


def fit_space(
    customers: dd.DataFrame, table: ColumnPlan, scaler: str, *, size: int, seed: int
) -> tuple[ClusterSpace, ScaledFeatures, pd.DataFrame]:
    """The cluster space, and a seeded sample of about ``size`` customers scaled (for the sweep
    and the plots) and as they are. Transform shapes and PCA come from the sample, centre and
    scale from the moments of every partition, combined."""
    categories = categories_of(customers, table)
    sample = draw_sample(customers, size, seed)
    values = feature_frame(sample, None, table, categories)
    shapes = fit_shapes(values, scaler, table, seed=seed)
    parts = dask.compute(
        *[
            dask.delayed(_moments)(part, table, categories, shapes)
            for part in customers.to_delayed()
        ]
    )
    transforms = finish_transforms(
        shapes, Moments.combine(list(parts)), prepare_frame(values, shapes), scaler, table
    )
    rows = scaled_features(values, transforms, scaler, table, seed=seed)
    return ClusterSpace(table, categories, rows.transforms, rows.projection), rows, sample


def _moments(
    part: pd.DataFrame,
    table: ColumnPlan,
    categories: dict[str, list[str]],
    shapes: tuple[FeatureTransform, ...],
) -> Moments:
    return Moments.of(prepare_frame(feature_frame(part, None, table, categories), shapes))


def fit_partitions(
    parts: Partitions,
    space: ClusterSpace,
    sample: np.ndarray,
    k: int,
    *,
    seed: int,
    n_init: int,
    max_iter: int = 300,
) -> Segmentation:
    """dask-ml K-Means over all partitions from the best of ``n_init`` k-means++ fits on the
    ``sample`` rows; the labels and distances are the sample's (for the plots and the model)."""
    from dask_ml.cluster import KMeans

    start = fit_segments(sample, k, seed=seed, n_init=n_init).centroids
    width = start.shape[1]
    customers = parts.customers
    matrix = customers.map_partitions(
        lambda part: pd.DataFrame(space.matrix(part), index=part.index),
        meta=pd.DataFrame({j: pd.Series(dtype="float64") for j in range(width)}),
    ).to_dask_array(lengths=list(parts.sizes))
    model = KMeans(n_clusters=k, init=start, max_iter=max_iter, tol=1e-4, random_state=seed).fit(
        matrix
    )
    centroids = np.asarray(model.cluster_centers_)[canonical_order(model.cluster_centers_)]
    # Not model.inertia_: dask-ml sometimes reports the sum of plain (not squared) distances.
    inertia = sum(
        dask.compute(
            *[
                dask.delayed(_squared_distances)(part, space, centroids)
                for part in customers.to_delayed()
            ]
        )
    )
    log.info(
        "Fitted dask-ml K-Means with k=%d on %d partitions: inertia %.4g after %d iterations",
        k,
        customers.npartitions,
        inertia,
        model.n_iter_,
    )
    labels, distances = nearest_centroid(sample, centroids)
    return Segmentation(labels, centroids, distances, float(inertia), int(model.n_iter_))


def _squared_distances(part: pd.DataFrame, space: ClusterSpace, centroids: np.ndarray) -> float:
    """Sum of squared distances of a partition's customers to their nearest centroid."""
    if part.empty:
        return 0.0
    _, distances = nearest_centroid(space.matrix(part), centroids)
    return float((distances**2).sum())


def describe_partitions(
    customers: dd.DataFrame,
    space: ClusterSpace,
    fitted: FittedRows,
    sample: pd.DataFrame,
    previous: PreviousRun | None,
    folder: Path,
    *,
    max_shift: float,
    seed: int,
) -> Described:
    """``describe_segments`` over partitions (names and stability from the ``sample``, whose
    scaled rows were fitted): each partition's segments table written into ``folder``."""
    rows, segmentation = fitted.scaled, fitted.segmentation
    table = space.table
    identity = match_segments(segmentation.centroids, rows, previous, max_shift=max_shift)
    previous, restarted = compared_previous(previous, identity, clustered_on(rows.transforms))
    values = space.values(sample)
    centroids = centroid_frame(rows, segmentation.centroids, identity)
    effects = effect_sizes(values, rows, segmentation.centroids, identity)
    labelled = label_customers(customers, space, segmentation.centroids, identity.ids, previous)
    statistics = statistics_of(labelled, table)
    names, summaries = names_and_summaries(statistics, effects, table, identity)
    write_segments(labelled, names, table, folder)
    stability = stability_by_id(rows.matrix, segmentation, identity, seed)
    profiles = named_profiles(statistics, names, summaries, stability)
    moves = transitions_of(labelled)
    changes = restarted
    if previous is not None:
        changes = changes_since(
            previous.run_id,
            previous.model,
            previous_sizes(previous),
            profiles.set_index(SEGMENT_ID)["size"],
            moves,
            identity,
        )
    radii = max_distances(labelled)  # over every customer, not the sample
    model = build_model(
        rows, segmentation, identity, names, list(table.feature_names), table, max_distances=radii
    )
    return Described(identity, names, centroids, None, profiles, moves, changes, model, effects)


def label_customers(
    customers: dd.DataFrame,
    space: ClusterSpace,
    centroids: np.ndarray,
    ids: tuple[int, ...],
    previous: PreviousRun | None,
) -> dd.DataFrame:
    """Every customer with its stable ``segment_id``, distance to the centroid and, when the
    previous run is compared, its ``previous_segment_id`` (joined on the cluster by id)."""
    meta = customers._meta.assign(
        **{SEGMENT_ID: pd.Series(dtype="int64"), DISTANCE: pd.Series(dtype="float64")}
    )
    labelled = customers.map_partitions(
        _label_part, space, centroids, np.asarray(ids, dtype="int64"), meta=meta
    )
    if previous is None:
        return labelled.assign(**{PREVIOUS_SEGMENT_ID: np.nan}).persist()
    before = dd.read_parquet(
        [str(path) for path in previous.files], columns=[CUSTOMER_ID, SEGMENT_ID]
    ).rename(columns={SEGMENT_ID: PREVIOUS_SEGMENT_ID})
    before[CUSTOMER_ID] = before[CUSTOMER_ID].astype(customers[CUSTOMER_ID].dtype)
    return labelled.merge(before, on=CUSTOMER_ID, how="left").persist()


def _label_part(
    part: pd.DataFrame, space: ClusterSpace, centroids: np.ndarray, ids: np.ndarray
) -> pd.DataFrame:
    if part.empty:
        return part.assign(**{SEGMENT_ID: np.array([], "int64"), DISTANCE: np.array([])})
    labels, distances = nearest_centroid(space.matrix(part), centroids)
    return part.assign(**{SEGMENT_ID: ids[labels - 1], DISTANCE: distances})


def max_distances(labelled: dd.DataFrame) -> dict[int, float]:
    """Per stable segment id: the largest distance of its customers to the centroid (the
    model's training radius, for flagging outliers among new customers)."""
    largest = labelled.groupby(SEGMENT_ID)[DISTANCE].max().compute()
    return {int(k): float(v) for k, v in largest.items()}


def previous_sizes(previous: PreviousRun) -> pd.Series:
    """Customers per segment of the previous run (read from its segment files on Dask)."""
    files = [str(path) for path in previous.files]
    return dd.read_parquet(files, columns=[SEGMENT_ID])[SEGMENT_ID].value_counts().compute()


def transitions_of(labelled: dd.DataFrame) -> pd.DataFrame:
    """Customers in both runs by previous and current segment (``tasks.identity.transitions``'
    table, counted on the cluster)."""
    both = labelled[~labelled[PREVIOUS_SEGMENT_ID].isna()]
    counts = both.groupby([PREVIOUS_SEGMENT_ID, SEGMENT_ID]).size().compute()
    table = counts.rename("customers").reset_index()
    return table.astype("int64").sort_values([PREVIOUS_SEGMENT_ID, SEGMENT_ID], ignore_index=True)


def statistics_of(labelled: dd.DataFrame, table: ColumnPlan) -> pd.DataFrame:
    """The profiles' statistics over all partitions, by the in-memory run's statistics."""
    shares = shared_values(labelled, table)
    size, means, medians, value_shares = dask.compute(*segment_statistics(labelled, table, shares))
    return profiles_from_statistics(size, means, medians, value_shares, table, shares)


def write_segments(
    labelled: dd.DataFrame, names: dict[int, str], table: ColumnPlan, folder: Path
) -> list[Path]:
    """Each partition's segments table, validated and written by its worker as
    ``segments-NNNNN.parquet`` (the folder must be reachable from every worker: on a
    multi-machine cluster, shared)."""
    writes = [
        dask.delayed(_write_segments_part)(part, folder / f"segments-{i:05d}.parquet", names, table)
        for i, part in enumerate(labelled.to_delayed())
    ]
    return list(dask.compute(*writes))


def _write_segments_part(
    part: pd.DataFrame, path: Path, names: dict[int, str], table: ColumnPlan
) -> Path:
    customers = part.drop(columns=[SEGMENT_ID, DISTANCE, PREVIOUS_SEGMENT_ID])
    previous = pd.Series(pd.array(part[PREVIOUS_SEGMENT_ID], dtype="Int64"), index=part.index)
    segments = segment_table(
        customers.reset_index(drop=True),
        part[SEGMENT_ID].to_numpy(dtype="int64"),
        part[DISTANCE].to_numpy(dtype="float64"),
        names,
        previous.reset_index(drop=True),
    )
    return write_table(segments, path, segments_schema(table))


class Partitioned(Engine):
    """Every step over the partitions of a folder of Parquet files, on the Dask cluster that
    ``computing()`` makes current (the flow's task runner's), with the functions above."""

    previous_assignments = False  # the previous run's segment files are read on the cluster

    def __init__(self, files: tuple[Path, ...], computing: Callable[[], AbstractContextManager]):
        self.files = files
        self.computing = computing

    def read(self, source: Path, columns: ColumnPlan, sep: str | None, staging: Path) -> Any:
        """The partition files: each is read on the workers by ``clean``."""
        return self.files

    def clean(
        self, data: Any, columns: ColumnPlan, source: Path, max_quarantine_share: float
    ) -> Partitions:
        with self.computing():
            parts = clean_partitions(data, columns, max_quarantine_share)
            check_features_vary(parts.customers, columns)
            return parts

    def scale(
        self, cleaned: Any, columns: ColumnPlan, scaler: str, *, sample_size: int, seed: int
    ) -> Scaled:
        """Transforms from statistics over all partitions; the seeded sample, scaled, for the
        sweep and the plots."""
        with self.computing():
            space, rows, sample = fit_space(
                cleaned.customers, columns, scaler, size=sample_size, seed=seed
            )
        return Scaled(rows, sample, space)

    def fit(
        self, cleaned: Any, scaled: Scaled, rows: np.ndarray, k: int, *, seed: int, n_init: int
    ) -> Segmentation:
        with self.computing():
            return fit_partitions(cleaned, scaled.space, rows, k, seed=seed, n_init=n_init)

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
        with self.computing():
            return describe_partitions(
                cleaned.customers,
                scaled.space,
                fitted,
                scaled.customers,
                previous,
                folder,
                max_shift=max_shift,
                seed=seed,
            )

    def moves(self, described: Described, previous: PreviousRun, folder: Path) -> pd.DataFrame:
        """The customers who moved, joined or left: both runs' segment files joined by id on
        the cluster; only the customers listed come into memory."""
        before = PREVIOUS_SEGMENT_ID + "_before"
        with self.computing():
            current = _segment_ids(sorted(folder.glob("segments-*.parquet")))
            both = _segment_ids(list(previous.files)).rename(columns={SEGMENT_ID: before})
            both = both.merge(current, on=CUSTOMER_ID, how="outer")
            listed = both[~(both[before] == both[SEGMENT_ID]).fillna(False)].compute()
        had, has = listed[before].notna(), listed[SEGMENT_ID].notna()
        return moves_table(
            listed.loc[had, [CUSTOMER_ID, before]].rename(columns={before: SEGMENT_ID}),
            listed.loc[has, [CUSTOMER_ID, SEGMENT_ID]],
            previous.names,
            described.names,
        )

    def assigned(self, fitted: FittedRows, scaled: Scaled, described: Described) -> pd.DataFrame:
        """The sample's segments (the medians, spreads and typical customers of the report)."""
        segmentation = fitted.segmentation
        return pd.DataFrame(
            {
                CUSTOMER_ID: scaled.customers[CUSTOMER_ID].to_numpy(),
                SEGMENT_ID: described.identity.relabel(segmentation.labels),
                DISTANCE: segmentation.distances,
            }
        )


def _segment_ids(files: list[Path]) -> dd.DataFrame:
    return dd.read_parquet([str(f) for f in files], columns=[CUSTOMER_ID, SEGMENT_ID])
