"""Deployment controller: one ReplicaSet per pod-template hash, scaled to spec.replicas.

Touches only the store. The current template's ReplicaSet gets all replicas and older ones
are scaled to zero (the rolling-update pacing by maxSurge/maxUnavailable comes with the
controllers issue; the objects and names already match Kubernetes').
"""

from __future__ import annotations

import copy
import json

from orchestrator.controllers.common import controller_uid, is_deleting, owner_ref, safe_encode

HASH_LABEL = "pod-template-hash"


def template_hash(template: dict) -> str:
    return safe_encode(json.dumps(template, sort_keys=True).encode(), 10)


def _desired_rs(dep: dict, h: str, replicas: int) -> dict:
    tmpl = copy.deepcopy(dep["spec"]["template"])
    tmpl.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
    sel = copy.deepcopy(dep["spec"]["selector"])
    sel.setdefault("matchLabels", {})[HASH_LABEL] = h
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{dep['metadata']['name']}-{h}",
                     "namespace": dep["metadata"]["namespace"],
                     "labels": dict(tmpl["metadata"]["labels"]),
                     "annotations": {"deployment.kubernetes.io/revision": "1"},
                     "ownerReferences": [owner_ref(dep)]},
        "spec": {"replicas": replicas, "selector": sel, "template": tmpl,
                 "minReadySeconds": dep["spec"].get("minReadySeconds", 0)},
    }


def reconcile(store, now: str) -> bool:
    wrote = False
    for dep in store.list("Deployment"):
        if is_deleting(dep):
            continue
        ns = dep["metadata"]["namespace"]
        uid = dep["metadata"]["uid"]
        owned = [rs for rs in store.list("ReplicaSet", ns) if controller_uid(rs) == uid]
        h = template_hash(dep["spec"]["template"])
        want = int(dep["spec"].get("replicas", 1))
        current = next((rs for rs in owned if rs["metadata"]["name"].endswith(f"-{h}")), None)
        revisions = [int(rs["metadata"].get("annotations", {})
                         .get("deployment.kubernetes.io/revision", "0")) for rs in owned]
        if current is None:
            rs = _desired_rs(dep, h, want)
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = str(
                max(revisions, default=0) + 1)
            current = store.create(rs)
            wrote = True
        elif int(current["spec"].get("replicas", 1)) != want:
            current = store.patch("ReplicaSet", current["metadata"]["name"], ns,
                                  lambda o, n=want: o["spec"].__setitem__("replicas", n)) or current
            wrote = True
        for rs in owned:
            if rs["metadata"]["name"] != current["metadata"]["name"] and rs["spec"].get("replicas"):
                store.patch("ReplicaSet", rs["metadata"]["name"], ns,
                            lambda o: o["spec"].__setitem__("replicas", 0))
                wrote = True
        owned = [rs for rs in store.list("ReplicaSet", ns) if controller_uid(rs) == uid]
        total = sum((rs.get("status") or {}).get("replicas", 0) for rs in owned)
        ready = sum((rs.get("status") or {}).get("readyReplicas", 0) for rs in owned)
        updated = (current.get("status") or {}).get("replicas", 0)
        available = sum((rs.get("status") or {}).get("availableReplicas", 0) for rs in owned)
        status = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": total, "updatedReplicas": updated, "readyReplicas": ready,
            "availableReplicas": available, "unavailableReplicas": max(0, want - available),
            "conditions": [{"type": "Available",
                            "status": "True" if available >= want else "False",
                            "reason": "MinimumReplicasAvailable" if available >= want
                            else "MinimumReplicasUnavailable"}],
        }
        if dep.get("status") != status:
            store.update_status("Deployment", dep["metadata"]["name"], ns, status)
            wrote = True
    return wrote
