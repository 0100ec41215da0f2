"""--publish-db at scale: two nights of N customers published into the membership history.

Writes two published run folders as the flow leaves them (segments.parquet with the Mall
columns, a manifest with checksums): night 1 with N customers, night 2 with 2 % of them moved to
another segment, 1.5 % gone and 2.5 % new. Then times ``publish_run`` for night 1 into an empty
database, night 2 (the history's changes) and night 2 again (already published: nothing
written). The issue's target: 1M customers within 30 s on SQLite.

    .venv/bin/python benchmarks/publish_db.py                      # 1M customers, SQLite file
    .venv/bin/python benchmarks/publish_db.py --customers 100000 --url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.store.membership_db import publish_run
from tasks.store.run_files import file_checksums

NAMES = [
    "Low income, high spending",
    "Low income, low spending",
    "Average income, average spending",
    "High income, high spending",
    "High income, low spending",
]


def run_folder(root: Path, run_id: str, finished: datetime, ids: np.ndarray, segments) -> Path:
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    n = len(ids)
    rng = np.random.default_rng(len(ids))
    table = pd.DataFrame(
        {
            "customer_id": pd.array([f"C{i:08d}" for i in ids], dtype="string"),
            "annual_income": rng.normal(60, 20, n),
            "spending_score": rng.integers(1, 101, n),
            "segment_id": segments.astype("int64"),
            "previous_segment_id": pd.array([pd.NA] * n, dtype="Int64"),
            "segment_name": pd.Categorical.from_codes(segments - 1, categories=NAMES),
            "distance_to_centroid": rng.random(n),
        }
    )
    table.to_parquet(folder / "segments.parquet", row_group_size=1_000_000)
    manifest = {
        "run_id": run_id,
        "finished_at": finished.isoformat(timespec="seconds"),
        "k": {"chosen": len(NAMES)},
        "files": file_checksums(folder),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def nights(root: Path, customers: int, seed: int = 7) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    ids = np.arange(customers)
    segments = rng.integers(1, len(NAMES) + 1, customers)
    first = run_folder(root, "night-1", datetime(2026, 12, 1, 2, tzinfo=UTC), ids, segments)
    moved = rng.random(customers) < 0.02
    segments2 = segments.copy()
    segments2[moved] = segments[moved] % len(NAMES) + 1
    kept = rng.random(customers) >= 0.015
    new = np.arange(customers, customers + int(customers * 0.025))
    ids2 = np.concatenate([ids[kept], new])
    segments2 = np.concatenate([segments2[kept], rng.integers(1, len(NAMES) + 1, len(new))])
    finished = datetime(2026, 12, 1, 2, tzinfo=UTC) + timedelta(days=1)
    return first, run_folder(root, "night-2", finished, ids2, segments2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--url", help="database URL (default: a new SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="publish-db-bench-") as tmp:
        root = Path(tmp)
        url = args.url or f"sqlite:///{root / 'segments.db'}"
        first, second = nights(root, args.customers)
        for label, folder in [("night 1 (empty database)", first), ("night 2", second),
                              ("night 2 again", second)]:  # fmt: skip
            start, cpu = time.perf_counter(), time.process_time()
            published = publish_run(url, folder)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            print(f"{label}: {seconds:.1f} s ({cpu:.1f} s CPU here); {published.summary()}")


if __name__ == "__main__":
    main()
