"""The settings a run of a segmentation flow uses. Outside a deployment, the ones it was
called with; in a run of a deployment, the fields the run gives deep-merged over the
deployment's stored settings (Prefect merges parameters one level deep only: see "Partial
settings" in ``flows.deployment``). Imported by the flows; imports no flow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from flows.environment import one_line
from segment.settings import SegmentationSettings


def settings_for_run(settings: SegmentationSettings | None) -> SegmentationSettings:
    """The settings a run of ``segment_customers`` uses: ``settings`` (the defaults if None)
    outside a deployment run; in a run of a deployment, the fields the run gives deep-merged
    over the deployment's stored settings (see "Partial settings" above). ValueError when the
    run gives only some fields and the stored ones cannot be read, or the merge is invalid."""
    from prefect import get_run_logger
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = None if context is None else context.flow_run
    if run is None or run.deployment_id is None:
        return settings or SegmentationSettings()
    given = (run.parameters or {}).get("settings")
    if not isinstance(given, dict):  # none given, or not as JSON: the fields set on the model
        given = {} if settings is None else settings.model_dump(mode="json", exclude_unset=True)
    deployment_id = run.deployment_id  # not None (above), also inside the lambda
    merged = merge_over_deployment(given, lambda: _stored_settings(deployment_id))
    if set(given) != set(SegmentationSettings.model_fields):
        get_run_logger().info(
            "Settings: the deployment's stored settings, with the fields this run gives "
            "merged over them: %s",
            ", ".join(sorted(given)) or "none",
        )
    return merged


def merge_over_deployment(
    given: dict[str, Any], read_stored: Callable[[], dict[str, Any] | None]
) -> SegmentationSettings:
    """``given`` (a run's settings fields, as JSON) deep-merged over ``read_stored()`` (the
    deployment's) by Prefect's ``deep_merge``: nested dicts key by key, any other value (None
    too) replaced. Reads nothing when ``given`` has every field. ValueError, naming the fields
    given, when the stored settings cannot be read or the merged settings are invalid."""
    from prefect.utilities.collections import deep_merge

    fields = ", ".join(sorted(given)) or "none"
    if set(given) >= set(SegmentationSettings.model_fields):
        stored: dict[str, Any] | None = {}
    else:
        try:
            stored = read_stored()
        except Exception as error:
            raise ValueError(
                f"this run gives only some settings ({fields}) and the deployment's stored "
                f"settings could not be read ({type(error).__name__}: {error}): refusing to run "
                "with the defaults for the others"
            ) from error
    try:
        return SegmentationSettings.model_validate(deep_merge(stored or {}, given))
    except ValidationError as error:
        raise ValueError(
            f"this run's settings ({fields}) merged over the deployment's are invalid: "
            f"{one_line(error)}"
        ) from None


def _stored_settings(deployment_id: UUID) -> dict[str, Any] | None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_deployment(deployment_id).parameters.get("settings")
