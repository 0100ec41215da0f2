"""The Dask path: `--runner dask` on a real LocalCluster (scheduler and worker processes on
127.0.0.1) gives the same segments as the local path; partition logic checked on its own."""

from __future__ import annotations

import html
import json

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from helpers import MALL_QUARANTINE, MALL_SEGMENTS, read_customers
from planted_tables import mixed_marketing_table, write_planted_table
from sklearn.metrics import adjusted_rand_score

from flows.runners import flow_for, prefect_api_for_workers
from flows.segmentation import segment_customers
from segment.cli import main as cli
from segment.settings import SegmentationSettings
from tasks import partitioned
from tasks.clean import clean_customers
from tasks.describe import FittedRows, describe_segments
from tasks.errors import InputError
from tasks.fit import fit_segments
from tasks.gates import GateError
from tasks.ingest import read_file, table_for_file
from tasks.profile import named_profiles, profile_segments
from tasks.sample_data import generate_customers, write_sample_csv
from tasks.scale import scale_features
from tasks.spec_init import starter_spec
from tasks.store.run_files import latest_run
from tasks.store.snapshots import first_data_file, is_partitioned_input, partition_files
from tasks.table import choose_spec, resolve_table

N_PARTS = 4


@pytest.fixture(scope="module")
def customers(tmp_path_factory):
    """20k generated customers (with planted dirt) as one CSV and as 4 Parquet partition files
    whose rows, read in name order, are the CSV's rows."""
    folder = tmp_path_factory.mktemp("dask-data")
    csv = folder / "customers.csv"
    write_sample_csv(generate_customers(20_000, seed=11), csv)
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    parts = folder / "parts"
    parts.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(raw)), N_PARTS)):
        raw.iloc[rows].to_parquet(parts / f"part-{i}.parquet", index=False)
    return csv, parts


def _settings(**overrides) -> SegmentationSettings:
    # Sample thresholds low enough that 20k customers take the sampled sweep on both paths.
    base = {
        "n_init": 4,
        "sweep": {"sample_threshold": 5_000, "sample_size": 5_000, "k_range": (1, 8)},
    }
    return SegmentationSettings(**{**base, **overrides})


def _clean(folder, max_quarantine_share: float) -> partitioned.Partitions:
    """Clean a folder of partition files with the columns its first data file resolves to."""
    files = partition_files(folder)
    table = table_for_file(first_data_file(files))
    return partitioned.clean_partitions(files, table, max_quarantine_share)


def _segments(folder) -> pd.DataFrame:
    files = sorted(folder.glob("segments*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_partitioned_parquet_on_a_local_cluster_gives_the_local_segments(customers, tmp_path):
    csv, parts = customers
    local = segment_customers(_settings(input=csv, output_dir=tmp_path / "local"))
    on_dask = _settings(input=parts, output_dir=tmp_path / "dask", runner="dask")
    with prefect_api_for_workers(on_dask):
        distributed = flow_for(on_dask)(on_dask)

    # Same row accounting and the very same quarantined rows and reasons.
    assert distributed["rows"] == local["rows"]
    local_folder, dask_folder = latest_run(tmp_path / "local"), latest_run(tmp_path / "dask")
    pd.testing.assert_frame_equal(
        pd.read_parquet(dask_folder / "quarantine.parquet"),
        pd.read_parquet(local_folder / "quarantine.parquet"),
    )
    # Same k, inertia within 1%, same segments (ARI >= 0.99) customer by customer.
    assert distributed["k"]["chosen"] == local["k"]["chosen"]
    assert distributed["inertia"] == pytest.approx(local["inertia"], rel=0.01)
    mine, theirs = _segments(dask_folder), _segments(local_folder)
    assert len(mine) == len(theirs) == local["rows"]["rows_kept"]
    assert mine["customer_id"].is_unique
    MALL_SEGMENTS.validate(mine)
    joined = theirs.merge(mine, on="customer_id", suffixes=("_local", "_dask"))
    assert len(joined) == len(theirs)
    ari = adjusted_rand_score(joined["segment_id_local"], joined["segment_id_dask"])
    assert ari >= 0.99, ari
    # One segments file per partition, every file checksummed in the manifest.
    manifest = json.loads((dask_folder / "manifest.json").read_text())
    assert sum(name.startswith("segments-") for name in manifest["files"]) == N_PARTS
    assert set(manifest["input"]["files"]) == {p.name for p in parts.iterdir()}
    # The inertia is the sum of squared distances over all customers (recomputed here).
    squared = (mine["distance_to_centroid"] ** 2).sum()
    assert distributed["inertia"] == pytest.approx(squared, rel=1e-9)
    # The model's training radius per segment is over every customer, not the sample's.
    model = json.loads((dask_folder / "model.json").read_text())
    radius = mine.groupby("segment_id")["distance_to_centroid"].max()
    assert {s["id"]: s["max_distance"] for s in model["segments"]} == pytest.approx(
        radius.to_dict(), rel=1e-12
    )

    # Quality gates hold on this path too: a breached gate fails the run, latest unchanged.
    gated = on_dask.model_copy(
        update={"gates": on_dask.gates.model_copy(update={"min_segment_share": 0.5})}
    )
    with prefect_api_for_workers(gated), pytest.raises(GateError, match="min_segment_share"):
        flow_for(gated)(gated)
    assert latest_run(tmp_path / "dask") == dask_folder
    # The next partitioned run keeps the segment ids: the same customers, nobody moved.
    with prefect_api_for_workers(on_dask):
        again = flow_for(on_dask)(on_dask)
    assert again["changes"]["previous_run_id"] == distributed["run_id"]
    assert again["changes"]["customers_in_both"] == local["rows"]["rows_kept"]
    assert again["changes"]["customers_moved"] == 0
    assert again["changes"]["adjusted_rand_index"] == pytest.approx(1.0)
    again_folder = latest_run(tmp_path / "dask")
    moves = pd.read_parquet(again_folder / "transitions.parquet")
    assert (moves["previous_segment_id"] == moves["segment_id"]).all()
    assert moves["customers"].sum() == local["rows"]["rows_kept"]
    previous = _segments(dask_folder).set_index("customer_id")["segment_id"]
    current = _segments(again_folder).set_index("customer_id")
    assert (current["previous_segment_id"] == previous.loc[current.index]).all()
    # Nobody moved, joined or left (moves joined on the cluster); nothing drifted: the 5,000
    # sampled customers against 5,000 sampled of the previous run, the same customers, differ
    # by sampling noise only (tasks.drift's small-sample rule keeps it near 0.02).
    assert pd.read_parquet(again_folder / "moves.parquet").empty
    drift = pd.read_parquet(again_folder / "drift.parquet")
    assert set(drift.loc[drift["segment_id"].isna(), "feature"]) == {
        "annual_income",
        "spending_score",
    }
    overall = drift.loc[drift["segment_id"].isna()]
    assert (overall["customers"] == 5_000).all() and (overall["previous_customers"] > 4_500).all()
    assert drift["psi"].dropna().max() < 0.1
    assert again["drift"]["sentences"] == []
    # An in-memory run after partitioned ones into the same folder keeps their ids too.
    after = segment_customers(_settings(input=csv, output_dir=tmp_path / "dask"))
    assert after["rows"] == local["rows"]
    assert after["changes"]["previous_run_id"] == again["run_id"]
    assert after["changes"]["adjusted_rand_index"] >= 0.99


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_in_memory_flow_on_dask_fans_the_sweep_out_and_matches_local(customers, tmp_path):
    csv, _ = customers
    local = segment_customers(_settings(input=csv, output_dir=tmp_path / "local"))
    on_dask = _settings(input=csv, output_dir=tmp_path / "dask", runner="dask")
    with prefect_api_for_workers(on_dask):
        distributed = flow_for(on_dask)(on_dask)
    local_elbow = pd.read_parquet(latest_run(tmp_path / "local") / "elbow.parquet")
    dask_elbow = pd.read_parquet(latest_run(tmp_path / "dask") / "elbow.parquet")
    # The same seeded fits, run one k per Dask task instead of in threads: the same numbers.
    pd.testing.assert_frame_equal(dask_elbow, local_elbow)
    assert distributed["k"] == local["k"]
    assert distributed["settings"]["runner"] == "dask"
    mine = pd.read_parquet(latest_run(tmp_path / "dask") / "segments.parquet")
    theirs = pd.read_parquet(latest_run(tmp_path / "local") / "segments.parquet")
    assert (mine["segment_id"].to_numpy() == theirs["segment_id"].to_numpy()).all()


def _task_names(manifest: dict) -> list[str]:
    """The task runs of a run's flow run, by name (``fit-k-3`` -> ``fit-k``), in start order."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[manifest["flow_run_id"]]))
        )
        flow = client.read_flow(client.read_flow_run(manifest["flow_run_id"]).flow_id)
    ordered = sorted(runs, key=lambda run: run.start_time or run.expected_start_time)
    return [flow.name] + [run.name.rsplit("-", 1)[0] for run in ordered]


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_partitions_and_a_file_run_the_same_flow_and_the_same_tasks(customers, tmp_path):
    """One flow for every input: a folder of partitions on Dask runs exactly the tasks, in the
    same order, as the same customers in one file on Dask (issue 22); only the engine differs."""
    csv, parts = customers
    names = []
    for source in (csv, parts):
        settings = _settings(input=source, output_dir=tmp_path / source.name, runner="dask")
        with prefect_api_for_workers(settings):
            names.append(_task_names(flow_for(settings)(settings)))
    in_memory, partitioned = names
    assert partitioned == in_memory
    assert in_memory[0] == "customer-segmentation"
    steps = list(dict.fromkeys(in_memory[1:]))  # each step once (fit-k: one run per k)
    assert steps == [
        "plan-run",
        "load-previous-run",
        "ingest",
        "validate-and-clean",
        "scale-features",
        "fit-k",
        "choose-k",
        "final-fit",
        "identify-segments",
        "compare-runs",
        "quality-gates",
        "write-report",
        "publish-run",
    ]


def test_cleaning_partitions_finds_duplicates_and_conflicts_across_files(tmp_path):
    header = "CustomerID,Gender,Age,Annual Income (k$),Spending Score (1-100)\n"
    files = {
        "a.parquet": ["1,Female,30,50,60", "2,Male,40,70,20", "3,Female,22,15,80"],
        "b.parquet": ["1,Female,30,50,60", "2,Male,41,70,20", "4,Male,abc,20,30"],
    }
    folder = tmp_path / "parts"
    folder.mkdir()
    for name, lines in files.items():
        text = tmp_path / f"{name}.csv"
        text.write_text(header + "\n".join(lines) + "\n")
        pd.read_csv(text, dtype=str).to_parquet(folder / name, index=False)
    with dask.config.set(scheduler="sync"):
        parts = _clean(folder, 0.9)
        customers = parts.customers.compute()

    # Rows are numbered as in the concatenated file: a.parquet rows 1-3, b.parquet rows 4-6.
    # Row 4 repeats row 1 exactly; id 2 has different values in rows 2 and 5; row 6 has age "abc".
    MALL_QUARANTINE.validate(parts.quarantine)
    reasons = dict(zip(parts.quarantine["source_row"], parts.quarantine["reason"], strict=True))
    assert set(reasons) == {2, 5, 6}
    assert (
        reasons[2] == reasons[5] == "customer_id='2': id appears in rows 2, 5 with different values"
    )
    assert reasons[6].startswith("age='abc'")
    assert sorted(customers["customer_id"]) == ["1", "3"]
    assert parts.accounting() == {
        "rows_read": 6,
        "rows_kept": 2,
        "rows_quarantined": 3,
        "duplicates_dropped": 1,
    }


def test_partitions_with_numbers_as_text_extra_columns_and_empty_files_clean_as_one_file(
    tmp_path,
):
    header = ["CustomerID", "Gender", "Age", "Annual Income (k$)", "Spending Score (1-100)"]
    rows = [
        ["1", "Female", "30", "50", "60"],
        ["2", "Male", "40", "70", "20"],
        ["3", "Female", "abc", "15", "80"],  # age not a number: this file stores ages as text
        ["4", "Male", "22", "20", "30"],
        ["2", "Male", "41", "70", "20"],  # conflicts with row 2, in another file
        ["5", "Female", "35", "", "44"],  # missing income
    ]
    folder = tmp_path / "parts"
    folder.mkdir()
    numbers = pd.DataFrame(rows[:2], columns=header).astype({h: "int64" for h in header[2:]})
    numbers.to_parquet(folder / "a.parquet", index=False)  # numeric columns stored as numbers
    pd.DataFrame(rows[2:4], columns=header).to_parquet(folder / "b.parquet", index=False)
    numbers.iloc[:0].to_parquet(folder / "c.parquet", index=False)  # a file with no rows
    extra = pd.DataFrame(rows[4:], columns=header).assign(notes=["vip", None])
    extra.to_parquet(folder / "d.parquet", index=False)  # an extra column

    whole = tmp_path / "whole.csv"
    whole.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    with dask.config.set(scheduler="sync"):
        parts = _clean(folder, 0.9)
    expected = clean_customers(read_customers(whole), max_quarantine_share=0.9)
    assert parts.accounting() == expected.accounting()
    pd.testing.assert_frame_equal(parts.quarantine, expected.quarantine)


def test_a_partition_file_that_is_not_parquet_is_bad_input_naming_it(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.parquet").write_bytes(b"")  # first in name order
    pd.DataFrame({"CustomerID": ["1"]}).to_parquet(folder / "b.parquet", index=False)
    with pytest.raises(InputError, match="not a readable Parquet file") as caught:
        _clean(folder, 0.2)
    assert caught.value.path == str(folder / "a.parquet")


def test_cleaning_partitions_equals_cleaning_the_concatenated_file(customers):
    csv, parts = customers
    with dask.config.set(scheduler="sync"):
        result = _clean(parts, 0.2)
        clean = result.customers.compute()
    whole = clean_customers(read_customers(csv), max_quarantine_share=0.2)
    assert result.accounting() == whole.accounting()
    pd.testing.assert_frame_equal(result.quarantine, whole.quarantine)
    pd.testing.assert_frame_equal(
        clean.sort_values("customer_id", ignore_index=True),
        whole.customers.sort_values("customer_id", ignore_index=True),
    )


def test_nearest_centroid_labels_from_one_and_measures_the_distance():
    matrix = np.array([[0.0, 0.0], [10.0, 0.0], [9.0, 1.0]])
    centroids = np.array([[0.0, 1.0], [10.0, 1.0]])
    labels, distances = partitioned.nearest_centroid(matrix, centroids)
    assert labels.tolist() == [1, 2, 2]
    assert distances == pytest.approx([1.0, 1.0, 1.0])


def test_a_folder_is_partitioned_input_only_with_parquet_files_that_are_not_snapshots(tmp_path):
    assert not is_partitioned_input(tmp_path)  # empty
    (tmp_path / "customers_2026-11-26.parquet").write_bytes(b"")
    assert not is_partitioned_input(tmp_path)  # dated snapshots
    other = tmp_path / "parts"
    other.mkdir()
    (other / "part-0.parquet").write_bytes(b"")
    assert is_partitioned_input(other)
    assert not is_partitioned_input(other / "part-0.parquet")  # a file


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_partitioned_mixed_table_uses_the_spec_core_and_finds_the_planted_segments(tmp_path):
    """A tab-separated marketing table (numbers, text categories, 0/1 flags) split into Parquet
    files: the columns, spec, one-hot scaling, profiles and names of an in-memory run."""
    planted = mixed_marketing_table(n=2000, seed=11)
    source = write_planted_table(planted, tmp_path / "marketing.tsv")
    spec = tmp_path / "marketing.toml"
    starter = starter_spec(read_file(source), str(source))
    spec.write_text(starter.replace('"median"', '"quarantine"'))  # no median fill on Dask
    raw = pd.read_csv(source, sep="\t", dtype=str, keep_default_na=False)
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(raw)), 3)):
        raw.iloc[rows].to_parquet(parts / f"part-{i}.parquet", index=False)
    settings = _settings(
        input=parts,
        output_dir=tmp_path / "out",
        runner="dask",
        spec=spec,
        sweep={"k_range": (1, 6)},
    )
    local_settings = settings.model_copy(update={"input": source, "runner": "local"})
    local = segment_customers(local_settings.model_copy(update={"output_dir": tmp_path / "mem"}))
    with prefect_api_for_workers(settings):
        manifest = flow_for(settings)(settings)

    rows = manifest["rows"]
    assert rows == local["rows"]
    assert (
        rows["rows_read"]
        == rows["rows_kept"] + rows["rows_quarantined"] + rows["duplicates_dropped"]
    )
    assert manifest["columns"] == local["columns"]
    folder = latest_run(tmp_path / "out")
    segments = _segments(folder)
    assert len(segments) == rows["rows_kept"] and segments["customer_id"].is_unique
    truth = pd.Series(planted.labels, index=planted.frame["ID"].astype(str).to_numpy())
    found = segments.set_index("customer_id")["segment_id"]
    assert adjusted_rand_score(truth.loc[found.index], found) >= 0.9
    # the same profile columns as the in-memory run, under the file's own names
    profiles = pd.read_parquet(folder / "profiles.parquet")
    mine = pd.read_parquet(latest_run(tmp_path / "mem") / "profiles.parquet")
    assert list(profiles.columns) == list(mine.columns)
    assert "Education_PhD_share" in profiles.columns and "Response_1_share" in profiles.columns
    joined = segments.merge(profiles[["segment_id", "Response_1_share"]], on="segment_id")
    rates = joined.groupby("segment_id")["Response"].mean()
    pd.testing.assert_series_equal(
        rates, profiles.set_index("segment_id")["Response_1_share"], check_names=False
    )
    model = json.loads((folder / "model.json").read_text())
    assert model["table"] == local["columns"] or model["table"]["id_header"] == "ID"
    for name in ("elbow.png", "segments.png", "profiles.png", "eda.png", "transitions.png"):
        assert (folder / name).stat().st_size > 0
    report = (folder / "report.html").read_text()  # the sample's medians and typical customers
    for name in profiles["segment_name"]:
        assert html.escape(name) in report
    assert "Education" in report and "Response" in report


def test_median_fill_is_refused_for_a_partitioned_input_with_a_clear_reason(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    frame = pd.DataFrame(
        {"id": ["1", "2", "3"], "spend": ["1", "", "3"], "visits": ["4", "5", "7"]}
    )
    frame.to_parquet(folder / "a.parquet", index=False)
    files = partition_files(folder)
    table = table_for_file(files[0], missing="median")
    with pytest.raises(InputError, match=r"median .* not supported for a partitioned input"):
        partitioned.clean_partitions(files, table, 0.5)


def test_profiles_on_dask_partitions_equal_the_in_memory_profiles():
    rng = np.random.default_rng(4)
    n = 500
    frame = pd.DataFrame(
        {
            "customer_id": [str(i) for i in range(n)],
            "spend": rng.gamma(2.0, 50.0, n),
            "visits": rng.poisson(5, n).astype("float64"),
            "tier": pd.array(rng.choice(["gold", "silver", "bronze"], n), dtype="str"),
            "opted_in": rng.integers(0, 2, n).astype("float64"),
        }
    )
    header = ["spend", "visits", "tier", "opted_in"]
    spec = choose_spec(header, features=["spend", "visits"], profile=["tier", "opted_in"])
    table = resolve_table(header, frame[header].astype("str"), spec)
    assert table.names == ("spend", "visits", "tier", "opted_in")
    labels = rng.integers(1, 5, n)
    names = {i: f"segment {i}" for i in range(1, 5)}
    expected = profile_segments(frame, labels, names, table)
    assert {"tier_gold_share", "opted_in_1_share", "visits_median"} <= set(expected.columns)
    on_dask = dd.from_pandas(frame.assign(segment_id=labels), npartitions=3)
    with dask.config.set(scheduler="sync"):
        got = named_profiles(partitioned.statistics_of(on_dask, table), names)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)


def test_a_partitioned_input_with_a_wrong_column_or_median_fill_exits_before_prefect(
    customers, capsys
):
    _, parts = customers
    args = ["run", "--input", str(parts), "--runner", "dask", "--quiet"]
    assert cli.main([*args, "--features", "Nope"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Nope" in err and "Gender" in err
    assert cli.main([*args, "--missing", "median"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "not supported for a partitioned input" in err


def test_partitions_scaled_and_described_on_dask_equal_the_in_memory_run(tmp_path):
    rng = np.random.default_rng(5)
    n = 600
    frame = pd.DataFrame(
        {
            "customer_id": pd.array([f"C{i}" for i in range(n)], dtype="str"),
            "spend": np.concatenate([rng.normal(m, 5, n // 3) for m in (20, 60, 100)]),
            "visits": rng.poisson(5, n).astype("float64"),
            "tier": pd.array(rng.choice(["gold", "silver"], n), dtype="str"),
        }
    )
    header = ["spend", "visits", "tier"]
    spec = choose_spec(header, features=["spend", "visits"], profile=["tier"])
    table = resolve_table(header, frame[header].astype("str"), spec)
    on_dask = dd.from_pandas(frame, npartitions=3)
    with dask.config.set(scheduler="sync"):  # the sample is every customer: size >= n
        space, rows, sample = partitioned.fit_space(on_dask, table, "standard", size=n, seed=1)
        fit = fit_segments(rows.matrix, 3, seed=1, n_init=10)
        got = partitioned.describe_partitions(
            on_dask, space, FittedRows(rows, fit), sample, None, tmp_path, max_shift=0.5, seed=42
        )
    scaled = scale_features(frame, None, "standard", table, seed=1)
    np.testing.assert_allclose(rows.matrix, scaled.matrix, atol=1e-12)
    expected = describe_segments(
        frame, FittedRows(scaled, fit), None, max_shift=0.5, table=table, seed=42
    )
    assert got.names == expected.names and got.identity == expected.identity
    pd.testing.assert_frame_equal(got.centroids, expected.centroids)
    pd.testing.assert_frame_equal(got.profiles, expected.profiles, check_exact=False, rtol=1e-12)
    assert got.profiles["stability"].between(0, 1).all()  # from the sample, as in memory
    got_segments, expected_segments = got.model["segments"], expected.model["segments"]
    assert [s["name"] for s in got_segments] == [s["name"] for s in expected_segments]
    # every customer's largest distance, computed on the partitions
    radii = [s["max_distance"] for s in got_segments]
    assert radii == pytest.approx([s["max_distance"] for s in expected_segments], rel=1e-12)
    written = pd.concat([pd.read_parquet(f) for f in sorted(tmp_path.glob("segments-*.parquet"))])
    assert len(sorted(tmp_path.glob("segments-*.parquet"))) == 3
    by_id = written.set_index("customer_id")["segment_id"]
    assert by_id.loc[frame["customer_id"]].tolist() == expected.segments["segment_id"].tolist()


# --- --publish-db from a partitioned run --------------------------------------------------------


def _history_by_night(url: str) -> tuple[set[tuple], list[tuple]]:
    """A database's membership history with run ids and times as night numbers (1, 2): rows
    of two databases written by different runs of the same nights compare equal."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        runs = connection.execute(
            text("SELECT run_id, finished_at, k, customers FROM segment_runs ORDER BY finished_at")
        ).all()
        rows = connection.execute(text("SELECT * FROM customer_segments")).all()
    engine.dispose()
    night_of_run = {run.run_id: n for n, run in enumerate(runs, start=1)}
    night_at = {run.finished_at: n for n, run in enumerate(runs, start=1)}
    history = {
        (
            row.customer_id,
            row.segment_id,
            row.segment_name,
            night_of_run[row.run_id],
            night_at[row.valid_from],
            None if row.valid_to is None else night_at[row.valid_to],
        )
        for row in rows
    }
    assert len(history) == len(rows)
    return history, [(night_of_run[run.run_id], run.k, run.customers) for run in runs]


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_a_partitioned_run_publishes_the_history_the_in_memory_run_does(tmp_path):
    """Two nights of `segment sample-data` snapshots (customers join, leave and move), each
    as one CSV (the in-memory run) and as a folder of Parquet parts (--runner dask), with
    --publish-db into a SQLite file each: the same rows for the same customers, night by
    night; the partitioned run's customers are read from its part files."""
    from tasks.sample_data import generate_snapshots, write_snapshots

    nights = write_snapshots(generate_snapshots(2, n=3000), tmp_path / "snapshots")
    local_db, dask_db = (f"sqlite:///{tmp_path / name}" for name in ("local.db", "dask.db"))
    for n, csv in enumerate(nights, start=1):
        raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
        parts = tmp_path / f"night-{n}-parts"
        parts.mkdir()
        for i, rows in enumerate(np.array_split(np.arange(len(raw)), N_PARTS)):
            raw.iloc[rows].to_parquet(parts / f"part-{i}.parquet", index=False)
        local = segment_customers(
            SegmentationSettings(input=csv, output_dir=tmp_path / "local", publish_db=local_db)
        )
        on_dask = SegmentationSettings(
            input=parts, output_dir=tmp_path / "dask", runner="dask", publish_db=dask_db
        )
        with prefect_api_for_workers(on_dask):
            distributed = flow_for(on_dask)(on_dask)
        assert distributed["rows"] == local["rows"]
        assert "rows opened" in distributed["published_db"]
        assert (latest_run(tmp_path / "dask") / "segments-00003.parquet").is_file()
    history, runs = _history_by_night(dask_db)
    assert (history, runs) == _history_by_night(local_db)
    assert runs[-1] == (2, local["k"]["chosen"], local["rows"]["rows_kept"])
    second = local["changes"]  # night 2: moved and gone closed, moved and joined opened
    assert sum(valid_to == 2 for *_, valid_to in history) == (
        second["customers_moved"] + second["customers_left"]
    )
    assert sum(opened_by == 2 for _, _, _, opened_by, _, _ in history) == (
        second["customers_moved"] + second["customers_joined"]
    )
    assert second["customers_moved"] > 0 and second["customers_left"] > 0
    assert len({row for row in history if row[-1] is None}) == local["rows"]["rows_kept"]
