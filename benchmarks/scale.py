"""Scale benchmark: the plain tutorial script and ``segment run`` on 200 .. 10M synthetic customers.

For each size n it generates (or reuses) n seeded customers in the five planted segments of
``tasks.sample_data`` (no dirt), written as Parquet (for ``segment run``), as CSV (for
the plain script, which reads CSV) and a labels Parquet with the planted segment of every
customer. Then, in fresh processes and alternately ``--repeat`` times:

- ``plain_tutorial.py --input <csv>``, unless the previous size's runs extrapolate beyond
  ``--plain-limit-seconds`` (start-up + work scaled linearly in n);
- ``segment run --quiet --input <parquet>`` with one throw-away ``PREFECT_HOME`` for the whole
  benchmark (a warm-up run on 200 customers creates its database first, uncounted).

Per process: wall time, peak RSS (``ru_maxrss`` via ``/usr/bin/time``: the largest single process
of the tree), the peak of the summed RSS of the whole tree (for ``segment run``: the flow process
and Prefect's temporary server; sampled every 0.2 s with psutil), and the CPU time other
processes used meanwhile (the machine's busy time minus ours), so that a disturbed run shows.
From the run folder: ``timings`` (flow work), the chosen k, the inertia on all rows and the
adjusted Rand index of ``segments.parquet`` against the planted labels. From the plain script: its
JSON line. Both scale income and score with the population mean and standard deviation, so their
inertias are comparable.

With 10M in ``--sizes`` (or ``--lloyd-only``) it also times one Lloyd iteration of scikit-learn's
K-Means on a 10M x 2 float64 matrix and measures the memory bandwidth in the same process, to say
how close the hot loop runs to the hardware limit.

    .venv/bin/python benchmarks/scale.py                               # 200, 100k, 1M
    .venv/bin/python benchmarks/scale.py --sizes 200,100000,1000000 --mall
    .venv/bin/python benchmarks/scale.py --sizes 10000000 --workdir /tmp/scale-bench
    .venv/bin/python benchmarks/scale.py --lloyd-only

The tables go to stdout and ``benchmarks/results/scale-latest.md`` (raw figures in
``scale-latest.json``). The parts: ``scale_data.py`` (input files), ``measure.py`` (running and
measuring a process), ``lloyd.py`` (the Lloyd section), ``scale_tables.py`` (the tables).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `tasks` when the project is not installed
    sys.path.insert(0, str(REPO_ROOT))

from lloyd import LLOYD_SIZE, lloyd_markdown, lloyd_section  # noqa: E402
from measure import (  # noqa: E402
    child_env,
    log,
    machine_info,
    run_measured,
    segment_command,
    wait_until_quiet,
)
from scale_data import (  # noqa: E402
    DEFAULT_SEED,
    ID_WIDTH,
    WARMUP_SIZE,
    Dataset,
    write_dataset,
)
from scale_tables import (  # noqa: E402
    RunResult,
    contention_line,
    describe,
    is_failure,
    results_table,
    steps_table,
)

PLAIN_SCRIPT = REPO_ROOT / "benchmarks" / "plain_tutorial.py"
RESULTS_MD = REPO_ROOT / "benchmarks" / "results" / "scale-latest.md"
RESULTS_JSON = REPO_ROOT / "benchmarks" / "results" / "scale-latest.json"
MALL_CSV = REPO_ROOT.parent / "shared" / "data" / "mall_customers.csv"
DEFAULT_SIZES = "200,100000,1000000"
SEGMENT_TIMEOUT_SECONDS = 3600


# --------------------------------------------------------------------------------------------
# Arguments


def _size(text: str) -> int:
    text = text.strip().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    number = text[:-1] if factor > 1 else text
    value = int(float(number) * factor)
    if value < 10:
        raise argparse.ArgumentTypeError(f"size {text!r} should be at least 10")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help="comma-separated customer counts (1M and 10k spellings work); 10M takes minutes "
        f"(default {DEFAULT_SIZES})",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each program per size")
    parser.add_argument(
        "--plain-limit-seconds",
        type=float,
        default=900.0,
        help="skip the plain script where its extrapolated process time exceeds this; "
        "also its time-out",
    )
    parser.add_argument(
        "--skip-plain", action="store_true", help="run only `segment run` (e.g. extra 10M runs)"
    )
    parser.add_argument(
        "--prefect-api-url",
        default=None,
        metavar="URL",
        help="run `segment run` against this running Prefect server (e.g. started by `make "
        "server`) instead of a temporary one per process; the tree RSS then excludes the server",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for generated data (reused when present), run outputs and logs "
        "(default: a temporary folder, removed at the end)",
    )
    parser.add_argument(
        "--mall", action="store_true", help=f"also run both programs on {MALL_CSV} if present"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument(
        "--lloyd-only",
        action="store_true",
        help="only the 10M Lloyd iteration and memory-bandwidth section",
    )
    parser.add_argument(
        "--no-lloyd", action="store_true", help="skip the Lloyd section even with 10M in --sizes"
    )
    parser.add_argument(
        "--lloyd-repeat", type=int, default=7, help="timed repeats of each Lloyd measurement"
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=1.5,
        help="before each heavy step wait (up to --load-wait-seconds) while the 1-minute load "
        "average is above this or another process keeps a core busy",
    )
    parser.add_argument("--load-wait-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({_size(part) for part in args.sizes.split(",") if part.strip()})
    except (ValueError, argparse.ArgumentTypeError) as error:
        parser.error(f"--sizes: {error}")
    if args.repeat < 1 or args.lloyd_repeat < 1:
        parser.error("--repeat and --lloyd-repeat should be >= 1")
    if max(args.sizes, default=0) >= 10**ID_WIDTH:
        parser.error(f"sizes should be below {10**ID_WIDTH}")
    return args


# --------------------------------------------------------------------------------------------
# The two programs


def run_plain(dataset: Dataset, out: Path, env: dict, timeout: float, load: float) -> RunResult:
    command = [sys.executable, str(PLAIN_SCRIPT), "--input", str(dataset.csv)]
    command += ["--output", str(out)]
    measured = run_measured(command, env, timeout, out.parent / "logs" / out.name, load)
    shutil.rmtree(out, ignore_errors=True)
    if measured.timed_out:
        return RunResult(note=f"timed out (> {timeout:.0f} s)", load_before=load)
    if measured.returncode != 0:
        return RunResult(note=f"failed ({measured.returncode}): {measured.stderr_tail}")
    try:
        line = json.loads(measured.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return RunResult(note=f"no result line: {measured.stdout[-300:]!r}")
    return RunResult(
        process=measured.wall,
        work=float(line["work_seconds"]),
        max_rss_mib=measured.max_rss_mib,
        tree_peak_mib=measured.tree_peak_mib,
        k=int(line["k"]),
        inertia=float(line["inertia"]),
        load_before=load,
        others_cpu_share=measured.others_cpu_s / measured.wall,
    )


def run_segment(dataset: Dataset, out: Path, env: dict, load: float, keep: Path) -> RunResult:
    source = dataset.parquet if dataset.labels is not None else dataset.csv
    command = [str(segment_command()), "run", "--quiet", "--input", str(source)]
    command += ["--output", str(out)]
    measured = run_measured(
        command, env, SEGMENT_TIMEOUT_SECONDS, out.parent / "logs" / out.name, load
    )
    try:
        if measured.timed_out:
            return RunResult(note=f"timed out (> {SEGMENT_TIMEOUT_SECONDS} s)")
        if measured.returncode != 0:
            return RunResult(note=f"failed ({measured.returncode}): {measured.stderr_tail}")
        run_folder = (out / "latest").resolve()
        manifest = json.loads((run_folder / "manifest.json").read_text())
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(run_folder / "manifest.json", keep / f"{out.name}-manifest.json")
        ari = None
        if dataset.labels is not None:
            ari = adjusted_rand(run_folder / "segments.parquet", dataset.labels, dataset.n)
        timings = manifest["timings"]
        return RunResult(
            process=measured.wall,
            work=float(timings["total"]),
            max_rss_mib=measured.max_rss_mib,
            tree_peak_mib=measured.tree_peak_mib,
            k=int(manifest["k"]["chosen"]),
            inertia=float(manifest["inertia"]),
            ari=ari,
            steps={name: float(s) for name, s in timings.items()},
            load_before=load,
            others_cpu_share=measured.others_cpu_s / measured.wall,
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)


def adjusted_rand(segments_path: Path, labels_path: Path, n: int) -> float:
    """ARI of the run's ``segment_id`` against the planted segments, joined on customer id."""
    import pyarrow as arrow
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from sklearn.metrics import adjusted_rand_score

    segments = pq.read_table(segments_path, columns=["customer_id", "segment_id"])
    planted = pq.read_table(labels_path, columns=["planted_segment"])["planted_segment"]
    planted = planted.to_numpy()
    # ids are "00000001" .. : customer i's planted label is row i - 1 of the labels file
    ids = pc.cast(segments["customer_id"], arrow.int64()).to_numpy()
    if len(ids) != n or ids.min() < 1 or ids.max() > n or len(np.unique(ids)) != n:
        raise ValueError(f"{segments_path}: customer ids are not exactly 1..{n}")
    return float(adjusted_rand_score(planted[ids - 1], segments["segment_id"].to_numpy()))


def estimate_plain(previous: list[RunResult], prev_n: int, n: int) -> float | None:
    """Plain process seconds at n: start-up as measured plus work scaled linearly in n."""
    done = [r for r in previous if r.process is not None and r.work is not None]
    if not done:
        return None
    process = statistics.median(r.process for r in done)
    work = statistics.median(r.work for r in done)
    return (process - work) + work * n / prev_n


# --------------------------------------------------------------------------------------------
# Main


def benchmark(args: argparse.Namespace, workdir: Path) -> list:
    data_dir, out_dir = workdir / "data", workdir / "out"
    env = child_env(workdir / "prefect-home", args.prefect_api_url)
    datasets = []
    if args.mall and MALL_CSV.is_file():
        datasets.append(Dataset(200, MALL_CSV, MALL_CSV, None))
    elif args.mall:
        log(f"warning: {MALL_CSV} not found; --mall ignored")
    for n in args.sizes:
        datasets.append(write_dataset(n, args.seed, data_dir))

    warmup = write_dataset(WARMUP_SIZE, args.seed, data_dir)
    log("warm-up segment run (creates the Prefect database; not counted) ...")
    result = run_segment(warmup, out_dir / "warmup", env, 0.0, workdir / "manifests")
    if result.note:
        log(f"warning: warm-up run: {result.note}")

    rows = []
    last_ok: tuple[int, list[RunResult]] | None = None  # largest size the plain script finished
    blocked = False  # a smaller size was skipped or did not finish: skip the larger ones
    for dataset in datasets:
        plain: list[RunResult] = []
        flow: list[RunResult] = []
        estimate = None if last_ok is None else estimate_plain(last_ok[1], last_ok[0], dataset.n)
        skip = blocked or (estimate is not None and estimate > args.plain_limit_seconds)
        skip = skip or args.skip_plain
        if skip:
            note = "skipped" if estimate is None else f"skipped (est. {estimate:.0f} s)"
            note = "not run (--skip-plain)" if args.skip_plain else note
            plain.append(RunResult(note=note))
            log(f"{dataset.name}: plain script {note}")
        for i in range(args.repeat):
            tag = f"{dataset.n}-{'mall' if dataset.labels is None else 'syn'}-{i}"
            if not skip:
                load = wait_until_quiet(args.max_load, args.load_wait_seconds)
                hint = "" if estimate is None else f" (est. {estimate:.0f} s)"
                log(f"{dataset.name} #{i + 1}: plain script{hint} ...")
                result = run_plain(
                    dataset, out_dir / f"plain-{tag}", env, args.plain_limit_seconds, load
                )
                plain.append(result)
                log(f"  plain: {describe(result)}")
                if result.process is None:
                    skip = True  # timed out or failed: not again, nor at larger sizes
            load = wait_until_quiet(args.max_load, args.load_wait_seconds)
            log(f"{dataset.name} #{i + 1}: segment run ...")
            result = run_segment(
                dataset, out_dir / f"segment-{tag}", env, load, workdir / "manifests"
            )
            flow.append(result)
            log(f"  segment: {describe(result)}")
        rows.append((dataset, plain, flow))
        if any(r.process is not None for r in plain):
            last_ok = (dataset.n, plain)
        blocked = blocked or skip
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    started = time.strftime("%Y-%m-%d %H:%M")
    log(f"machine: {json.dumps(machine)}")
    workdir_context = (
        tempfile.TemporaryDirectory(prefix="segment-scale-", ignore_cleanup_errors=True)
        if args.workdir is None
        else None
    )
    workdir = Path(workdir_context.name) if workdir_context else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        rows = [] if args.lloyd_only else benchmark(args, workdir)
        lloyd = None
        if args.lloyd_only or (LLOYD_SIZE in args.sizes and not args.no_lloyd):
            wait_until_quiet(args.max_load, args.load_wait_seconds)
            lloyd = lloyd_section(args.seed, args.lloyd_repeat)
    finally:
        if workdir_context:
            workdir_context.cleanup()

    pools = ", ".join(
        f"{p['internal_api']} {p['version'] or ''} {p['num_threads']} threads"
        + (f" ({p['architecture']})" if p.get("architecture") else "")
        for p in machine["threadpools"]
    )
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    parts = [
        f"Scale benchmark, {started}, code {machine['git']}: "
        f"{'medians of ' if args.repeat > 1 else ''}{args.repeat} run(s) each; seed {args.seed}.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']}; {versions}.",
        f"Thread pools: {pools}. OPENBLAS_CORETYPE={machine['OPENBLAS_CORETYPE']}, "
        f"OMP_NUM_THREADS={machine['OMP_NUM_THREADS']}.",
    ]
    if rows:
        parts += [
            "",
            results_table(rows),
            "",
            "Peak RSS: `ru_maxrss` of the largest single process (`/usr/bin/time -f %M`); segment "
            "tree RSS: the summed RSS of `segment run` and Prefect's temporary server, sampled "
            "every 0.2 s. Ratios: plain / segment (above 1 the flow is faster).",
            "",
            contention_line(rows),
            "",
            "Flow work by step (manifest `timings`, seconds):",
            "",
            steps_table(rows),
        ]
        notes = [
            f"- {dataset.name}: {name} {r.note}"
            for dataset, plain, flow in rows
            for name, results in (("plain", plain), ("segment", flow))
            for r in results
            if is_failure(r)
        ]
        if notes:
            parts += ["", "Failed runs:", "", *notes]
    if lloyd:
        parts += ["", lloyd_markdown(lloyd)]
    text = "\n".join(parts) + "\n"
    print(text)
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_MD.write_text(text, encoding="utf-8")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    shutil.copy(RESULTS_MD, RESULTS_MD.with_name(f"scale-{stamp}.md"))  # kept, git-ignored
    raw = {
        "started": started,
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": machine,
        "rows": [
            {
                "dataset": asdict(dataset) | {"name": dataset.name},
                "plain": [asdict(r) for r in plain],
                "segment": [asdict(r) for r in flow],
            }
            for dataset, plain, flow in rows
        ],
        "lloyd": lloyd,
    }
    RESULTS_JSON.write_text(json.dumps(raw, indent=1, default=str), encoding="utf-8")
    shutil.copy(RESULTS_JSON, RESULTS_JSON.with_name(f"scale-{stamp}.json"))
    log(f"written to {RESULTS_MD.relative_to(REPO_ROOT)} and {RESULTS_JSON.name}")
    failed = any(is_failure(r) for _, plain, flow in rows for r in plain + flow)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
