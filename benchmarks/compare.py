"""Time the plain tutorial script against ``segment run`` on the same inputs.

For each input, the two programs run alternately ``--repeat`` times, each in a fresh process
(``sys.executable`` for the plain script, the ``segment`` console script next to it for the flow).
Two times are measured for each run:

- process: whole-process wall time, from start to exit (interpreter, imports, Prefect server);
- work: the program's own work, as it reports it: ``work_seconds`` on the plain script's JSON line,
  ``timings.total`` in the flow's ``<output>/latest/manifest.json``.

The medians go to stdout as a markdown table and to ``benchmarks/results/latest.md``.

    .venv/bin/python benchmarks/compare.py                  # default inputs, 3 repeats
    .venv/bin/python benchmarks/compare.py --input my.csv --repeat 5
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

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


def child_env(prefect_home: Path) -> dict[str, str]:
    """The environment for both programs: a throw-away Prefect home unless an API URL is set."""
    env = dict(os.environ)
    if not env.get("PREFECT_API_URL"):
        env["PREFECT_HOME"] = str(prefect_home)
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


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


def run_plain(path: Path, output: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Process seconds, work seconds and chosen k of one plain-script run."""
    command = [sys.executable, str(PLAIN_SCRIPT), "--input", str(path), "--output", str(output)]
    seconds, stdout = _run(command, env)
    lines = stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
        return seconds, float(result["work_seconds"]), str(result["k"])
    except (IndexError, ValueError, KeyError) as error:
        raise RunError(f"plain script printed no result line: {stdout[-300:]!r}") from error


def run_segment(path: Path, output: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Process seconds, work seconds (manifest ``timings.total``) and chosen k of one flow run."""
    command = [str(segment_command()), "run", "--input", str(path), "--output", str(output)]
    seconds, _ = _run(command, env)
    manifest_path = output / "latest" / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        work = float(manifest["timings"]["total"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunError(f"no timings.total in {manifest_path}: {error}") from error
    return seconds, work, _manifest_k(manifest)


def _manifest_k(manifest: dict) -> str:
    """The chosen k recorded in the run's manifest (``k.chosen``)."""
    return str(manifest["k"]["chosen"])


def benchmark(path: Path, repeat: int, env: dict[str, str], scratch: Path) -> dict[str, Timings]:
    """Alternate plain and flow runs on one input; a failing program is not run again."""
    results = {"plain": Timings(), "segment": Timings()}
    runners = {"plain": run_plain, "segment": run_segment}
    for i in range(repeat):
        for name, runner in runners.items():
            timings = results[name]
            if timings.error is not None:
                continue
            try:
                process, work, k = runner(path, scratch / f"{name}-{path.stem}-{i}", env)
            except RunError as error:
                timings.error = str(error)
                print(f"error: {name} on {path}: {error}", file=sys.stderr)
                continue
            timings.process.append(process)
            timings.work.append(work)
            timings.k.add(k)
            print(
                f"  {path.name} #{i + 1} {name}: {process:.2f} s process, {work:.3f} s work",
                file=sys.stderr,
            )
    return results


def _seconds(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(top: float | None, bottom: float | None) -> str:
    return "n/a" if top is None or not bottom else f"{top / bottom:.1f}x"


def _k(timings: Timings) -> str:
    return "n/a" if not timings.k else "/".join(sorted(timings.k))


def markdown_table(rows: list[tuple[Path, int, dict[str, Timings]]], repeat: int) -> str:
    """Medians per input as a markdown table, with a one-line heading."""
    header = (
        "| input | rows | plain process s | plain work s | segment process s | flow work s "
        "| ratio work (flow/plain) | ratio process | k plain | k segment |"
    )
    lines = [
        f"Medians of {repeat} run(s) each, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s).",
        "",
        header,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path, n_rows, results in rows:
        plain, flow = results["plain"], results["segment"]
        cells = [
            path.name,
            str(n_rows),
            _seconds(plain.median("process")),
            _seconds(plain.median("work"), 3),
            _seconds(flow.median("process")),
            _seconds(flow.median("work"), 3),
            _ratio(flow.median("work"), plain.median("work")),
            _ratio(flow.median("process"), plain.median("process")),
            _k(plain),
            _k(flow),
        ]
        lines.append("| " + " | ".join(cells) + " |")
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
    with tempfile.TemporaryDirectory(prefix="segment-bench-", ignore_cleanup_errors=True) as tmp:
        scratch = Path(tmp)
        env = child_env(scratch / "prefect-home")
        for path in args.input:
            print(f"benchmarking {path} ({args.repeat} run(s) each) ...", file=sys.stderr)
            rows.append((path, count_rows(path), benchmark(path, args.repeat, env, scratch)))

    table = markdown_table(rows, args.repeat)
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
