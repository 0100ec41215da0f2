"""`segment`: the command line. `segment run` segments a customer file (or order lines);
`segment assign` scores new customers with a run's model; `segment init` writes a spec for a
table; `segment serve` and `segment backfill` run the nightly deployment; `segment notify` sets
its alerts; `segment server` starts and stops Prefect's background server; `segment
sample-data` writes the embedded default customers."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from flows.environment import (
    HelpFormatter,
    Parser,
    configure_prefect,
    internal_error_line,
    one_line,
    quiet_console,
    startup_timeout,
)
from flows.server import prefer_background_server, start_early_server, warm_up
from segment.cli import collector
from segment.cli.options import add_options, given_settings, usage_error
from segment.cli.server import add_server_command
from segment.settings import DEFAULT_INPUT, DEFAULT_SNAPSHOTS, SegmentationSettings

EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug or an environment problem: the traceback is in the log
EXIT_USAGE = 2  # bad command-line arguments (argparse's convention)
EXIT_BAD_INPUT = 3  # the input data cannot be segmented: the message says why
EXIT_GATE = 4  # the run breached a quality gate; outputs/latest still names the previous run
EXIT_BAD_MODEL = 5  # segment assign: the model is missing, unreadable or not a segmentation model
EXIT_PUBLISH_DB = 6  # --publish-db: the run folder is published, the database write failed

ADHOC_TAGS = ("segmentation", "adhoc")  # a deployment's runs are tagged "nightly" instead

log = logging.getLogger("segment.cli.main")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["serve"], ["notify"], ["backfill"]):  # they need a lasting server
        prefer_background_server()  # `segment server start`'s, unless an API is named
    if argv[:1] == ["serve"]:  # its own parser (flows.deployment), options passed through
        from flows.deployment import main as serve_main

        return serve_main(argv[1:], prog="segment serve")
    if argv[:1] == ["notify"]:  # likewise (flows.deployment.notify_main)
        from flows.deployment import notify_main

        return notify_main(argv[1:], prog="segment notify")
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return args.handler(args, args.command_parser)  # its errors show its own usage


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="segment",
        description="Customer segmentation with K-Means, run as a Prefect flow.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="segment a customer file (default: the embedded sample customers)",
        description="Ingest, validate and clean, scale, sweep k, fit K-Means, and write a run "
        "folder of Parquet tables and PNG plots under OUTPUT/runs/<run-id>/ "
        "(OUTPUT/latest points at the newest complete run). Uses the background server of "
        "`segment server start` while it runs (the summary then ends with the run's UI link), "
        "else Prefect's temporary local server, unless PREFECT_API_URL is set. Exit codes: "
        "0 ok, 1 internal error, 2 usage error, 3 bad input data, 4 quality gate failed, "
        "6 the run is published but its --publish-db write failed (the database unchanged), "
        "130/143 stopped by SIGINT/SIGTERM.",
        formatter_class=HelpFormatter,
    )
    defaults = SegmentationSettings()
    add_options(run, SegmentationSettings)  # one option per setting, generated
    run.add_argument(
        "--quiet",
        action="store_true",
        help="print only warnings and the summary (a failure: its one-line message); the "
        "run's full log stays in the Prefect UI",
    )
    run.set_defaults(handler=_run, command_parser=run)

    commands.add_parser(
        "serve",
        help="serve the nightly-resegmentation deployment (cron 0 2 * * *; needs a running "
        "Prefect server: make server); `segment serve --help` for its options",
        add_help=False,
    )

    add_server_command(commands, HelpFormatter)
    commands.add_parser(
        "notify",
        help="notify URLs when a run of a deployment made by `prefect deploy` fails (needs "
        "PREFECT_API_URL); `segment notify --help` for its options",
        add_help=False,
    )

    backfill = commands.add_parser(
        "backfill",
        help="run the nightly deployment once for an earlier date (its stored settings, "
        "with as_of changed); needs PREFECT_API_URL",
        formatter_class=HelpFormatter,
    )
    backfill.add_argument(
        "--as-of",
        type=date.fromisoformat,
        required=True,
        metavar="YYYY-MM-DD",
        help="use the newest snapshot on or before this date",
    )
    backfill.add_argument(
        "--no-wait", action="store_true", help="create the run and return without waiting"
    )
    backfill.set_defaults(handler=_backfill, command_parser=backfill)

    assign = commands.add_parser(
        "assign",
        help="score new customers into a finished run's segments (no refit)",
        description="Read FILE with the columns and checks of the run that made the model, "
        "give every valid customer segment_id, segment_name, distance_to_centroid (in the "
        "model's scaled space) and outlier (beyond every segment's largest training distance), "
        "and write them to OUTPUT; bad rows go with their reasons to "
        "<OUTPUT stem>.quarantine.<suffix> beside it. With --transactions, FILE is order "
        "lines: their customers are derived as the model's run derived its own, then scored. "
        "Runs in this process, without Prefect "
        "(the Prefect flow is assign-segments in flows/assign.py). Exit codes: 0 ok, "
        "1 internal error, 2 usage error, 3 bad input data, 5 bad model.",
        formatter_class=HelpFormatter,
    )
    assign.add_argument(
        "--model",
        type=Path,
        required=True,
        metavar="RUN_FOLDER_OR_MODEL_JSON",
        help="a run folder (e.g. outputs/latest), its model.json, or an output folder (its "
        "latest run)",
    )
    assign.add_argument("--input", type=Path, required=True, help="CSV or Parquet file")
    assign.add_argument(
        "--output",
        type=Path,
        required=True,
        metavar="FILE.parquet|FILE.csv",
        help="the assigned customers; CSV cells that could run as spreadsheet formulas are "
        "escaped with a leading apostrophe",
    )
    assign.add_argument("--sep", default=None, help="field separator (sniffed when unset)")
    assign.add_argument(
        "--max-quarantine-share",
        type=float,
        default=defaults.max_quarantine_share,
        help="fail (exit 3, nothing written) when more than this share of rows is invalid (0-1)",
    )
    assign.add_argument(
        "--transactions",
        action="store_true",
        help="the input is order lines: derive their customers as the model's run did (its "
        "columns, rules, date format and RFM grid, recorded in model.json), then score them; "
        "the quarantined lines go to <OUTPUT stem>.quarantine_lines.<suffix>",
    )
    assign.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="with --transactions: the snapshot date of recency (lines on or after it "
        "quarantined); unset: the day after the latest purchase in the input",
    )
    assign.add_argument(
        "--date-format",
        default=None,
        metavar="FMT",
        help="with --transactions: the order dates' format in strftime codes; unset: the "
        "run's --date-format, else ISO, day-first or month-first read from the dates",
    )
    assign.set_defaults(handler=_assign, command_parser=assign)

    init = commands.add_parser(
        "init",
        help="write a starter segmentation spec for a file (edit it, then segment run --spec)",
        description="Read FILE and write a spec: every column with its inferred kind and role "
        "(id, feature, profile, unused), the id guess, the observed range and values as "
        "comments (min = 0 checked where no value is negative), log1p "
        "suggested for strongly right-skewed amounts, and a comment on each key.",
        formatter_class=HelpFormatter,
    )
    init.add_argument("--input", type=Path, required=True, help="CSV or Parquet file")
    init.add_argument("--output", type=Path, required=True, help="the spec file to write (.toml)")
    init.add_argument("--sep", default=None, help="field separator (sniffed when unset)")
    init.add_argument("--force", action="store_true", help="overwrite an existing spec file")
    init.set_defaults(handler=_init, command_parser=init)

    sample = commands.add_parser(
        "sample-data",
        help="write the seeded sample customers (the embedded default data)",
        formatter_class=HelpFormatter,
    )
    sample.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"CSV file to write (default {DEFAULT_INPUT}); with --snapshots, a folder "
        f"(default {DEFAULT_SNAPSHOTS})",
    )
    sample.add_argument(
        "--snapshots",
        type=int,
        default=None,
        metavar="DAYS",
        help="write DAYS dated daily snapshots with drift (customers join and leave, one "
        "segment grows) as customers_YYYY-MM-DD.csv, for nightly runs; default: one CSV file",
    )
    sample.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date(2026, 11, 20),
        metavar="YYYY-MM-DD",
        help="date of the first snapshot",
    )
    sample.add_argument("--rows", type=int, default=3000, help="number of customers")
    sample.add_argument("--seed", type=int, default=20261126, help="random seed")
    sample.set_defaults(handler=_sample_data, command_parser=sample)
    return parser


def _fail(message: object, code: int) -> int:
    """Print ``segment: error: <message>`` on standard error; return the exit code ``code``."""
    print(f"segment: error: {printable(str(message))}", file=sys.stderr)
    return code


def _settings(args: argparse.Namespace) -> SegmentationSettings:
    return SegmentationSettings.model_validate(given_settings(args, SegmentationSettings))


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`segment run`; a SIGTERM or SIGINT stops it with one line and exit code 128 + the
    signal's number (the flow run is marked Crashed, the temporary server stopped)."""
    from segment.cli.signals import Stopped, stopped_by_signals

    try:
        with stopped_by_signals():
            return _segment(args, parser)
    except Stopped as stop:
        print(
            f"segment: stopped by {stop.name}; outputs/latest names the last complete run",
            file=sys.stderr,
        )
        return stop.exit_code


def _segment(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        settings = _settings(args)
    except ValidationError as error:
        parser.error(usage_error(error, SegmentationSettings))
    unreadable = early_problem(settings)  # no such file, a pipe: before Prefect starts a server
    if unreadable is not None:
        return _fail(unreadable, EXIT_BAD_INPUT)
    if settings.date_format is not None and not settings.transactions:
        parser.error("--date-format reads the dates of order lines: use it with --transactions")
    if "lines_memory_limit" in settings.model_fields_set and not settings.transactions:
        parser.error(
            "--lines-memory-limit is the working memory of the order lines' derivation: use it "
            "with --transactions"
        )
    if (
        settings.as_of is not None and not settings.input.is_dir() and not settings.transactions
    ):  # refused, not ignored
        return _fail(
            "--as-of picks a dated snapshot from a folder of snapshots, "
            f"but --input {settings.input} is a single file",
            EXIT_USAGE,
        )
    unwritable = check_output(settings.output_dir)
    if unwritable is not None:
        return _fail(unwritable, EXIT_BAD_INPUT)
    if settings.publish_db is not None and (bad := check_database(settings.publish_db)):
        return _fail(bad, EXIT_USAGE)
    configure_prefect()
    server = start_early_server()  # boots while this process imports and checks the input
    problem = check_input(settings)  # wrong column names, k, etc.: before any slow work
    if problem is not None:
        code, message = problem
        return _fail(message, code)

    # Prefect imported when needed; nothing to collect meanwhile, and the flow's collections
    # skip what was imported (thawed when the flow has returned)
    with collector.paused():
        from prefect import tags

        import flows.segmentation  # noqa: F401 - the flow and all it imports, for flow_for
        from flows.killed_runs import crash_killed_runs, without_heartbeats
        from flows.runners import flow_for, prefect_api_for_workers
        from tasks.errors import InputError, PublishError
        from tasks.gates import GateError

    try:
        if args.quiet:
            quiet_console()
        flow = flow_for(settings)
        if server is not None:
            warm_up()
            server.wait(startup_timeout())
        with prefect_api_for_workers(settings), tags(*ADHOC_TAGS), without_heartbeats():
            crash_killed_runs()  # the runs of killed `segment run`s, left RUNNING
            manifest = flow(settings)
    except InputError as error:
        return _fail(error, EXIT_BAD_INPUT)
    except GateError as error:
        latest = printable(str(settings.output_dir / "latest"))  # the folder of --output
        print(f"segment: {printable(str(error))}; {latest} is unchanged", file=sys.stderr)
        return EXIT_GATE
    except PublishError as error:  # the run is published; the database is as it was
        return _fail(error, EXIT_PUBLISH_DB)
    except Exception as error:  # noqa: BLE001 - a last-resort message; Prefect logged the traceback
        print(f"segment: internal error: {printable(internal_error_line(error))}", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        collector.thaw()
    print(format_summary(manifest))
    if (link := ui_link(manifest)) is not None:
        print(f"UI: {printable(link)}")
    return EXIT_OK


def ui_link(manifest: dict) -> str | None:
    """The flow run's page in the Prefect UI (``PREFECT_UI_URL``, or the API's address
    without ``/api``: a background or running server), or None (a temporary server has no UI)."""
    from prefect.utilities.urls import url_for  # imported by the run already

    return url_for("flow-run", obj_id=manifest["flow_run_id"])


def check_output(output_dir: Path) -> str | None:
    """Why the runs cannot be written to ``output_dir`` (not a folder, read-only, a store path
    that is a link ...), in one line, or None: checked before Prefect starts, not found by the
    flow after the fit."""
    from tasks.errors import OutputError
    from tasks.store.paths import check_output_folder

    try:
        check_output_folder(output_dir)
    except OutputError as error:
        return str(error)
    return None


def check_database(url: str) -> str | None:
    """Why ``--publish-db`` cannot work (not a database URL, its driver not installed), in one
    line without the password, or None; connects to nothing, before any slow work."""
    from tasks.store.membership_db import url_problem

    problem = url_problem(url)
    return None if problem is None else f"--publish-db {problem}"


def early_problem(settings: SegmentationSettings) -> str | None:
    """Why the input cannot be read at all (``segment.plan.check_options``), or None."""
    from segment.plan import check_options
    from tasks.errors import InputError

    try:
        check_options(settings)
    except InputError as error:
        return str(error)
    return None


def check_input(settings: SegmentationSettings) -> tuple[int, str] | None:
    """The run's plan (``segment.plan.plan_run``, the input's rows counted when a k is asked):
    ``(exit code, one-line reason)`` when the run cannot work, else None. Mistakes in the
    options (an unknown ``--column`` name, a k above the number of rows) exit with
    EXIT_USAGE; the input's own problems (a column not in the file, a text column as a numeric
    feature, a partitioned folder without Dask ...) with EXIT_BAD_INPUT."""
    from segment.plan import plan_run
    from tasks.errors import ColumnMappingError, InputError

    quiet = logging.getLogger("tasks")  # the flow logs the same warnings again, in its run log
    level, quiet.level = quiet.level, logging.ERROR
    try:
        plan_run(settings, count_rows=True)
    except ColumnMappingError as error:
        return EXIT_USAGE, str(error)
    except InputError as error:
        return EXIT_BAD_INPUT, str(error)
    finally:
        quiet.setLevel(level)
    return None


def format_summary(manifest: dict) -> str:
    """The terminal summary: segments, sizes, names, row accounting, output folder."""
    from tasks.reporting.artifacts import duplicates_warning  # pandas: loaded by the run already

    rows, choice = manifest["rows"], manifest["k"]
    total = sum(s["size"] for s in manifest["segments"])
    segments = [(s["id"], s["size"], s["name"]) for s in manifest["segments"]]
    lines = [
        f"Segmented {total:,} customers from {manifest['input']['path']}",
        f"k = {choice['chosen']} ({choice['rule']}: {choice['reason']})",
        "",
        *segment_lines(segments, total),
        "",
        *order_lines_summary(manifest.get("transactions")),
        f"{'Customer rows' if manifest.get('transactions') else 'Rows'}: "
        f"{rows['rows_read']:,} read = {rows['rows_kept']:,} segmented + "
        f"{rows['rows_quarantined']:,} quarantined + {rows['duplicates_dropped']:,} duplicates",
    ]
    if (warning := duplicates_warning(rows)) is not None:
        lines.append(warning)
    if filled := manifest.get("missing_filled"):
        listed = ", ".join(f"{name} {count:,}" for name, count in filled.items())
        lines.append(f"Missing feature values filled with the column median: {listed}")
    if (columns := manifest.get("columns")) and columns.get("id_header") is None:
        lines.append(
            "Ids: data row numbers (no id column), so identity across runs follows row positions"
        )
    changes = manifest.get("changes")
    if changes and changes.get("features_changed"):
        lines.append(
            f"Since {changes['previous_run_id']}: other features, so segments start afresh "
            f"(new ids {', '.join(map(str, changes['new_segment_ids']))})"
        )
    elif changes:
        from tasks.identity import moved_words  # loaded by the run already

        lines.append(
            f"Since {changes['previous_run_id']}: {moved_words(changes)}; "
            f"{changes['customers_joined']:,} joined, {changes['customers_left']:,} left"
        )
    if (drift := manifest.get("drift")) is not None:
        from tasks.drift import NO_DRIFT

        lines += [f"Drift: {sentence}" for sentence in drift["sentences"] or [NO_DRIFT]]
    if published := manifest.get("published_db"):
        lines.append(published)
    lines.append(f"Output: {manifest['output_folder']}")
    lines.append(f"Report: {Path(manifest['output_folder']) / 'report.html'}")
    return "\n".join(printable(line) for line in lines)


def printable(text: str) -> str:
    """``text`` for the terminal: control and format characters of a segment name or path (a
    line break, tab, escape sequence, right-to-left override) as their escapes."""
    from tasks.errors import escaped_controls  # a light module: no pandas

    return escaped_controls(text)


def segment_lines(sizes: list[tuple[int, int, str]], total: int) -> list[str]:
    """Both summaries' segment table: id, customers and their share of ``total``, name."""
    return [f"  {'id':>3}  {'customers':>9}  {'share':>6}  name"] + [
        f"  {segment_id:>3}  {size:>9,}  {size / total:>6.1%}  {name}"
        for segment_id, size, name in sizes
    ]


def order_lines_summary(record: dict | None) -> list[str]:
    """The order lines' accounting for the summary (none for a customer table)."""
    if not record:
        return []
    from tasks.orders.transactions import accounting_line

    lines, customers = record["lines"], record["customers"]
    text = [f"Lines: {accounting_line(lines)}"]
    no_id, read = lines["lines_without_customer_id"], lines["lines_read"]
    if no_id:
        text.append(
            f"{no_id:,} of the {read:,} lines ({no_id / read:.1%}) had no customer id "
            "(quarantined, see quarantine_lines.parquet)"
        )
    reasons = record.get("quarantine_reasons") or {}
    others = [f"{reason} ({n:,})" for reason, n in reasons.items() if reason != "no customer id"]
    if others:
        text.append(f"Other quarantined lines: {', '.join(others[:4])}")
    text.append(
        f"Customers: {customers['customers']:,} with purchases (snapshot date "
        f"{record['snapshot_date']}, dates read as {record['date_reading']})"
        + (
            f"; {customers['customers_without_purchases']:,} with only cancellations or "
            "non-positive lines, listed in customers_without_purchases.parquet"
            if customers["customers_without_purchases"]
            else ""
        )
    )
    return text


def _backfill(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    configure_prefect()
    from flows.deployment import backfill

    try:
        run = backfill(args.as_of, timeout=0 if args.no_wait else None)
    except RuntimeError as error:  # no server
        return _fail(error, EXIT_INTERNAL)
    except ValueError as error:  # settings that cannot run, e.g. as_of with a single file
        return _fail(one_line(error), EXIT_USAGE)
    state = run.state.name if run.state else "unknown"
    print(f"Flow run {run.name} ({run.id}) for as_of {args.as_of}: {state}")
    return EXIT_OK if args.no_wait or (run.state and run.state.is_completed()) else EXIT_INTERNAL


def _assign(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`segment assign`: the plain function, in this process (no Prefect server to start)."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from tasks.errors import InputError
    from tasks.scoring.assign import (  # pandas, pandera: only for this command
        ModelError,
        assign_file,
    )
    from tasks.scoring.assign_lines import LineOptions, assign_lines_file

    if not 0 <= args.max_quarantine_share <= 1:
        parser.error(
            f"--max-quarantine-share must be between 0 and 1, got {args.max_quarantine_share}"
        )
    for given, option in ((args.as_of, "--as-of"), (args.date_format, "--date-format")):
        if given is not None and not args.transactions:  # refused, not ignored
            parser.error(f"{option} is about order lines: use it with --transactions")
    paths = (args.model.expanduser(), args.input.expanduser(), args.output.expanduser())
    try:
        if args.transactions:
            options = LineOptions(args.as_of, args.date_format)
            done = assign_lines_file(
                *paths,
                sep=args.sep,
                max_quarantine_share=args.max_quarantine_share,
                options=options,
            )
        else:
            done = assign_file(*paths, sep=args.sep, max_quarantine_share=args.max_quarantine_share)
    except ModelError as error:
        return _fail(one_line(error), EXIT_BAD_MODEL)
    except InputError as error:  # bad input, or an output that cannot be written (OutputError)
        return _fail(error, EXIT_BAD_INPUT)
    except ValueError as error:  # an output that is neither .parquet nor .csv
        return _fail(one_line(error), EXIT_USAGE)
    except OSError as error:  # the environment (writing the output is an OutputError above)
        return _fail(error, EXIT_INTERNAL)
    print(format_assigned(done))
    return EXIT_OK


def format_assigned(done) -> str:
    """The terminal summary of `segment assign` (``tasks.scoring.assign.AssignedFiles``)."""
    result = done.assignment
    sizes = result.sizes()
    segments = [(i, sizes.get(i, 0), name) for i, name in sorted(done.names.items())]
    lines = [
        f"Assigned {result.rows_kept:,} customers from {done.input}",
        f"Model: {done.model} (run {done.model.resolve().parent.name})",
        "",
        *segment_lines(segments, max(result.rows_kept, 1)),
        "",
        *assigned_lines_summary(result),
        f"{'Customer rows' if result.order_lines else 'Rows'}: {result.rows_read:,} read = "
        f"{result.rows_kept:,} assigned + {result.rows_quarantined:,} quarantined + "
        f"{result.duplicates_dropped:,} duplicates",
    ]
    if done.has_radii:
        lines.append(
            f"Outliers: {result.outliers:,} (farther from every centroid than any training "
            "customer of that segment; outlier = true)"
        )
    else:
        lines.append("Outliers: not known (a model from before training distances were stored)")
    lines.append(f"Output: {done.output}; quarantine: {done.quarantine_file}")
    if result.quarantine_lines is not None:
        from tasks.scoring.assign import LINES_LABEL
        from tasks.scoring.export import sidecar_path

        lines.append(f"Quarantined lines: {sidecar_path(done.output, LINES_LABEL)}")
    return "\n".join(printable(line) for line in lines)


def assigned_lines_summary(result) -> list[str]:
    """Order lines scored (``Assignment.order_lines``): their accounting, snapshot date,
    customers without purchases and profile columns the lines lack; none for customers."""
    record = result.order_lines
    if not record:
        return []
    from tasks.orders.transactions import accounting_line

    without = record["customers"]["customers_without_purchases"]
    text = [
        f"Lines: {accounting_line(record['lines'])}",
        f"Customers: snapshot date {record['snapshot_date']}, dates read as "
        f"{record['date_reading']}; {without:,} with only cancellations or non-positive lines "
        "(in the quarantine with that reason)",
    ]
    if result.missing_profile:
        text.append(
            f"Profile column(s) of the model not in the lines, empty in the output: "
            f"{', '.join(result.missing_profile)}"
        )
    return text


def _init(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tasks.errors import InputError
    from tasks.ingest import read_file
    from tasks.spec_init import starter_spec

    if args.output.exists() and not args.force:
        return _fail(f"{args.output}: exists (use --force to overwrite)", EXIT_USAGE)
    try:
        text = starter_spec(read_file(args.input, args.sep), str(args.input))
    except InputError as error:
        return _fail(error, EXIT_BAD_INPUT)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(
        f"Wrote {args.output}: edit it, then segment run --input {args.input} --spec {args.output}"
    )
    return EXIT_OK


def _sample_data(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tasks.sample_data import (
        generate_customers,
        generate_snapshots,
        write_sample_csv,
        write_snapshots,
    )

    if args.rows < 10:
        parser.error("--rows must be at least 10")
    if args.snapshots is not None:
        if args.snapshots < 1:
            parser.error("--snapshots must be at least 1")
        folder = args.output or DEFAULT_SNAPSHOTS
        snapshots = generate_snapshots(args.snapshots, args.start, n=args.rows, seed=args.seed)
        paths = write_snapshots(snapshots, folder)
        print(
            f"Wrote {len(paths)} daily snapshots to {folder}: {paths[0].name} .. {paths[-1].name}"
        )
        return EXIT_OK
    output = args.output or DEFAULT_INPUT
    sample = generate_customers(n=args.rows, seed=args.seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_sample_csv(sample, output)
    print(
        f"Wrote {len(sample.frame):,} rows ({args.rows:,} customers and planted dirt) to {output}"
    )
    return EXIT_OK


def console() -> int:
    """The `segment` command (pyproject's console script): :func:`main`, then an exit without
    the interpreter's last collection of the whole heap (``segment.cli.collector``)."""
    code = main()
    collector.exit_without_collection()
    return code


if __name__ == "__main__":
    sys.exit(console())
