"""ReplicaSet controller: keeps `spec.replicas` active pods matching the template.

Touches only the store. Pods get Kubernetes-style names `<rs>-<5 safe chars>` and an owner
reference; surplus pods are chosen the way Kubernetes does (unscheduled, then pending, then
not ready, then newest first).
"""

from __future__ import annotations

from orchestrator.api.labels import label_selector_matches
from orchestrator.controllers.common import (
    controller_uid,
    is_deleting,
    pod_active,
    pod_from_template,
    pod_ready,
)


def _pods_of(rs: dict, pods: list[dict]) -> list[dict]:
    uid = rs["metadata"]["uid"]
    return [p for p in pods if controller_uid(p) == uid]


def _new_pod(rs: dict, existing: set[str]) -> dict:
    return pod_from_template(rs, existing)


def _delete_rank(pod: dict):
    st = pod.get("status") or {}
    scheduled = bool(pod["spec"].get("nodeName"))
    running = st.get("phase") == "Running"
    # Sort ascending = delete first; newest first among equals (creationTimestamp desc).
    return (scheduled, running, pod_ready(pod), _neg(pod["metadata"].get("creationTimestamp", "")),
            _neg(pod["metadata"]["name"]))


def _neg(s: str):
    return tuple(-ord(c) for c in s)


def reconcile(store, now: str, *, mark_deleted) -> bool:
    """One pass over every ReplicaSet. `mark_deleted(pod)` starts a graceful pod deletion."""
    wrote = False
    replicasets = store.list("ReplicaSet")
    if not replicasets:
        return False     # no pods to list (decoding hundreds of them costs ms every pass)
    all_pods = store.list("Pod", shared=True)
    for rs in replicasets:
        if is_deleting(rs):
            continue
        ns = rs["metadata"]["namespace"]
        pods = [p for p in _pods_of(rs, all_pods)]
        active = [p for p in pods if pod_active(p)]
        want = int(rs["spec"].get("replicas", 1))
        names = {p["metadata"]["name"] for p in all_pods if p["metadata"]["namespace"] == ns}
        if len(active) < want:
            with store.transaction():     # one commit for the missing pods, not one each
                for _ in range(want - len(active)):
                    pod = _new_pod(rs, names)
                    names.add(pod["metadata"]["name"])
                    store.create(pod)
                    wrote = True
        elif len(active) > want:
            for pod in sorted(active, key=_delete_rank)[:len(active) - want]:
                mark_deleted(pod)
                wrote = True
        pods = _pods_of(rs, store.list("Pod", ns, shared=True))
        active = [p for p in pods if pod_active(p)]
        sel = rs["spec"].get("selector") or {}
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1 for p in active if label_selector_matches(sel, p["metadata"].get("labels", {}))),
            "readyReplicas": sum(1 for p in active if pod_ready(p)),
            "availableReplicas": sum(1 for p in active if pod_ready(p)),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if rs.get("status") != status:
            store.update_status("ReplicaSet", rs["metadata"]["name"], ns, status)
            wrote = True
    return wrote
