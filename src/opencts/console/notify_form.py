"""The Key Event Notification form, turned into the Create/UpdateNotification body the API takes.

The console checks nothing the API's model does not: the form is only reshaped (operations picked as
``[service, resource type, name]`` triples, users typed per group, filter rows) and handed to
:class:`~opencts.notifications.model.CreateNotificationRequestBody` or its update twin, so a notification
made here is one the API would have accepted, refused with the same reasons, worded for the form.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from opencts.errors import BadRequest
from opencts.notifications.model import (
    FILTER_FIELDS,
    MAX_RULES,
    MAX_USER_GROUPS,
    CreateNotificationRequestBody,
    UpdateNotificationRequestBody,
    parse_rule,
)
from opencts.trackers.operations import full_catalogue

#: user groups the form offers at once: the notification's own plus a few empty rows, never above the limit
EMPTY_GROUP_ROWS = 3
_SPLIT = re.compile(r"[\s,;]+")
#: where a model error points, as the form's section names it
_SECTIONS = {
    "notification_name": "Name",
    "operation_type": "Operations",
    "operations": "Operations",
    "notify_user_list": "Users and groups",
    "filter": "Advanced filter",
    "topic_id": "Topic",
    "status": "Status",
}


@dataclass
class Pairs:
    """An urlencoded form whose fields may repeat (the picked operations are one checkbox each)."""

    items: list[tuple[str, str]]

    def get(self, name: str, default: str = "") -> str:
        """The last value of ``name``, as :func:`opencts.console.pages.read_form` reads single fields."""
        found = [v for k, v in self.items if k == name]
        return found[-1] if found else default

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.items if k == name]

    def as_dict(self) -> dict[str, str]:
        return dict(self.items)


def parse_pairs(raw: bytes) -> Pairs:
    try:
        pairs = urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=2000)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form could not be read; reload the page and try again") from None
    return Pairs(pairs)


@dataclass
class Rule:
    field: str = "code"
    op: str = "="
    value: str = ""


@dataclass
class Draft:
    """What the form shows: a notification being written, as typed (so a refused form keeps its input)."""

    notification_name: str = ""
    operation_type: str = "customized"
    operations: list[tuple[str, str, str]] = field(default_factory=list)
    groups: list[tuple[str, str]] = field(default_factory=list)
    filter_on: bool = False
    condition: str = "AND"
    rules: list[Rule] = field(default_factory=list)
    topic_id: str = ""
    status: str = "enabled"

    def group_rows(self) -> list[tuple[str, str]]:
        rows = list(self.groups)
        room = min(EMPTY_GROUP_ROWS, MAX_USER_GROUPS - len(rows))
        return rows + [("", "")] * max(room, 0)

    def rule_rows(self) -> list[Rule]:
        return self.rules + [Rule() for _ in range(MAX_RULES - len(self.rules))]

    def op_values(self) -> list[tuple[str, str]]:
        """Each picked operation as (the checkbox's value, its label)."""
        return [(orjson.dumps(list(op)).decode(), " / ".join(op)) for op in self.operations]


def draft_of(found: dict[str, Any]) -> Draft:
    """A stored notification (ListNotifications' item) as the form shows it for Modify."""
    flt = found.get("filter") or {}
    rules = []
    for text in flt.get("rule") or []:
        name, op, value = parse_rule(text)
        rules.append(Rule(name, op, value))
    return Draft(
        notification_name=found["notification_name"],
        operation_type=found["operation_type"],
        operations=[
            (o["service_type"], o["resource_type"], name)
            for o in found.get("operations") or []
            for name in o["trace_names"]
        ],
        groups=[(g["user_group"], ", ".join(g["user_list"])) for g in found.get("notify_user_list") or []],
        filter_on=bool(flt.get("is_support_filter")),
        condition=str(flt.get("condition") or "AND"),
        rules=rules,
        topic_id=found.get("topic_id") or "",
        status=found["status"],
    )


def _picked(form: Pairs) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The operations ticked in the picker, plus those typed one per line ("IAM user login")."""
    ops: list[tuple[str, str, str]] = []
    problems: list[str] = []
    for value in form.all("op"):
        try:
            triple = orjson.loads(value)
        except orjson.JSONDecodeError:
            triple = None
        if not (isinstance(triple, list) and len(triple) == 3 and all(isinstance(p, str) for p in triple)):
            problems.append(
                "Operations: a picked operation could not be read; reload the page and pick again"
            )
            continue
        ops.append((triple[0], triple[1], triple[2]))
    for line in form.get("ops_text").splitlines():
        words = line.split()
        if not words:
            continue
        if len(words) != 3:
            problems.append(
                f"Operations: {line.strip()[:80]!r} must read '<service> <resource type> <operation>',"
                " e.g. 'IAM user login'"
            )
            continue
        ops.append((words[0], words[1], words[2]))
    return list(dict.fromkeys(ops)), problems


def read_draft(form: Pairs) -> tuple[Draft, list[str]]:
    """The form as typed, and what is wrong with its shape (before the model judges its content)."""
    ops, problems = _picked(form)
    groups = []
    for n in range(1, MAX_USER_GROUPS + 1):
        group, users = form.get(f"group_{n}").strip(), form.get(f"users_{n}").strip()
        if not group and not users:
            continue
        if not group:
            problems.append(f"Users and groups: row {n} lists users but no user group; name the group")
        elif not users:
            problems.append(
                f"Users and groups: group {group[:64]!r} lists no user; name at least one, or clear the group"
            )
        groups.append((group, users))
    rules = []
    for n in range(1, MAX_RULES + 1):
        value = form.get(f"rule_value_{n}").strip()
        if value:
            op = form.get(f"rule_op_{n}")
            rules.append(Rule(form.get(f"rule_field_{n}"), op if op in ("=", "!=") else "=", value))
    draft = Draft(
        notification_name=form.get("notification_name").strip(),
        operation_type=form.get("operation_type") or "customized",
        operations=ops,
        groups=groups,
        filter_on=form.get("filter_on").lower() in ("on", "true", "1"),
        condition=form.get("condition") or "AND",
        rules=rules,
        topic_id=form.get("topic_id").strip(),
        status=form.get("status") or "enabled",
    )
    return draft, problems


def body_of(draft: Draft) -> dict[str, Any]:
    """The API's JSON body for ``draft``: what a client of POST/PUT /v3/{project_id}/notifications sends."""
    merged: dict[tuple[str, str], list[str]] = {}
    for service, resource, name in draft.operations:
        merged.setdefault((service, resource), []).append(name)
    body: dict[str, Any] = {
        "notification_name": draft.notification_name,
        "operation_type": draft.operation_type,
        "status": draft.status,
    }
    if draft.operation_type == "customized":
        body["operations"] = [
            {"service_type": s, "resource_type": r, "trace_names": names} for (s, r), names in merged.items()
        ]
    if draft.groups:
        body["notify_user_list"] = [
            {"user_group": g, "user_list": [u for u in _SPLIT.split(users) if u]} for g, users in draft.groups
        ]
    if draft.filter_on or draft.rules:
        body["filter"] = {
            "condition": draft.condition,
            "is_support_filter": draft.filter_on,
            "rule": [f"{r.field} {r.op} {r.value}" for r in draft.rules],
        }
    if draft.topic_id:
        body["topic_id"] = draft.topic_id
    return body


def create_body(draft: Draft) -> CreateNotificationRequestBody:
    return CreateNotificationRequestBody.model_validate(body_of(draft))


def update_body(draft: Draft, notification_id: str) -> UpdateNotificationRequestBody:
    return UpdateNotificationRequestBody.model_validate(
        {**body_of(draft), "notification_id": notification_id}
    )


def messages(exc: ValidationError) -> list[str]:
    """The model's errors as sentences that start with the form section to fix."""
    out = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in error["loc"]]
        section = _SECTIONS.get(loc[0], "Form") if loc else "Form"
        msg = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing" and loc and loc[-1] == "topic_id":
            msg = "choose the SMN topic that receives the alarms"
        elif error["type"] == "string_pattern_mismatch" and loc and loc[0] == "notification_name":
            msg = "use 1 to 64 letters, digits and underscores (no spaces), e.g. console_logins"
        elif error["type"] == "string_pattern_mismatch" and "trace_names" in loc:
            msg = "an operation name starts with a letter and holds letters, digits, '.', '_' and '-'"
        if not loc:
            out.append(_WHOLE.get(msg.split(";")[0].split(" needs ")[0], msg))
            continue
        out.append(f"{section}: {msg}")
    return out


#: the model's whole-body errors, by their opening words, as the form's sections say them
_WHOLE = {
    "operation_type customized": "Operations: pick at least one operation, or choose every operation",
    "operations apply only to operation_type customized": (
        "Operations: untick the picked operations, or choose selected operations"
    ),
}


def catalogue_json() -> str:
    """The operations catalogue (ListOperations) as the picker's script reads it."""
    cat = {s: {r: list(names) for r, names in res.items()} for s, res in full_catalogue().items()}
    # inside a <script> element: no "</script>" may end it early
    return orjson.dumps(cat).decode().replace("<", "\\u003c")


FIELDS = FILTER_FIELDS


def notice(done: str | None) -> str | None:
    """The line the list shows after a change (``created:NAME``, ``enabled:NAME``…)."""
    if not done or ":" not in done:
        return None
    what, _, name = done.partition(":")
    words = {
        "created": "created",
        "saved": "saved",
        "enabled": "enabled",
        "disabled": "disabled",
        "deleted": "deleted",
    }
    return f"Notification {name[:64]} {words[what]}." if what in words else None
