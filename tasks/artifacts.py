"""Markdown and table summaries of a run, for the terminal and the Prefect UI."""

from __future__ import annotations

import pandas as pd


def summary_markdown(manifest: dict, profiles: pd.DataFrame) -> str:
    """A run summary: chosen k and why, segments, row accounting, where the files are."""
    rows = manifest["rows"]
    choice = manifest["k"]
    lines = [
        f"# Customer segmentation: {manifest['run_id']}",
        "",
        f"**{choice['chosen']} segments** from `{manifest['input']['path']}` "
        f"(rule: {choice['rule']}; {choice['reason']}).",
        "",
        "| segment | name | customers | share | mean income (k$) | mean spending score |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for p in profiles.itertuples():
        lines.append(
            f"| {p.segment_id} | {p.segment_name} | {p.size:,} | {p.share:.1%} | "
            f"{p.annual_income_mean:.1f} | {p.spending_score_mean:.1f} |"
        )
    lines += [
        "",
        "**Rows**: "
        f"{rows['rows_read']:,} read = {rows['rows_kept']:,} segmented + "
        f"{rows['rows_quarantined']:,} quarantined + "
        f"{rows['duplicates_dropped']:,} exact duplicates dropped.",
    ]
    lines += _changes_lines(manifest.get("changes"))
    lines += ["", f"**Files**: `{manifest['output_folder']}`"]
    return "\n".join(lines) + "\n"


def _changes_lines(changes: dict | None) -> list[str]:
    """What changed since the previous run, or a note that this is the first run."""
    if changes is None:
        return ["", "**Since the previous run**: this is the first run; segment ids start at 1."]
    ari = changes["adjusted_rand_index"]
    lines = [
        "",
        f"**Since the previous run** (`{changes['previous_run_id']}`): "
        f"{changes['customers_moved']:,} of {changes['customers_in_both']:,} returning customers "
        f"changed segment ({changes['moved_share']:.1%}); adjusted Rand index "
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


def profiles_records(profiles: pd.DataFrame) -> list[dict]:
    """The profiles as JSON-ready rows, rounded for reading."""
    return [
        {
            key: (round(value, 3) if isinstance(value, float) else value)
            for key, value in row.items()
        }
        for row in profiles.to_dict(orient="records")
    ]
