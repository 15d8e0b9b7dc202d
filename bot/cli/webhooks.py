"""`opsbot webhooks add|list|disable|deliveries|replay`: the CRM's outgoing webhooks (README:
Outgoing webhooks)."""

from typing import Annotated, Any

import typer

from bot.cli.support import JsonFlag, load_settings, open_existing_database, print_json
from store.db import Database
from store.errors import DomainError
from store.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from store.types import utcnow
from store.webhooks import (
    EVENT_TYPES,
    add_endpoint,
    disable_endpoint,
    get_endpoint,
    list_attempts,
    list_deliveries,
    list_endpoints,
    replay_delivery,
)

webhooks_app = typer.Typer(help="Outgoing webhooks (Standard Webhooks) to a CRM.")


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="The receiver's http(s) URL.")],
    events: Annotated[str, typer.Option(help=f"Comma-separated: {', '.join(EVENT_TYPES)}.")],
    as_json: JsonFlag = False,
) -> None:
    """Subscribe URL to events; prints its signing secret (shown this once)."""
    def add(session) -> tuple[dict[str, Any], str]:
        endpoint, secret = add_endpoint(session, url=url, events=events.split(","),
                                        now=utcnow())
        return endpoint_json(endpoint), secret

    endpoint, secret = _run(add)
    if as_json:
        print_json({**endpoint, "secret": secret})
        return
    typer.echo(f"endpoint {endpoint['id']}: {endpoint['url']} ({', '.join(endpoint['events'])})")
    typer.echo(f"secret: {secret}\nKeep it in the CRM to verify signatures; it is not shown "
               "again.")


@webhooks_app.command("list")
def webhooks_list(as_json: JsonFlag = False) -> None:
    """Every endpoint, enabled or not."""
    endpoints = _run(lambda session: [endpoint_json(e) for e in list_endpoints(session)])
    if as_json:
        print_json(endpoints)
        return
    for endpoint in endpoints:
        state = (f"disabled {endpoint['disabled_at']}: {endpoint['disabled_reason']}"
                 if endpoint["disabled_at"] else "enabled")
        typer.echo(f"{endpoint['id']}  {endpoint['url']}  {','.join(endpoint['events'])}  "
                   f"{state}")
    if not endpoints:
        typer.echo("no webhook endpoints (add one with `opsbot webhooks add URL --events …`)")


@webhooks_app.command("disable")
def webhooks_disable(
    endpoint_id: Annotated[int, typer.Argument(metavar="ID", help="The endpoint's id.")],
    reason: Annotated[str, typer.Option(help="Why (kept with the endpoint).")] = "disabled "
    "with the command line",
) -> None:
    """Stop sending to an endpoint; its pending deliveries are cancelled."""
    endpoint = _run(lambda session: endpoint_json(disable_endpoint(
        session, endpoint_id=endpoint_id, reason=reason, now=utcnow())))
    typer.echo(f"endpoint {endpoint['id']} disabled: {endpoint['disabled_reason']}")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    endpoint_id: Annotated[int, typer.Argument(metavar="ID", help="The endpoint's id.")],
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """An endpoint's latest deliveries and their attempts."""
    def read(session) -> list[dict[str, Any]]:
        get_endpoint(session, endpoint_id=endpoint_id)
        deliveries = list_deliveries(session, endpoint_id=endpoint_id, limit=limit)
        attempts = list_attempts(session, delivery_ids=[d.id for d in deliveries])
        return [delivery_json(d, attempts.get(d.id, [])) for d in deliveries]

    deliveries = _run(read)
    if as_json:
        print_json(deliveries)
        return
    for delivery in deliveries:
        typer.echo(f"{delivery['id']}  {delivery['type']}  {delivery['status']}  "
                   f"{delivery['attempts']} attempt(s)  {delivery['message_id']}")
        for attempt in delivery["attempt_log"]:
            answer = attempt["status_code"] or attempt["error"]
            typer.echo(f"    {attempt['at']}  {answer}  {attempt['latency_ms']} ms")


@webhooks_app.command("replay")
def webhooks_replay(
    delivery_id: Annotated[int, typer.Argument(metavar="DELIVERY_ID")],
) -> None:
    """Send a delivery again, as a new delivery (same payload, new webhook-id)."""
    replay = _run(lambda session: delivery_json(
        replay_delivery(session, delivery_id=delivery_id, now=utcnow()), []))
    typer.echo(f"delivery {delivery_id} queued again as delivery {replay['id']} "
               f"({replay['message_id']})")


def _run(work) -> Any:
    """`work(session)` in one transaction of the configured database; a refusal is one line on
    stderr and exit code 1."""
    database: Database = open_existing_database(load_settings())
    try:
        with database.transaction() as session:
            return work(session)
    except DomainError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    finally:
        database.dispose()


def endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"id": endpoint.id, "url": endpoint.url, "events": list(endpoint.events),
            "created_at": endpoint.created_at, "disabled_at": endpoint.disabled_at,
            "disabled_reason": endpoint.disabled_reason}


def delivery_json(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> dict[str, Any]:
    return {"id": delivery.id, "endpoint_id": delivery.endpoint_id, "type": delivery.type,
            "message_id": delivery.message_id, "task_id": delivery.task_id,
            "status": delivery.status, "attempts": delivery.attempts,
            "next_attempt_at": delivery.next_attempt_at, "created_at": delivery.created_at,
            "delivered_at": delivery.delivered_at,
            "attempt_log": [{"at": a.at, "status_code": a.status_code,
                             "latency_ms": a.latency_ms, "response_head": a.response_head,
                             "error": a.error} for a in attempts]}
