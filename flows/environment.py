"""What the command-line entry points share: Prefect defaults and one-line error messages."""

from __future__ import annotations

import argparse
import logging
import os
from typing import NoReturn

from pydantic import ValidationError

STARTUP_TIMEOUT_VARIABLE = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STARTUP_TIMEOUT_SECONDS = 90  # also in prefect.toml
# The error Prefect raises when its temporary server does not answer in time.
STARTUP_TIMEOUT_ERROR = "Timed out while attempting to connect to ephemeral Prefect API server"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, except where there is none to show (None, an
    empty list, an unset flag): there the help text says in words what happens by default,
    instead of "(default: None)"."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line on standard error (exit 2), like
    every other error of ``segment``, pointing at ``--help`` instead of printing the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def configure_prefect() -> None:
    """Defaults for our processes, set before Prefect is imported (the user's environment
    variables win)."""
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "tasks")  # task modules' logs
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    # As prefect.toml, for runs started outside the project folder: the temporary server gets
    # 90 s to start instead of 20 (missed on a loaded machine).
    os.environ.setdefault(STARTUP_TIMEOUT_VARIABLE, str(STARTUP_TIMEOUT_SECONDS))


# Loggers of a run's own failure records: "Task run failed with exception", "Finished in state
# Failed", "Encountered exception during execution".
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def _no_run_failures(record: logging.LogRecord) -> bool:
    """Drops a run's ERROR records: the CLI prints the failure itself, once."""
    return record.levelno < logging.ERROR or not record.name.startswith(RUN_LOGGERS)


def quiet_console() -> None:
    """``--quiet``, after Prefect has set up logging (on import): the terminal shows warnings
    only, and no run-failure records (the CLI's own one-line message says it). Only Prefect's
    console handlers change: the run's log in the Prefect UI keeps its INFO lines and the
    traceback of an internal error."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.setLevel(logging.WARNING)
            handler.addFilter(_no_run_failures)  # added once: addFilter skips one already there


def one_line(error: Exception) -> str:
    """A settings validation error (or any error) as one readable line."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in error.errors()
        )
    return str(error)


def startup_timeout() -> float:
    """Seconds Prefect's temporary server has to answer (Prefect's setting)."""
    from prefect.settings import get_current_settings

    return float(get_current_settings().server.ephemeral.startup_timeout_seconds)


def internal_error_line(error: Exception) -> str:
    """The one line ``segment`` prints for an unexpected error; for a temporary server that
    did not start in time, what to do about it."""
    if STARTUP_TIMEOUT_ERROR not in str(error):
        return f"{type(error).__name__}: {error}"
    from prefect.settings import get_current_settings

    limit = get_current_settings().server.ephemeral.startup_timeout_seconds
    return (
        f"Prefect's temporary server did not start within {limit} s ({STARTUP_TIMEOUT_VARIABLE})."
        " Start a server once with `make server`, then `export "
        "PREFECT_API_URL=http://127.0.0.1:4200/api` in this shell and run again"
    )
