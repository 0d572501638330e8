"""Roles and the actions they allow.

Actions are ``service:resource:verb``. Verbs ``list`` and ``get`` are reads; everything else changes state.
The roles are Huawei Cloud IAM's system roles and policies of the same names, with their scope: the
Tenant roles cover every cloud service *except IAM*, and IAM belongs to the Security Administrator alone,
so a Tenant Guest can read traces, trackers and topics but not list the users or access keys of the
account. ``CTS TraceProducer`` is this project's own: a least-privilege role for the services that report
operations, which may append traces and nothing else, not even read them back.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from functools import lru_cache

TENANT_ADMINISTRATOR = "Tenant Administrator"
SECURITY_ADMINISTRATOR = "Security Administrator"
TENANT_GUEST = "Tenant Guest"
CTS_ADMINISTRATOR = "CTS Administrator"
CTS_FULL_ACCESS = "CTS FullAccess"
CTS_READ_ONLY = "CTS ReadOnlyAccess"
CTS_TRACE_PRODUCER = "CTS TraceProducer"
SMN_FULL_ACCESS = "SMN FullAccess"
SMN_READ_ONLY = "SMN ReadOnlyAccess"
FUNCTIONGRAPH_FULL_ACCESS = "FunctionGraph FullAccess"
FUNCTIONGRAPH_READ_ONLY = "FunctionGraph ReadOnlyAccess"
KMS_ADMINISTRATOR = "KMS Administrator"
KMS_CMK_FULL_ACCESS = "KMS CMKFullAccess"
KMS_READ_ONLY = "KMS ReadOnlyAccess"

#: what a source token (``sources.tokens``) of each kind may do: exactly one action, that of its webhook
SOURCE_ACTIONS: dict[str, str] = {
    "kubernetes": "cts:kubernetesAudit:put",
    "s3": "cts:bucketEvents:put",
    # CTS-format traces through the ingest API (POST /v3/{project_id}/traces), from a producer that cannot
    # sign requests: a script with curl, a log shipper's HTTP output
    "generic": "cts:traces:put",
}

#: the cloud services served here, IAM aside: what the Tenant roles span
CLOUD_SERVICES: tuple[str, ...] = ("cts", "smn", "functiongraph", "kms", "lts")


def _everything(*services: str) -> tuple[str, ...]:
    return tuple(f"{service}:*" for service in services)


def _read_only(*services: str) -> tuple[str, ...]:
    return tuple(f"{service}:*:{verb}" for service in services for verb in ("list", "get"))


#: role -> action patterns (fnmatch). Allow-only; there are no deny rules.
ROLES: dict[str, tuple[str, ...]] = {
    # Huawei: all permissions for every service except IAM.
    TENANT_ADMINISTRATOR: _everything(*CLOUD_SERVICES),
    # Huawei: IAM only (users, groups, roles, access keys, projects), no cloud service.
    SECURITY_ADMINISTRATOR: ("iam:*",),
    # Huawei: read-only for every service except IAM.
    TENANT_GUEST: _read_only(*CLOUD_SERVICES),
    # Huawei's role form of CTS FullAccess. Huawei also attaches Tenant Guest and OBS Administrator to it
    # as dependencies; here nothing is implied: grant Tenant Guest beside it for the reads of other services.
    CTS_ADMINISTRATOR: _everything("cts"),
    CTS_FULL_ACCESS: _everything("cts"),
    CTS_READ_ONLY: _read_only("cts"),
    CTS_TRACE_PRODUCER: ("cts:traces:put", *SOURCE_ACTIONS.values()),
    SMN_FULL_ACCESS: _everything("smn"),
    SMN_READ_ONLY: _read_only("smn"),
    FUNCTIONGRAPH_FULL_ACCESS: _everything("functiongraph"),
    FUNCTIONGRAPH_READ_ONLY: _read_only("functiongraph"),
    # the key service's keys (kms:cmk:create|list|get|enable|disable|rotate)
    KMS_ADMINISTRATOR: _everything("kms"),
    KMS_CMK_FULL_ACCESS: _everything("kms"),
    KMS_READ_ONLY: _read_only("kms"),
}

#: what any authenticated user may do whatever their roles: see their projects (the SDK looks its project
#: up by name), and end their own session
#: and read the archive's public signing keys, which are published to everyone on purpose
ALWAYS: tuple[str, ...] = ("iam:projects:list", "iam:tokens:delete", "iam:tokens:get", "cts:signingKeys:list")


@lru_cache(maxsize=4096)
def _allows(roles: frozenset[str], action: str) -> bool:
    patterns = [p for role in roles for p in ROLES.get(role, ())]
    return any(fnmatchcase(action, p) for p in (*ALWAYS, *patterns))


def allows(roles: Iterable[str], action: str) -> bool:
    return _allows(frozenset(roles), action)
