"""Order-lines benchmark: the RFM derivation of `segment run --transactions` against the plain
pandas groupby recipe on the same generated order lines (Parquet), and the whole command.

The lines come from ``order_lines`` of ``tests/planted_orders.py`` (four planted behaviour
groups, ~66 lines per customer, with no-id lines, cancellations, zero prices, duplicates and a few
unparseable quantities). Each measurement runs in a fresh process (wall time and peak RSS):

- ``plain``: the usual recipe: ``pd.read_parquet``, drop duplicates, drop lines with no
  customer id, parse quantity and date, keep non-cancelled positive lines, one ``groupby().agg``
  (last date, distinct invoices, sum of quantity x price), recency from the snapshot date;
- ``duckdb``: the plain recipe as one DuckDB query (the reference of issue 23's 1.2x target);
- ``memory``: ``tasks.orders.encoded_lines.read_encoded_lines`` then
  ``tasks.orders.transactions.derive_customers`` (the in-memory derivation, every line
  accounted for with reasons; the flow's for text files);
- ``derive``: ``tasks.orders.out_of_core`` (the flow's for Parquet: DuckDB, within
  ``--lines-memory-limit``, spilling to disk), the same result as ``memory``;
- ``segment``: ``segment run --quiet --input LINES.parquet --transactions`` end to end.

    .venv/bin/python benchmarks/transactions.py                 # 10M lines
    .venv/bin/python benchmarks/transactions.py --lines 1000000 --skip-segment
    .venv/bin/python benchmarks/transactions.py --lines 100000000 --parts duckdb,derive

The table goes to stdout and ``benchmarks/results/transactions-latest.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `tasks` when the project is not installed
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the planted test tables

RESULTS_MD = REPO_ROOT / "benchmarks" / "results" / "transactions-latest.md"
SEED = 20261129
LINES_PER_CUSTOMER = 66  # about what order_lines draws per customer, dirt included


CHUNK = 10_000_000  # lines generated at a time (about 3 GiB of pandas text)


def write_lines(lines: int, folder: Path) -> Path:
    """The generated order lines as Parquet (reused when present). Above ``CHUNK`` lines the
    file is written chunk by chunk, each chunk other customers (ids + chunk x 1,000,000) and
    other invoices (chunk number put before the invoice's digits), from its own seed."""
    from planted_orders import order_lines, write_order_lines

    path = folder / f"orders-{lines}-seed{SEED}.parquet"
    if path.is_file():
        return path
    if lines <= CHUNK:
        orders = order_lines(max(lines // LINES_PER_CUSTOMER, 4), seed=SEED)
        write_order_lines(orders, path)
        return path
    import pyarrow as arrow
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    writer, done, chunk = None, 0, 0
    while done < lines:
        size = min(CHUNK, lines - done)
        frame = order_lines(max(size // LINES_PER_CUSTOMER, 4), seed=SEED + chunk).lines
        ids = pd_numeric(frame["CustomerID"]) + chunk * 1_000_000
        frame["CustomerID"] = ids.astype("Int64").astype("str").where(ids.notna(), None)
        frame["InvoiceNo"] = frame["InvoiceNo"].str.replace(
            r"^([A-Z]?)(\d+)$", rf"\g<1>{chunk:03d}\g<2>", regex=True
        )
        table = arrow.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(partial, table.schema)
        writer.write_table(table.cast(writer.schema))
        done, chunk = done + len(frame), chunk + 1
        print(f"generated {done:,} lines", file=sys.stderr, flush=True)
    if writer is None:
        raise SystemExit("no lines generated")
    writer.close()
    partial.rename(path)
    return path


def pd_numeric(values):
    import pandas as pd

    return pd.to_numeric(values, errors="coerce")


def plain_recipe(path: Path) -> int:
    """The usual pandas RFM script; returns the number of customers."""
    import pandas as pd

    df = pd.read_parquet(path).drop_duplicates()
    df = df[df["CustomerID"].notna()]
    df["Quantity"] = pd.to_numeric(df["Quantity"], errors="coerce")
    df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"], errors="coerce")
    df = df.dropna(subset=["Quantity", "InvoiceDate", "UnitPrice"])
    df = df[
        ~df["InvoiceNo"].astype(str).str.startswith("C")
        & (df["Quantity"] > 0)
        & (df["UnitPrice"] > 0)
    ]
    df["value"] = df["Quantity"] * df["UnitPrice"]
    snapshot = df["InvoiceDate"].max().normalize() + pd.Timedelta(days=1)
    rfm = df.groupby("CustomerID").agg(
        last=("InvoiceDate", "max"), frequency=("InvoiceNo", "nunique"), monetary=("value", "sum")
    )
    rfm["recency_days"] = (snapshot - rfm["last"].dt.normalize()).dt.days
    return len(rfm)


def duckdb_recipe(path: Path) -> int:
    """The same plain recipe as one DuckDB query (DuckDB's default settings): distinct lines,
    no-id, cancelled and non-positive lines dropped, one group-by per customer."""
    import duckdb

    query = f"""
        WITH lines AS (
            SELECT *, TRY_CAST(Quantity AS DOUBLE) AS q, TRY_CAST(InvoiceDate AS TIMESTAMP) AS d
            FROM (SELECT DISTINCT * FROM read_parquet('{path}'))
        ), rfm AS (
            SELECT CustomerID, max(d) AS last, count(DISTINCT InvoiceNo) AS frequency,
                   sum(q * UnitPrice) AS monetary
            FROM lines
            WHERE CustomerID IS NOT NULL AND NOT starts_with(InvoiceNo, 'C') AND q > 0
                  AND UnitPrice > 0 AND d IS NOT NULL
            GROUP BY CustomerID
        )
        SELECT CustomerID, date_diff('day', last::DATE, (SELECT max(last) FROM rfm)::DATE + 1)
               AS recency_days, frequency, monetary FROM rfm"""  # noqa: S608 (our own path)
    return len(duckdb.connect().sql(query).df())


def in_memory(path: Path) -> int:
    """The in-memory reading and derivation (before out of core; still the path of text files)."""
    from tasks.orders.encoded_lines import read_encoded_lines
    from tasks.orders.order_columns import find_order_columns
    from tasks.orders.transactions import derive_customers

    lines = read_encoded_lines(path)
    derived = derive_customers(lines, find_order_columns(lines.headers))
    return len(derived.customers)


def derive(path: Path) -> int:
    """The flow's derivation of a Parquet file: out of core in DuckDB, the default limit."""
    from tasks.orders.order_columns import find_order_columns
    from tasks.orders.out_of_core import derive_lines, order_headers, order_lines

    lines, _ = order_lines(path, None)
    derived = derive_lines(lines, find_order_columns(order_headers(lines)))
    return len(derived.customers)


PARTS = {"plain": plain_recipe, "duckdb": duckdb_recipe, "memory": in_memory, "derive": derive}


def part(name: str, path: Path) -> None:
    """One measurement in this (fresh) process: prints seconds and customers as JSON."""
    start = time.perf_counter()
    customers = PARTS[name](path)
    print(json.dumps({"seconds": time.perf_counter() - start, "customers": customers}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000_000, help="order lines (10M)")
    parser.add_argument("--workdir", type=Path, default=None, help="data and runs (reused)")
    parser.add_argument("--skip-segment", action="store_true", help="only the derivations")
    parser.add_argument(
        "--load-wait-seconds", type=float, default=300.0, help="longest wait for a quiet machine"
    )
    parser.add_argument(
        "--generate-only", action="store_true", help="write the lines' file and stop"
    )
    parser.add_argument(
        "--parts",
        default="plain,duckdb,memory,derive",
        help="the derivations to measure (comma-separated: plain, duckdb, memory, derive); "
        "above ~30M lines leave out plain and memory: they hold every line in memory",
    )
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        part(args.part, args.path)
        return 0

    import scale  # the measuring helpers (peak RSS with GNU time, load wait)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="transactions-bench-"))
    path = write_lines(args.lines, work / "data")
    if args.generate_only:
        print(path)
        return 0
    env = scale.child_env(work / "prefect-home")
    rows = {}
    for name in args.parts.split(","):
        load = scale.wait_until_quiet(1.5, args.load_wait_seconds)
        command = [sys.executable, __file__, "--part", name, "--path", str(path)]
        measured = scale.run_measured(command, env, 3600, work / "logs" / name, load)
        if measured.returncode != 0:
            raise SystemExit(f"{name} failed: {measured.stderr_tail}")
        out = json.loads((work / "logs" / f"{name}.out").read_text().strip().splitlines()[-1])
        rows[name] = {**out, "process": measured.wall, "rss": measured.max_rss_mib, "load": load}
    if not args.skip_segment:
        out = work / "runs"
        shutil.rmtree(out, ignore_errors=True)
        # a warm-up run on the default data creates the Prefect database (not counted), as
        # benchmarks/scale.py does: a first run on a new PREFECT_HOME migrates it (~8 s)
        warmup = [str(scale.segment_command()), "run", "--quiet", "--output", str(out / "warmup")]
        scale.run_measured(warmup, env, 600, work / "logs" / "warmup", 0.0)
        load = scale.wait_until_quiet(1.5, args.load_wait_seconds)
        command = [str(scale.segment_command()), "run", "--quiet", "--input", str(path),
                   "--transactions", "--output", str(out)]  # fmt: skip
        measured = scale.run_measured(command, env, 3600, work / "logs" / "segment", load)
        if measured.returncode != 0:
            raise SystemExit(f"segment run failed: {measured.stderr_tail}")
        manifest = json.loads(((out / "latest").resolve() / "manifest.json").read_text())
        rows["segment"] = {
            "seconds": float(manifest["timings"]["total"]),
            "customers": manifest["transactions"]["customers"]["customers"],
            "process": measured.wall,
            "rss": measured.max_rss_mib,
            "load": load,
            "timings": manifest["timings"],
        }
    table = report(args.lines, rows)
    print(table)
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_MD.write_text(table + "\n")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(lines: int, rows: dict[str, dict]) -> str:
    import scale

    labels = {
        "plain": "plain pandas recipe (read + RFM)",
        "duckdb": "plain recipe as one DuckDB query",
        "memory": "in memory: read_encoded_lines + derive_customers",
        "derive": "out of core: derive_out_of_core (the flow's, --lines-memory-limit 500MB)",
        "segment": "`segment run --transactions` (whole process; work = flow's own)",
    }
    text = [
        f"| {lines:,} order lines | customers | work s | process s | peak RSS MiB | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in rows.items():
        text.append(
            f"| {labels[name]} | {row['customers']:,} | {row['seconds']:.1f} | "
            f"{row['process']:.1f} | {row['rss']:,.0f} | {row['load']:.1f} |"
        )
    text.append("")
    for base in ("plain", "duckdb"):
        if base in rows and "derive" in rows:
            ratio = rows["derive"]["seconds"] / rows[base]["seconds"]
            text.append(f"Derivation / {labels[base]}: {ratio:.2f}x the time (work, one run each).")
    if "segment" in rows:
        steps = ", ".join(f"{k} {v:.1f}" for k, v in rows["segment"]["timings"].items())
        text.append(f"Flow steps (s): {steps}.")
    info = scale.machine_info()
    text.append(f"Machine: {info['cpu']}, {info['cores']} cores.")
    text.append("Load: the 1-minute load average when each measurement started (2 cores).")
    return "\n".join(text)


if __name__ == "__main__":
    sys.exit(main())
