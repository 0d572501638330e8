"""The ListOperations catalogue: which operations each service reports, by resource type.

CTS uses it to fill the "operations" pickers of key-event notifications and FunctionGraph CTS triggers.
It is static: the common Huawei Cloud services with the trace names they emit, plus everything OpenCTS
itself records in its self-audit (trace names are the route names of ``api/``), so a notification on
``createTracker`` or ``login`` can be configured from the list.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from opencts.errors import BadRequest

#: modules that turn another format into traces, each exporting ``OPERATIONS`` (service_type ->
#: resource_type -> trace names): their traces join the catalogue, so notifications can pick them
SOURCE_MODULES: tuple[str, ...] = (
    "opencts.sources.kubernetes",
    "opencts.sources.s3events",
    "opencts.sources.cadf",
)

#: service_type -> resource_type -> trace names
CATALOGUE: dict[str, dict[str, tuple[str, ...]]] = {
    # OpenCTS's own self-audit: resource types as ``traces.self_audit.resource_type_of`` derives them
    "CTS": {
        "tracker": ("createTracker", "updateTracker", "deleteTracker"),
        "resourceTags": ("batchCreateResourceTags", "batchDeleteResourceTags"),
        "obsBuckets": ("checkObsBuckets",),
        "notification": ("createNotification", "updateNotification", "deleteNotification"),
    },
    "IAM": {
        "user": (
            "login",
            "logout",
            "createUser",
            "updateUser",
            "deleteUser",
            "changePassword",
            "resetPassword",
        ),
        "credential": ("createCredential", "updateCredential", "deleteCredential"),
        "sourceToken": ("createSourceToken", "deleteSourceToken"),
        "group": (
            "createGroup",
            "updateGroup",
            "deleteGroup",
            "addUserToGroup",
            "removeUserFromGroup",
            "grantRoleToGroup",
            "revokeRoleFromGroup",
        ),
        "project": ("createProject", "updateProject", "deleteProject"),
        "agency": ("createAgency", "updateAgency", "deleteAgency", "switchRole"),
        "role": ("createRole", "updateRole", "deleteRole"),
    },
    "ECS": {
        "ecs": (
            "createServer",
            "deleteServer",
            "updateServer",
            "startServer",
            "stopServer",
            "rebootServer",
            "resizeServer",
            "changeOS",
            "reinstallOS",
            "attachVolume",
            "detachVolume",
            "resetPassword",
            "addNic",
            "deleteNic",
            "lockServer",
            "unlockServer",
        ),
        "keypair": ("createKeypair", "deleteKeypair", "importKeypair"),
        "serverGroup": ("createServerGroup", "deleteServerGroup"),
    },
    "EVS": {
        "evs": ("createVolume", "deleteVolume", "updateVolume", "extendVolume", "retypeVolume"),
        "snapshot": ("createSnapshot", "deleteSnapshot", "updateSnapshot", "rollbackSnapshot"),
    },
    "VPC": {
        "vpc": ("createVpc", "updateVpc", "deleteVpc"),
        "subnet": ("createSubnet", "updateSubnet", "deleteSubnet"),
        "securityGroup": (
            "createSecurityGroup",
            "deleteSecurityGroup",
            "createSecurityGroupRule",
            "deleteSecurityGroupRule",
        ),
        "eip": ("createEip", "deleteEip", "updateEip", "bindEip", "unbindEip"),
        "bandwidth": ("createBandwidth", "deleteBandwidth", "updateBandwidth"),
        "routeTable": ("createRouteTable", "updateRouteTable", "deleteRouteTable"),
        "peering": ("createVpcPeering", "acceptVpcPeering", "rejectVpcPeering", "deleteVpcPeering"),
    },
    "OBS": {
        "bucket": (
            "createBucket",
            "deleteBucket",
            "setBucketPolicy",
            "deleteBucketPolicy",
            "setBucketAcl",
            "setBucketLifecycle",
            "setBucketVersioning",
            "setBucketEncryption",
            "setBucketLogging",
        ),
        "object": ("PUT.OBJECT", "GET.OBJECT", "DELETE.OBJECT", "POST.OBJECT", "COPY.OBJECT", "HEAD.OBJECT"),
    },
    "RDS": {
        "instance": (
            "createInstance",
            "deleteInstance",
            "rebootInstance",
            "resizeFlavor",
            "extendVolume",
            "changeFailoverMode",
            "switchover",
            "resetPassword",
            "modifyParameters",
        ),
        "backup": ("createManualBackup", "deleteManualBackup", "restoreInstance"),
        "parameterGroup": ("createParameterGroup", "updateParameterGroup", "deleteParameterGroup"),
    },
    "KMS": {
        "cmk": (
            "createKey",
            "enableKey",
            "disableKey",
            "scheduleKeyDeletion",
            "cancelKeyDeletion",
            "updateKeyAlias",
            "updateKeyDescription",
            "enableKeyRotation",
            "disableKeyRotation",
        ),
        "dek": ("createDatakey", "createDatakeyWithoutPlaintext", "encryptDatakey", "decryptDatakey"),
        "grant": ("createGrant", "revokeGrant", "retireGrant"),
    },
    "ELB": {
        "loadbalancer": ("createLoadbalancer", "updateLoadbalancer", "deleteLoadbalancer"),
        "listener": ("createListener", "updateListener", "deleteListener"),
        "pool": ("createPool", "updatePool", "deletePool"),
        "member": ("createMember", "updateMember", "deleteMember"),
        "certificate": ("createCertificate", "updateCertificate", "deleteCertificate"),
    },
    "CCE": {
        "cluster": (
            "createCluster",
            "updateCluster",
            "deleteCluster",
            "upgradeCluster",
            "hibernateCluster",
            "awakeCluster",
        ),
        "nodepool": ("createNodePool", "updateNodePool", "deleteNodePool"),
        "node": ("createNode", "updateNode", "deleteNode", "migrateNode"),
        "addon": ("installAddon", "updateAddon", "uninstallAddon"),
    },
    "DNS": {
        "zone": ("createZone", "updateZone", "deleteZone", "setZoneStatus"),
        "recordset": ("createRecordSet", "updateRecordSet", "deleteRecordSet"),
        "ptr": ("setPtrRecord", "restorePtrRecord"),
    },
    "SMN": {
        "topic": (
            "createTopic",
            "updateTopic",
            "deleteTopic",
            "updateTopicAttribute",
            "deleteTopicAttributes",
            "publishMessage",
        ),
        "subscription": (
            "addSubscription",
            "deleteSubscription",
            "confirmSubscription",
            "updateSubscription",
        ),
        "template": ("createMessageTemplate", "updateMessageTemplate", "deleteMessageTemplate"),
    },
    "FunctionGraph": {
        "function": (
            "createFunction",
            "deleteFunction",
            "updateFunctionCode",
            "updateFunctionConfig",
            "invokeFunction",
            "asyncInvokeFunction",
            "publishFunctionVersion",
        ),
        "trigger": ("createFunctionTrigger", "updateFunctionTrigger", "deleteFunctionTrigger"),
        "alias": ("createVersionAlias", "updateVersionAlias", "deleteVersionAlias"),
    },
}


def merge(
    *parts: dict[str, dict[str, tuple[str, ...]]],
) -> dict[str, dict[str, tuple[str, ...]]]:
    """The union of catalogues: services and resource types in first-seen order, names without repeats."""
    merged: dict[str, dict[str, tuple[str, ...]]] = {}
    for part in parts:
        for service, resources in part.items():
            into = merged.setdefault(service, {})
            for resource, names in resources.items():
                into[resource] = tuple(dict.fromkeys((*into.get(resource, ()), *names)))
    return merged


@cache
def full_catalogue() -> dict[str, dict[str, tuple[str, ...]]]:
    """:data:`CATALOGUE` with the ``OPERATIONS`` of every module in :data:`SOURCE_MODULES` merged in.

    Imported on first use, not at import time: the source modules import the trace model, which must
    not have to load with the tracker package.
    """
    found = [importlib.import_module(name).OPERATIONS for name in SOURCE_MODULES]
    return merge(CATALOGUE, *found)


def list_operations(
    service_type: str | None = None, resource_type: str | None = None
) -> list[dict[str, Any]]:
    """ListOperations: one entry per (service, resource type), optionally narrowed.

    Unknown services or resource types give an empty list (as a search would); ``resource_type`` without
    ``service_type`` is refused because resource type names repeat across services.
    """
    if resource_type is not None and service_type is None:
        raise BadRequest("resource_type needs service_type: resource type names repeat across services")
    out: list[dict[str, Any]] = []
    for service, resources in full_catalogue().items():
        if service_type is not None and service != service_type:
            continue
        for resource, names in resources.items():
            if resource_type is not None and resource != resource_type:
                continue
            out.append({"service_type": service, "resource_type": resource, "operation_list": list(names)})
    return out
