"""``opencts smn topics|subscriptions|publish|deliveries|retry``: SMN from the shell, dead letters included.

A topic can be named by its URN or by its plain name (looked up in the project).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from opencts.cli.client import ApiClient
from opencts.cli.common import (
    Column,
    DataDirOpt,
    EndpointOpt,
    JsonOpt,
    console,
    err,
    fit_table,
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
#: URNs are what the other commands take, so they stay whole; a narrow terminal loses the extras first
#: (a topic URN ends in the topic's name, so the name column can go too; a URN too long is folded, whole)
TOPIC_COLUMNS = (
    Column("Name", drop=3),
    Column("Display name", drop=1, shrink=10),
    Column("Topic URN", shrink=40, wrap=True),
    Column("Created (UTC)", drop=2),
)
SUBSCRIPTION_COLUMNS = (
    Column("Protocol", drop=2),
    Column("Endpoint", shrink=16),
    Column("Status", shrink=11),
    Column("Remark", drop=1, shrink=8),
    Column("Subscription URN", drop=3),
)
DELIVERY_COLUMNS = (
    Column("Id"),
    Column("Status"),
    Column("Tries", drop=2),
    Column("Protocol", drop=3),
    Column("Endpoint", shrink=14),
    Column("Message", drop=4),
    Column("Next/done (UTC)", drop=1),
    Column("Last error", shrink=16, wrap=True),
)
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
    rows = [
        [escape(t["name"]), escape(t["display_name"]), t["topic_urn"], t["create_time"]]
        for t in data["topics"]
    ]
    console.print(fit_table(TOPIC_COLUMNS, rows, title=f"{data['topic_count']} topic(s)"))


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
    rows = [
        [
            sub["protocol"],
            escape(sub["endpoint"]),
            STATUS.get(sub["status"], str(sub["status"])),
            escape(sub["remark"]),
            sub["subscription_urn"],
        ]
        for sub in data["subscriptions"]
    ]
    console.print(
        fit_table(SUBSCRIPTION_COLUMNS, rows, title=f"{data['subscription_count']} subscription(s)")
    )


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
    rows = []
    for d in data["deliveries"]:
        when = d["delivered_at"] if d["delivered_at"] else d["next_attempt_at"]
        style = {"dead": "red", "delivered": "green"}.get(d["status"], "yellow")
        rows.append(
            [
                str(d["id"]),
                f"[{style}]{d['status']}[/{style}]",
                str(d["attempts"]),
                d["protocol"],
                escape(d["endpoint"]),
                d["message_id"] if d["kind"] == "notification" else "(confirmation)",
                format_ms(when),
                escape(d["last_error"] or ""),
            ]
        )
    console.print(fit_table(DELIVERY_COLUMNS, rows, title=f"{data['delivery_count']} deliveries"))


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
