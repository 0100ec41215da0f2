"""Scale benchmark: the plain tutorial script and ``segment run`` on 200 .. 10M synthetic customers.

For each size n it generates (or reuses) n seeded customers in the five planted segments of
``tasks.sample_data`` (no dirt), written as Parquet (for ``segment run``), as CSV (for the plain
script, which reads CSV) and a labels Parquet with the planted segment of every customer. Then, in
fresh processes and alternately ``--repeat`` times:

- ``plain_tutorial.py --input <csv>``, unless the previous size's runs extrapolate beyond
  ``--plain-limit-seconds`` (start-up + work scaled linearly in n);
- ``segment run --quiet --input <parquet>`` with one throw-away ``PREFECT_HOME`` for the whole
  benchmark (a warm-up run on 200 customers creates its database first, uncounted).

Per process: wall time, peak RSS (``ru_maxrss`` via ``/usr/bin/time``: the largest single process
of the tree), the peak of the summed RSS of the whole tree (for ``segment run``: the flow process
and Prefect's temporary server; sampled every 0.2 s), and the CPU time other processes used
meanwhile (``/proc/stat`` minus ours), so that a run disturbed by someone else shows.
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
``scale-latest.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `tasks` when the project is not installed
    sys.path.insert(0, str(REPO_ROOT))

from tasks.manifest import package_versions  # noqa: E402
from tasks.sample_data import (  # noqa: E402  (the planted segments, reused as they are)
    AGE_RANGE,
    FEMALE_SHARE,
    MALL_HEADER,
    MIN_INCOME,
    SCORE_RANGE,
    SEGMENTS,
)

PLAIN_SCRIPT = REPO_ROOT / "benchmarks" / "plain_tutorial.py"
RESULTS_MD = REPO_ROOT / "benchmarks" / "results" / "scale-latest.md"
RESULTS_JSON = REPO_ROOT / "benchmarks" / "results" / "scale-latest.json"
MALL_CSV = REPO_ROOT.parent / "shared" / "data" / "mall_customers.csv"
DEFAULT_SIZES = "200,100000,1000000"
DEFAULT_SEED = 20261126
ID_WIDTH = 8  # customer ids "00000001" .. "99999999"
GENERATOR_VERSION = 2  # bump when the generated data change, so old files are not reused
WARMUP_SIZE = 200
LLOYD_SIZE = 10_000_000
SEGMENT_TIMEOUT_SECONDS = 3600
SAMPLE_SECONDS = 0.2
TIME = "/usr/bin/time"  # GNU time: peak RSS of the process it starts
MIB = 1024 * 1024
PACKAGES = ("numpy", "pandas", "scikit-learn", "pyarrow", "prefect", "threadpoolctl", "kneed")


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
# The generator at scale


@dataclass(frozen=True)
class Population:
    """n customers as arrays; ``segment`` is the planted segment, 0-based."""

    segment: np.ndarray
    female: np.ndarray
    age: np.ndarray
    income: np.ndarray
    score: np.ndarray


def segment_sizes(n: int) -> np.ndarray:
    """Customers per planted segment in exact shares (largest remainder, as in sample_data)."""
    shares = np.array([s.share for s in SEGMENTS])
    exact = shares * n
    sizes = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[i] += 1
    return sizes


def generate_population(n: int, seed: int = DEFAULT_SEED) -> Population:
    """n clean customers in the planted segments of ``tasks.sample_data``, in a random order.

    Same recipe as ``sample_data`` (Gaussian income/score/age around each segment's centre,
    rounded and clipped to the valid ranges, 56 % female) but vectorised and without dirt, so
    10M customers take seconds. Deterministic for ``(n, seed)``.
    """
    rng = np.random.default_rng(seed)
    segment = rng.permutation(np.repeat(np.arange(len(SEGMENTS), dtype=np.int8), segment_sizes(n)))

    def draw(name: str, low: float, high: float) -> np.ndarray:
        table = np.array([getattr(s, name) for s in SEGMENTS], dtype=np.float64)
        values = rng.normal(table[segment, 0], table[segment, 1])
        return np.clip(np.rint(values), low, high).astype(np.int64)

    income = draw("income", MIN_INCOME, np.inf)
    score = draw("score", *SCORE_RANGE)
    age = draw("age", *AGE_RANGE)
    female = rng.random(n) < FEMALE_SHARE
    return Population(segment, female, age, income, score)


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
    import pyarrow as pa
    import pyarrow.compute as pc

    numbers = pa.array(np.arange(1, n + 1, dtype=np.int64))
    return pc.utf8_lpad(pc.cast(numbers, pa.string()), width=ID_WIDTH, padding="0")


def write_dataset(n: int, seed: int, folder: Path) -> Dataset:
    """The n-customer Parquet, CSV and labels files in ``folder``; reused if already made."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
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
    if meta_path.is_file() and all(p.is_file() for p in paths):
        if json.loads(meta_path.read_text()) == meta:
            _log(f"reusing {stem}.* in {folder}")
            return dataset
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    population = generate_population(n, seed)
    ids = _customer_ids(n)
    gender = pa.DictionaryArray.from_arrays(
        pa.array(population.female.astype(np.int8)), pa.array(["Male", "Female"])
    ).cast(pa.string())
    table = pa.table(
        [
            ids,
            gender,
            pa.array(population.age),
            pa.array(population.income),
            pa.array(population.score),
        ],
        names=list(MALL_HEADER),
    )
    labels = pa.table(
        {"customer_id": ids, "planted_segment": pa.array(population.segment.astype(np.int8) + 1)}
    )
    # unquoted, like the Mall file (no value holds a comma or a quote)
    options = pacsv.WriteOptions(quoting_style="none", quoting_header="none")
    for path, write in [
        (dataset.parquet, lambda p: pq.write_table(table, p)),
        (dataset.csv, lambda p: pacsv.write_csv(table, p, options)),
        (dataset.labels, lambda p: pq.write_table(labels, p)),
    ]:
        partial = path.with_name(path.name + ".partial")
        write(partial)
        partial.replace(path)
    meta_path.write_text(json.dumps(meta))
    _log(f"generated {n:,} customers in {time.perf_counter() - start:.1f} s -> {folder}/{stem}.*")
    return dataset


# --------------------------------------------------------------------------------------------
# Measuring a process


@dataclass
class Measured:
    """One finished process: wall seconds, peak RSS of the largest process and of the tree."""

    command: list[str]
    returncode: int
    wall: float
    max_rss_mib: float
    tree_peak_mib: float
    timed_out: bool
    stdout: str
    stderr_tail: str
    load_before: float
    others_cpu_s: float  # CPU seconds the rest of the machine used during the run


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, rss pages) for every process, from /proc/<pid>/stat."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[21]))
    return table


def tree_rss_bytes(root: int) -> int:
    """Summed RSS of ``root`` and all its descendants (shared pages are counted per process)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            total += table[pid][1]
            todo.extend(children.get(pid, ()))
    return total * os.sysconf("SC_PAGE_SIZE")


class TreeSampler(threading.Thread):
    """Samples the process tree's summed RSS every ``SAMPLE_SECONDS`` until stopped."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak = 0
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()
        self._start_time = time.perf_counter()

    def run(self) -> None:
        while not self._halt.is_set():
            rss = tree_rss_bytes(self.root)
            self.samples.append((time.perf_counter() - self._start_time, rss))
            self.peak = max(self.peak, rss)
            self._halt.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_measured(
    command: list[str], env: dict[str, str], timeout: float, log_stem: Path, load: float
) -> Measured:
    """Run a command in its own session; wall time, peak RSS and sampled tree RSS.

    Peak RSS comes from ``/usr/bin/time -f %M``: the ``ru_maxrss`` of the largest single process
    of the tree. Not from this process's own ``wait4``: Linux carries the forking parent's RSS
    high-water mark over into the child's ``ru_maxrss`` across exec, so a child forked from this
    benchmark (300+ MiB after the ARI at 1M) would never report less than that.
    """
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_stem.with_suffix(".out"), log_stem.with_suffix(".err")
    rss_path = log_stem.with_suffix(".maxrss")
    wrapped = [TIME, "-f", "%M", "-o", str(rss_path), *command] if Path(TIME).is_file() else command
    timed_out = threading.Event()
    with out_path.open("w") as out, err_path.open("w") as err:
        busy0, self0 = _cpu_ticks()[0], _own_cpu()
        start = time.perf_counter()
        process = subprocess.Popen(wrapped, env=env, stdout=out, stderr=err, start_new_session=True)
        sampler = TreeSampler(process.pid)
        sampler.start()

        def kill() -> None:
            timed_out.set()
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the session this benchmark started
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        timer.cancel()
        sampler.stop()
        machine_cpu = (_cpu_ticks()[0] - busy0) / os.sysconf("SC_CLK_TCK")
        others = machine_cpu - (usage.ru_utime + usage.ru_stime) - (_own_cpu() - self0)
        process.returncode = os.waitstatus_to_exitcode(status)
    max_rss_kib = float(usage.ru_maxrss)  # fallback without /usr/bin/time: may be too high
    if wrapped is not command:
        try:
            max_rss_kib = float(rss_path.read_text().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            pass
    samples = "\n".join(f"{t:.2f},{rss / MIB:.1f}" for t, rss in sampler.samples)
    log_stem.with_suffix(".rss.csv").write_text("seconds,tree_rss_mib\n" + samples + "\n")
    stderr = err_path.read_text(errors="replace").strip().splitlines()
    return Measured(
        command=command,
        returncode=process.returncode,
        wall=wall,
        max_rss_mib=max_rss_kib / 1024,
        tree_peak_mib=sampler.peak / MIB,
        timed_out=timed_out.is_set(),
        stdout=out_path.read_text(errors="replace"),
        stderr_tail="\n    ".join(stderr[-8:]),
        load_before=load,
        others_cpu_s=max(others, 0.0),
    )


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this benchmark's sampler threads
    return usage.ru_utime + usage.ru_stime


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:8]]  # without guest time
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _cpu_busy_cores(seconds: float = 2.0) -> float:
    """Cores kept busy over ``seconds`` (all processes), from /proc/stat."""
    busy0, total0 = _cpu_ticks()
    time.sleep(seconds)
    busy1, total1 = _cpu_ticks()
    return (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1)


def wait_until_quiet(max_load: float, max_wait: float) -> float:
    """Wait while the machine is busy (load average or a busy core); return the load then."""
    deadline = time.monotonic() + max_wait
    while True:
        load = os.getloadavg()[0]
        busy = _cpu_busy_cores()
        if load <= max_load and busy < 0.5:
            return load
        if time.monotonic() > deadline:
            _log(f"warning: still busy (load {load:.2f}, {busy:.2f} cores busy); going on")
            return load
        _log(f"machine busy (load {load:.2f}, {busy:.2f} cores busy); waiting ...")
        time.sleep(15)


# --------------------------------------------------------------------------------------------
# The two programs


@dataclass
class RunResult:
    process: float | None = None
    work: float | None = None
    max_rss_mib: float | None = None
    tree_peak_mib: float | None = None
    k: int | None = None
    inertia: float | None = None
    ari: float | None = None
    steps: dict[str, float] = field(default_factory=dict)
    load_before: float | None = None
    others_cpu_share: float | None = None  # of one core, by other processes during the run
    note: str | None = None  # why there is no figure (skipped, timed out, failed)


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


def segment_command() -> Path:
    bin_dir = Path(sys.executable).parent
    path = bin_dir / "segment"
    if not path.is_file():
        sys.exit(f"error: `segment` not found in {bin_dir}; run `make install` first")
    return path


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
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from sklearn.metrics import adjusted_rand_score

    segments = pq.read_table(segments_path, columns=["customer_id", "segment_id"])
    planted = pq.read_table(labels_path, columns=["planted_segment"])["planted_segment"]
    planted = planted.to_numpy()
    # ids are "00000001" .. : customer i's planted label is row i - 1 of the labels file
    ids = pc.cast(segments["customer_id"], pa.int64()).to_numpy()
    if len(ids) != n or ids.min() < 1 or ids.max() > n or len(np.unique(ids)) != n:
        raise ValueError(f"{segments_path}: customer ids are not exactly 1..{n}")
    return float(adjusted_rand_score(planted[ids - 1], segments["segment_id"].to_numpy()))


def child_env(prefect_home: Path, api_url: str | None = None) -> dict[str, str]:
    """The environment of both programs: a throw-away PREFECT_HOME, and for `segment run`
    Prefect's temporary server (its start is part of the figures) unless ``api_url`` names a
    running server (the nightly deployment's case)."""
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(prefect_home)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def estimate_plain(previous: list[RunResult], prev_n: int, n: int) -> float | None:
    """Plain process seconds at n: start-up as measured plus work scaled linearly in n."""
    done = [r for r in previous if r.process is not None and r.work is not None]
    if not done:
        return None
    process = statistics.median(r.process for r in done)
    work = statistics.median(r.work for r in done)
    return (process - work) + work * n / prev_n


# --------------------------------------------------------------------------------------------
# The Lloyd iteration and the memory bandwidth


def _median_seconds(fn, repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def measure_bandwidth(repeat: int, gib: float = 2.0) -> dict:
    """Read (and copy) bandwidth of plain numpy on a ``gib`` GiB float64 array, 1 and 2 threads."""
    n = int(gib * 1024**3) // 8
    a = np.ones(n)  # pages touched: no first-touch faults in the timings
    threads = os.cpu_count() or 1
    pool = ThreadPoolExecutor(threads)

    def threaded_sum(array: np.ndarray) -> None:
        cuts = np.linspace(0, len(array), threads + 1).astype(int)
        list(pool.map(np.sum, [array[cuts[i] : cuts[i + 1]] for i in range(threads)]))

    a.sum()
    single, _ = _median_seconds(a.sum, repeat)
    threaded_sum(a)
    multi, multi_all = _median_seconds(lambda: threaded_sum(a), repeat)
    # an array the size of the 10M x 2 matrix (160 MB): may partly stay in the last-level cache
    small = a[: LLOYD_SIZE * 2]
    threaded_sum(small)
    small_multi, _ = _median_seconds(lambda: threaded_sum(small), repeat)
    a @ a
    ddot, _ = _median_seconds(lambda: a @ a, repeat)  # OpenBLAS ddot, its own threads
    half = n // 2
    src, dst = a[:half], np.empty(half)
    dst.fill(0.0)

    def threaded_copy() -> None:
        cuts = np.linspace(0, half, threads + 1).astype(int)
        list(
            pool.map(
                lambda i: np.copyto(dst[cuts[i] : cuts[i + 1]], src[cuts[i] : cuts[i + 1]]),
                range(threads),
            )
        )

    threaded_copy()
    copy, _ = _median_seconds(threaded_copy, repeat)
    pool.shutdown()
    gb = 1e9
    return {
        "array_gib": gib,
        "threads": threads,
        "sum_1_thread_gbps": a.nbytes / single / gb,
        "sum_threads_gbps": a.nbytes / multi / gb,
        "sum_threads_best_gbps": a.nbytes / min(multi_all) / gb,
        "sum_threads_160mb_gbps": small.nbytes / small_multi / gb,
        "ddot_openblas_gbps": a.nbytes / ddot / gb,
        "copy_threads_read_plus_write_gbps": 2 * src.nbytes / copy / gb,
    }


def lloyd_section(seed: int, repeat: int) -> dict:
    """Time Lloyd iterations on 10M x 2 float64 and compare them with the memory bandwidth."""
    import threadpoolctl
    from sklearn.cluster import KMeans

    _log("Lloyd section: measuring memory bandwidth ...")
    bandwidth = measure_bandwidth(repeat)
    _log(f"  {bandwidth}")

    population = generate_population(LLOYD_SIZE, seed)
    x = np.column_stack([population.income, population.score]).astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    x = np.ascontiguousarray((x - mean) / std)
    # Given centroids: the first five customers of the middle planted segment, a poor start, so
    # that Lloyd needs several iterations to converge (the difference below needs that).
    init = x[np.flatnonzero(population.segment == 2)[:5]].copy()
    del population
    n, p = x.shape

    def fit(max_iter: int) -> KMeans:
        return KMeans(5, init=init, n_init=1, max_iter=max_iter, tol=0).fit(x)

    _log("Lloyd section: KMeans fits ...")
    converged_at = fit(300).n_iter_
    fit_1, _ = _median_seconds(lambda: fit(1), repeat)
    # max_iter one below convergence: every iteration runs, and the final E-step too, as in fit(1)
    many = converged_at - 1
    per_iter_diff = fit_many = None
    if many >= 3:
        fit_many, _ = _median_seconds(lambda: fit(many), repeat)
        if fit(many).n_iter_ == many:
            per_iter_diff = (fit_many - fit_1) / (many - 1)

    hot_loop = None
    try:  # scikit-learn's own per-iteration kernel, as KMeans calls it (private API)
        from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_dense
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        weights = np.ones(n)
        centres_new = np.empty_like(init)
        in_cluster = np.zeros(len(init))
        labels = np.full(n, -1, dtype=np.int32)
        shift = np.zeros(len(init))
        n_threads = _openmp_effective_n_threads()

        def one_iteration() -> None:
            lloyd_iter_chunked_dense(
                x, weights, init, centres_new, in_cluster, labels, shift, n_threads
            )

        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):  # as KMeans.fit does
            one_iteration()
            hot_loop, _ = _median_seconds(one_iteration, repeat)
    except ImportError as error:
        _log(f"  private lloyd_iter_chunked_dense not available: {error}")

    data_bytes = n * p * 8
    full_bytes = data_bytes + n * 8 + n * 4  # + sample weights read, labels written
    gbps = bandwidth["sum_threads_gbps"]
    bound = data_bytes / (gbps * 1e9)
    iteration = per_iter_diff if per_iter_diff is not None else hot_loop
    return {
        "n": n,
        "p": p,
        "repeat": repeat,
        "fit_max_iter_1_s": fit_1,
        "converged_at_iteration": int(converged_at),
        "fit_max_iter_m": many,
        "fit_max_iter_m_s": fit_many,
        "per_iteration_by_difference_s": per_iter_diff,
        "hot_loop_kernel_s": hot_loop,
        "data_bytes": data_bytes,
        "full_traffic_bytes": full_bytes,
        "bandwidth": bandwidth,
        "bound_s": bound,
        "bound_full_traffic_s": full_bytes / (gbps * 1e9),
        "ratio_iteration_over_bound": None if iteration is None else iteration / bound,
        "ratio_kernel_over_bound": None if hot_loop is None else hot_loop / bound,
    }


# --------------------------------------------------------------------------------------------
# Report


def machine_info() -> dict:
    import sklearn.cluster  # noqa: F401  (loads its OpenMP runtime for threadpool_info)
    import threadpoolctl

    def first(path: str, key: str) -> str | None:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return None

    versions = package_versions(PACKAGES)
    pools = [
        {k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
        for info in threadpoolctl.threadpool_info()
    ]
    try:
        revision = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        revision = "unknown"
    return {
        "git": revision,
        "cpu": first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "memory": first("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "versions": versions,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "threadpools": pools,
    }


def _median(results: list[RunResult], attribute: str) -> float | None:
    values = [getattr(r, attribute) for r in results if getattr(r, attribute) is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _k(results: list[RunResult]) -> str:
    ks = sorted({r.k for r in results if r.k is not None})
    return "/".join(map(str, ks)) if ks else "n/a"


def _ratio(top: float | None, bottom: float | None) -> str:
    return "n/a" if top is None or not bottom else f"{top / bottom:.1f}x"


def _plain_cell(results: list[RunResult], value: str) -> str:
    if any(r.process is not None for r in results):
        return value
    notes = [r.note for r in results if r.note]
    return notes[0] if notes else "n/a"


def _percent(diff: float | None) -> str:
    if diff is None:
        return "n/a"
    if diff == 0:
        return "0 (equal)"
    return f"{diff:+.1e}" if abs(diff) < 0.001 else f"{diff:+.3f}"


def _label(dataset: Dataset) -> str:
    return f"{dataset.n:,}" + ("" if dataset.labels is not None else f" ({dataset.csv.name})")


def results_table(rows: list[tuple[Dataset, list[RunResult], list[RunResult]]]) -> str:
    header = [
        "n",
        "plain process s",
        "plain work s",
        "plain peak RSS MiB",
        "plain k",
        "segment process s",
        "flow work s",
        "segment peak RSS MiB",
        "segment tree RSS MiB",
        "segment k",
        "ratio work (plain/flow)",
        "ratio process (plain/segment)",
        "inertia diff %",
        "ARI vs planted",
    ]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for dataset, plain, flow in rows:
        p_process, p_work = _median(plain, "process"), _median(plain, "work")
        s_process, s_work = _median(flow, "process"), _median(flow, "work")
        p_inertia, s_inertia = _median(plain, "inertia"), _median(flow, "inertia")
        diff = None if not p_inertia or s_inertia is None else 100 * (s_inertia / p_inertia - 1)
        ari = _median(flow, "ari")
        cells = [
            _label(dataset),
            _plain_cell(plain, _fmt(p_process)),
            _plain_cell(plain, _fmt(p_work, 3)),
            _plain_cell(plain, _fmt(_median(plain, "max_rss_mib"), 0)),
            _plain_cell(plain, _k(plain)),
            _fmt(s_process),
            _fmt(s_work, 3),
            _fmt(_median(flow, "max_rss_mib"), 0),
            _fmt(_median(flow, "tree_peak_mib"), 0),
            _k(flow),
            _ratio(p_work, s_work),
            _ratio(p_process, s_process),
            _percent(diff),
            "n/a" if ari is None else f"{ari:.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def steps_table(rows: list[tuple[Dataset, list[RunResult], list[RunResult]]]) -> str:
    names: list[str] = []
    for _, _, flow in rows:
        for result in flow:
            names += [s for s in result.steps if s not in names and s != "total"]
    if not names:
        return ""
    lines = [
        "| n | " + " | ".join(names) + " | total |",
        "| --- |" + " ---: |" * (len(names) + 1),
    ]
    for dataset, _, flow in rows:
        cells = [
            _fmt(_median_step(flow, name), 3)
            for name in [*names, "total"]  # medians per step: they need not add up to total
        ]
        lines.append(f"| {_label(dataset)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _median_step(results: list[RunResult], name: str) -> float | None:
    values = [r.steps[name] for r in results if name in r.steps]
    return statistics.median(values) if values else None


def lloyd_markdown(lloyd: dict) -> str:
    bw = lloyd["bandwidth"]
    ms = 1000.0

    def t(value: float | None) -> str:
        return "n/a" if value is None else f"{value * ms:.1f} ms"

    def r(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}x"

    m = lloyd["fit_max_iter_m"]

    return "\n".join(
        [
            f"Lloyd iteration on {lloyd['n']:,} x {lloyd['p']} float64 (C-contiguous, "
            f"{lloyd['data_bytes'] / 1e6:.0f} MB), k = 5, five given centroids; medians of "
            f"{lloyd['repeat']}.",
            "",
            "| measurement | value |",
            "| --- | ---: |",
            f"| `KMeans(max_iter=1, tol=0).fit` (whole fit) | {t(lloyd['fit_max_iter_1_s'])} |",
            f"| `KMeans(max_iter={m}, tol=0).fit` (converges at {lloyd['converged_at_iteration']}) "
            f"| {t(lloyd['fit_max_iter_m_s'])} |",
            f"| one iteration inside `fit`: (fit {m} - fit 1) / {m - 1} "
            f"| {t(lloyd['per_iteration_by_difference_s'])} |",
            f"| scikit-learn's kernel `lloyd_iter_chunked_dense` alone | "
            f"{t(lloyd['hot_loop_kernel_s'])} |",
            f"| read bandwidth, numpy sum, 1 thread, {bw['array_gib']:g} GiB | "
            f"{bw['sum_1_thread_gbps']:.1f} GB/s |",
            f"| read bandwidth, numpy sum, {bw['threads']} threads (median / best) | "
            f"{bw['sum_threads_gbps']:.1f} / {bw['sum_threads_best_gbps']:.1f} GB/s |",
            f"| same on a 160 MB array (the matrix's size) | "
            f"{bw['sum_threads_160mb_gbps']:.1f} GB/s |",
            f"| read bandwidth, `a @ a` (OpenBLAS ddot, its threads) | "
            f"{bw['ddot_openblas_gbps']:.1f} GB/s |",
            f"| copy, {bw['threads']} threads, read + write bytes | "
            f"{bw['copy_threads_read_plus_write_gbps']:.1f} GB/s |",
            f"| bound: data bytes / {bw['threads']}-thread read bandwidth | "
            f"{t(lloyd['bound_s'])} |",
            f"| bound with sample weights read and labels written too | "
            f"{t(lloyd['bound_full_traffic_s'])} |",
            f"| **iteration in fit / bound** | **{r(lloyd['ratio_iteration_over_bound'])}** |",
            f"| kernel alone / bound | {r(lloyd['ratio_kernel_over_bound'])} |",
        ]
    )


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Main


def benchmark(args: argparse.Namespace, workdir: Path) -> list:
    data_dir, out_dir = workdir / "data", workdir / "out"
    env = child_env(workdir / "prefect-home", args.prefect_api_url)
    datasets = []
    if args.mall and MALL_CSV.is_file():
        datasets.append(Dataset(200, MALL_CSV, MALL_CSV, None))
    elif args.mall:
        _log(f"warning: {MALL_CSV} not found; --mall ignored")
    for n in args.sizes:
        datasets.append(write_dataset(n, args.seed, data_dir))

    warmup = write_dataset(WARMUP_SIZE, args.seed, data_dir)
    _log("warm-up segment run (creates the Prefect database; not counted) ...")
    result = run_segment(warmup, out_dir / "warmup", env, 0.0, workdir / "manifests")
    if result.note:
        _log(f"warning: warm-up run: {result.note}")

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
            _log(f"{dataset.name}: plain script {note}")
        for i in range(args.repeat):
            tag = f"{dataset.n}-{'mall' if dataset.labels is None else 'syn'}-{i}"
            if not skip:
                load = wait_until_quiet(args.max_load, args.load_wait_seconds)
                hint = "" if estimate is None else f" (est. {estimate:.0f} s)"
                _log(f"{dataset.name} #{i + 1}: plain script{hint} ...")
                result = run_plain(
                    dataset, out_dir / f"plain-{tag}", env, args.plain_limit_seconds, load
                )
                plain.append(result)
                _log(f"  plain: {_describe(result)}")
                if result.process is None:
                    skip = True  # timed out or failed: not again, nor at larger sizes
            load = wait_until_quiet(args.max_load, args.load_wait_seconds)
            _log(f"{dataset.name} #{i + 1}: segment run ...")
            result = run_segment(
                dataset, out_dir / f"segment-{tag}", env, load, workdir / "manifests"
            )
            flow.append(result)
            _log(f"  segment: {_describe(result)}")
        rows.append((dataset, plain, flow))
        if any(r.process is not None for r in plain):
            last_ok = (dataset.n, plain)
        blocked = blocked or skip
    return rows


def _contention_line(rows: list) -> str:
    shares = [
        (r.others_cpu_share, dataset, name)
        for dataset, plain, flow in rows
        for name, results in (("plain", plain), ("segment", flow))
        for r in results
        if r.others_cpu_share is not None
    ]
    if not shares:
        return ""
    share, dataset, name = max(shares, key=lambda item: item[0])
    return (
        "Other processes on the machine during the timed runs (CPU time not ours / wall time): "
        f"at most {100 * share:.0f} % of one core ({name}, {_label(dataset)}); median "
        f"{100 * statistics.median(s for s, _, _ in shares):.0f} %."
    )


def _failed(result: RunResult) -> bool:
    return bool(result.note) and not result.note.startswith(("skipped", "not run"))


def _describe(result: RunResult) -> str:
    if result.process is None:
        return result.note or "no result"
    extra = "" if result.ari is None else f", ARI {result.ari:.4f}"
    return (
        f"{result.process:.2f} s process, {result.work:.3f} s work, peak RSS "
        f"{result.max_rss_mib:.0f} MiB (tree {result.tree_peak_mib:.0f} MiB), k={result.k}, "
        f"inertia {result.inertia:.6g}{extra} (load before {result.load_before:.2f}, other "
        f"processes used {100 * result.others_cpu_share:.0f} % of a core meanwhile)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    started = time.strftime("%Y-%m-%d %H:%M")
    _log(f"machine: {json.dumps(machine)}")
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
            _contention_line(rows),
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
            if _failed(r)
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
    _log(f"written to {RESULTS_MD.relative_to(REPO_ROOT)} and {RESULTS_JSON.name}")
    failed = any(_failed(r) for _, plain, flow in rows for r in plain + flow)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
