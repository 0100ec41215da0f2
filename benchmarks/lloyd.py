"""The 10M Lloyd section: one scikit-learn K-Means (Lloyd) iteration on 10M x 2 float64, timed
three ways, against the memory bandwidth measured in the same process."""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from measure import log

from tasks.sample_data import planted_population

LLOYD_SIZE = 10_000_000


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

    log("Lloyd section: measuring memory bandwidth ...")
    bandwidth = measure_bandwidth(repeat)
    log(f"  {bandwidth}")

    segment, values = planted_population(LLOYD_SIZE, seed)
    x = np.column_stack([values["income"], values["score"]]).astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    x = np.ascontiguousarray((x - mean) / std)
    # Given centroids: the first five customers of the middle planted segment, a poor start, so
    # that Lloyd needs several iterations to converge (the difference below needs that).
    init = x[np.flatnonzero(segment == 2)[:5]].copy()
    del segment, values
    n, p = x.shape

    def fit(max_iter: int) -> KMeans:
        return KMeans(5, init=init, n_init=1, max_iter=max_iter, tol=0).fit(x)

    log("Lloyd section: KMeans fits ...")
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
        log(f"  private lloyd_iter_chunked_dense not available: {error}")

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
