"""`segment server start|stop|status`: Prefect's background server for this project, with its
UI on 127.0.0.1 (``flows/background_server.py``). While it runs, `segment run` uses it."""

from __future__ import annotations

import argparse
import sys

from flows import background_server as background

EXIT_OK = 0
EXIT_FAILED = 1  # the server could not be started or stopped: the message says why
EXIT_NOT_RUNNING = 3  # `status` when no server runs (the LSB init-script convention)


def add_server_command(commands, formatter_class: type[argparse.HelpFormatter]) -> None:
    """The ``server`` command and its ``start``, ``stop`` and ``status``."""
    server = commands.add_parser(
        "server",
        help="start, stop or show Prefect's background server (API and UI on 127.0.0.1); "
        "segment run uses it while it runs",
        description="Prefect's own background server (`prefect server start --background`), "
        "one per PREFECT_HOME (default ~/.prefect, where Prefect keeps its pid file and "
        "database). While it runs, `segment run` uses it instead of a temporary server and "
        "its summary ends with the flow run's link in the UI.",
        formatter_class=formatter_class,
    )
    actions = server.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser(
        "start",
        help="start it and wait until it answers (already running: says so, exit 0)",
        formatter_class=formatter_class,
    )
    start.add_argument(
        "--port",
        type=int,
        default=background.DEFAULT_PORT,
        help="port on 127.0.0.1 for the API and the UI",
    )
    start.set_defaults(handler=_start, command_parser=start)
    stop = actions.add_parser(
        "stop", help="stop it and wait until it has exited (not running: says so, exit 0)"
    )
    stop.set_defaults(handler=_stop, command_parser=stop)
    status = actions.add_parser(
        "status", help="its UI and API address and pid (exit 0), or 'not running' (exit 3)"
    )
    status.set_defaults(handler=_status, command_parser=status)


def _fail(message: object) -> int:
    print(f"segment: error: {message}", file=sys.stderr)
    return EXIT_FAILED


def _start(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    home = background.prefect_home()
    try:
        server, already = background.start(home, args.port)
    except background.ServerError as error:
        return _fail(error)
    if already:
        print(f"Already running: {describe(server)}")
    else:
        print(f"Started: {describe(server)}")
        print("segment run uses it until `segment server stop`")
    return EXIT_OK


def _stop(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    home = background.prefect_home()
    try:
        pid = background.stop(home)
    except background.ServerError as error:
        return _fail(error)
    if pid is None:
        print(f"Not running: no background Prefect server in {home}")
    else:
        print(f"Stopped the background Prefect server (pid {pid}) of {home}")
    return EXIT_OK


def _status(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    home = background.prefect_home()
    server = background.found(home)
    if server is None:
        print(f"Not running: no background Prefect server in {home}")
        return EXIT_NOT_RUNNING
    if not background.answers(server):
        print(f"Not answering: {describe(server)}")
        return EXIT_FAILED
    print(f"Running: {describe(server)}")
    return EXIT_OK


def describe(server: background.BackgroundServer) -> str:
    """One line: the UI and API addresses and the pid."""
    return f"UI {server.ui_url}, API {server.api_url}, pid {server.pid}"
