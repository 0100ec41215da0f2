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
        "",
        f"**Files**: `{manifest['output_folder']}`",
    ]
    return "\n".join(lines) + "\n"


def profiles_records(profiles: pd.DataFrame) -> list[dict]:
    """The profiles as JSON-ready rows, rounded for reading."""
    return [
        {
            key: (round(value, 3) if isinstance(value, float) else value)
            for key, value in row.items()
        }
        for row in profiles.to_dict(orient="records")
    ]
