"""`segment assign` benchmark: n new customers scored into a model's segments, whole process.

The customers are the planted segments of ``tasks.sample_data`` at scale, as
``benchmarks/scale.py`` writes them (its ``write_dataset``: the generator's recipe, vectorised,
since ``generate_customers`` numbers ids with 5 digits): a typed Parquet file, and a CSV with
1 % of its rows damaged (text in age, a score of 500, an unknown gender, a missing income), so
the quarantine path is timed too. The model is fitted directly with the run's own step
functions (resolve the columns, read, clean, scale, K-Means with k=5, describe), as ``segment
run --k 5`` would, on the CSV, and its segments are kept to check that assigning the file
reproduces them. Then each ``segment assign`` variant runs ``--repeat`` times as a fresh
process (import, read, check, score, write), after waiting for a quiet machine; the median
wall time is reported.

    .venv/bin/python benchmarks/assign.py                 # 1M customers, 3 runs per variant
    .venv/bin/python benchmarks/assign.py --n 100000 --repeat 5

The table goes to stdout and ``benchmarks/results/assign-latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `tasks` when the project is not installed
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import scale  # noqa: E402  (run_measured, wait_until_quiet)

RESULTS_MD = REPO_ROOT / "benchmarks" / "results" / "assign-latest.md"
SEED = 20261129
K = 5
BUDGET_SECONDS = 10.0  # the target for 1M customers


def prepare(n: int, folder: Path) -> tuple[Path, Path, Path, dict]:
    """The CSV and Parquet customer files, the model, and the fit's figures (reused when the
    files are there)."""
    from tasks.clean import clean_customers
    from tasks.describe import FittedRows, describe_segments
    from tasks.fit import fit_segments
    from tasks.ingest import canonical_frame, expected_types, read_file, table_for_file
    from tasks.model import model_to_json
    from tasks.scale import scale_features

    folder.mkdir(parents=True, exist_ok=True)
    dataset = scale.write_dataset(n, SEED, folder)
    csv_path, parquet_path = folder / f"dirty-{n}.csv", dataset.parquet
    model_path, segments_path = folder / f"model-{n}.json", folder / f"segments-{n}.parquet"
    if not csv_path.is_file():
        write_dirty_csv(dataset.parquet, csv_path)
    started = time.perf_counter()
    if not model_path.is_file():
        table = table_for_file(csv_path)
        raw = read_file(csv_path, expected=expected_types(table))
        cleaned = clean_customers(
            canonical_frame(raw, table), table=table, max_quarantine_share=0.2
        )
        scaled = scale_features(cleaned.customers, None, "standard", table, seed=42)
        segmentation = fit_segments(scaled.matrix, K, seed=42, n_init=1)
        described = describe_segments(
            cleaned.customers,
            FittedRows(scaled, segmentation),
            None,
            table=table,
            fill_values=cleaned.fill_values,
            max_shift=0.5,
            seed=42,
        )
        model_path.write_text(model_to_json(described.model), encoding="utf-8")
        described.segments.loc[:, ["customer_id", "segment_id"]].to_parquet(segments_path)
    return csv_path, parquet_path, model_path, {"fit_seconds": time.perf_counter() - started}


DAMAGE = (("Age", "abc"), ("Spending Score (1-100)", "500"), ("Gender", "Robot"))


def write_dirty_csv(parquet: Path, path: Path, share: float = 0.01) -> None:
    """The Parquet customers as CSV with ``share`` of the rows damaged: text in age, a score
    out of range, an unknown gender, a missing income, in turn."""
    import numpy as np
    import pyarrow as arrow
    import pyarrow.csv as arrow_csv
    import pyarrow.parquet as pq

    frame = pq.read_table(parquet).to_pandas().astype("str")
    rows = np.random.default_rng(SEED).choice(len(frame), int(len(frame) * share), replace=False)
    for i, (column, value) in enumerate(DAMAGE):
        frame.loc[rows[i :: len(DAMAGE) + 1], column] = value
    frame.loc[rows[len(DAMAGE) :: len(DAMAGE) + 1], "Annual Income (k$)"] = None
    arrow_csv.write_csv(arrow.Table.from_pandas(frame, preserve_index=False), path)


def reproduced(output: Path, segments: Path) -> tuple[int, int]:
    """(customers whose assigned segment equals the fit's, customers of the fit)."""
    import pandas as pd

    fit = pd.read_parquet(segments)
    assigned = pd.read_parquet(output, columns=["customer_id", "segment_id"])
    merged = fit.merge(assigned, on="customer_id", suffixes=("_fit", ""))
    return int((merged["segment_id_fit"] == merged["segment_id"]).sum()), len(fit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="customers")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "assign-bench"
    )
    parser.add_argument("--max-load", type=float, default=1.5, help="wait for this load first")
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait at most")
    args = parser.parse_args(argv)

    csv_path, parquet_path, model, fit = prepare(args.n, args.workdir)
    segment = str(REPO_ROOT / ".venv" / "bin" / "segment")
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    variants = {
        "CSV in, Parquet out": (csv_path, args.workdir / "out.parquet"),
        "CSV in, CSV out": (csv_path, args.workdir / "out.csv"),
        "Parquet in, Parquet out": (parquet_path, args.workdir / "out.parquet"),
    }
    rows = []
    for label, (source, output) in variants.items():
        walls, rss, loads, others = [], [], [], []
        for i in range(args.repeat):
            load = scale.wait_until_quiet(args.max_load, args.max_wait)
            command = [segment, "assign", "--model", str(model), "--input", str(source)]
            command += ["--output", str(output)]
            stem = args.workdir / "logs" / f"{label.replace(' ', '_').replace(',', '')}-{i}"
            measured = scale.run_measured(command, env, 600, stem, load)
            if measured.returncode != 0:
                raise SystemExit(f"{' '.join(command)} failed: {measured.stderr_tail}")
            walls.append(measured.wall)
            rss.append(measured.max_rss_mib)
            loads.append(load)
            others.append(measured.others_cpu_s / measured.wall)
        if not rows:  # the CSV the model was fitted on: every customer keeps its segment
            same, total = reproduced(output, args.workdir / f"segments-{args.n}.parquet")
        summary = measured.stdout.strip().splitlines()
        rows.append(
            {
                "variant": label,
                "median_s": statistics.median(walls),
                "runs_s": walls,
                "peak_rss_mib": statistics.median(rss),
                "load_before": max(loads),
                "others_cpu_share": max(others),
                "rows": next(line for line in summary if line.startswith("Rows:")),
            }
        )
    report = markdown(args, rows, fit, same, total)
    print(report)
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_MD.write_text(report, encoding="utf-8")
    (args.workdir / "assign-latest.json").write_text(json.dumps(rows, indent=2))
    return 0 if all(r["median_s"] <= BUDGET_SECONDS for r in rows[:1]) else 1


def markdown(args, rows: list[dict], fit: dict, same: int, total: int) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# segment assign, {args.n:,} customers ({when}, {os.cpu_count()} cores)",
        "",
        f"Whole process (`segment assign`, fresh process each run), median of {args.repeat}.",
        "",
        "| variant | median s | runs s | peak RSS MiB | load before (max) | other CPU (max) |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        runs = ", ".join(f"{w:.2f}" for w in r["runs_s"])
        lines.append(
            f"| {r['variant']} | {r['median_s']:.2f} | {runs} | {r['peak_rss_mib']:.0f} | "
            f"{r['load_before']:.2f} | {r['others_cpu_share']:.0%} |"
        )
    lines += [
        "",
        f"{rows[0]['rows']}",
        f"Segment ids equal to the fit's for {same:,} of {total:,} customers.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
