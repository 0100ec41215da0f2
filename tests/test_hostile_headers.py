"""Hostile headers and small tables end to end (issue 21): `segment init` and `segment run`
through ``segment.cli.main.main``, in this process, under the session's throw-away Prefect
server."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import flows.segmentation  # noqa: F401 - Prefect sets up its log handlers on import: before capsys
from segment.cli.main import EXIT_OK, main
from tasks.store.run_files import latest_run


def two_groups_csv(path: Path, headers: list[str], n: int = 120) -> Path:
    """An ``id`` column and one numeric column per header, in two well-separated groups."""
    rng = np.random.default_rng(7)
    group = np.arange(n) % 2
    columns = {
        header: np.round(np.where(group == 1, 80.0, 20.0) + rng.normal(0, 3, n) + 5 * i, 1)
        for i, header in enumerate(headers)
    }
    frame = pd.DataFrame({"id": np.arange(1, n + 1)} | columns)
    frame.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
    return path


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_init_then_run_with_its_spec_keeps_headers_with_line_breaks_quotes_and_tabs(
    tmp_path, capsys
):
    headers = ["inc\nome", 'sp"end', "back\\slash", "t\tab"]
    data = two_groups_csv(tmp_path / "hostile.csv", headers)
    spec = tmp_path / "spec.toml"
    assert main(["init", "--input", str(data), "--output", str(spec)]) == EXIT_OK, (
        capsys.readouterr().err
    )

    output = tmp_path / "outputs"
    code = main(["run", "--input", str(data), "--spec", str(spec), "--output", str(output)])
    assert code == EXIT_OK, capsys.readouterr().err
    segments = pd.read_parquet(latest_run(output) / "segments.parquet")
    assert set(headers) <= set(segments.columns)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_a_table_with_one_feature_is_segmented_with_its_report(tmp_path, capsys):
    data = two_groups_csv(tmp_path / "one.csv", ["income"])
    output = tmp_path / "outputs"
    code = main(["run", "--input", str(data), "--output", str(output)])
    assert code == EXIT_OK, capsys.readouterr().err
    run = latest_run(output)
    segments = pd.read_parquet(run / "segments.parquet")
    assert len(segments) == 120 and segments["segment_id"].nunique() >= 2
    assert (run / "segments.png").read_bytes().startswith(b"\x89PNG")
    assert (run / "report.html").is_file()


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_headers_with_dollars_carets_backslashes_and_braces_are_plotted_as_written(
    tmp_path, capsys
):
    headers = ["income_$", "spend_$", "x^{2} \\beta"]
    data = two_groups_csv(tmp_path / "dollars.csv", headers)
    output = tmp_path / "outputs"
    code = main(["run", "--input", str(data), "--output", str(output)])
    assert code == EXIT_OK, capsys.readouterr().err
    run = latest_run(output)
    for name in ("segments.png", "profiles.png", "eda.png"):
        assert (run / name).read_bytes().startswith(b"\x89PNG"), name
    assert set(headers) <= set(pd.read_parquet(run / "segments.parquet").columns)
