"""The scale benchmark's input files: n seeded customers of ``tasks.sample_data``'s planted
segments (``planted_population``: no dirt, any n) as Parquet, CSV and a labels Parquet."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from measure import log

from tasks.sample_data import MALL_HEADER, planted_population

DEFAULT_SEED = 20261126
ID_WIDTH = 8  # customer ids "00000001" .. "99999999"
GENERATOR_VERSION = 2  # bump when the generated data change, so old files are not reused
WARMUP_SIZE = 200


@dataclass(frozen=True)
class Dataset:
    n: int
    parquet: Path
    csv: Path
    labels: Path | None

    @property
    def name(self) -> str:
        return self.csv.name if self.labels is None else f"synthetic {self.n:,}"


def _customer_ids(n: int):
    import pyarrow as arrow
    import pyarrow.compute as pc

    numbers = arrow.array(np.arange(1, n + 1, dtype=np.int64))
    return pc.utf8_lpad(pc.cast(numbers, arrow.string()), width=ID_WIDTH, padding="0")


def write_dataset(n: int, seed: int, folder: Path) -> Dataset:
    """The n-customer Parquet, CSV and labels files in ``folder``; reused if already made."""
    import pyarrow as arrow
    import pyarrow.csv as arrow_csv
    import pyarrow.parquet as pq

    stem = f"customers-{n}-seed{seed}"
    dataset = Dataset(
        n,
        folder / f"{stem}.parquet",
        folder / f"{stem}.csv",
        folder / f"{stem}-labels.parquet",
    )
    meta_path = folder / f"{stem}.json"
    meta = {"n": n, "seed": seed, "generator_version": GENERATOR_VERSION}
    paths = (dataset.parquet, dataset.csv, dataset.labels)
    reusable = meta_path.is_file() and all(p.is_file() for p in paths)
    if reusable and json.loads(meta_path.read_text()) == meta:
        log(f"reusing {stem}.* in {folder}")
        return dataset
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    segment, values = planted_population(n, seed)
    ids = _customer_ids(n)
    table = arrow.table(
        [ids, *(arrow.array(values[name]) for name in ("gender", "age", "income", "score"))],
        names=list(MALL_HEADER),
    )
    labels = arrow.table(
        {"customer_id": ids, "planted_segment": arrow.array(segment.astype(np.int8) + 1)}
    )
    # unquoted, like the Mall file (no value holds a comma or a quote)
    options = arrow_csv.WriteOptions(quoting_style="none", quoting_header="none")
    for path, write in [
        (dataset.parquet, lambda p: pq.write_table(table, p)),
        (dataset.csv, lambda p: arrow_csv.write_csv(table, p, options)),
        (dataset.labels, lambda p: pq.write_table(labels, p)),
    ]:
        partial = path.with_name(path.name + ".partial")
        write(partial)
        partial.replace(path)
    meta_path.write_text(json.dumps(meta))
    log(f"generated {n:,} customers in {time.perf_counter() - start:.1f} s -> {folder}/{stem}.*")
    return dataset
