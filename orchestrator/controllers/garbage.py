"""Garbage collector and namespace controller: dependents follow their owners.

Touches only the store. Objects whose controller owner no longer exists are deleted
(pods gracefully, through `mark_deleted`); a Namespace marked for deletion loses everything
in it and then goes itself, as in Kubernetes.
"""

from __future__ import annotations

from orchestrator.api.kinds import KINDS
from orchestrator.controllers.common import controller_uid, is_deleting

# Everything a namespace can hold (Services, their Endpoints/EndpointSlices and both kinds of
# NetworkPolicy too: a policy left behind would come back into force with a namespace of the
# same name). Workload controllers first, so none recreates a pod the namespace just lost.
_WORKLOADS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "CronJob", "Job")
NAMESPACED_KINDS = _WORKLOADS + tuple(k for k, info in KINDS.items()
                                      if info.namespaced and k not in _WORKLOADS)
OWNER_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "CronJob", "Job")
DEPENDENT_KINDS = ("ReplicaSet", "Job", "Pod")


def reconcile(store, now: str, *, mark_deleted) -> bool:
    wrote = False
    uids = {o["metadata"]["uid"] for kind in OWNER_KINDS for o in store.list(kind)}
    for kind in DEPENDENT_KINDS:
        # Read through the store's shared decode cache: only what changed is decoded.
        for obj in store.list(kind, shared=True):
            owner = controller_uid(obj)
            if owner and owner not in uids and not is_deleting(obj):
                if kind == "Pod":
                    mark_deleted(obj)
                else:
                    store.delete(kind, obj["metadata"]["name"], obj["metadata"]["namespace"])
                wrote = True
    for ns in store.list("Namespace"):
        if not is_deleting(ns):
            continue
        name = ns["metadata"]["name"]
        left = 0
        for kind in NAMESPACED_KINDS:
            for obj in store.list(kind, name):
                left += 1
                if kind == "Pod":
                    if not is_deleting(obj):
                        mark_deleted(obj)
                        wrote = True
                else:
                    store.delete(kind, obj["metadata"]["name"], name)
                    wrote = True
        if left == 0:
            store.delete("Namespace", name)
            wrote = True
    return wrote
