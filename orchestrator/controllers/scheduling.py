"""Scheduler loop: binds pending pods to nodes using the pure scheduler. Touches the store."""

from __future__ import annotations

import copy

from orchestrator.control import scheduler
from orchestrator.controllers.common import is_deleting


def _set_condition(pod: dict, cond: dict) -> None:
    conds = pod.setdefault("status", {}).setdefault("conditions", [])
    for i, c in enumerate(conds):
        if c.get("type") == cond["type"]:
            conds[i] = cond
            return
    conds.append(cond)


def reconcile(store, now: str) -> bool:
    # Only unbound pods are decoded while nothing is pending (every pass, most of the time).
    unbound = store.list_where("Pod", "$.spec.nodeName", present=False)
    if not any(not p["spec"].get("nodeName") and not is_deleting(p) for p in unbound):
        return False
    pods = store.list("Pod", shared=True)    # read only: binding re-reads each pod
    pending = [p for p in pods if not p["spec"].get("nodeName") and not is_deleting(p)]
    if not pending:
        return False
    nodes = store.list("Node")
    infos = scheduler.node_infos(nodes, [p for p in pods if p["spec"].get("nodeName")])
    decisions = scheduler.schedule_many(pending, infos)
    wrote = False
    # One transaction for the pass's bindings (500 commits cost ~0.1 s at a bring-up).
    with store.transaction():
        for pod, decision in zip(pending, decisions):
            wrote |= _bind(store, pod["metadata"]["name"], pod["metadata"]["namespace"],
                           decision, now)
    return wrote


def _bind(store, name: str, ns: str, decision, now: str) -> bool:
    """Bind (or record why not) on the pod as it is now, not as it was when listed."""
    changed = []

    def edit(pod):
        if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return  # bound or deleted meanwhile
        if decision.node:     # a binding always changes the pod (it had no nodeName)
            pod["spec"]["nodeName"] = decision.node
            _set_condition(pod, {"type": "PodScheduled", "status": "True",
                                 "lastTransitionTime": now})
            pod.setdefault("status", {})["phase"] = "Pending"
            changed.append(True)
            return
        before = copy.deepcopy(pod)
        pod.setdefault("status", {})["phase"] = "Pending"
        _set_condition(pod, {"type": "PodScheduled", "status": "False",
                             "reason": "Unschedulable", "message": decision.reasons,
                             "lastTransitionTime": now})
        if _same_ignoring_time(before, pod):
            pod.clear()
            pod.update(before)
        else:
            changed.append(True)

    store.patch("Pod", name, ns, edit)
    return bool(changed)


def _same_ignoring_time(a: dict, b: dict) -> bool:
    def strip(p):
        p = copy.deepcopy(p)
        p["metadata"].pop("resourceVersion", None)
        for c in (p.get("status") or {}).get("conditions") or []:
            c.pop("lastTransitionTime", None)
        return p
    return strip(a) == strip(b)
