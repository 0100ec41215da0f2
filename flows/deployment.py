"""The nightly re-segmentation deployment, served by a long-running process (`segment serve`).

Prefect cannot schedule runs on the temporary server it starts for a single flow run, so a
scheduled deployment needs a real one, started once in another terminal::

    make server                                    # prefect server start --host 127.0.0.1
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    .venv/bin/python -m flows.deployment --input data/snapshots --timezone Europe/Berlin
    # (`segment serve` takes the same options)

The deployment ``customer-segmentation/nightly-resegmentation`` runs ``segment_customers`` on
the cron schedule ``0 2 * * *`` (in ``--timezone``) with the flow's one parameter, ``settings``,
set to the settings given here (``SegmentationSettings`` as JSON). Runs execute in subprocesses
of the serving process, which must keep running; when it stops, Prefect pauses the deployment
(``pause_on_shutdown``). ``prefect.yaml`` deploys the same name onto a work pool instead: use one
or the other on a server (the last one registered owns the name, and a stopping ``serve``
pauses it).

**Alerts.** ``--notify URL`` (repeatable) makes the server tell each URL of a failed run: a
Prefect automation on the deployment's runs, set when it is served (``flows.notify``); for the
``prefect.yaml`` deployment, ``segment notify --notify URL`` after ``prefect deploy``.

**Partial settings.** Prefect merges a run's parameters with the deployment's **one level deep
only**: a run's ``{"settings": {...}}`` replaces the whole stored ``settings``. So the flow
merges them again itself (``flows.run_settings.settings_for_run``, first thing in
``segment_customers``): in a run of a deployment, the fields the run gives (its ``settings`` as
stored with the run) are deep-merged over the deployment's stored ``settings``, read from the
API. A run that gives ``{"k": 4}`` keeps the deployment's ``input``, ``output_dir`` and every
other field; the model's defaults apply only to fields neither gives. The run is refused (it
fails before reading or writing anything, the reason in its state message and log) when the
stored settings cannot be read or the merged settings are invalid: never the defaults in their
place. A partial object is still validated on its own first (against the defaults), so a field
that is only valid together with a stored one must be given with it.

**Backfills** (``as_of``: the newest snapshot on or before that date; only for a deployment
whose ``input`` is a snapshot folder: with a single file, ``as_of`` is refused, not ignored)::

    .venv/bin/prefect deployment run customer-segmentation/nightly-resegmentation --watch \\
        --param 'settings={"as_of": "2026-11-01"}'

``--param NAME=JSON`` sets one top-level parameter (``--param settings.as_of=...`` is rejected:
the deployment has no parameter of that name); ``--params '{"settings": {...}}'`` takes all
of them as one JSON object. Unknown settings fields are rejected when the run is created; a
malformed date only when the run starts. From Python, ``backfill`` sends the deployment's
settings with ``as_of`` (and what you pass) changed, validated before the run is created::

    from flows.deployment import backfill
    backfill("2026-11-01")                       # waits for the run; timeout=0 returns at once
"""

from __future__ import annotations

import argparse
import sys
import zoneinfo
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from pydantic import ValidationError

from flows.environment import HelpFormatter, Parser, configure_prefect, one_line
from flows.notify import add_notify_option, set_alerts
from segment.cli.options import add_options, given_settings, usage_error
from segment.settings import SegmentationSettings
from tasks.store.snapshots import AS_OF_NEEDS_A_FOLDER

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments.runner import RunnerDeployment

FLOW_NAME = "customer-segmentation"  # the @flow name of flows.segmentation.segment_customers
DEPLOYMENT_NAME = "nightly-resegmentation"
FULL_NAME = f"{FLOW_NAME}/{DEPLOYMENT_NAME}"
DEFAULT_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "UTC"
TAGS = ["segmentation", "nightly"]

SERVER_HINT = (
    "start a Prefect server once with `make server` (or `.venv/bin/prefect server start "
    "--host 127.0.0.1 --port 4200`) and set `export PREFECT_API_URL=http://127.0.0.1:4200/api`"
)


def nightly_deployment(
    settings: SegmentationSettings,
    *,
    cron: str = DEFAULT_CRON,
    timezone: str = DEFAULT_TIMEZONE,
    name: str = DEPLOYMENT_NAME,
) -> RunnerDeployment:
    """The deployment of ``segment_customers`` on ``cron`` in ``timezone`` with ``settings``.

    Builds the object only: nothing is sent to Prefect's API until it is served. Raises
    ``ValueError`` for an invalid cron string or timezone.
    """
    check_timezone(timezone)
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.segmentation import segment_customers

    # Prefect types its sync/async functions as returning "X | Coroutine": from sync code, X
    return cast(
        "RunnerDeployment",
        segment_customers.to_deployment(
            name=name,
            schedule=Cron(cron, timezone=timezone),
            # JSON, not the model: run parameters are stored and merged as JSON by the server.
            parameters={"settings": settings.model_dump(mode="json")},
            description=(
                f"Nightly customer re-segmentation at cron {cron!r} in the {timezone} time zone, "
                f"of {settings.input} into {settings.output_dir}/runs/."
            ),
            tags=TAGS,
            # `flows` is an installed package: the runner imports it from any working directory.
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
    )


def serve_nightly(
    settings: SegmentationSettings,
    *,
    limit: int | None = None,
    notify: list[str] | None = None,
    **schedule: str,
) -> None:
    """Register the nightly deployment and execute its runs until interrupted (blocks).

    ``schedule``: ``nightly_deployment``'s ``cron``, ``timezone`` and ``name``; ``limit`` caps
    the runs executing at the same time; ``notify``: the URLs told of a failed run (the
    deployment's automation, ``flows.notify``: created, updated, or removed when empty).
    Raises ``RuntimeError`` when no Prefect server is configured (``PREFECT_API_URL``) or it
    does not answer: Prefect would otherwise start its temporary server, on which schedules
    never fire.
    """
    from prefect import serve

    require_server()
    deployment = nightly_deployment(settings, **schedule)
    set_alerts(cast("UUID", deployment.apply()), notify or [])  # apply: sync here, the id
    serve(deployment, limit=limit)


def backfill(
    as_of: date | str,
    *,
    name: str = FULL_NAME,
    timeout: float | None = None,
    scheduled_time: datetime | None = None,
    **overrides: Any,
) -> FlowRun:
    """One run of the deployment with its stored settings, ``as_of`` and ``overrides`` applied.

    Sends the deployment's settings in full with only ``as_of`` (and any ``overrides``, e.g.
    ``output_dir=...``) changed. Validated locally before the run is created: ValueError when
    the settings are invalid or the input is a single file (``as_of`` needs a snapshot folder).
    ``timeout`` and ``scheduled_time`` are those of ``run_deployment``: None waits for the run
    to finish, 0 returns at once.
    """
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    require_server()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment_by_name(name).parameters.get("settings") or {}
    settings = SegmentationSettings.model_validate({**stored, **overrides, "as_of": as_of})
    if settings.input.is_file() and not settings.transactions:  # the run would refuse it
        raise ValueError(
            f"{AS_OF_NEEDS_A_FOLDER}, but the input of {name} is a single file "
            f"({settings.input}): serve it with --input on a snapshot folder"
        )
    return cast(  # as above: from sync code, the FlowRun itself
        "FlowRun",
        run_deployment(
            name,
            parameters={"settings": settings.model_dump(mode="json")},
            timeout=timeout,
            scheduled_time=scheduled_time,
            poll_interval=2,
            as_subflow=False,
        ),
    )


def require_server() -> None:
    """A RuntimeError saying how to start one unless a server answers at PREFECT_API_URL."""
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    if not api_url:
        raise RuntimeError(
            "PREFECT_API_URL is not set: scheduled deployments need a running Prefect server, "
            f"not the temporary one Prefect starts for a single run; {SERVER_HINT}"
        )
    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    if error is not None:
        raise RuntimeError(
            f"no Prefect server answers at PREFECT_API_URL={api_url} "
            f"({type(error).__name__}: {error}); {SERVER_HINT}"
        )


def check_timezone(timezone: str) -> str:
    """``timezone`` if it is an IANA name Prefect accepts (``Europe/Berlin``), else ValueError."""
    if timezone not in zoneinfo.available_timezones():
        raise ValueError(f"unknown timezone {timezone!r}: use an IANA name such as Europe/Berlin")
    return timezone


def _timezone_arg(text: str) -> str:
    try:
        return check_timezone(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog,
        description=f"Serve the {DEPLOYMENT_NAME!r} deployment: register it with the Prefect "
        "server at PREFECT_API_URL and run segment_customers on its cron schedule (and on "
        "demand: `prefect deployment run`) until interrupted, with the settings given here "
        "(the same options as `segment run`). Needs a running server: `make server`, then "
        "`export PREFECT_API_URL=http://127.0.0.1:4200/api`.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--cron", default=DEFAULT_CRON, help="cron schedule")
    parser.add_argument(
        "--timezone",
        type=_timezone_arg,
        default=DEFAULT_TIMEZONE,
        help="IANA timezone of the cron schedule, e.g. Europe/Berlin",
    )
    parser.add_argument("--name", default=DEPLOYMENT_NAME, help="deployment name")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="most runs executing at the same time; default: no limit",
    )
    add_notify_option(parser)  # the deployment's alerts, not a setting of its runs
    # every setting of a run, generated from the model, except that the nightly run names its
    # own folder and runs the in-memory flow (no Dask runner)
    add_options(parser, SegmentationSettings, skip=("run_id", "runner", "dask"))
    return parser


def main(argv: list[str] | None = None, *, prog: str = "segment serve") -> int:
    """`segment serve`: parse the options and serve the deployment until interrupted."""
    configure_prefect()
    parser = _parser(prog)
    args = parser.parse_args(argv)
    try:
        settings = SegmentationSettings.model_validate(given_settings(args, SegmentationSettings))
        # Build once to report a bad cron or deployment name as a usage error.
        nightly_deployment(settings, cron=args.cron, timezone=args.timezone, name=args.name)
    except ValidationError as error:
        parser.error(usage_error(error, SegmentationSettings))
    except ValueError as error:
        parser.error(one_line(error))
    if settings.publish_db is not None:  # an unknown database or driver: now, not every night
        from tasks.store.membership_db import url_problem

        if (problem := url_problem(settings.publish_db)) is not None:
            parser.error(f"--publish-db {problem}")
    if not settings.input.exists():
        print(
            f"{prog}: warning: {settings.input} does not exist yet; runs fail until it does",
            file=sys.stderr,
        )
    try:
        serve_nightly(
            settings,
            cron=args.cron,
            timezone=args.timezone,
            name=args.name,
            limit=args.limit,
            notify=args.notify,
        )
    except RuntimeError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    return 0


def notify_main(argv: list[str] | None = None, *, prog: str = "segment notify") -> int:
    """`segment notify`: set the alerts of a deployment already on the server (prefect.yaml's,
    after `prefect deploy`); no --notify removes them."""
    configure_prefect()
    parser = Parser(
        prog=prog,
        description="Send a notification to each URL when a run of a deployment fails (a "
        "quality or drift gate, bad input, a crash): creates, updates or, with no --notify, "
        "removes the deployment's Prefect automation. For a deployment made by `prefect "
        "deploy` (prefect.yaml); `segment serve --notify URL` does it itself.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--deployment", default=FULL_NAME, help="flow/deployment name")
    add_notify_option(parser)
    args = parser.parse_args(argv)
    from prefect.exceptions import ObjectNotFound

    try:
        require_server()
        set_alerts(_deployment_id(args.deployment), args.notify)
    except ObjectNotFound:
        print(f"{prog}: error: no deployment {args.deployment!r} on the server", file=sys.stderr)
        return 1
    except RuntimeError as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 1
    urls = len(args.notify)
    print(f"{args.deployment}: " + (f"{urls} URL(s) told of a failed run" if urls else "no alerts"))
    return 0


def _deployment_id(name: str) -> UUID:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(name).id


if __name__ == "__main__":
    sys.exit(main(prog="python -m flows.deployment"))
