"""Cluster-scoped core kinds: Namespace and Node specs.

Pure. Namespace gets the finalizer and Active phase the API server gives it on create;
Node objects come from the topology (the testbed writes them) and are validated so that
`kubectl get node -o yaml`-style round trips stay well formed.
"""

from __future__ import annotations

from typing import Any

from orchestrator.api.fields import (
    as_bool,
    as_list,
    as_map,
    as_str,
    as_str_list,
    check_known,
    check_label_value,
    check_qualified_name,
    child,
    each,
    fail,
    guard,
    one_of,
)
from orchestrator.api.meta import check_timestamp
from orchestrator.api.pod import TAINT_EFFECTS

NAMESPACE_SPEC_FIELDS = frozenset({"finalizers"})
NODE_SPEC_FIELDS = frozenset({"configSource", "externalID", "podCIDR", "podCIDRs",
                              "providerID", "taints", "unschedulable"})
_TAINT_FIELDS = frozenset({"key", "value", "effect", "timeAdded"})
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
NAMESPACE_FINALIZER = "kubernetes"


def normalize_namespace_spec(spec: Any) -> dict:
    spec = as_map(spec, "spec")
    check_known(spec, NAMESPACE_SPEC_FIELDS, "spec")
    finalizers = as_str_list(spec.get("finalizers"), "spec.finalizers")
    finalizers = [f for f in finalizers if isinstance(f, str)]  # others: already reported
    if NAMESPACE_FINALIZER not in finalizers:
        finalizers.append(NAMESPACE_FINALIZER)
    return {**spec, "finalizers": finalizers}


def namespace_labels(meta: dict) -> dict:
    """The immutable name label the API server stamps on every namespace (overwrites)."""
    return {**(meta.get("labels") or {}), NAMESPACE_NAME_LABEL: meta["name"]}


def normalize_node_spec(spec: Any) -> dict:
    spec = as_map(spec, "spec")
    check_known(spec, NODE_SPEC_FIELDS, "spec")
    out = dict(spec)
    with guard():
        out["unschedulable"] = as_bool(spec.get("unschedulable"),
                                       "spec.unschedulable") or False
    with guard():
        out["taints"] = _taints(spec.get("taints"), "spec.taints")
    for key in ("podCIDR", "providerID"):
        with guard():
            as_str(spec.get(key), child("spec", key))
    with guard():
        if "podCIDRs" in spec:
            as_str_list(spec["podCIDRs"], "spec.podCIDRs")
    return out


def _taints(value: Any, tpath: str) -> list[dict]:
    seen: set[tuple[str, str]] = set()
    return each(as_list(value, tpath), tpath, lambda t, p: _taint(t, p, seen))


def _taint(t: Any, p: str, seen: set[tuple[str, str]]) -> dict:
    t = as_map(t, p, required=True)
    check_known(t, _TAINT_FIELDS, p)
    key = as_str(t.get("key"), child(p, "key"), required=True)
    check_qualified_name(key, child(p, "key"))
    value = as_str(t.get("value"), child(p, "value")) or ""
    check_label_value(value, child(p, "value"))
    if not t.get("effect"):
        fail(child(p, "effect"), "Required value")
    effect = one_of(t["effect"], child(p, "effect"), TAINT_EFFECTS)
    if t.get("timeAdded") is not None:
        check_timestamp(t["timeAdded"], child(p, "timeAdded"))
    if (key, effect) in seen:
        fail(p, f"Duplicate value: taints must be unique by key and effect pair "
                f"({key}:{effect})")
    seen.add((key, effect))
    return dict(t)
