"""Alerts of the nightly deployment (`--notify URL`): one Prefect automation per deployment.

The automation is Prefect's own machinery, run by the server's trigger and action services: an
``EventTrigger`` on the events ``prefect.flow-run.Failed``, ``Crashed`` and ``TimedOut`` of flow
runs related to the deployment (a quality gate, the drift gate, bad input or a crash all end the
run in one of these states), with one ``SendNotification`` action per URL. Each URL is kept,
as a secret, in a notification block: an ``http(s)://`` URL in a
``CustomWebhookNotificationBlock`` that POSTs JSON (``text``, ``subject``, ``body``: a Slack
incoming webhook reads ``text``); any other URL is an Apprise URL (``mailto://``,
``workflows://``, ``slack://``, ``json://`` ...) kept in Prefect's ``SlackWebhook`` block, the
one Apprise block that hands a URL of another shape to Apprise as it is. The server renders the
subject and body with Jinja when the run fails: the deployment, the run, its state message (a
GateError names the gate and its figures) and the run's UI link.

Idempotent: the automation is named after the deployment (``automation_name``); setting the
URLs again updates it, and an empty list deletes it with its blocks. `segment serve --notify`
calls ``set_alerts`` after registering the deployment; for a deployment made by ``prefect
deploy`` (prefect.yaml), ``segment notify --notify URL`` (``flows.deployment.notify_main``)
does the same afterwards.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit
from uuid import UUID

if TYPE_CHECKING:
    from prefect.blocks.notifications import NotificationBlock
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import Automation

FAILED_EVENTS = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut")
# Jinja, rendered by the server's action service with the run, its deployment and flow.
SUBJECT = "Segmentation run failed: {{ deployment.name }} / {{ flow_run.name }}"
BODY = (
    "Deployment: {{ flow.name }}/{{ deployment.name }}\n"
    "Flow run: {{ flow_run.name }} ({{ flow_run.id }})\n"
    "State: {{ flow_run.state.name }}\n"
    "Reason: {{ flow_run.state.message }}\n"
    "Open in the Prefect UI: {{ flow_run|ui_url }}"
)


def automation_name(deployment: str) -> str:
    """The automation of deployment ``deployment`` (``flow/deployment``)."""
    return f"notify: {deployment} failed"


def block_name(deployment: str, index: int) -> str:
    """The notification block of the ``index``-th URL (block names: lowercase, digits, dashes)."""
    return re.sub(r"[^a-z0-9]+", "-", deployment.lower()).strip("-") + f"-notify-{index}"


def check_url(url: str) -> str:
    """``url`` if it can carry a notification (http(s) with a host, or an Apprise URL Apprise
    knows), else ValueError saying why."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError(f"{url!r} names no host")
        return url
    from apprise import Apprise

    if not parts.scheme or not Apprise().add(url):
        raise ValueError(
            f"{url!r} is neither an http(s) webhook URL nor an Apprise URL Apprise "
            "accepts (e.g. mailto://user:password@example.com, msteams://..., slack://...)"
        )
    return url


def notification_block(url: str, name: str) -> NotificationBlock:
    """The Prefect notification block that sends to ``url`` (see the module docstring)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

    if urlsplit(url).scheme in ("http", "https"):
        return CustomWebhookNotificationBlock(
            name=name,
            url="{{webhook_url}}",  # the URL is a secret (a Slack webhook's holds its token)
            secrets={"webhook_url": url},  # pydantic makes it a SecretDict
            json_data={
                "text": "{{subject}}\n{{body}}",
                "subject": "{{subject}}",
                "body": "{{body}}",
            },
        )
    return SlackWebhook(url=url)  # pydantic keeps it as a SecretStr


def set_alerts(deployment_id: UUID, urls: list[str]) -> UUID | None:
    """Make the deployment's automation send to ``urls`` on a failed run (create, update or, for
    no URL, delete it and its blocks); the automation's id, or None when there is none."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(deployment_id)
        full_name = f"{client.read_flow(deployment.flow_id).name}/{deployment.name}"
        existing = client.read_automations_by_name(automation_name(full_name))
        old_blocks = {b for automation in existing for b in _blocks_of(automation)}
        for automation in existing[1:]:  # one per deployment, whatever came before
            client.delete_automation(automation.id)
        new_blocks = [_save_block(url, block_name(full_name, i)) for i, url in enumerate(urls)]
        automation = _automation(full_name, deployment_id, new_blocks)
        automation_id = _apply(client, existing[:1], automation)
        for stale in old_blocks - set(new_blocks):
            client.delete_block_document(stale)
    return automation_id


def _save_block(url: str, name: str) -> UUID:
    # Block.save is sync/async dispatched: from sync code, the block document's id
    return cast("UUID", notification_block(url, name).save(name, overwrite=True))


def _blocks_of(automation: Automation) -> list[UUID]:
    from prefect.events.actions import SendNotification

    return [a.block_document_id for a in automation.actions if isinstance(a, SendNotification)]


def _automation(full_name: str, deployment_id: UUID, blocks: list[UUID]):
    from prefect.automations import AutomationCore, EventTrigger, Posture, SendNotification

    return AutomationCore(
        name=automation_name(full_name),
        description=f"Notify {len(blocks)} URL(s) when a run of {full_name} fails "
        "(segment serve --notify / segment notify).",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={
                "prefect.resource.id": f"prefect.deployment.{deployment_id}",
                "prefect.resource.role": "deployment",
            },
            expect=set(FAILED_EVENTS),
            posture=Posture.Reactive,
            threshold=1,
            within=0,  # seconds
        ),
        actions=[SendNotification(block_document_id=b, subject=SUBJECT, body=BODY) for b in blocks],
    )


def _apply(client: SyncPrefectClient, existing: list, automation) -> UUID | None:
    """Create, update or (no action) delete the automation; its id or None."""
    if not automation.actions:
        for old in existing:
            client.delete_automation(old.id)
        return None
    if existing:
        client.update_automation(existing[0].id, automation)
        return existing[0].id
    return client.create_automation(automation)


def add_notify_option(parser: argparse.ArgumentParser) -> None:
    """``--notify URL`` (repeatable), for `segment serve` and `segment notify`."""
    parser.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        type=_url_arg,
        help="send a notification to this webhook (http/https) or Apprise URL when a run fails "
        "or a gate stops it (repeatable); none: no notification",
    )


def _url_arg(text: str) -> str:
    try:
        return check_url(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
