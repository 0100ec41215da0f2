"""Running a benchmarked process and measuring it: wall time, peak RSS, the summed RSS of its
process tree (psutil, sampled), and how busy the rest of the machine was meanwhile."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SECONDS = 0.2
TIME = "/usr/bin/time"  # GNU time: peak RSS of the process it starts
MIB = 1024 * 1024
PACKAGES = ("numpy", "pandas", "scikit-learn", "pyarrow", "prefect", "threadpoolctl", "kneed")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


def segment_command() -> Path:
    bin_dir = Path(sys.executable).parent
    path = bin_dir / "segment"
    if not path.is_file():
        sys.exit(f"error: `segment` not found in {bin_dir}; run `make install` first")
    return path


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


def tree_rss_bytes(root: psutil.Process) -> int:
    """Summed RSS of ``root`` and all its descendants (shared pages are counted per process)."""
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for process in processes:
        with contextlib.suppress(psutil.Error):  # exited meanwhile
            total += process.memory_info().rss
    return total


class TreeSampler(threading.Thread):
    """Samples the process tree's summed RSS every ``SAMPLE_SECONDS`` until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
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
        busy0, self0 = _machine_busy_seconds(), _own_cpu()
        start = time.perf_counter()
        process = subprocess.Popen(wrapped, env=env, stdout=out, stderr=err, start_new_session=True)
        sampler = TreeSampler(process.pid)
        sampler.start()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the session this benchmark started

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        timer.cancel()
        sampler.stop()
        machine_cpu = _machine_busy_seconds() - busy0
        others = machine_cpu - (usage.ru_utime + usage.ru_stime) - (_own_cpu() - self0)
        process.returncode = os.waitstatus_to_exitcode(status)
    max_rss_kib = float(usage.ru_maxrss)  # fallback without /usr/bin/time: may be too high
    if wrapped is not command:
        with contextlib.suppress(OSError, ValueError, IndexError):
            max_rss_kib = float(rss_path.read_text().strip().splitlines()[-1])
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
    """CPU seconds of this benchmark process (its sampler threads)."""
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy so far, all cores (user, nice, system, irq)."""
    times = psutil.cpu_times()
    irq = getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)  # Linux only
    return times.user + times.nice + times.system + irq


def wait_until_quiet(max_load: float, max_wait: float) -> float:
    """Wait while the machine is busy (load average or a busy core); return the load then."""
    deadline = time.monotonic() + max_wait
    while True:
        load = os.getloadavg()[0]
        busy = psutil.cpu_percent(interval=2.0) / 100 * (os.cpu_count() or 1)  # cores busy
        if load <= max_load and busy < 0.5:
            return load
        if time.monotonic() > deadline:
            log(f"warning: still busy (load {load:.2f}, {busy:.2f} cores busy); going on")
            return load
        log(f"machine busy (load {load:.2f}, {busy:.2f} cores busy); waiting ...")
        time.sleep(15)


def machine_info() -> dict:
    """CPU, memory, kernel, package versions, BLAS/OpenMP thread pools and the git revision."""
    import sklearn.cluster  # noqa: F401  (loads its OpenMP runtime for threadpool_info)
    import threadpoolctl

    from tasks.store.manifest import package_versions

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
        "cpu": _first_line("/proc/cpuinfo", "model name") or platform.processor(),
        "cores": os.cpu_count(),
        "memory": f"{psutil.virtual_memory().total // 1024} kB",
        "kernel": platform.release(),
        "versions": package_versions(PACKAGES),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "threadpools": pools,
    }


def _first_line(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
