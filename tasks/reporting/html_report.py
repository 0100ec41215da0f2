"""``report.html``: one self-contained page a marketer opens, rendered from a Jinja2 template.

The page needs no network and no JavaScript: the stylesheet is inlined, the plots are the
run's own PNG bytes as ``data:`` URIs, and a Content-Security-Policy forbids every fetch
(``default-src 'none'``) should anything try. The numbers come from
``tasks.reporting.explain``; this module only gathers them into the template's context and
renders it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from schemas.columns import REASON
from tasks.clean import RowAccounting
from tasks.describe import Outcome
from tasks.drift import NO_DRIFT
from tasks.elbow import KChoice
from tasks.identity import moved_words
from tasks.reporting import explain
from tasks.reporting.artifacts import duplicates_warning, number, png_data_uri
from tasks.stability import stability_note, stability_word
from tasks.store.snapshots import snapshot_date
from tasks.table import ColumnPlan

REPORT = "report.html"
TEMPLATES = Path(__file__).with_name("templates")
# Plots in the report, by file name (as tasks.reporting.plots.run_figures writes them), captioned.
PLOTS = {
    "segments.png": "Customers by segment",
    "elbow.png": "Inertia and silhouette by k",
    "transitions.png": "Where returning customers went since the previous run",
}
RULES = {
    "fixed": "fixed by the run's settings (--k)",
    "elbow": "the elbow rule (the knee of the inertia curve)",
    "silhouette": "the best silhouette score among the allowed k",
}
MAX_MOVES = 10  # largest moves between segments listed
TOP_VALUES = 5  # a category with more values shows the segment's top 5 and "other"
FLAG_VALUES = ("0", "1")  # a 0/1 flag: shown by its rate, one row among the card's flags


@dataclass(frozen=True)
class Card:
    """One segment as the report shows it."""

    id: int
    name: str
    size: int
    share: float
    sentence: str
    differences: list[explain.Difference]
    shares: list[tuple[str, bool, list[explain.Share]]]  # (label, is a feature, values)
    typical: list[tuple[str, float]]
    rates: list[explain.Share]  # 0/1 flags: each flag's share of 1s (its rate)
    stability: float | None = None  # tasks.stability; None in profiles without it

    @property
    def stability_word(self) -> str:
        return "" if self.stability is None else stability_word(self.stability)


@dataclass(frozen=True)
class ReportSample:
    """A partitioned run's seeded sample for its report: the sampled customers
    (``population``) and their ``customer_id``, ``segment_id`` and ``distance_to_centroid``
    (``assigned``)."""

    population: pd.DataFrame
    assigned: pd.DataFrame


def _moved(changes: dict | None) -> str:
    """Who changed segment, in words (none for a first run or after the features changed:
    customers are not compared then)."""
    return moved_words(changes) if changes and "customers_moved" in changes else ""


def run_report(
    run_id: str,
    source: Path,
    accounting: RowAccounting,
    outcome: Outcome,
    table: ColumnPlan,
    images: dict[str, bytes],
    sample: ReportSample | None = None,
    order_lines: Mapping[str, Any] | None = None,
) -> str:
    """report.html of a run (both flows): ``accounting`` is the cleaning's result (a
    ``CleanResult``, or a partitioned run's ``Partitions``); ``outcome``: its elbow sweep,
    chosen k and described segments; ``images``: PNG bytes by file name (the run's plots, not
    drawn again). The medians and spreads of all customers and the typical ones are drawn
    from the in-memory run's customers and segments table, or from a partitioned run's
    ``sample``. ``order_lines``: for a run on order lines, the derivation's
    ``manifest_record()`` (line accounting, quarantine reasons, customers), shown in the data
    quality section before the derived customers' rows."""
    elbow, choice, described = outcome.elbow, outcome.choice, outcome.described
    population = accounting.customers if sample is None else sample.population
    sampled = sample is not None and len(population) < accounting.rows_kept
    assigned = described.segments if sample is None else sample.assigned
    rows = accounting.accounting()
    cards = segment_cards(described.profiles, population, assigned, table, described.effects)
    context = {
        "run_id": run_id,
        "source": str(source),
        "data_date": data_date(source),
        "customers": int(rows["rows_kept"]),
        "k": choice.k,
        "k_sentence": k_sentence(choice),
        "how_to_read": explain.how_to_read(),
        "stability_note": stability_note(),
        "reason": choice.reason,
        "sweep": elbow.loc[:, ["k", "inertia", "silhouette", "min_share"]].to_dict("records"),
        "features": [c.titled() for c in table.features],
        "profile": [c.titled() for c in table.profile],
        "sampled": sampled,
        "sample_size": len(population),
        "cards": cards,
        "names": {card.id: card.name for card in cards},
        "changes": described.changes,
        "moved": _moved(described.changes),
        "moves": largest_moves(described.transitions),
        "drift": outcome.drift,
        "no_drift": NO_DRIFT,
        "rows": rows,
        "duplicates_warning": duplicates_warning(rows),
        "reasons": quarantine_reasons(accounting.quarantine),
        "missing_filled": getattr(accounting, "missing_filled", {}),
        "order_lines": order_lines,
        "images": {name: png_data_uri(png) for name, png in images.items() if name in PLOTS},
        "captions": PLOTS,
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return report_template().render(**context)


@cache
def report_template():
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        number=number, percent=percent, signed=signed, thousands="{:,}".format
    )
    environment.globals["stylesheet"] = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return environment.get_template("report.html.j2")


def segment_cards(
    profiles: pd.DataFrame,
    population: pd.DataFrame,
    assigned: pd.DataFrame,
    table: ColumnPlan,
    effects: pd.DataFrame | None = None,
) -> list[Card]:
    """A card per segment: size, share, differences (the features' z from ``effects``), the
    sentence (the profiles' ``summary``), shares, typical customers."""
    numeric, _ = explain.compared_columns(profiles, table)
    spread = explain.population_spread(population, numeric)
    differences = explain.differences(profiles, spread, table, effects)
    shares = explain.shares(profiles, table)
    typical = explain.typical_customers(
        assigned["customer_id"],
        assigned["segment_id"].to_numpy(),
        assigned["distance_to_centroid"].to_numpy(),
    )
    cards = []
    for row in profiles.itertuples():
        segment_id = int(row.segment_id)
        cards.append(
            Card(
                id=segment_id,
                name=str(row.segment_name),
                size=int(row.size),
                share=float(row.share),
                sentence=str(row.summary),
                differences=differences[segment_id],
                shares=[
                    (label, feature, top_values(values))
                    for label, feature, values in by_column(shares[segment_id])
                    if not is_flag(values)
                ],
                typical=typical.get(segment_id, []),
                rates=[
                    values[1] for _, _, values in by_column(shares[segment_id]) if is_flag(values)
                ],
                stability=_stability(row),
            )
        )
    return cards


def _stability(row: object) -> float | None:
    value = getattr(row, "stability", None)
    return None if value is None or pd.isna(value) else float(value)


def by_column(shares: list[explain.Share]) -> list[tuple[str, bool, list[explain.Share]]]:
    """The shares grouped by column, in table order: (label, is a feature, values)."""
    grouped: dict[str, tuple[str, bool, list[explain.Share]]] = {}
    for share in shares:
        grouped.setdefault(share.column, (share.label, share.feature, []))[2].append(share)
    return list(grouped.values())


def is_flag(values: list[explain.Share]) -> bool:
    """A 0/1 flag's shares (values "0" and "1"): the card shows its rate, the share of 1s."""
    return tuple(s.value for s in values) == FLAG_VALUES


def top_values(values: list[explain.Share], top: int = TOP_VALUES) -> list[explain.Share]:
    """Every value of a category with up to ``top + 1`` values, in its order; of one with more,
    the ``top`` with the largest share in the segment or among all customers (so a value the
    segment lacks shows as well as one it has most of), in the category's order, and one
    "other (N values)" row adding up the rest, in the segment and among all customers."""
    if len(values) <= top + 1:
        return values
    largest = sorted(range(len(values)), key=lambda i: -max(values[i].share, values[i].overall))
    kept = set(largest[:top])
    rest = [v for i, v in enumerate(values) if i not in kept]
    other = explain.Share(
        column=rest[0].column,
        label=rest[0].label,
        value=f"other ({len(rest)} values)",
        feature=rest[0].feature,
        share=sum(v.share for v in rest),
        overall=sum(v.overall for v in rest),
        z=0.0,
    )
    return [v for i, v in enumerate(values) if i in kept] + [other]


def k_sentence(choice: KChoice) -> str:
    """How k was chosen, in one sentence."""
    rule = RULES.get(choice.rule, choice.rule)
    return f"{choice.k} segments, chosen by {rule}: {choice.reason}."


def data_date(source: Path) -> str:
    """The date of the data: a dated snapshot's date, else the file's (or folder's) last
    modification, said as such."""
    day = snapshot_date(source)
    if day is not None:
        return f"{day:%Y-%m-%d} (snapshot date)"
    try:
        modified = datetime.fromtimestamp(source.stat().st_mtime, UTC)
    except OSError:
        return "unknown"
    return f"{modified:%Y-%m-%d} (file last modified)"


_REASON_ROWS = re.compile(r"rows [\d, ]+ with")


def quarantine_reasons(quarantine: pd.DataFrame) -> list[tuple[str, int]]:
    """Quarantined rows counted by reason (column and check, without the row's value), most
    frequent first. A row with several problems counts once under each."""
    if quarantine.empty:
        return []
    parts = quarantine[REASON].astype("str").str.split("; ").explode()
    counts = Counter(_reason_kind(part) for part in parts)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _reason_kind(reason: str) -> str:
    """``annual_income=-5: must be >= 0`` -> ``annual_income: must be >= 0``."""
    head, sep, what = reason.partition(": ")
    if not sep:
        return reason
    column = head.split("=", 1)[0]
    return f"{column}: {_REASON_ROWS.sub('other rows with', what)}"


def largest_moves(transitions: pd.DataFrame, n: int = MAX_MOVES) -> list[tuple[int, int, int]]:
    """The largest moves between two different segments: (from id, to id, customers)."""
    if transitions.empty:
        return []
    moved = transitions.loc[transitions["previous_segment_id"] != transitions["segment_id"]]
    moved = moved.sort_values(
        ["customers", "previous_segment_id", "segment_id"], ascending=[False, True, True]
    )
    return [
        (int(r.previous_segment_id), int(r.segment_id), int(r.customers))
        for r in moved.head(n).itertuples()
        if r.customers > 0
    ]


def percent(value: float | None) -> str:
    if value is None or np.isnan(value):
        return "n/a"
    return f"{value:.1%}"


def signed(value: float | None, digits: int = 2) -> str:
    if value is None or np.isnan(value):
        return "n/a"
    return f"{value:+.{digits}f}"
