"""What the command-line entry points share: Prefect defaults and one-line error messages."""

from __future__ import annotations

import os

from pydantic import ValidationError


def configure_prefect(*, quiet: bool = False) -> None:
    """Defaults for our processes, set before Prefect is imported (the user's settings win)."""
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "tasks")  # task modules' logs
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def one_line(error: Exception) -> str:
    """A settings validation error (or any error) as one readable line."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in error.errors()
        )
    return str(error)
