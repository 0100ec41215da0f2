"""`segment assign`: new customers scored into a run's segments with its model.json.

Most tests fit a model with the run's own step functions (the flow's tasks call exactly these:
resolve the columns, read, clean, scale, fit, describe) so they take milliseconds; one test
under the Prefect harness runs the real flow, then the assign-segments flow on its output.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import model_like_a_run
from planted_tables import (
    mixed_marketing_table,
    wide_behaviour_table,
    write_planted_table,
)

from schemas.columns import DISTANCE, OUTLIER, SEGMENT_ID, SEGMENT_NAME
from segment.cli.main import EXIT_BAD_INPUT, EXIT_BAD_MODEL, EXIT_OK, EXIT_USAGE, main
from tasks.errors import InputError
from tasks.ingest import canonical_frame, expected_types, read_file, table_for_file
from tasks.model import model_to_json
from tasks.sample_data import generate_customers, write_sample_csv
from tasks.scoring.assign import ModelError, assign_file, read_model
from tasks.scoring.export import spreadsheet_safe, write_table_file

ROOT = Path(__file__).resolve().parents[1]


def fit_like_a_run(source: Path, folder: Path, k: int, **choices) -> tuple[Path, pd.DataFrame]:
    """A run's steps on ``source`` as plain functions: its model.json in ``folder`` and its
    segments table (what segments.parquet holds)."""
    table = table_for_file(source, **choices)
    raw = read_file(source, expected=expected_types(table))
    described = model_like_a_run(canonical_frame(raw, table), table, k)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(model_to_json(described.model), encoding="utf-8")
    return folder / "model.json", described.segments


@pytest.fixture(scope="module")
def mall(tmp_path_factory):
    """The embedded default customers (planted dirt included) and a model fitted on them."""
    folder = tmp_path_factory.mktemp("mall")
    source = folder / "customers.csv"
    write_sample_csv(generate_customers(n=3000), source)
    model, segments = fit_like_a_run(source, folder / "run", k=5)
    return source, model, segments


def assert_reproduces(model: Path, source: Path, segments: pd.DataFrame, output: Path) -> None:
    done = assign_file(model, source, output)
    assigned = pd.read_parquet(output)
    assert len(assigned) == len(segments) == done.assignment.rows_kept
    merged = segments.merge(assigned, on="customer_id", suffixes=("_run", ""), validate="1:1")
    assert len(merged) == len(segments)  # every customer of the run, no other
    np.testing.assert_array_equal(merged["segment_id_run"], merged[SEGMENT_ID])
    np.testing.assert_allclose(merged["distance_to_centroid_run"], merged[DISTANCE], atol=1e-9)
    assert (merged["segment_name_run"].astype(str) == merged[SEGMENT_NAME].astype(str)).all()
    assert not assigned[OUTLIER].any()  # a training customer lies within its segment's radius


# --- reproduction of the run's segments -----------------------------------------------------


def test_assigning_the_runs_own_input_reproduces_its_segment_ids_mall(mall, tmp_path):
    source, model, segments = mall
    assert_reproduces(model, source, segments, tmp_path / "out.parquet")


def test_reproduces_a_mixed_table_with_a_categorical_feature_and_median_fill(tmp_path):
    source = write_planted_table(mixed_marketing_table(n=1500), tmp_path / "marketing.tsv")
    model, segments = fit_like_a_run(
        source,
        tmp_path / "run",
        k=3,
        features=["Income", "MntWines", "NumWebPurchases", "Education"],
        profile=["Marital_Status", "Response"],
        missing="median",
    )
    stored = json.loads(model.read_text())
    assert {t["source"] for t in stored["transforms"] if t["category"]} == {"Education"}
    assert set(stored["fill_values"]) == set(stored["features"])  # every median column
    assert_reproduces(model, source, segments, tmp_path / "out.parquet")


def test_reproduces_a_pca_projection_of_a_wide_table(tmp_path):
    source = write_planted_table(wide_behaviour_table(n=1500), tmp_path / "cards.csv")
    model, segments = fit_like_a_run(
        source, tmp_path / "run", k=4, features=["numeric"], missing="median", pca=0.9
    )
    stored = json.loads(model.read_text())
    assert stored["projection"] and len(stored["segments"][0]["centroid_scaled"]) < len(
        stored["columns"]
    )
    assert_reproduces(model, source, segments, tmp_path / "out.parquet")


# --- new customers: outliers, quarantine, fill values, headers ------------------------------

MALL_HEADER = "CustomerID,Gender,Age,Annual Income (k$),Spending Score (1-100)\n"


def write_rows(path: Path, rows: list[str], header: str = MALL_HEADER) -> Path:
    path.write_text(header + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return path


def test_a_customer_beyond_every_training_radius_is_flagged_not_forced(mall, tmp_path):
    _, model, _ = mall
    source = write_rows(
        tmp_path / "new.csv", ["N1,Female,30,60,50", "N2,Male,40,5000,99", "N3,Male,40,20,80"]
    )
    assign_file(model, source, tmp_path / "out.parquet")
    assigned = pd.read_parquet(tmp_path / "out.parquet").set_index("customer_id")
    assert assigned[OUTLIER].to_dict() == {"N1": False, "N2": True, "N3": False}
    radius = max(s["max_distance"] for s in json.loads(model.read_text())["segments"])
    assert assigned.loc["N2", DISTANCE] > radius
    assert assigned.loc["N2", SEGMENT_ID] >= 1  # still given its nearest segment


def test_bad_rows_are_quarantined_beside_the_output_with_reasons(mall, tmp_path):
    _, model, _ = mall
    source = write_rows(
        tmp_path / "new.csv",
        [
            "N1,Female,30,60,50",
            "N2,Robot,30,60,50",  # unknown code
            "N3,Male,abc,60,50",  # not a number
            "N4,Male,30,,50",  # missing feature, quarantine policy
            "N5,Female,30,60,500",  # out of range
            "N1,Female,30,60,50",  # exact repeat: dropped and counted
            "N6,Male,31,61,51",
            "N6,Male,99,61,51",  # same id, other values: both quarantined
        ],
    )
    done = assign_file(model, source, tmp_path / "out.csv")
    result = done.assignment
    assert (result.rows_read, result.rows_kept, result.duplicates_dropped) == (8, 1, 1)
    assert done.quarantine_file == tmp_path / "out.quarantine.csv"
    quarantine = pd.read_csv(done.quarantine_file, dtype=str).set_index("source_row")
    reasons = quarantine["reason"].to_dict()
    assert "unknown code" in reasons["2"] and "Robot" in reasons["2"]
    assert "not a number" in reasons["3"]
    assert reasons["4"] == "annual_income: missing value"
    assert "must be <= 100" in reasons["5"]
    assert "id appears in rows 7, 8" in reasons["7"] and "7, 8" in reasons["8"]
    assert pd.read_csv(tmp_path / "out.csv", dtype=str)["customer_id"].tolist() == ["N1"]


def test_a_new_category_of_a_categorical_feature_is_quarantined(tmp_path):
    source = write_planted_table(mixed_marketing_table(n=800), tmp_path / "marketing.tsv")
    features = ["Income", "MntWines", "Education"]
    model, _ = fit_like_a_run(source, tmp_path / "run", k=3, features=features)
    frame = pd.read_csv(source, sep="\t", dtype=str).dropna(subset=["Income"]).head(3)
    frame.iloc[1, frame.columns.get_loc("Education")] = "Kindergarten"
    frame.to_csv(tmp_path / "new.tsv", sep="\t", index=False)
    done = assign_file(model, tmp_path / "new.tsv", tmp_path / "out.parquet")
    assert done.assignment.rows_kept == 2
    (reason,) = done.assignment.quarantine["reason"]
    assert "Education='Kindergarten': unknown code" in reason


def test_missing_values_are_filled_with_the_models_value_not_the_new_files(tmp_path):
    source = write_planted_table(mixed_marketing_table(n=800), tmp_path / "marketing.tsv")
    features = ["Income", "MntWines", "Education"]
    model, _ = fit_like_a_run(source, tmp_path / "run", k=3, features=features, missing="median")
    fill = json.loads(model.read_text())["fill_values"]["Income"]
    frame = pd.read_csv(source, sep="\t", dtype=str).head(4)
    frame["Income"] = ["1", "2", "3", None]  # the new file's median would be 2
    frame.to_csv(tmp_path / "new.tsv", sep="\t", index=False)
    done = assign_file(model, tmp_path / "new.tsv", tmp_path / "out.parquet")
    assert done.assignment.rows_kept == 4
    assert pd.read_parquet(tmp_path / "out.parquet")["Income"].iloc[3] == fill != 2.0


def test_headers_are_matched_like_the_run_and_a_missing_one_is_named(mall, tmp_path):
    _, model, _ = mall
    spelled = "customer_id,genre,age,annual_income,spending_score\n"  # the preset's aliases
    source = write_rows(tmp_path / "other.csv", ["N1,Female,30,60,50"], header=spelled)
    assert assign_file(model, source, tmp_path / "out.parquet").assignment.rows_kept == 1
    header = "CustomerID,Gender,Age,Annual Income (k$)\n"
    lacking = write_rows(tmp_path / "lacking.csv", ["N1,Female,30,60"], header=header)
    with pytest.raises(InputError, match=r"lacking\.csv: missing column\(s\).*Spending Score"):
        assign_file(model, lacking, tmp_path / "out.parquet")


def test_a_model_from_before_radii_and_fill_values_still_scores(mall, tmp_path):
    _, model, _ = mall
    old = json.loads(model.read_text())
    old.pop("fill_values")
    for segment in old["segments"]:
        segment.pop("max_distance")
    (tmp_path / "model.json").write_text(json.dumps(old))
    source = write_rows(tmp_path / "new.csv", ["N1,Female,30,60,50"])
    done = assign_file(tmp_path / "model.json", source, tmp_path / "out.parquet")
    assert not done.has_radii
    assert pd.read_parquet(tmp_path / "out.parquet")[OUTLIER].isna().all()  # unknown, not False


def test_a_value_the_models_transform_cannot_take_is_quarantined_not_scored(tmp_path):
    from schemas.spec import ColumnSpec, TableSpec

    rng = np.random.default_rng(5)
    train = pd.DataFrame(
        {
            "ID": [f"T{i}" for i in range(200)],
            "spend": np.round(rng.lognormal(3, 1, 200), 2),  # log1p, no lower bound checked
            "visits": rng.integers(1, 30, 200),
        }
    )
    train.to_csv(tmp_path / "train.csv", index=False)
    spec = TableSpec(features=("spend", "visits"), columns={"spend": ColumnSpec(transform="log1p")})
    model, _ = fit_like_a_run(tmp_path / "train.csv", tmp_path / "run", k=2, spec=spec)
    write_rows(
        tmp_path / "new.csv", ["N1,10,3", "N2,-5,3", "N3,-0.5,4"], header="ID,spend,visits\n"
    )
    done = assign_file(model, tmp_path / "new.csv", tmp_path / "out.parquet")
    assert pd.read_parquet(tmp_path / "out.parquet")["customer_id"].tolist() == ["N1", "N3"]
    (row,) = done.assignment.quarantine.to_dict("records")
    assert (row["source_row"], row["customer_id"], row["spend"]) == (2, "N2", "-5")
    assert row["reason"] == "spend=-5: outside what the model's log1p transform takes"


def test_a_file_of_only_bad_rows_writes_an_empty_output_and_the_full_quarantine(mall, tmp_path):
    _, model, _ = mall
    source = write_rows(tmp_path / "new.csv", ["N1,Robot,30,60,50", "N2,Female,30,60,"])
    done = assign_file(model, source, tmp_path / "out.parquet")  # no quarantine limit here
    assert done.assignment.rows_kept == 0
    assert pd.read_parquet(tmp_path / "out.parquet").columns[-4:].tolist() == [
        SEGMENT_ID, SEGMENT_NAME, DISTANCE, OUTLIER
    ]  # fmt: skip
    assert len(pd.read_parquet(done.quarantine_file)) == 2


# --- CSV safe for spreadsheets --------------------------------------------------------------


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_get_a_leading_apostrophe(tmp_path):
    risky = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    frame = pd.DataFrame(
        {
            "customer_id": pd.Series([*risky, "ok", None], dtype="str"),
            "segment_name": pd.Categorical(["=1+1"] * 4 + ["plain"] * 4),
            "spend": [-5.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        }
    )
    path = write_table_file(frame, tmp_path / "out.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["customer_id"] for r in rows] == [f"'{v}" for v in risky] + ["ok", ""]
    assert [r["segment_name"] for r in rows] == ["'=1+1"] * 4 + ["plain"] * 4
    assert rows[0]["spend"] == "-5"  # a number stays a number
    for row in rows:  # no text cell left that a spreadsheet would evaluate
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values()
                       if cell != row["spend"])  # fmt: skip
    assert spreadsheet_safe(frame)["customer_id"].iloc[6] == "ok"


def test_assign_csv_output_escapes_a_formula_in_a_customer_id(mall, tmp_path):
    _, model, _ = mall
    source = write_rows(tmp_path / "new.csv", ["\"=cmd|' /C calc'!A0\",Female,30,60,50"])
    assign_file(model, source, tmp_path / "out.csv")
    with (tmp_path / "out.csv").open(newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["customer_id"] == "'=cmd|' /C calc'!A0"


FORMULA_HEADERS = ['=HYPERLINK("http://h","inc")', "@SUM(1)prof", "-2+3"]


def test_assign_csv_escapes_formula_headers_in_output_and_quarantine(tmp_path):
    """Headers come from the input file: the header row of both CSVs is escaped like a cell."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"id": [f"c{i}" for i in range(200)]})
    for name, (mean, sd) in zip(FORMULA_HEADERS, [(50, 10), (5, 2), (0, 1)], strict=True):
        frame[name] = rng.normal(mean, sd, 200).round(1)
    frame.to_csv(tmp_path / "in.csv", index=False)
    model, _ = fit_like_a_run(tmp_path / "in.csv", tmp_path / "run", 2)
    new = frame.head(3).astype(str)
    new.iloc[0, 1] = "abc"  # one quarantined row
    new.to_csv(tmp_path / "new.csv", index=False)
    done = assign_file(model, tmp_path / "new.csv", tmp_path / "out.csv")
    for path in (tmp_path / "out.csv", done.quarantine_file):
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle))
        assert [f"'{name}" for name in FORMULA_HEADERS] == [h for h in header if h[:1] == "'"]
        assert not [h for h in header if h[:1] in {"=", "+", "-", "@", "\t", "\r"}], header
    assert len(pd.read_csv(done.quarantine_file)) == 1


# --- the command line: exit codes and one-line errors ---------------------------------------


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["assign", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_assigns_with_a_run_folder_or_its_output_folder(mall, tmp_path, capsys):
    source, model, segments = mall
    output = tmp_path / "outputs"
    (output / "runs").mkdir(parents=True)
    model.parent.rename(output / "runs" / "run-1")
    (output / "latest").symlink_to(Path("runs") / "run-1", target_is_directory=True)
    try:
        for given in (output / "latest", output):
            code, out, err = run_cli(
                capsys, "--model", str(given), "--input", str(source), "--output",
                str(tmp_path / "out.parquet"),
            )  # fmt: skip
            assert (code, err) == (EXIT_OK, "")
            assert f"Rows: 3,036 read = {len(segments):,} assigned + " in out
            assert "Outliers: 0 " in out and "out.quarantine.parquet" in out
    finally:
        (output / "runs" / "run-1").rename(model.parent)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not JSON"),
        ('{"format": "something-else/1"}', "not a customer-segmentation-model/1 model"),
        ('{"format": "customer-segmentation-model/1"}', "incomplete model, no table"),
    ],
    ids=["not-json", "other-format", "incomplete"],
)
def test_a_bad_model_exits_5_with_one_line(mall, tmp_path, capsys, content, expected):
    source, _, _ = mall
    (tmp_path / "model.json").write_text(content)
    code, _out, err = run_cli(
        capsys, "--model", str(tmp_path / "model.json"), "--input", str(source), "--output",
        str(tmp_path / "out.parquet"),
    )  # fmt: skip
    assert code == EXIT_BAD_MODEL
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out.parquet").exists()


def _set(path: str, value):
    """A change to a model's JSON: ``value`` at ``path`` (keys and list positions by dots)."""

    def change(model: dict) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = model
        for part in parents:
            node = node[part]
        node[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_set("segments.0.centroid_scaled.1", "1.5x"), "segments[0].centroid_scaled[1]"),
        (_set("segments.1.centroid_scaled", "0.1, 0.2"), "segments[1].centroid_scaled"),
        (_set("segments.0.centroid_scaled.0", float("nan")), "segments[0].centroid_scaled[0]"),
        (_set("transforms.0.scale", 0), "transforms[0].scale"),
        (_set("transforms.1.center", float("inf")), "transforms[1].center"),
        (_set("segments.2.centroid_scaled", [0.5]), "segments[2].centroid_scaled"),
        (_set("segments.0.max_distance", -1), "segments[0].max_distance"),
        (_set("segments.1.id", 1), "segments: an id appears twice"),
        (_set("transforms.0.kind", "sqrt"), "transforms[0].kind"),
    ],
    ids=[
        "centroid-text", "centroid-string", "centroid-nan", "scale-0", "center-inf",
        "centroid-short", "radius-negative", "repeated-id", "unknown-transform",
    ],
)  # fmt: skip
def test_a_defective_model_exits_5_naming_the_file_and_the_field(
    mall, tmp_path, capsys, change, field
):
    """Issue 21 item 13: the model is validated whole before scoring; a defect is the model's
    (exit 5 naming model.json and the field), never every row quarantined blaming the input."""
    source, model, _ = mall
    data = json.loads(model.read_text())
    change(data)
    broken = tmp_path / "model.json"
    broken.write_text(json.dumps(data))
    code, _out, err = run_cli(
        capsys, "--model", str(broken), "--input", str(source), "--output",
        str(tmp_path / "out.csv"),
    )  # fmt: skip
    assert code == EXIT_BAD_MODEL, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{broken}: invalid model: {field}" in err
    assert not (tmp_path / "out.csv").exists()


def test_a_deeply_nested_model_exits_5_not_a_recursion_traceback(mall, tmp_path, capsys):
    source, _, _ = mall
    broken = tmp_path / "model.json"
    nested = "[" * 100_000 + "]" * 100_000
    broken.write_text('{"format": "customer-segmentation-model/1", "table": ' + nested + "}")
    code, _out, err = run_cli(
        capsys, "--model", str(broken), "--input", str(source), "--output",
        str(tmp_path / "out.csv"),
    )  # fmt: skip
    assert code == EXIT_BAD_MODEL and err.count("\n") == 1
    assert f"{broken}: not a run's model.json (JSON nested too deeply)" in err


def test_a_folder_without_a_model_and_a_changed_model_are_refused(mall, tmp_path):
    _, model, _ = mall
    with pytest.raises(ModelError, match=r"no model\.json in this folder"):
        read_model(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.json").write_text(model.read_text())
    (run / "manifest.json").write_text(
        json.dumps({"files": {"model.json": {"sha256": "0" * 64, "bytes": 1}}})
    )
    with pytest.raises(ModelError, match="does not match the checksum"):
        read_model(run)


def test_bad_input_and_bad_usage_exit_3_and_2_with_one_line(mall, tmp_path, capsys):
    _, model, _ = mall
    base = ["--model", str(model), "--output", str(tmp_path / "out.parquet")]
    code, _, err = run_cli(capsys, *base, "--input", str(tmp_path / "missing.csv"))
    assert code == EXIT_BAD_INPUT and "missing.csv" in err and err.count("\n") == 1
    bad = write_rows(tmp_path / "bad.csv", ["N1,Female,30,60,50", "N2,Robot,30,60,50"])
    code, _, err = run_cli(capsys, *base, "--input", str(bad))
    assert code == EXIT_BAD_INPUT and "50.0% of rows quarantined" in err
    assert not (tmp_path / "out.parquet").exists()  # refused: nothing written
    code, _, err = run_cli(
        capsys, "--model", str(model), "--input", str(bad), "--output", str(tmp_path / "x.xlsx")
    )
    assert code == EXIT_USAGE and "must end in .parquet or .csv" in err
    assert "Traceback" not in err


# --- the Prefect flow -----------------------------------------------------------------------


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_assign_segments_flow_reproduces_a_real_runs_segments(tmp_path):
    """The real segmentation flow on the default customers, then the assign-segments flow on
    its latest run: every customer gets the segment id segments.parquet gave it."""
    from flows.assign import assign_segments
    from flows.segmentation import segment_customers
    from segment.settings import SegmentationSettings

    output = tmp_path / "outputs"
    segment_customers(SegmentationSettings(output_dir=output, k=5))
    summary = assign_segments(
        model=output / "latest", input=ROOT / "data" / "customers.csv", output=tmp_path / "a.csv"
    )
    segments = pd.read_parquet(output / "latest" / "segments.parquet")
    assigned = pd.read_csv(tmp_path / "a.csv", dtype={"customer_id": str})
    merged = segments.merge(assigned, on="customer_id", suffixes=("_run", ""), validate="1:1")
    assert len(merged) == len(segments) == summary["rows_kept"]
    assert (merged["segment_id_run"] == merged[SEGMENT_ID]).all()
    assert summary["quarantine"].endswith("a.quarantine.csv") and summary["outliers"] == 0
