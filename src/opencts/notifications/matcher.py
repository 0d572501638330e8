"""Which notifications a trace raises: an index compiled once, so one trace costs the same with 1 or 100,000
rules.

A project's enabled notifications are compiled into one dict keyed by ``(service_type, resource_type,
trace_name)``; each entry holds the notifications that name that operation, split into those for every
user and those for named users only (a second dict, by user name). ``complete`` notifications are folded
into every entry, and form the fallback entry for traces of any other operation. So a trace costs one
index lookup (plus one by user name when the entry names users), and only notifications whose operation
*and* user already match are left for the advanced filter, whose ``(field, op, value)`` rules are compiled
into one closure per notification and compared as strings (stored traces carry ``code`` as a string).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opencts.traces.model import user_name

Rule = tuple[str, str, str]
OpKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Notification:
    """An enabled notification reduced to what matching and alarming need."""

    notification_id: str
    project_id: str
    name: str
    notification_type: str  # smn | fun
    topic_id: str
    operation_type: str  # complete | customized
    operations: frozenset[OpKey] = frozenset()
    #: user names whose operations count; None = every user
    users: frozenset[str] | None = None
    #: "AND" or "OR"; no rules = no filter
    condition: str = "AND"
    rules: tuple[Rule, ...] = ()

    @classmethod
    def from_config(
        cls,
        *,
        notification_id: str,
        project_id: str,
        name: str,
        notification_type: str,
        topic_id: str,
        operation_type: str,
        config: Mapping[str, Any],
    ) -> Notification:
        """Build from a stored row's columns and its ``config`` JSON (already validated on the way in)."""
        from opencts.notifications.model import parse_rule

        ops = frozenset(
            (o["service_type"], o["resource_type"], t)
            for o in config.get("operations") or ()
            for t in o["trace_names"]
        )
        groups = config.get("notify_user_list") or ()
        users = frozenset(u for g in groups for u in g["user_list"]) if groups else None
        flt = config.get("filter") or {}
        rules = tuple(parse_rule(r) for r in flt.get("rule") or ()) if flt.get("is_support_filter") else ()
        return cls(
            notification_id=notification_id,
            project_id=project_id,
            name=name,
            notification_type=notification_type,
            topic_id=topic_id,
            operation_type=operation_type,
            operations=ops if operation_type == "customized" else frozenset(),
            users=users,
            condition=str(flt.get("condition") or "AND"),
            rules=rules,
        )


def _rule_holds(trace: Mapping[str, Any], rule: Rule) -> bool:
    name, op, value = rule
    equal = _equal(trace.get(name), value)
    return equal if op == "=" else not equal


def passes_filter(n: Notification, trace: Mapping[str, Any]) -> bool:
    """The advanced filter, rule by rule: all rules (AND) or any rule (OR); no rules let everything through.

    The matcher runs the same logic compiled into one closure per notification (:func:`_compile_filter`).
    """
    if not n.rules:
        return True
    if n.condition == "OR":
        return any(_rule_holds(trace, r) for r in n.rules)
    return all(_rule_holds(trace, r) for r in n.rules)


def _compile_filter(n: Notification) -> Callable[[dict[str, Any]], bool] | None:
    """The filter as one closure (None: no filter), so a candidate costs one call, not a loop of calls."""
    if not n.rules:
        return None
    rules = n.rules
    if len(rules) == 1:
        [(name, op, value)] = rules
        if op == "=":
            return lambda t: _equal(t.get(name), value)
        return lambda t: not _equal(t.get(name), value)
    wanted = tuple((name, op == "=", value) for name, op, value in rules)
    if n.condition == "OR":
        return lambda t: any(_equal(t.get(f), v) is eq for f, eq, v in wanted)
    return lambda t: all(_equal(t.get(f), v) is eq for f, eq, v in wanted)


def _equal(actual: Any, value: str) -> bool:
    if actual.__class__ is str:
        return bool(actual == value)
    return actual is not None and str(actual) == value


Candidate = tuple[Notification, Callable[[dict[str, Any]], bool] | None]
#: one index entry: candidates for every user, and (None when there are none) candidates by user name
Entry = tuple[list[Candidate], dict[str, list[Candidate]] | None]
_NOBODY: list[Candidate] = []


def _append(table: dict[Any, list[Candidate]], key: Any, cand: Candidate) -> None:
    found = table.get(key)
    if found is None:
        table[key] = [cand]
    else:
        found.append(cand)


def _add_named(table: dict[str, list[Candidate]], users: frozenset[str], cand: Candidate) -> None:
    for user in users:
        _append(table, user, cand)


class _ByOperation:
    """The operation-keyed half of a matcher under construction."""

    def __init__(self) -> None:
        self.everyone: dict[OpKey, list[Candidate]] = {}
        self.named: dict[OpKey, dict[str, list[Candidate]]] = {}

    def add(self, n: Notification, cand: Candidate) -> None:
        for key in n.operations:
            if n.users is None:
                _append(self.everyone, key, cand)
            else:
                table = self.named.get(key)
                if table is None:
                    table = self.named[key] = {}
                _add_named(table, n.users, cand)

    def entries(self) -> dict[tuple[Any, Any, Any], Entry]:
        everyone, named = self.everyone, self.named
        return {k: (everyone.get(k, _NOBODY), named.get(k)) for k in everyone.keys() | named.keys()}


class _Complete:
    """The ``complete`` notifications (every operation) of a matcher under construction."""

    def __init__(self) -> None:
        self.everyone: list[Candidate] = []
        self.named: dict[str, list[Candidate]] = {}

    def add(self, n: Notification, cand: Candidate) -> None:
        if n.users is None:
            self.everyone.append(cand)
        else:
            _add_named(self.named, n.users, cand)

    def entry(self) -> Entry | None:
        """What a trace of an operation no notification names raises (None: nothing)."""
        if not self.everyone and not self.named:
            return None
        return (self.everyone, self.named or None)

    def folded_into(self, entry: Entry) -> Entry:
        all_users, by_user = entry
        merged = dict(by_user or {})
        for user, cands in self.named.items():
            merged[user] = merged.get(user, _NOBODY) + cands
        return (all_users + self.everyone, merged or None)


class Matcher:
    """``match(trace)`` → the notifications a stored trace raises, each at most once.

    Built with plain dicts and lists (no object per entry), so that a project of many notifications of
    many operations compiles quickly: every change to a notification recompiles.
    """

    __slots__ = ("_fallback", "_index", "notifications")

    def __init__(self, notifications: Iterable[Notification]) -> None:
        self.notifications: tuple[Notification, ...] = tuple(notifications)
        by_operation = _ByOperation()
        complete = _Complete()
        for n in self.notifications:
            cand: Candidate = (n, _compile_filter(n))
            if n.operation_type == "complete":
                complete.add(n, cand)
            else:
                by_operation.add(n, cand)
        #: keyed by (service_type, resource_type, trace_name); Any, since a trace's values are unchecked
        self._index: dict[tuple[Any, Any, Any], Entry] = by_operation.entries()
        self._fallback: Entry | None = complete.entry()
        if self._fallback is not None:
            # complete notifications are folded into every entry, so a trace needs exactly one lookup
            for k, entry in self._index.items():
                self._index[k] = complete.folded_into(entry)

    @property
    def empty(self) -> bool:
        return not self.notifications

    def match(self, trace: dict[str, Any]) -> list[Notification]:
        get = trace.get
        entry = self._index.get(
            (get("service_type"), get("resource_type"), get("trace_name")), self._fallback
        )
        if entry is None:
            return []
        all_users, by_user = entry
        found = [n for n, check in all_users if check is None or check(trace)]
        if by_user is not None:
            user = user_name(trace)
            named = by_user.get(user) if user is not None else None
            if named:
                found.extend(n for n, check in named if check is None or check(trace))
        return found


def compile_matcher(notifications: Iterable[Notification]) -> Matcher:
    """Compile a project's notifications; the caller leaves out disabled ones and ones with no topic.

    The cyclic garbage collector is paused meanwhile: the index is a great many new containers, none of
    them garbage, and collections triggered by their allocation would otherwise take most of the time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return Matcher(notifications)
    finally:
        if was_enabled:
            gc.enable()
