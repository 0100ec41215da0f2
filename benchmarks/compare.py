"""Time the plain tutorial script against ``segment run`` on the same inputs, side by side.

For each input, three programs run alternately ``--repeat`` times, each in a fresh process:
the plain script (``sys.executable``), ``segment run`` with Prefect's temporary server (no
``PREFECT_API_URL``) and ``segment run`` while Prefect's background server of ``segment server
start`` runs (started once by this script on a free 127.0.0.1 port, in its own
``PREFECT_HOME``; ``--no-background-server`` leaves it out). Measured for each run:

- process: whole-process wall time, from start to exit (interpreter, imports, Prefect server);
- work: the program's own work, as it reports it: ``work_seconds`` on the plain script's JSON line,
  ``timings.total`` in the flow's ``<output>/latest/manifest.json``;
- report: the flow's report step (``timings.report``: tables, model, PNGs).

Also, ``--repeat`` times: the wall time of a process that only imports what ``segment run`` imports
before its flow starts (``segment.cli.main``, ``flows.runners``, ``flows.segmentation``).

The medians go to stdout as markdown tables, with the issue's targets (ratios against the plain
script, report step, import), and to ``benchmarks/results/latest.md``.

    .venv/bin/python benchmarks/compare.py                  # default inputs, 3 repeats
    .venv/bin/python benchmarks/compare.py --input my.csv --repeat 5
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from measure import child_env  # the benchmarks' one environment for child processes

REPO_ROOT = Path(__file__).resolve().parents[1]
PLAIN_SCRIPT = REPO_ROOT / "benchmarks" / "plain_tutorial.py"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "latest.md"
DEFAULT_INPUTS = (
    REPO_ROOT / "data" / "customers.csv",
    REPO_ROOT.parent / "shared" / "data" / "mall_customers.csv",
)
TIMEOUT_SECONDS = 900


class RunError(RuntimeError):
    """A benchmarked program failed or did not report its work time."""


@dataclass
class Timings:
    """Per-run process and work seconds of one program on one input, and the k it chose."""

    process: list[float] = field(default_factory=list)
    work: list[float] = field(default_factory=list)
    report: list[float] = field(default_factory=list)
    k: set[str] = field(default_factory=set)
    error: str | None = None

    def median(self, kind: str) -> float | None:
        values = getattr(self, kind)
        return statistics.median(values) if values else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--input",
        action="append",
        type=Path,
        help="customer CSV (repeatable; default: data/customers.csv and, if present, "
        "../shared/data/mall_customers.csv)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each program per input")
    parser.add_argument(
        "--no-background-server",
        action="store_true",
        help="measure segment run with its temporary server only (no `segment server start`)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat={args.repeat} should be >= 1")
    if args.input is None:
        args.input = [DEFAULT_INPUTS[0]] + [p for p in DEFAULT_INPUTS[1:] if p.is_file()]
    missing = [str(p) for p in args.input if not p.is_file()]
    if missing:
        parser.error(f"input not found: {', '.join(missing)}")
    return args


def segment_command() -> Path:
    """The ``segment`` console script installed next to the running interpreter."""
    bin_dir = Path(sys.executable).parent
    for name in ("segment", "segment.exe"):
        if (bin_dir / name).is_file():
            return bin_dir / name
    raise RunError(
        f"`segment` console script not found in {bin_dir}: install the project "
        "(`make install`) before benchmarking the flow"
    )


def count_rows(path: Path) -> int:
    """Data rows of a CSV file (records after the header)."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


def _run(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run a command; return its wall seconds and stdout, or raise RunError with its stderr."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired as error:
        raise RunError(f"timed out after {TIMEOUT_SECONDS} s: {' '.join(command)}") from error
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n    ".join(done.stderr.strip().splitlines()[-8:])
        raise RunError(f"exit code {done.returncode}: {' '.join(command)}\n    {tail}")
    return seconds, done.stdout


@dataclass(frozen=True)
class Measured:
    """One run: process and work seconds, report seconds (None for the plain script), k."""

    process: float
    work: float
    report: float | None
    k: str


def run_plain(path: Path, output: Path, env: dict[str, str]) -> Measured:
    """One plain-script run."""
    command = [sys.executable, str(PLAIN_SCRIPT), "--input", str(path), "--output", str(output)]
    seconds, stdout = _run(command, env)
    lines = stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
        return Measured(seconds, float(result["work_seconds"]), None, str(result["k"]))
    except (IndexError, ValueError, KeyError) as error:
        raise RunError(f"plain script printed no result line: {stdout[-300:]!r}") from error


def run_segment(path: Path, output: Path, env: dict[str, str]) -> Measured:
    """One ``segment run``: work and report seconds from its manifest's ``timings``."""
    command = [str(segment_command()), "run", "--input", str(path), "--output", str(output)]
    seconds, _ = _run(command, env)
    manifest_path = output / "latest" / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        timings = manifest["timings"]
        return Measured(
            seconds, float(timings["total"]), float(timings["report"]), _manifest_k(manifest)
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunError(f"no timings in {manifest_path}: {error}") from error


def _manifest_k(manifest: dict) -> str:
    """The chosen k recorded in the run's manifest (``k.chosen``)."""
    return str(manifest["k"]["chosen"])


# What `segment run` imports before its flow starts.
RUN_PATH_IMPORTS = "import segment.cli.main, flows.runners, flows.segmentation"


def time_run_path_import(env: dict[str, str]) -> float:
    """Wall seconds of a fresh process that imports what ``segment run`` imports."""
    seconds, _ = _run([sys.executable, "-c", RUN_PATH_IMPORTS], env)
    return seconds


@contextmanager
def background_server(home: Path) -> Iterator[None]:
    """``segment server start`` (Prefect's background server) on a free 127.0.0.1 port with its
    own ``PREFECT_HOME``, stopped with ``segment server stop`` on exit. ``segment run`` finds it
    there: its environment names no API."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = child_env(home)
    _run([str(segment_command()), "server", "start", "--port", str(port)], env)
    try:
        yield
    finally:
        _run([str(segment_command()), "server", "stop"], env)


PROGRAMS = {  # name: (runner, uses the background server)
    "plain": (run_plain, False),
    "segment (temporary server)": (run_segment, False),
    "segment (background server)": (run_segment, True),
}


def benchmark(
    path: Path, repeat: int, envs: dict[str, dict[str, str]], scratch: Path
) -> dict[str, Timings]:
    """Alternate the programs on one input; a failing program is not run again."""
    results = {name: Timings() for name in envs}
    for i in range(repeat):
        for name, env in envs.items():
            timings = results[name]
            if timings.error is not None:
                continue
            runner = PROGRAMS[name][0]
            output = scratch / f"{name.split()[0]}-{len(name)}-{path.stem}-{i}"
            try:
                measured = runner(path, output, env)
            except RunError as error:
                timings.error = str(error)
                print(f"error: {name} on {path}: {error}", file=sys.stderr)
                continue
            timings.process.append(measured.process)
            timings.work.append(measured.work)
            if measured.report is not None:
                timings.report.append(measured.report)
            timings.k.add(measured.k)
            print(
                f"  {path.name} #{i + 1} {name}: {measured.process:.2f} s process, "
                f"{measured.work:.3f} s work",
                file=sys.stderr,
            )
    return results


def _seconds(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(top: float | None, bottom: float | None) -> str:
    return "n/a" if top is None or not bottom else f"{top / bottom:.1f}x"


def _k(timings: Timings) -> str:
    return "n/a" if not timings.k else "/".join(sorted(timings.k))


# The targets of the "quick small run" (issue 12; the background server's: issue 24, item 5).
PROCESS_RATIO_TARGETS = {"segment (temporary server)": 3.5, "segment (background server)": 2.5}
REPORT_TARGET_SECONDS = 0.4
IMPORT_TARGET_SECONDS = 2.0


def _verdict(value: float | None, limit: float) -> str:
    return "n/a" if value is None else ("met" if value <= limit else "missed")


def markdown_table(
    rows: list[tuple[Path, int, dict[str, Timings]]], repeat: int, imports: list[float]
) -> str:
    """Medians per input and program as a markdown table, the targets, and the import time."""
    lines = [
        f"Medians of {repeat} run(s) each, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s).",
        "",
        "| input | rows | program | process s | work s | report s | process / plain | target | k |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for path, n_rows, results in rows:
        plain = results["plain"].median("process")
        for name, timings in results.items():
            process = timings.median("process")
            limit = PROCESS_RATIO_TARGETS.get(name)
            ratio = None if process is None or not plain else process / plain
            target = "" if limit is None else f"<= {limit}x: {_verdict(ratio, limit)}"
            report = timings.median("report")
            if report is not None:
                target += f"; report <= {REPORT_TARGET_SECONDS} s: "
                target += _verdict(report, REPORT_TARGET_SECONDS)
            cells = [
                path.name,
                str(n_rows),
                name,
                _seconds(process),
                _seconds(timings.median("work"), 3),
                _seconds(report, 3),
                _ratio(process, plain),
                target,
                _k(timings),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    median_import = statistics.median(imports) if imports else None
    lines += [
        "",
        f"Importing `segment run`'s run path ({RUN_PATH_IMPORTS}): median "
        f"{_seconds(median_import)} s of {len(imports)} fresh process(es); target <= "
        f"{IMPORT_TARGET_SECONDS} s: {_verdict(median_import, IMPORT_TARGET_SECONDS)}.",
    ]
    return "\n".join(lines) + "\n"


def _warn_if_busy() -> None:
    """Timings on a busy machine are noise: say so before starting."""
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        if load > 0.5:
            print(f"warning: load average {load:.1f}; timings will be noisy", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _warn_if_busy()
    rows = []
    imports: list[float] = []
    with tempfile.TemporaryDirectory(prefix="segment-bench-", ignore_cleanup_errors=True) as tmp:
        scratch = Path(tmp)
        with ExitStack() as stack:
            server_home = scratch / "server-home"
            if not args.no_background_server:
                print("segment server start, for the background-server runs ...", file=sys.stderr)
                stack.enter_context(background_server(server_home))
            envs = {
                name: child_env(server_home if uses_server else scratch / "prefect-home")
                for name, (_, uses_server) in PROGRAMS.items()
                if not (uses_server and args.no_background_server)
            }
            for path in args.input:
                print(f"benchmarking {path} ({args.repeat} run(s) each) ...", file=sys.stderr)
                rows.append((path, count_rows(path), benchmark(path, args.repeat, envs, scratch)))
            for _ in range(args.repeat):
                imports.append(time_run_path_import(envs["plain"]))

    table = markdown_table(rows, args.repeat, imports)
    errors = [
        f"- {name} on {path.name}: {timings.error}"
        for path, _, results in rows
        for name, timings in results.items()
        if timings.error is not None
    ]
    if errors:
        table += "\nFailed runs (their columns show n/a):\n\n" + "\n".join(errors) + "\n"
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table, encoding="utf-8")
    print(f"written to {RESULTS.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
