"""Roles and the actions they allow.

Actions are ``service:resource:verb``. Verbs ``list`` and ``get`` are reads; everything else changes state.
Role names are the ones Huawei Cloud uses (the seeds name them), plus ``CTS TraceProducer``: a
least-privilege role for the services that report operations, which may append traces and nothing else,
not even read them back.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from functools import lru_cache

TENANT_ADMINISTRATOR = "Tenant Administrator"
SECURITY_ADMINISTRATOR = "Security Administrator"
TENANT_GUEST = "Tenant Guest"
CTS_FULL_ACCESS = "CTS FullAccess"
CTS_READ_ONLY = "CTS ReadOnlyAccess"
CTS_TRACE_PRODUCER = "CTS TraceProducer"
SMN_FULL_ACCESS = "SMN FullAccess"
SMN_READ_ONLY = "SMN ReadOnlyAccess"
FUNCTIONGRAPH_FULL_ACCESS = "FunctionGraph FullAccess"
FUNCTIONGRAPH_READ_ONLY = "FunctionGraph ReadOnlyAccess"

#: role -> action patterns (fnmatch). Allow-only; there are no deny rules.
ROLES: dict[str, tuple[str, ...]] = {
    # Huawei: every service except IAM.
    TENANT_ADMINISTRATOR: ("cts:*", "smn:*", "functiongraph:*", "iam:projects:list"),
    # Huawei: IAM only.
    SECURITY_ADMINISTRATOR: ("iam:*",),
    TENANT_GUEST: ("*:*:list", "*:*:get"),
    CTS_FULL_ACCESS: ("cts:*",),
    CTS_READ_ONLY: ("cts:*:list", "cts:*:get"),
    CTS_TRACE_PRODUCER: ("cts:traces:put",),
    SMN_FULL_ACCESS: ("smn:*",),
    SMN_READ_ONLY: ("smn:*:list", "smn:*:get"),
    FUNCTIONGRAPH_FULL_ACCESS: ("functiongraph:*",),
    FUNCTIONGRAPH_READ_ONLY: ("functiongraph:*:list", "functiongraph:*:get"),
}

#: what any authenticated user may do whatever their roles: see their projects (the SDK looks its project
#: up by name), and end their own session
ALWAYS: tuple[str, ...] = ("iam:projects:list", "iam:tokens:delete", "iam:tokens:get")


@lru_cache(maxsize=4096)
def _allows(roles: frozenset[str], action: str) -> bool:
    patterns = [p for role in roles for p in ROLES.get(role, ())]
    return any(fnmatchcase(action, p) for p in (*ALWAYS, *patterns))


def allows(roles: Iterable[str], action: str) -> bool:
    return _allows(frozenset(roles), action)


def unknown_roles(roles: Iterable[str]) -> list[str]:
    return [r for r in roles if r not in ROLES]
