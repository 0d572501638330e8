"""Key-event notification bodies (CTS v3 ``Create``/``UpdateNotificationRequestBody``) and their rules.

The SDK checks nothing before sending, so every limit CTS documents is enforced here and named in the
message: at most 1,000 operations over at most 100 services, at most 10 user groups and 50 users, at most
6 filter rules over six fields with ``=``/``!=``. Types are strict and unknown fields are refused, for the
same reason as tracker bodies: a typo (``notify_users``) silently ignored would alarm the wrong people.

Rules that need the database (the topic exists in the caller's project, the name is free, the quota) are
checked in :mod:`opencts.notifications.repository`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

MAX_NOTIFICATIONS = 100
#: notifications of type fun are FunctionGraph's CTS triggers, of which a project has at most 10
MAX_FUN_NOTIFICATIONS = 10
MAX_OPERATIONS = 1_000
MAX_SERVICES = 100
MAX_USER_GROUPS = 10
MAX_USERS = 50
MAX_RULES = 6
AGENCY_NAME = "cts_admin_trust"
FILTER_FIELDS = ("api_version", "code", "trace_rating", "trace_type", "resource_id", "resource_name")

NotificationName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,64}$")]
ServiceType = Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9A-Za-z_-]{0,63}$")]
ResourceType = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,128}$")]
#: the same rule ingest applies to ``trace_name``, so every name here can occur in a trace
TraceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][0-9A-Za-z._-]{0,63}$")]
IamName = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,64}$")]

_SMN_URN = re.compile(
    r"urn:smn:([a-z0-9][a-z0-9-]{0,63}):([0-9A-Za-z_-]{1,64}):([A-Za-z0-9][A-Za-z0-9_-]{0,254})"
)
_FUNC_URN = re.compile(
    r"urn:fss:([a-z0-9][a-z0-9-]{0,63}):([0-9A-Za-z_-]{1,64}):function:([A-Za-z0-9_-]{1,64})"
    r":([A-Za-z][A-Za-z0-9_-]{0,59})(?::([A-Za-z0-9_.-]{1,64}))?"
)
_RULE = re.compile(r"^\s*([A-Za-z_]+)\s*(!=|=)\s*(.*?)\s*$", re.DOTALL)
_API_VERSION = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_VALUE_RULES: dict[str, tuple[int, tuple[str, ...] | None]] = {
    # field -> (max length, allowed values or None)
    "api_version": (64, None),
    "code": (256, None),
    "trace_rating": (16, ("normal", "warning", "incident")),
    "trace_type": (16, ("ConsoleAction", "ApiCall", "SystemAction")),
    "resource_id": (350, None),
    "resource_name": (256, None),
}


@dataclass(frozen=True, slots=True)
class TopicRef:
    """A parsed ``topic_id``: an SMN topic (``smn``) or a FunctionGraph function (``fun``)."""

    kind: Literal["smn", "fun"]
    region: str
    project_id: str
    name: str


def parse_topic_id(value: str) -> TopicRef:
    """Parse an SMN topic URN or a function URN; ValueError says which forms are accepted."""
    smn = _SMN_URN.fullmatch(value)
    if smn:
        return TopicRef("smn", smn.group(1), smn.group(2), smn.group(3))
    fun = _FUNC_URN.fullmatch(value)
    if fun:
        return TopicRef("fun", fun.group(1), fun.group(2), f"{fun.group(3)}:{fun.group(4)}")
    raise ValueError(
        f"topic_id {value[:120]!r} is neither an SMN topic URN (urn:smn:<region>:<project_id>:<topic>) nor a"
        " FunctionGraph function URN (urn:fss:<region>:<project_id>:function:<package>:<name>[:<version>])"
    )


def parse_rule(rule: str) -> tuple[str, str, str]:
    """``"code != 200"`` → ``("code", "!=", "200")``; ValueError names what is wrong with the rule."""
    found = _RULE.match(rule)
    if not found:
        raise ValueError(
            f"filter rule {rule[:80]!r} must read '<field> = <value>' or '<field> != <value>'"
            f" with field one of {', '.join(FILTER_FIELDS)}"
        )
    field, op, value = found.groups()
    if field not in _VALUE_RULES:
        raise ValueError(
            f"filter rule {rule[:80]!r}: field {field!r} is not one of {', '.join(FILTER_FIELDS)}"
        )
    max_len, allowed = _VALUE_RULES[field]
    if not value:
        raise ValueError(f"filter rule {rule[:80]!r}: the value is empty")
    if _CONTROL.search(value):
        raise ValueError(f"filter rule {rule[:80]!r}: the value contains a control character")
    if allowed is not None and value not in allowed:
        raise ValueError(f"filter rule {rule[:80]!r}: {field} must be one of {', '.join(allowed)}")
    if len(value) > max_len:
        raise ValueError(f"filter rule {rule[:80]!r}: a {field} value is at most {max_len} characters")
    if field == "api_version" and not _API_VERSION.fullmatch(value):
        raise ValueError(f"filter rule {rule[:80]!r}: api_version is 1-64 letters, digits, '_', '-' and '.'")
    return field, op, value


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Operation(_Body):
    """``Operations``: the trace names of one (service, resource type) that raise the alarm."""

    service_type: ServiceType
    resource_type: ResourceType
    trace_names: list[TraceName] = Field(min_length=1, max_length=MAX_OPERATIONS)


class NotificationUsers(_Body):
    """``NotificationUsers``: users (by IAM user name) of one group whose operations raise the alarm."""

    user_group: IamName
    user_list: list[IamName] = Field(min_length=1, max_length=MAX_USERS)


class Filter(_Body):
    """The advanced filter: up to 6 ``"<field> <op> <value>"`` rules joined by AND or OR."""

    condition: Literal["AND", "OR"]
    is_support_filter: bool
    rule: list[str] = Field(max_length=MAX_RULES)

    @field_validator("rule")
    @classmethod
    def _rules(cls, value: list[str]) -> list[str]:
        for rule in value:
            parse_rule(rule)
        return value

    @model_validator(mode="after")
    def _something_to_filter(self) -> Filter:
        if self.is_support_filter and not self.rule:
            raise ValueError("filter.rule needs at least one rule when is_support_filter is true")
        return self

    def parsed(self) -> tuple[tuple[str, str, str], ...]:
        """The rules as ``(field, op, value)``; none when the filter is switched off."""
        return tuple(parse_rule(r) for r in self.rule) if self.is_support_filter else ()


class _NotificationBody(_Body):
    notification_name: NotificationName
    operation_type: Literal["complete", "customized"]
    agency_name: Literal["cts_admin_trust"] | None = None
    operations: list[Operation] | None = None
    notify_user_list: list[NotificationUsers] | None = None
    topic_id: str | None = Field(None, max_length=512)
    filter: Filter | None = None

    @field_validator("topic_id")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        if value is not None:
            parse_topic_id(value)
        return value

    @model_validator(mode="after")
    def _limits(self) -> _NotificationBody:
        ops = self.operations or []
        if self.operation_type == "customized" and not ops:
            raise ValueError("operation_type customized needs at least one entry in operations")
        if self.operation_type == "complete" and ops:
            raise ValueError(
                "operations apply only to operation_type customized; complete already means every operation"
            )
        triples = {(o.service_type, o.resource_type, t) for o in ops for t in o.trace_names}
        if len(triples) > MAX_OPERATIONS:
            raise ValueError(
                f"a notification holds at most {MAX_OPERATIONS} operations; operations name {len(triples)}"
            )
        services = {o.service_type for o in ops}
        if len(services) > MAX_SERVICES:
            raise ValueError(
                f"a notification covers at most {MAX_SERVICES} services; operations name {len(services)}"
            )
        groups = self.notify_user_list or []
        if len(groups) > MAX_USER_GROUPS:
            raise ValueError(
                f"notify_user_list holds at most {MAX_USER_GROUPS} user groups, not {len(groups)}"
            )
        users = sum(len(set(g.user_list)) for g in groups)
        if users > MAX_USERS:
            raise ValueError(f"notify_user_list holds at most {MAX_USERS} users in total, not {users}")
        return self

    @property
    def topic(self) -> TopicRef | None:
        return parse_topic_id(self.topic_id) if self.topic_id is not None else None

    def config(self) -> dict[str, Any]:
        """What the ``config`` column stores: the settings as sent, duplicates folded, order kept."""
        merged: dict[tuple[str, str], list[str]] = {}
        for op in self.operations or []:
            names = merged.setdefault((op.service_type, op.resource_type), [])
            names.extend(t for t in op.trace_names if t not in names)
        groups: dict[str, list[str]] = {}
        for g in self.notify_user_list or []:
            members = groups.setdefault(g.user_group, [])
            members.extend(u for u in g.user_list if u not in members)
        return {
            "operations": [
                {"service_type": s, "resource_type": r, "trace_names": names}
                for (s, r), names in merged.items()
            ],
            "notify_user_list": [{"user_group": g, "user_list": users} for g, users in groups.items()],
            "filter": self.filter.model_dump() if self.filter is not None else None,
            "agency_name": self.agency_name,
        }


class CreateNotificationRequestBody(_NotificationBody):
    #: not in the SDK's create model, but CTS documents it; a new notification is enabled unless told
    status: Literal["enabled", "disabled"] = "enabled"


class UpdateNotificationRequestBody(_NotificationBody):
    """A whole new configuration for ``notification_id`` (PUT semantics).

    One exception: a *disabled* update may leave out ``topic_id``, and the notification keeps its topic,
    so switching a notification off and on again does not forget where its alarms go.
    """

    notification_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    status: Literal["enabled", "disabled"]

    @model_validator(mode="after")
    def _enabled_needs_topic(self) -> UpdateNotificationRequestBody:
        if self.status == "enabled" and self.topic_id is None:
            raise ValueError(
                "topic_id is required when status is enabled: the SMN topic or function to alarm"
            )
        return self
