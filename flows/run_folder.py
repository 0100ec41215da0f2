"""What every segmentation flow does around its steps: its logging, a staging folder and the
output lock, and failing without writing the exception to Prefect's result storage."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Flow, Task, flow, task
from prefect.cache_policies import NO_CACHE

from flows.environment import RUN_LOGGERS
from flows.killed_runs import record_process
from segment.settings import SegmentationSettings
from tasks.errors import InputError, PublishError
from tasks.gates import GateError
from tasks.reporting.artifacts import artifact_key
from tasks.store.manifest import new_run_id
from tasks.store.run_files import abandon_run, release_run, start_run

P = ParamSpec("P")
R = TypeVar("R")

RUN_NAME_PREFIX = "segment-"  # flow run names: segment-<run-id>, the name of the run's folder


def configure_run_logging() -> None:
    """A flow run's logging, set as it starts (nothing is added twice): the task modules' INFO
    lines (in the run's log with PREFECT_LOGGING_EXTRA_LOGGERS=tasks, as the CLI and
    prefect.toml set it), and no traceback for bad input or a breached gate: not bugs."""
    logging.getLogger("tasks").setLevel(logging.INFO)
    for name in RUN_LOGGERS:
        logging.getLogger(name).addFilter(_no_traceback_for_bad_input)


def _no_traceback_for_bad_input(record: logging.LogRecord) -> bool:
    if record.exc_info and isinstance(record.exc_info[1], (InputError, GateError, PublishError)):
        record.exc_info = record.exc_text = None
    return True


def flow_run_name() -> str:
    """``flow_run_name`` of the segmentation flows: ``segment-<run-id>``, so that a run in the
    Prefect UI and its folder name each other. Prefect calls it as the run starts (with the
    run's parameters as given: a model, or JSON in a deployment run); the flow then takes its
    run id back from the name (``run_id_for``)."""
    from prefect.runtime import flow_run

    settings = flow_run.get_parameters().get("settings")
    given = (
        settings.get("run_id") if isinstance(settings, dict) else getattr(settings, "run_id", None)
    )
    return RUN_NAME_PREFIX + (given or new_run_id(str(flow_run.get_id() or "local")))


def run_id_for(settings: SegmentationSettings) -> str:
    """The run folder's name: ``settings.run_id`` if set, else the run id ``flow_run_name``
    put in this flow run's name, else a new one (the flow called without Prefect's engine)."""
    from prefect.runtime import flow_run

    if settings.run_id:
        return settings.run_id
    name = flow_run.get_name() or ""
    if name.startswith(RUN_NAME_PREFIX) and len(name) > len(RUN_NAME_PREFIX):
        return name.removeprefix(RUN_NAME_PREFIX)
    return new_run_id(str(flow_run.get_id() or "local"))


def run_artifact_key(base: str, settings: SegmentationSettings) -> str:
    """The key of one of this run's artifacts: ``base`` in a run of a deployment (the nightly
    history), else one of its own per output folder (``tasks.reporting.artifacts.artifact_key``)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()  # in the flow's tasks too: they run in its thread
    run = None if context is None else context.flow_run
    deployment = run is not None and run.deployment_id is not None
    return artifact_key(base, settings.output_dir, deployment=deployment)


@contextmanager
def staged_run(output_dir: Path, run_id: str, source: Path) -> Iterator[Path]:
    """Yield the run's staging folder, holding the output folder's lock meanwhile
    (``tasks.store.run_files.start_run``: one run at a time per output folder, from loading the
    previous run to publishing). On any failure the staging folder is removed; a bad-input
    error found after reading (e.g. too few distinct customers for k) is re-raised naming
    ``source``."""
    staging = start_run(output_dir, run_id)
    try:
        yield staging
    except InputError as error:
        abandon_run(staging)
        if error.path is None:
            raise error.with_path(source) from error
        raise
    except BaseException:
        abandon_run(staging)
        raise
    finally:
        release_run(staging)  # if the flow returned without publishing


def fails_without_persisting(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a flow function (below ``@flow(..., persist_result=False)``) so that an
    exception ends the run in a returned ``Failed`` state instead of a raised exception.

    Prefect 3.9's flow engine writes a raised exception to result storage whatever
    ``persist_result`` says (a cloudpickle in ``$PREFECT_HOME/storage`` and an unnamed result
    artifact pointing at it); a returned ``Failed`` state is written only when results are
    persisted, which they never are here. The state keeps the exception in memory, so calling
    the flow still raises it (the CLI maps its type to an exit code); the run's log and state
    message show it as before. BaseExceptions (interrupts) still crash the run: Prefect writes
    nothing for those.
    """

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        from prefect import get_run_logger
        from prefect.states import Failed

        try:
            return fn(*args, **kwargs)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            # The traceback, as Prefect logs it (dropped for bad input and breached gates).
            logger = get_run_logger()
            logger.error("Encountered exception during execution: %s", reason, exc_info=True)
            return Failed(message=f"Flow run encountered an exception: {reason}", data=error)

    # The signature with its annotations as types, not strings: Prefect validates parameters
    # with it, and would look strings up in this module instead of the flow's.
    # inspect.signature reads a function's __signature__ (PEP 362); typeshed does not declare it
    run.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    run.__annotations__ = inspect.get_annotations(fn, eval_str=True)
    return run


def segmentation_flow(name: str) -> Callable[[Callable[..., Any]], Flow[..., Any]]:
    """``@flow`` for the segmentation flows: named ``name``, each run named segment-<run-id> as
    its run folder (``flow_run_name``), results not persisted, and a failed run writes no pickle
    of its exception either (``fails_without_persisting``)."""

    def decorate(fn: Callable[..., Any]) -> Flow[..., Any]:
        return flow(
            name=name,
            flow_run_name=flow_run_name,
            log_prints=True,
            persist_result=False,
            on_running=[record_process],  # a killed run's process: see flows.killed_runs
        )(fails_without_persisting(fn))

    return decorate


@contextmanager
def untagged_tasks() -> Iterator[None]:
    """Run a flow's tasks without the tags of its flow run (``adhoc``, ``segmentation``).

    Prefect acquires tag-concurrency slots from the server before every tagged task run starts,
    even when no concurrency limit uses the tag: measured here at ~2 s per task at 10M customers
    (11 s of a 10M run). The flow run keeps its tags for the UI; no limit applies to its tasks.
    """
    from prefect.context import TagsContext

    with TagsContext(current_tags=set()):
        yield


def pipeline_task(name: str, **options: Any) -> Callable[[Callable[P, R]], Task[P, R]]:
    """``@task`` for the steps of the project's flows: named ``name``, never cached, results
    never persisted (no pickle in Prefect's result storage); ``options`` are Prefect's other
    task options (retries ...). Keeps Prefect's typed task signature, which a ``**dict`` of
    options would hide from type checkers."""
    return task(name=name, cache_policy=NO_CACHE, persist_result=False, **options)
