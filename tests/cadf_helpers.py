"""CADF events made by OpenStack's own libraries, published as OpenStack services publish them.

Events are built with ``pycadf`` exactly as keystonemiddleware's audit filter (``audit.http.*``) and
Keystone's ``notifications.py`` (``identity.*``) build theirs; they are published by oslo.messaging's
``Notifier`` with the ``messagingv2`` driver over ``rabbit://`` to the local RabbitMQ.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aio_pika
from pycadf import cadftaxonomy as taxonomy
from pycadf import cadftype, eventfactory, host, reason, reporterstep, resource, timestamp
from pycadf import endpoint as cadf_endpoint

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
RABBIT_URL = "rabbit://guest:guest@127.0.0.1:5672/"


def unique_topic() -> str:
    return f"opencts-test-{uuid.uuid4().hex[:12]}"


@contextmanager
def oslo_notifier(topic: str, publisher_id: str = "nova-api.host1") -> Iterator[Any]:
    """An oslo.messaging Notifier on ``topic`` (exchange ``openstack``, its default control exchange)."""
    with warnings.catch_warnings():  # oslo.service imports eventlet, which warns that it is deprecated
        warnings.simplefilter("ignore")
        import oslo_messaging
        from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=RABBIT_URL)
    try:
        yield oslo_messaging.Notifier(transport, publisher_id, driver="messagingv2", topics=[topic])
    finally:
        transport.cleanup()


def publish(topic: str, notes: list[tuple[str, dict[str, Any]]], publisher: str = "nova-api.host1") -> None:
    """Publish ``(event_type, payload)`` notifications with oslo.messaging's Notifier, in a process of its
    own as an OpenStack service would (oslo.service brings eventlet, which must not meet the test's loop)."""
    proc = subprocess.run(
        [sys.executable, __file__, topic, publisher],
        input=json.dumps(notes).encode(),
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]


def audit_response(
    *,
    method_action: str = "create",
    path: str = "/v2.1/servers",
    type_uri: str = "service/compute/servers",
    status: int = 202,
    project_id: str = "0" * 32,
    user_id: str | None = None,
    user_name: str = "alice",
    address: str = "192.0.2.10",
) -> dict[str, Any]:
    """The payload of ``audit.http.response`` as keystonemiddleware's audit filter makes it."""
    initiator = resource.Resource(
        typeURI=taxonomy.ACCOUNT_USER,
        id=user_id or str(uuid.uuid4()),
        name=user_name,
        host=host.Host(address=address, agent="python-novaclient"),
    )
    initiator.project_id = project_id
    initiator.request_id = f"req-{uuid.uuid4()}"
    target = resource.Resource(typeURI=type_uri, id=str(uuid.uuid4()), name="nova")
    target.add_address(cadf_endpoint.Endpoint(name="public", url="http://nova.example.com:8774/v2.1"))
    event = eventfactory.EventFactory().new_event(
        eventType=cadftype.EVENTTYPE_ACTIVITY,
        outcome=taxonomy.OUTCOME_PENDING,
        action=method_action,
        initiator=initiator,
        target=target,
        observer=resource.Resource(id="target"),
    )
    event.requestPath = path
    event.reason = reason.Reason(reasonType="HTTP", reasonCode=str(status))
    event.outcome = taxonomy.OUTCOME_SUCCESS if 200 <= status < 400 else taxonomy.OUTCOME_FAILURE
    event.add_reporterstep(
        reporterstep.Reporterstep(
            role=cadftype.REPORTER_ROLE_MODIFIER,
            reporter=resource.Resource(id="target"),
            reporterTime=timestamp.get_utc_now(),
        )
    )
    payload: dict[str, Any] = event.as_dict()
    return payload


def keystone_event(
    action: str,
    outcome: str,
    target_type: str,
    *,
    target_id: str | None = None,
    user_id: str | None = None,
    user_name: str | None = "alice",
    project_id: str | None = None,
    address: str = "198.51.100.7",
    **extra: Any,
) -> dict[str, Any]:
    """A payload as Keystone's ``_send_audit_notification`` makes it (initiator from the request)."""
    initiator = resource.Resource(
        typeURI=taxonomy.ACCOUNT_USER, host=host.Host(address=address, agent="python-keystoneclient")
    )
    if user_id:
        initiator.user_id = user_id
        initiator.id = str(uuid.uuid5(uuid.NAMESPACE_OID, user_id))
    if user_name:
        initiator.name = user_name
        initiator.username = user_name
    if project_id:
        initiator.project_id = project_id
    target = (
        resource.Resource(typeURI=target_type, id=target_id)
        if target_id
        else resource.Resource(typeURI=target_type)
    )
    event = eventfactory.EventFactory().new_event(
        eventType=cadftype.EVENTTYPE_ACTIVITY,
        outcome=outcome,
        action=action,
        initiator=initiator,
        target=target,
        observer=resource.Resource(typeURI=taxonomy.SERVICE_SECURITY),
    )
    for key, value in extra.items():
        setattr(event, key, value)
    payload: dict[str, Any] = event.as_dict()
    return payload


async def queue_depth(name: str) -> int:
    """Messages ready in queue ``name`` (0 if it does not exist)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return 0
        return int(queue.declaration_result.message_count or 0)


async def delete_queues(*names: str) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)


async def publish_raw(queue: str, bodies: list[bytes]) -> None:
    """Bodies straight into ``queue`` (through the default exchange), as a broken producer would."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body, content_type="application/json"), routing_key=queue
            )


def _main() -> None:
    """``python cadf_helpers.py TOPIC PUBLISHER`` < JSON list of [event_type, payload]."""
    topic, publisher = sys.argv[1], sys.argv[2]
    notes = json.load(sys.stdin)
    with oslo_notifier(topic, publisher) as notifier:
        for event_type, payload in notes:
            notifier.info({}, event_type, payload)


if __name__ == "__main__":
    _main()
