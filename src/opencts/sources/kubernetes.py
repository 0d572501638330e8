"""Kubernetes audit events (``audit.k8s.io/v1`` ``EventList``) as CTS traces."""

from __future__ import annotations

SERVICE_TYPE = "Kubernetes"

#: what every resource answers to (k8s.io/apiserver's request verbs)
_VERBS = ("create", "update", "patch", "delete", "deletecollection", "get", "list", "watch")
_RESOURCES = (
    "pods",
    "services",
    "endpoints",
    "configmaps",
    "secrets",
    "namespaces",
    "nodes",
    "persistentvolumes",
    "persistentvolumeclaims",
    "serviceaccounts",
    "events",
    "resourcequotas",
    "limitranges",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "jobs",
    "cronjobs",
    "ingresses",
    "networkpolicies",
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
    "customresourcedefinitions",
    "storageclasses",
    "leases",
    "horizontalpodautoscalers",
    "poddisruptionbudgets",
    "certificatesigningrequests",
    "validatingwebhookconfigurations",
    "mutatingwebhookconfigurations",
)
#: subresources people audit, with the verbs the API server reports for them
_SUBRESOURCES: dict[str, tuple[str, ...]] = {
    "pods/exec": ("create", "get"),
    "pods/attach": ("create", "get"),
    "pods/portforward": ("create", "get"),
    "pods/log": ("get",),
    "pods/eviction": ("create",),
    "pods/status": ("get", "update", "patch"),
    "deployments/scale": ("get", "update", "patch"),
    "statefulsets/scale": ("get", "update", "patch"),
    "serviceaccounts/token": ("create",),
    "certificatesigningrequests/approval": ("update", "patch"),
    "tokenreviews": ("create",),
    "subjectaccessreviews": ("create",),
    "selfsubjectaccessreviews": ("create",),
    "selfsubjectrulesreviews": ("create",),
}
#: requests to paths that are no resource (``/healthz``, ``/version``, ``/api``): the HTTP verb, lower-case
NON_RESOURCE = "nonResourceURL"
_NON_RESOURCE_VERBS = ("get", "post", "put", "patch", "delete", "head", "options")

#: service_type -> resource_type -> trace names, for the ListOperations catalogue
OPERATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    SERVICE_TYPE: {
        **dict.fromkeys(_RESOURCES, _VERBS),
        **_SUBRESOURCES,
        NON_RESOURCE: _NON_RESOURCE_VERBS,
    }
}
