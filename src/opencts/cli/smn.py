"""``opencts smn topics|subscriptions|publish|deliveries|retry``: SMN from the shell, dead letters included.

A topic can be named by its URN or by its plain name (looked up in the project).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from opencts.cli.client import ApiClient
from opencts.cli.common import (
    DataDirOpt,
    EndpointOpt,
    JsonOpt,
    console,
    err,
    print_json,
    session,
    topic_urn,
)
from opencts.cli.timeparse import format_ms

app = typer.Typer(
    help="SMN: topics, subscriptions, publishing, and the delivery outbox.", no_args_is_help=True
)
topics_app = typer.Typer(help="Create, list and delete topics.", no_args_is_help=True)
subs_app = typer.Typer(help="Add, list and cancel subscriptions.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(subs_app, name="subscriptions")

TopicArg = Annotated[str, typer.Argument(help="Topic URN or name.")]
STATUS = {0: "unconfirmed", 1: "confirmed", 2: "no confirmation needed", 3: "cancelled", 4: "deleted"}


def _base(client: ApiClient) -> str:
    return f"/v2/{client.project}/notifications"


@topics_app.command("list")
def topics_list(
    name: Annotated[str | None, typer.Option(help="Only names containing this.")] = None,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the project's topics."""
    params = {"limit": 100, **({"fuzzy_name": name} if name else {})}
    with session(endpoint, data_dir) as client:
        data = client.request("GET", f"{_base(client)}/topics", params=params).json()
    if as_json:
        print_json(data)
        return
    table = Table(title=f"{data['topic_count']} topic(s)")
    for col in ("Name", "Display name", "Topic URN", "Created (UTC)"):
        table.add_column(col)
    for t in data["topics"]:
        table.add_row(t["name"], t["display_name"], t["topic_urn"], t["create_time"])
    console.print(table)


@topics_app.command("create")
def topics_create(
    name: Annotated[str, typer.Argument(help="1-255 letters, digits, - and _.")],
    display_name: Annotated[str, typer.Option(help="Shown as the sender of emails.")] = "",
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a topic and print its URN."""
    with session(endpoint, data_dir) as client:
        body = {"name": name, "display_name": display_name}
        urn = client.request("POST", f"{_base(client)}/topics", body=body).json()["topic_urn"]
    console.print(urn)


@topics_app.command("delete")
def topics_delete(topic: TopicArg, endpoint: EndpointOpt = None, data_dir: DataDirOpt = None) -> None:
    """Delete a topic with its subscriptions and everything still queued for them."""
    with session(endpoint, data_dir) as client:
        urn = topic_urn(client, topic)
        client.request("DELETE", f"{_base(client)}/topics/{urn}")
    console.print(f"deleted {urn}")


@subs_app.command("list")
def subscriptions_list(
    topic: Annotated[str | None, typer.Option(help="Only this topic (URN or name).")] = None,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List subscriptions with their status (a new one is unconfirmed until its link is opened)."""
    with session(endpoint, data_dir) as client:
        path = f"{_base(client)}/subscriptions"
        if topic:
            path = f"{_base(client)}/topics/{topic_urn(client, topic)}/subscriptions"
        data = client.request("GET", path, params={"limit": 100}).json()
    if as_json:
        print_json(data)
        return
    table = Table(title=f"{data['subscription_count']} subscription(s)")
    for col in ("Protocol", "Endpoint", "Status", "Remark", "Subscription URN"):
        table.add_column(col)
    for s in data["subscriptions"]:
        status = STATUS.get(s["status"], str(s["status"]))
        table.add_row(s["protocol"], s["endpoint"], status, s["remark"], s["subscription_urn"])
    console.print(table)


@subs_app.command("add")
def subscriptions_add(
    topic: TopicArg,
    protocol: Annotated[str, typer.Argument(help="email, sms, http or https")],
    target: Annotated[str, typer.Argument(help="Address, phone number or URL.")],
    remark: Annotated[str, typer.Option(help="A note, up to 128 bytes.")] = "",
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Subscribe an endpoint; it gets a confirmation link and nothing else until it is opened."""
    with session(endpoint, data_dir) as client:
        urn = topic_urn(client, topic)
        body = {"protocol": protocol, "endpoint": target, "remark": remark}
        sub = client.request("POST", f"{_base(client)}/topics/{urn}/subscriptions", body=body).json()
    console.print(sub["subscription_urn"])
    err.print(
        "unconfirmed: a confirmation link is queued for the endpoint; nothing else is sent until it is"
        " opened (`opencts smn deliveries` shows whether it went out)"
    )


@subs_app.command("cancel")
def subscriptions_cancel(
    subscription_urn: Annotated[str, typer.Argument()],
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete a subscription."""
    with session(endpoint, data_dir) as client:
        client.request("DELETE", f"{_base(client)}/subscriptions/{subscription_urn}")
    console.print(f"cancelled {subscription_urn}")


@app.command("publish")
def publish(
    topic: TopicArg,
    message: Annotated[str, typer.Option(help="The text (- reads standard input).")],
    subject: Annotated[str | None, typer.Option(help="Email subject, up to 512 bytes.")] = None,
    ttl: Annotated[int, typer.Option(help="Seconds to keep trying (1-86400).")] = 3600,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Publish a message to every confirmed subscriber of a topic; prints the message id."""
    text = sys.stdin.read() if message == "-" else message
    body: dict[str, Any] = {"message": text, "time_to_live": str(ttl)}
    if subject:
        body["subject"] = subject
    with session(endpoint, data_dir) as client:
        urn = topic_urn(client, topic)
        message_id = client.request("POST", f"{_base(client)}/topics/{urn}/publish", body=body).json()
    console.print(message_id["message_id"])


@app.command("deliveries")
def deliveries(
    status: Annotated[str | None, typer.Option(help="pending, delivering, delivered or dead")] = None,
    message_id: Annotated[str | None, typer.Option(help="Only this message.")] = None,
    limit: Annotated[int, typer.Option(help="Rows (1-100), newest first.")] = 50,
    as_json: JsonOpt = False,
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The outbox: what was delivered, what is waiting for a retry, and the dead letters."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if message_id:
        params["message_id"] = message_id
    with session(endpoint, data_dir) as client:
        data = client.request("GET", f"{_base(client)}/deliveries", params=params).json()
    if as_json:
        print_json(data)
        return
    table = Table(title=f"{data['delivery_count']} deliveries")
    for col in ("Id", "Status", "Tries", "Protocol", "Endpoint", "Message", "Next/done (UTC)", "Last error"):
        table.add_column(col, overflow="fold")
    for d in data["deliveries"]:
        when = d["delivered_at"] if d["delivered_at"] else d["next_attempt_at"]
        style = {"dead": "red", "delivered": "green"}.get(d["status"], "yellow")
        table.add_row(
            str(d["id"]),
            f"[{style}]{d['status']}[/{style}]",
            str(d["attempts"]),
            d["protocol"],
            d["endpoint"],
            d["message_id"] if d["kind"] == "notification" else "(confirmation)",
            format_ms(when),
            d["last_error"] or "",
        )
    console.print(table)


@app.command("retry")
def retry(
    delivery_id: Annotated[int, typer.Argument(help="The id shown by `opencts smn deliveries`.")],
    endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Re-queue a dead delivery now, with a fresh time_to_live."""
    with session(endpoint, data_dir) as client:
        client.request("POST", f"{_base(client)}/deliveries/{delivery_id}/retry")
    console.print(f"delivery {delivery_id} re-queued")
