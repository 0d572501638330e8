"""The ListOperations catalogue lists what the source modules produce, merged with the static services."""

from __future__ import annotations

import importlib

from opencts.sources import kubernetes, s3events
from opencts.trackers.operations import CATALOGUE, SOURCE_MODULES, list_operations, merge


def test_every_source_module_exports_its_operations() -> None:
    for name in SOURCE_MODULES:
        operations = importlib.import_module(name).OPERATIONS
        assert operations and all(resources for resources in operations.values()), name


def test_kubernetes_traces_are_in_the_catalogue() -> None:
    [pods] = list_operations("Kubernetes", "pods")
    assert {"create", "delete", "patch", "get"} <= set(pods["operation_list"])
    [exec_] = list_operations("Kubernetes", "pods/exec")
    assert exec_["operation_list"] == ["create", "get"]
    assert len(list_operations("Kubernetes")) == len(kubernetes.OPERATIONS["Kubernetes"])


def test_bucket_event_names_join_the_static_obs_objects_without_repeats() -> None:
    [objects] = list_operations("OBS", "object")
    names = objects["operation_list"]
    assert len(names) == len(set(names))
    assert names[: len(CATALOGUE["OBS"]["object"])] == list(CATALOGUE["OBS"]["object"])
    assert set(s3events.TRACE_NAMES.values()) <= set(names)
    assert "POST.UPLOAD" in names  # not in the static list: came from s3events
    # s3events adds no resource type of its own (CADF's Swift "container" may sit beside these)
    assert {"bucket", "object"} <= {r["resource_type"] for r in list_operations("OBS")}


def test_merge_keeps_order_and_drops_repeats() -> None:
    merged = merge({"A": {"x": ("a", "b")}}, {"A": {"x": ("b", "c"), "y": ("d",)}, "B": {"z": ("e",)}})
    assert merged == {"A": {"x": ("a", "b", "c"), "y": ("d",)}, "B": {"z": ("e",)}}
