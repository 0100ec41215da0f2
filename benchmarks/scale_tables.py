"""The scale benchmark's results and its markdown tables: per size, the plain script's and
``segment run``'s medians side by side, and the flow's time per step."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from scale_data import Dataset


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


def label(dataset: Dataset) -> str:
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
            label(dataset),
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
        lines.append(f"| {label(dataset)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _median_step(results: list[RunResult], name: str) -> float | None:
    values = [r.steps[name] for r in results if name in r.steps]
    return statistics.median(values) if values else None


def contention_line(rows: list) -> str:
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
        f"at most {100 * share:.0f} % of one core ({name}, {label(dataset)}); median "
        f"{100 * statistics.median(s for s, _, _ in shares):.0f} %."
    )


def is_failure(result: RunResult) -> bool:
    return bool(result.note) and not result.note.startswith(("skipped", "not run"))


def describe(result: RunResult) -> str:
    if result.process is None:
        return result.note or "no result"
    extra = "" if result.ari is None else f", ARI {result.ari:.4f}"
    return (
        f"{result.process:.2f} s process, {result.work:.3f} s work, peak RSS "
        f"{result.max_rss_mib:.0f} MiB (tree {result.tree_peak_mib:.0f} MiB), k={result.k}, "
        f"inertia {result.inertia:.6g}{extra} (load before {result.load_before:.2f}, other "
        f"processes used {100 * result.others_cpu_share:.0f} % of a core meanwhile)"
    )
