"""Markdown and table summaries of a run, for the terminal and the Prefect UI."""

from __future__ import annotations

import base64
import hashlib
import re
import string
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.drift import NO_DRIFT
from tasks.identity import moved_words
from tasks.stability import stability_note, stability_word

# Markdown shown in the Prefect UI. Both its UIs (the classic one at /, the React one at /v2)
# render HTML inside Markdown (`<a href>`, `<b>`, `<img>`), and the /v2 one turns any text that
# reads like a URL or an e-mail address into a live link, even with its punctuation escaped
# (checked in headless Chromium, tests/test_hostile_text.py). So text from data (names, labels,
# headers, paths, ids) goes through `markdown_text`: HTML's special characters as entities, the
# other ASCII punctuation that Markdown reads inside a line backslash-escaped (so `|` stays
# inside its table cell), an empty HTML comment before `:`, `@` and after `www` so that nothing
# is linked, line breaks and tabs as spaces (a table row is one line; the classic UI shows a
# numeric entity such as `&#10;` as it is). `, . / ; % ? - + =` do nothing inside a line: left
# as they are.
# Table artifacts: the classic UI (Prefect's default) renders each cell of a table artifact as
# Markdown, so a name with `<a href>` would be a live link there; the /v2 UI shows cells as plain
# text. Text cells are escaped for the default one: /v2 then shows the escapes of a name with
# punctuation (`\(`, `&lt;`), never markup. Column headers are plain text in both: left as they are.
HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
INERT_IN_A_LINE = ",./;%?-+="
NO_LINK = "<!---->"
MARKDOWN_ESCAPES = {
    **{c: "\\" + c for c in string.punctuation if c not in INERT_IN_A_LINE},
    ":": NO_LINK + "\\:",
    "@": NO_LINK + "\\@",
    **HTML_ENTITIES,
    **dict.fromkeys("\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "),
}
MARKDOWN_TRANSLATION = str.maketrans(MARKDOWN_ESCAPES)
WWW = re.compile(r"(www)(?=\.)", re.IGNORECASE)


def markdown_text(value: object) -> str:
    """``value`` as Markdown that the Prefect UI shows as this very text, placed inside a line
    (never at its start): no link, no HTML, no emphasis, no table cell break (line breaks and
    tabs show as spaces)."""
    escaped = str(value).translate(MARKDOWN_TRANSLATION)
    return WWW.sub(r"\1" + NO_LINK, escaped)


# Plots shown in the run's summary in the Prefect UI, in this order, with their captions.
SUMMARY_PLOTS = {
    "elbow.png": "Elbow: inertia and silhouette by k",
    "segments.png": "Customers by segment",
    "transitions.png": "Where customers went since the previous run",
}


def artifact_key(base: str, output_dir: str | Path, *, deployment: bool) -> str:
    """The key of a run's artifact in the Prefect UI, where a key's versions form a history.

    Runs of a deployment (the nightly one) use ``base`` itself. Ad-hoc runs use
    ``<base>-adhoc-<folder>-<hash>``, from their output folder's name and full path: runs into
    one folder share a history, and never mix into the nightly one or another folder's.
    Keys hold lowercase letters, digits and dashes only (Prefect's rule)."""
    if deployment:
        return base
    folder = Path(output_dir)
    name = re.sub(r"[^a-z0-9]+", "-", folder.name.lower()).strip("-")[:24].strip("-")
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
    return "-".join(part for part in (base, "adhoc", name, digest) if part)


# More than this share of the rows read dropped as exact duplicates: the summaries warn.
MOSTLY_DUPLICATES = 0.5


def duplicates_warning(rows: Mapping[str, int]) -> str | None:
    """A warning when most rows read were exact duplicates (e.g. one file pasted many times
    over): the run goes on, on the distinct rows, but someone should look at the file."""
    read, dropped = rows["rows_read"], rows["duplicates_dropped"]
    if not read or dropped / read <= MOSTLY_DUPLICATES:
        return None
    return (
        f"Warning: {dropped:,} of the {read:,} rows read ({dropped / read:.1%}) were exact "
        "duplicates and were dropped; check how the file was produced"
    )


MALL_MEANS = {"annual_income": "income (k$)", "spending_score": "spending score"}
MAX_MEAN_COLUMNS = 4  # feature means shown in the summary's segment table


def summary_markdown(
    manifest: dict,
    profiles: pd.DataFrame,
    images: Mapping[str, bytes] | None = None,
    means: Mapping[str, str] | None = None,
    database: str | None = None,
) -> str:
    """A run summary: chosen k and why, segments (with their stability), row accounting,
    changes, the membership history's database, files, and plots.

    ``images`` (PNG bytes by file name) are embedded as data URIs: the Prefect UI renders them
    with no file server and no network (checked in headless Chromium), unlike image artifacts,
    which only hold a URL. ``means``: column -> label of the feature means shown per segment
    (default: the Mall's income and spending score).
    """
    means = dict(list((means or MALL_MEANS).items())[:MAX_MEAN_COLUMNS])
    stable = "stability" in profiles.columns  # tasks.stability's score per segment
    rows = manifest["rows"]
    choice = manifest["k"]
    lines = [
        f"# Customer segmentation: {markdown_text(manifest['run_id'])}",
        "",
        f"**{choice['chosen']} segments** from {markdown_text(manifest['input']['path'])} "
        f"(rule: {choice['rule']}; {choice['reason']}).",
        "",
        "| segment | name | customers | share | "
        + "".join(f"mean {markdown_text(label)} | " for label in means.values())
        + ("stability |" if stable else ""),
        "|---:|---|---:|---:|" + "---:|" * len(means) + ("---|" if stable else ""),
    ]
    for p in profiles.to_dict(orient="records"):
        cells = "".join(f"{number(p[f'{column}_mean'])} | " for column in means)
        if stable:
            cells += f"{p['stability']:.2f} {stability_word(p['stability'])} |"
        lines.append(
            f"| {p['segment_id']} | {markdown_text(p['segment_name'])} | {p['size']:,} | "
            f"{p['share']:.1%} | " + cells
        )
    if stable:
        lines += ["", stability_note()]
    lines += [
        "",
        "**Rows**: "
        f"{rows['rows_read']:,} read = {rows['rows_kept']:,} segmented + "
        f"{rows['rows_quarantined']:,} quarantined + "
        f"{rows['duplicates_dropped']:,} exact duplicates dropped.",
    ]
    warning = duplicates_warning(rows)
    if warning is not None:
        lines += ["", f"**{warning}**"]
    orders = manifest.get("transactions")
    if orders:  # order lines: their accounting too (tasks/orders/transactions.py)
        from tasks.orders.transactions import accounting_line

        no_id, read = orders["lines"]["lines_without_customer_id"], orders["lines"]["lines_read"]
        lines += [
            "",
            f"**Order lines**: {accounting_line(orders['lines'])}; {no_id:,} "
            f"({no_id / read:.1%}) had no customer id. Snapshot date "
            f"{orders['snapshot_date']}; "
            f"{orders['customers']['customers_without_purchases']:,} customers with no "
            "purchase line (only cancellations or non-positive lines).",
        ]
    lines += _changes_lines(manifest.get("changes"))
    lines += _drift_lines(manifest.get("drift"))
    if database is not None:
        lines += ["", database]
    lines += [
        "",
        f"**Files**: {markdown_text(manifest['output_folder'])}",
        "",
        f"**Report**: {markdown_text(Path(manifest['output_folder']) / 'report.html')} (open it "
        "in a browser: "
        "segments explained, how k was chosen, changes, data quality; no network needed)",
    ]
    for name, caption in SUMMARY_PLOTS.items():
        if images and name in images:
            lines += ["", f"## {caption}", "", f"![{caption}]({png_data_uri(images[name])})"]
    return "\n".join(lines) + "\n"


# The summary's database line while the membership history is being written (publish-run
# creates the summary before publish-db writes; publish-db then puts its outcome in its place).
DATABASE_PENDING = "writing the membership history after the run folder was published ..."


def database_line(database: str, outcome: str = DATABASE_PENDING) -> str:
    """The summary's line on ``--publish-db``: the database (its URL without a password) and
    what the publication wrote there (``tasks.store.membership_db.Published.tables``)."""
    return f"**Database** {markdown_text(database)}: {markdown_text(outcome)}"


def replace_database_line(markdown: str, database: str, outcome: str) -> str:
    """``markdown`` (a summary with the pending ``database_line``) with ``outcome`` instead."""
    pending = database_line(database)
    if pending not in markdown:
        raise ValueError("the summary has no pending database line")
    return markdown.replace(pending, database_line(database, outcome), 1)


def summary_means(table) -> dict[str, str]:
    """Feature means the summary shows: numeric features with their labels and units."""
    return {c.name: c.titled() for c in table.features if c.numeric}


def number(value: float | None, digits: int = 1) -> str:
    """A number for reading: thousands separated, ``digits`` decimals (3 significant digits
    below 1), "n/a" when missing."""
    if value is None or pd.isna(value):
        return "n/a"
    return f"{value:,.{digits}f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"


def png_data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI for markdown."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def gate_failure_markdown(run_id: str, breaches: list[str]) -> str:
    """What the UI shows for a run stopped by a quality gate."""
    lines = [
        f"# Customer segmentation: {markdown_text(run_id)} failed a quality gate",
        "",
        "Nothing was published; `outputs/latest` still names the previous good run.",
        "",
    ]
    return "\n".join(lines + [f"- {breach}" for breach in breaches]) + "\n"


def assignment_markdown(summary: dict, names: Mapping[int, str]) -> str:
    """What the UI shows for an assign-segments run: customers per segment, the row
    accounting (read = assigned + quarantined + duplicates), outliers and the files written."""
    rows = "\n".join(
        f"| {i} | {markdown_text(names[i])} | {summary['segments'].get(i, 0):,} |"
        for i in sorted(names)
    )
    lines = ""
    if summary.get("lines"):  # order lines: their accounting first
        from tasks.orders.transactions import accounting_line

        lines = f"Order lines: {accounting_line(summary['lines'])}\n\n"
    return (
        f"# New customers assigned\n\nModel: {markdown_text(summary['model'])}\n\n"
        "| id | segment | customers |\n| ---: | --- | ---: |\n"
        f"{rows}\n\n{lines}"
        f"Rows: {summary['rows_read']:,} read = {summary['rows_kept']:,} assigned + "
        f"{summary['rows_quarantined']:,} quarantined + {summary['duplicates_dropped']:,} "
        f"duplicates; outliers: {summary['outliers']:,}\n\n"
        f"Output: {markdown_text(summary['output'])}; quarantine: "
        f"{markdown_text(summary['quarantine'])}\n"
    )


def _changes_lines(changes: dict | None) -> list[str]:
    """What changed since the previous run, or a note that this is the first run."""
    if changes is None:
        return ["", "**Since the previous run**: this is the first run; segment ids start at 1."]
    if changes.get("features_changed"):
        new = ", ".join(map(str, changes["new_segment_ids"]))
        return [
            "",
            f"**Since the previous run** ({markdown_text(changes['previous_run_id'])}): it "
            "clustered on other "
            f"columns, so customers are not compared and segments start afresh (new ids {new}).",
        ]
    ari = changes["adjusted_rand_index"]
    lines = [
        "",
        f"**Since the previous run** ({markdown_text(changes['previous_run_id'])}): "
        f"{moved_words(changes)}; adjusted Rand index "
        f"{'n/a' if ari is None else f'{ari:.3f}'}; {changes['customers_joined']:,} joined, "
        f"{changes['customers_left']:,} left.",
    ]
    if changes["new_segment_ids"]:
        lines.append(f"New segments: {', '.join(map(str, changes['new_segment_ids']))}.")
    if changes["retired_segment_ids"]:
        retired = ", ".join(map(str, changes["retired_segment_ids"]))
        lines.append(f"Retired segments: {retired}.")
    lines += [
        "",
        "| segment | size change | centroid shift (scaled) |",
        "|---:|---:|---:|",
    ]
    shift = {int(k): v for k, v in changes["centroid_shift"].items()}
    for segment_id, delta in sorted((int(k), v) for k, v in changes["size_change"].items()):
        if segment_id in changes["new_segment_ids"]:
            moved = "new"
        elif segment_id in changes["retired_segment_ids"]:
            moved = "retired"
        else:
            moved = f"{shift[segment_id]:.3f}"
        lines.append(f"| {segment_id} | {delta:+,} | {moved} |")
    return lines


def _drift_lines(drift: dict | None) -> list[str]:
    """The drift since the previous run: its sentences, then each feature's overall figures."""
    if drift is None:
        return []
    said = [markdown_text(sentence) for sentence in drift["sentences"]]
    lines = [
        "",
        "**Drift since the previous run**: " + ("; ".join(said) if said else f"{NO_DRIFT}."),
    ]
    lines += ["", "| feature | PSI | KS | previous mean | mean |", "|---|---:|---:|---:|---:|"]
    for f in drift["features"]:
        lines.append(
            f"| {markdown_text(f['label'])} | {number(f['psi'], 3)} | {number(f['ks'], 3)} | "
            f"{number(f['previous_mean'])} | {number(f['mean'])} |"
        )
    return lines


def transitions_records(transitions: pd.DataFrame, names: Mapping[int, str]) -> list[dict]:
    """The transition counts as rows with the current segment's name, for a table artifact
    (the name through `markdown_text`: see the note on table artifacts above markdown_text)."""
    return [
        {
            "previous_segment_id": int(row.previous_segment_id),
            "segment_id": int(row.segment_id),
            "segment_name": markdown_text(names[int(row.segment_id)]),
            "customers": int(row.customers),
        }
        for row in transitions.itertuples()
    ]


def profiles_records(profiles: pd.DataFrame) -> list[dict]:
    """The profiles as JSON-ready rows for the UI's table: shares (``share``,
    ``<column>_<value>_share``) as percentages (``"12.5%"``), other numbers rounded for reading
    (one decimal; three significant digits below 1), missing values empty, text through
    `markdown_text` (see the note on table artifacts above markdown_text)."""
    return [
        {key: _cell(key, value) for key, value in row.items()}
        for row in profiles.to_dict(orient="records")
    ]


def _cell(key: str, value: object) -> object:
    if isinstance(value, str):
        return markdown_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        if pd.isna(number):
            return None
        if key == "share" or key.endswith("_share"):
            return f"{number:.1%}"
        if abs(number) >= 1 or number == 0:
            return round(number, 1)
        return float(f"{number:.3g}")
    return value
