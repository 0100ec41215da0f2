"""The nightly re-segmentation deployment, served by a long-running process (`segment serve`).

Prefect cannot schedule runs on the temporary server it starts for a single flow run, so a
scheduled deployment needs a real one, started once in another terminal::

    make server                                    # prefect server start --host 127.0.0.1
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    .venv/bin/segment serve --input data/customers.csv --timezone Europe/Berlin
    # or, equivalently: .venv/bin/python -m flows.deployment --input data/customers.csv ...

The deployment ``customer-segmentation/nightly-resegmentation`` runs ``segment_customers`` on
the cron schedule ``0 2 * * *`` (in ``--timezone``) with the flow's one parameter, ``settings``,
set to the settings given here (``SegmentationSettings`` as JSON). Runs execute in subprocesses
of the serving process; when it stops, Prefect pauses the schedule (``pause_on_shutdown``).

Backfills and other one-off runs: pass ``settings`` again. Prefect merges run parameters with
the deployment's **one level deep only**: a run's ``{"settings": {...}}`` replaces the whole
stored ``settings`` object, and every field it leaves out takes the model's default (input
``data/customers.csv``, output ``outputs/``), not the deployment's value. So repeat ``input``
and ``output_dir`` next to ``as_of``::

    .venv/bin/prefect deployment run 'customer-segmentation/nightly-resegmentation' \\
        --param 'settings={"input": "/abs/data/snapshots", "output_dir": "/abs/outputs",
                           "as_of": "2026-11-01"}' --watch
    # the same with --params (a JSON object of all parameters):
    .venv/bin/prefect deployment run 'customer-segmentation/nightly-resegmentation' \\
        --params '{"settings": {"input": "/abs/data/snapshots", "as_of": "2026-11-01"}}'

``--param`` takes ``NAME=JSON`` for a top-level parameter only (``settings.as_of=...`` is
rejected as an unknown parameter). From Python::

    from prefect.deployments import run_deployment
    run_deployment(FULL_NAME, parameters={"settings": {**current, "as_of": "2026-11-01"}})

Unknown settings fields are rejected by the server (the parameter schema is enforced).
"""

from __future__ import annotations

import argparse
import os
import sys
import zoneinfo
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from flows.settings import SegmentationSettings

if TYPE_CHECKING:
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

    return segment_customers.to_deployment(
        name=name,
        schedule=Cron(cron, timezone=timezone),
        # JSON, not the model: run parameters are stored and merged as JSON by the server.
        parameters={"settings": settings.model_dump(mode="json")},
        description=(
            f"Nightly customer re-segmentation ({cron}, {timezone}) of {settings.input} "
            f"into {settings.output_dir}/runs/."
        ),
        tags=TAGS,
        # `flows` is an installed package: the runner imports it, whatever its working directory.
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def serve_nightly(
    settings: SegmentationSettings,
    *,
    cron: str = DEFAULT_CRON,
    timezone: str = DEFAULT_TIMEZONE,
    name: str = DEPLOYMENT_NAME,
    limit: int | None = None,
) -> None:
    """Register the nightly deployment and execute its runs until interrupted (blocks).

    ``limit`` caps the runs executing at the same time. Raises ``RuntimeError`` when no Prefect
    server is configured (``PREFECT_API_URL``) or it does not answer: Prefect would otherwise
    start its temporary server, on which schedules never fire.
    """
    from prefect import serve
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    if not api_url:
        raise RuntimeError(
            "PREFECT_API_URL is not set: scheduled deployments need a running Prefect server, "
            f"not the temporary one Prefect starts for a single run; {SERVER_HINT}"
        )
    _check_api(api_url)
    deployment = nightly_deployment(settings, cron=cron, timezone=timezone, name=name)
    serve(deployment, limit=limit)


def _check_api(api_url: str) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    if error is not None:
        raise RuntimeError(
            f"the Prefect server at PREFECT_API_URL={api_url} does not answer "
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
    defaults = SegmentationSettings()
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"Serve the {DEPLOYMENT_NAME!r} deployment: register it with the Prefect "
        "server at PREFECT_API_URL and run segment_customers on its cron schedule (and on "
        "demand: `prefect deployment run`) until interrupted. Needs a running server: "
        "`make server`, then `export PREFECT_API_URL=http://127.0.0.1:4200/api`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--input",
        type=Path,
        default=defaults.input,
        help="customer file (CSV or Parquet), or a folder of dated snapshots "
        "(customers_YYYY-MM-DD.csv; the newest is used)",
    )
    parser.add_argument(
        "--output", type=Path, default=defaults.output_dir, help="output folder of the runs"
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
        "--limit", type=int, default=None, help="most runs executing at the same time"
    )
    return parser


def main(argv: list[str] | None = None, *, prog: str = "segment serve") -> int:
    """`segment serve`: parse the options and serve the deployment until interrupted."""
    _configure_prefect()
    parser = _parser(prog)
    args = parser.parse_args(argv)
    try:
        settings = SegmentationSettings(
            input=args.input.expanduser().absolute(),
            output_dir=args.output.expanduser().absolute(),
        )
        # Build once to report a bad cron or deployment name as a usage error.
        nightly_deployment(settings, cron=args.cron, timezone=args.timezone, name=args.name)
    except (ValidationError, ValueError) as error:
        parser.error(_one_line(error))
    if not settings.input.exists():
        print(
            f"{prog}: warning: {settings.input} does not exist yet; runs fail until it does",
            file=sys.stderr,
        )
    try:
        serve_nightly(
            settings, cron=args.cron, timezone=args.timezone, name=args.name, limit=args.limit
        )
    except RuntimeError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    return 0


def _one_line(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
    return str(error)


def _configure_prefect() -> None:
    """Same defaults as `segment run`, before Prefect is imported (the user's settings win)."""
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "tasks")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")


if __name__ == "__main__":
    sys.exit(main(prog="python -m flows.deployment"))
