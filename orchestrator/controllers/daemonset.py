"""DaemonSet controller: one pod on every node that should run it, following nodes.

Touches only the store. As Kubernetes' daemon set controller (since 1.12): a node should run
the pod when it passes the scheduler's NodeUnschedulable, NodeName, TaintToleration and
NodeAffinity filters for it (resources are the scheduler's business: a pod that does not fit
stays Pending). Pods carry the DaemonSet's default tolerations (not-ready / unreachable
NoExecute, the pressure and unschedulable NoSchedule taints) and a required node affinity
on metadata.name, so the normal scheduler binds each to its node. Pods on nodes that no
longer qualify (or no longer exist), surplus pods and Failed pods are deleted. A template
change rolls out RollingUpdate-style: old pods are deleted while at most maxUnavailable of
the set are unavailable.
"""

from __future__ import annotations

import copy

from orchestrator.api.workloads import resolve_int_or_percent
from orchestrator.control import scheduler
from orchestrator.control.nodeinfo import node_infos, pod_view
from orchestrator.controllers.common import (
    controller_uid,
    is_deleting,
    pod_active,
    pod_from_template,
    pod_ready,
    sync_each,
)
from orchestrator.controllers.deployment import template_hash

HASH_LABEL = "controller-revision-hash"
# DaemonSet pods tolerate these whatever their template says (util.AddOrUpdateDaemonPodTolerations).
DEFAULT_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
_PLACEMENT_FILTERS = ("NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity")


def _with_node_affinity(spec: dict, node: str) -> None:
    """Require `node` by metadata.name (ReplaceDaemonSetPodNodeNameNodeAffinity)."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    affinity = spec.setdefault("affinity", {})
    na = affinity.setdefault("nodeAffinity", {})
    na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [term]}


def _pod_spec(ds: dict, node: str | None) -> dict:
    spec = copy.deepcopy(ds["spec"]["template"]["spec"])
    tolerations = spec.setdefault("tolerations", [])
    for t in DEFAULT_TOLERATIONS:
        if t not in tolerations:
            tolerations.append(dict(t))
    if node is not None:
        _with_node_affinity(spec, node)
    return spec


def target_node(pod: dict) -> str | None:
    """The node a DaemonSet pod is for: its binding, or its metadata.name affinity."""
    if pod["spec"].get("nodeName"):
        return pod["spec"]["nodeName"]
    req = (((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in req.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and \
                    len(f.get("values") or []) == 1:
                return f["values"][0]
    return None


def eligible_nodes(ds: dict, nodes: list[dict]) -> list[str]:
    """Names of the nodes that should run a pod of `ds` (before resources)."""
    probe = {"metadata": {"name": "probe", "namespace": ds["metadata"]["namespace"]},
             "spec": _pod_spec(ds, None)}
    view = pod_view(probe)
    filters = [fn for name, fn in scheduler.FILTERS if name in _PLACEMENT_FILTERS]
    return [info.name for info in node_infos(nodes, [])
            if not any(fn(view, info) for fn in filters)]


def _new_pod(ds: dict, node: str, h: str, existing: set[str]) -> dict:
    pod = pod_from_template(ds, existing, {HASH_LABEL: h})
    pod["spec"] = _pod_spec(ds, node)
    return pod


def reconcile(store, now: str, *, mark_deleted) -> bool:
    """One pass over every DaemonSet. `mark_deleted(pod)` starts a graceful deletion."""
    if not store.has("DaemonSet"):
        return False     # no pods to list (decoding hundreds of them costs ms every pass)
    all_pods = store.list("Pod")
    nodes = store.list("Node")
    return sync_each(store, "DaemonSet", lambda ds: _sync(store, ds, nodes, all_pods, mark_deleted))


def _sync(store, ds: dict, nodes: list[dict], all_pods: list[dict], mark_deleted) -> bool:
    wrote = False
    ns, uid = ds["metadata"]["namespace"], ds["metadata"]["uid"]
    h = template_hash(ds["spec"]["template"])
    want = eligible_nodes(ds, nodes)
    mine = [p for p in all_pods if controller_uid(p) == uid and not is_deleting(p)]
    by_node: dict[str | None, list[dict]] = {}
    for p in mine:
        by_node.setdefault(target_node(p), []).append(p)
    names = {p["metadata"]["name"] for p in all_pods if p["metadata"]["namespace"] == ns}
    for node in want:
        pods = by_node.get(node, [])
        failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
        for p in failed:  # the controller replaces a failed daemon pod
            mark_deleted(p)
            wrote = True
        live = [p for p in pods if pod_active(p)]
        if not live and not failed:
            pod = _new_pod(ds, node, h, names)
            names.add(pod["metadata"]["name"])
            store.create(pod)
            wrote = True
        # Surplus: keep the oldest (Kubernetes keeps the one created first).
        for p in sorted(live, key=lambda p: p["metadata"].get("creationTimestamp", ""))[1:]:
            mark_deleted(p)
            wrote = True
    for node, pods in by_node.items():
        if node not in want:  # node gone, or no longer matching / tolerated
            for p in pods:
                mark_deleted(p)
                wrote = True
    if not wrote:
        wrote = _roll(ds, want, by_node, h, mark_deleted)
    return _write_status(store, ds, want, h) or wrote


def _roll(ds: dict, want: list[str], by_node: dict, h: str, mark_deleted) -> bool:
    strategy = ds["spec"].get("updateStrategy") or {"type": "RollingUpdate"}
    if strategy.get("type") != "RollingUpdate":
        return False
    max_unavailable = max(1, resolve_int_or_percent(
        (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1), len(want),
        round_up=True))
    pods = {n: next((p for p in by_node.get(n, []) if pod_active(p)), None) for n in want}
    unavailable = sum(1 for p in pods.values() if p is None or not pod_ready(p))
    old = [p for p in pods.values()
           if p is not None and (p["metadata"].get("labels") or {}).get(HASH_LABEL) != h]
    # Not-ready old pods first: replacing them costs no availability.
    old.sort(key=lambda p: (pod_ready(p), p["metadata"]["name"]))
    wrote = False
    for p in old:
        if pod_ready(p):
            if unavailable >= max_unavailable:
                break
            unavailable += 1
        mark_deleted(p)
        wrote = True
    return wrote


def _write_status(store, ds: dict, want: list[str], h: str) -> bool:
    ns, name, uid = ds["metadata"]["namespace"], ds["metadata"]["name"], ds["metadata"]["uid"]
    pods = [p for p in store.list("Pod", ns) if controller_uid(p) == uid and pod_active(p)]
    on = {}
    for p in pods:
        on.setdefault(target_node(p), p)
    scheduled = [n for n in want if n in on and on[n]["spec"].get("nodeName")]
    ready = sum(1 for n in want if n in on and pod_ready(on[n]))
    status = {
        "observedGeneration": ds["metadata"].get("generation", 1),
        "desiredNumberScheduled": len(want),
        "currentNumberScheduled": len(scheduled),
        "numberMisscheduled": sum(1 for n in on if n not in want and
                                  on[n]["spec"].get("nodeName")),
        "numberReady": ready, "numberAvailable": ready,
        "numberUnavailable": len(want) - ready,
        "updatedNumberScheduled": sum(
            1 for n in scheduled if (on[n]["metadata"].get("labels") or {}).get(HASH_LABEL) == h),
    }
    if ds.get("status") == status:
        return False
    store.update_status("DaemonSet", name, ns, status)
    return True
