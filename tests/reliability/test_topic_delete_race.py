"""DeleteTopic racing CreateNotification on PostgreSQL: whichever commits first, no notification is left
pointing at a deleted topic (its alarms would be dropped silently).

Each race holds the first transaction open at the point that matters, starts the second in a thread, waits
until PostgreSQL shows it blocked on a lock, then commits the first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, text

from opencts.clock import now_ms
from opencts.errors import BadRequest
from opencts.iam.bootstrap import bootstrap
from opencts.iam.secrets import SecretBox
from opencts.notifications import repository
from opencts.notifications.model import CreateNotificationRequestBody
from opencts.smn import topics
from opencts.smn.errors import TopicInUse
from opencts.smn.model import CreateTopic
from opencts.store import Database, migrate
from opencts.store.tables import notifications
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url)
    migrate.upgrade(database)
    try:
        yield database
    finally:
        database.close()


def setup(db: Database) -> tuple[str, str]:
    def run(conn: Connection) -> tuple[str, str]:
        creds = bootstrap(conn, box=SecretBox(bytes(32)), region="local-1", password="pw-123456789")
        assert creds is not None
        body = CreateTopic(name="alarms")
        urn = topics.create(conn, project_id=creds.project_id, region="local-1", body=body, now=now_ms())
        return creds.project_id, urn

    return db.write_sync(run)


def notification(topic: str) -> CreateNotificationRequestBody:
    return CreateNotificationRequestBody(
        notification_name="logins", operation_type="complete", topic_id=topic
    )


def wait_until_blocked(db: Database, timeout: float = 20.0) -> None:
    """Until another session of this database waits on a row lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    wait_for(
        lambda: db.read_sync(lambda conn: conn.execute(query).scalar_one()) > 0,
        timeout,
        "the second transaction to wait for the first",
        interval=0.01,
    )


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = fn()
        except (TopicInUse, BadRequest) as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_delete_waits_for_a_notification_being_created_and_refuses(db: Database) -> None:
    project, topic = setup(db)
    with db.write_engine.connect() as first:
        tx = first.begin()
        repository.create(first, project_id=project, body=notification(topic))
        thread, outcome = in_thread(lambda: db.write_sync(lambda c: topics.remove(c, project, topic)))
        wait_until_blocked(db)
        tx.commit()
    thread.join(20)
    assert isinstance(outcome.get("error"), TopicInUse) and "logins" in outcome["error"].message
    assert db.read_sync(lambda c: topics.get(c, project, topic)).topic_urn == topic


def test_a_notification_waits_for_a_delete_and_finds_no_topic(db: Database) -> None:
    project, topic = setup(db)
    with db.write_engine.connect() as first:
        tx = first.begin()
        topics.remove(first, project, topic)
        thread, outcome = in_thread(
            lambda: db.write_sync(
                lambda c: repository.create(c, project_id=project, body=notification(topic))
            )
        )
        wait_until_blocked(db)
        tx.commit()
    thread.join(20)
    assert isinstance(outcome.get("error"), BadRequest) and "no SMN topic" in outcome["error"].message
    assert db.read_sync(lambda c: c.execute(notifications.select()).all()) == []
