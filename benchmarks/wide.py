"""Wide-table benchmark: `segment run` on n customers x 17 behaviour features, against the same
n Mall-like customers (2 features) run by the same script, alternately.

The wide table is ``wide_behaviour_table`` of ``tests/planted_tables.py`` (credit-card behaviour in
four planted groups: skewed money columns, 0.3 % extreme spenders, missing credit limits and minimum
payments) plus the three frequency columns the public credit-card table also has, so 17 numeric
columns besides the id. It runs as a first run with the command line's defaults would:
``segment run --features numeric --missing median`` (no spec, no transforms). The baseline is
``benchmarks/scale_data.py``'s Mall-like Parquet of the same size (``segment run`` with no options).
Both in fresh processes with one throw-away ``PREFECT_HOME`` (warmed up first).

    .venv/bin/python benchmarks/wide.py                  # 1M, one run of each
    .venv/bin/python benchmarks/wide.py --n 100000 --repeat 3

The table goes to stdout and ``benchmarks/results/wide-latest.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `tasks` when the project is not installed
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the planted test tables

from measure import (  # noqa: E402  (running and measuring a process)
    child_env,
    machine_info,
    run_measured,
    segment_command,
    wait_until_quiet,
)
from scale_data import DEFAULT_SEED, WARMUP_SIZE, write_dataset  # noqa: E402

RESULTS_MD = REPO_ROOT / "benchmarks" / "results" / "wide-latest.md"
SEED = 20261129
EXTRA_FREQUENCIES = {  # the public table's other frequency columns, from the generated ones
    "ONEOFF_PURCHASES_FREQUENCY": "ONEOFF_PURCHASES",
    "PURCHASES_INSTALLMENTS_FREQUENCY": "INSTALLMENTS_PURCHASES",
    "CASH_ADVANCE_FREQUENCY": "CASH_ADVANCE",
}


def write_wide(n: int, folder: Path) -> tuple[Path, Path]:
    """The n-customer wide Parquet file and its planted labels (reused when present)."""
    import numpy as np
    import pandas as pd
    from planted_tables import wide_behaviour_table, write_planted_table

    path, labels = folder / f"wide-{n}-seed{SEED}.parquet", folder / f"wide-{n}-labels.parquet"
    if path.is_file() and labels.is_file():
        return path, labels
    folder.mkdir(parents=True, exist_ok=True)
    planted = wide_behaviour_table(n, seed=SEED)
    frame = planted.frame
    rng = np.random.default_rng(SEED)
    for column, source in EXTRA_FREQUENCIES.items():
        buys = frame[source].fillna(0).to_numpy() > 0
        share = np.where(buys, rng.beta(2, 2, len(frame)), 0.0)
        frame[column] = np.round(frame["PURCHASES_FREQUENCY"].to_numpy() * share, 6)
    write_planted_table(planted, path)
    pd.DataFrame({"customer_id": frame["CUST_ID"], "planted": planted.labels}).to_parquet(labels)
    return path, labels


def run(command: list[str], env: dict, out: Path, load: float) -> dict:
    measured = run_measured(command, env, 3600, out.parent / "logs" / out.name, load)
    if measured.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {measured.stderr_tail}")
    folder = (out / "latest").resolve()
    manifest = json.loads((folder / "manifest.json").read_text())
    result = {
        "process": measured.wall,
        "work": float(manifest["timings"]["total"]),
        "rss": measured.max_rss_mib,
        "k": manifest["k"]["chosen"],
        "features": len(manifest["features"]),
        "rows": manifest["rows"]["rows_kept"],
        "folder": folder,
    }
    return result


def planted_ari(folder: Path, labels: Path) -> float:
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    found = pd.read_parquet(folder / "segments.parquet", columns=["customer_id", "segment_id"])
    truth = pd.read_parquet(labels).set_index("customer_id")["planted"]
    return float(adjusted_rand_score(truth.loc[found["customer_id"]], found["segment_id"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="customers (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each program")
    parser.add_argument("--workdir", type=Path, default=None, help="data and runs (reused)")
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument(
        "--load-wait-seconds", type=float, default=600.0, help="longest wait for a quiet machine"
    )
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="wide-bench-"))
    segment = str(segment_command())
    wide, labels = write_wide(args.n, work / "data")
    mall = write_dataset(args.n, DEFAULT_SEED, work / "data")
    env = child_env(work / "prefect-home")
    warm = work / "runs" / "warm-up"
    small = write_dataset(WARMUP_SIZE, DEFAULT_SEED, work / "data")
    subprocess.run([segment, "run", "--quiet", "--input", str(small.parquet), "--output",
                    str(warm)], env=env, check=True, capture_output=True)  # fmt: skip
    results: dict[str, list[dict]] = {"mall": [], "wide": []}
    for i in range(args.repeat):
        for name, extra in (
            ("mall", [str(mall.parquet)]),
            ("wide", [str(wide), "--features", "numeric", "--missing", "median"]),
        ):
            load = wait_until_quiet(args.max_load, args.load_wait_seconds)
            out = work / "runs" / f"{name}-{i}"
            shutil.rmtree(out, ignore_errors=True)
            command = [segment, "run", "--quiet", "--input", *extra, "--output", str(out)]
            result = run(command, env, out, load)
            if name == "wide":
                result["ari"] = planted_ari(result["folder"], labels)
            results[name].append(result)
            shutil.rmtree(out, ignore_errors=True)
    table = report(args.n, results)
    print(table)
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_MD.write_text(table + "\n")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(n: int, results: dict[str, list[dict]]) -> str:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    lines = [
        f"| table ({n:,} customers) | features | k | process s | flow work s | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label in (("mall", "Mall-like (baseline)"), ("wide", "wide behavioural")):
        first = results[name][0]
        lines.append(
            f"| {label} | {first['features']} | {first['k']} | {median(name, 'process'):.1f} | "
            f"{median(name, 'work'):.1f} | {median(name, 'rss'):,.0f} |"
        )
    ratio = median("wide", "process") / median("mall", "process")
    memory = median("wide", "rss") / median("mall", "rss")
    aris = ", ".join(f"{r['ari']:.3f}" for r in results["wide"])
    lines += [
        "",
        f"Wide / Mall-like: process time {ratio:.2f}x, peak RSS {memory:.2f}x "
        f"(medians of {len(results['wide'])}); wide run's ARI against the planted groups: {aris}.",
        f"Machine: {machine_info()['cpu']}, {machine_info()['cores']} cores.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
