"""Where a run's tasks execute: this process (the default) or a Dask cluster."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import Flow

from segment.settings import SegmentationSettings


def dask_task_runner(settings: SegmentationSettings):
    """Prefect's DaskTaskRunner on an existing cluster (``dask.address``) or, by default, on a
    temporary LocalCluster of ``dask.workers`` single-threaded worker processes on 127.0.0.1."""
    from prefect_dask import DaskTaskRunner

    if settings.dask.address:
        return DaskTaskRunner(address=settings.dask.address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": settings.dask.workers,
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
        },
    )


def flow_for(settings: SegmentationSettings) -> Flow[[SegmentationSettings], dict]:
    """The segmentation flow with the task runner ``settings.runner`` asks for: runner=local
    runs its tasks in this process; runner=dask on a Dask cluster (the elbow sweep's k values
    fanned out over the workers; a folder of Parquet partitions cleaned, scaled and fitted
    partition by partition there). The plan, not this, decides what the input is."""
    from flows.segmentation import segment_customers

    if settings.runner == "local":
        return segment_customers
    return segment_customers.with_options(task_runner=dask_task_runner(settings))


@contextmanager
def prefect_api_for_workers(settings: SegmentationSettings) -> Iterator[None]:
    """One Prefect API for this process and every Dask worker it starts, from a temporary
    server that dies with this process.

    Worker processes report their task runs to the API named by ``PREFECT_API_URL`` in their
    environment; without one, each would start its own temporary server. So: use the API this
    process is configured with, or start one temporary server (flows.server's, which dies with
    this process, where Prefect's own would outlive a killed run) and export its URL while the
    flow runs (restored afterwards). With runner=local the same server, in this process only;
    nothing to do when an API is configured (``segment run`` normally started flows.server's
    early server already and named it), or when Prefect may not start a temporary server (it
    then says so itself).
    """
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    url = PREFECT_API_URL.value()
    if not url and not get_current_settings().server.ephemeral.enabled:
        yield
        return
    if not url:
        from flows.environment import startup_timeout
        from flows.server import EarlyServer

        server = EarlyServer.start()  # stopped at exit, as Prefect's own temporary server
        server.wait(startup_timeout())
        url = server.api_url
    if settings.runner != "dask":
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield
        return
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    import distributed  # noqa: F401 - its import sets its loggers' levels: quieten them after

    logging.getLogger("distributed").setLevel(logging.WARNING)  # the in-process scheduler's chatter
    logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before
