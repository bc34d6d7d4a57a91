"""StatefulSet controller: pods with stable names `<set>-0..n-1`, started and removed in order.

Touches only the store. As Kubernetes' stateful set controller with podManagementPolicy
OrderedReady: pod N+1 is created only once pods 0..N are Running and Ready, scale-down
removes the highest ordinal first, one at a time, and waits for it to be gone; Parallel
creates and deletes without waiting. Each pod gets hostname `<pod>` and subdomain
`spec.serviceName` (its stable DNS name through the headless Service), the
statefulset.kubernetes.io/pod-name, apps.kubernetes.io/pod-index and controller-revision-hash
labels, and an owner reference. A template change is rolled out RollingUpdate-style from the
highest ordinal down to `partition`, one pod at a time (OnDelete: only pods deleted by the
user come back updated). Finished (Succeeded/Failed) pods are deleted and recreated.
Revisions are template hashes, not stored ControllerRevision objects.
"""

from __future__ import annotations

import copy
import re

from orchestrator.controllers.common import (
    controller_uid,
    is_deleting,
    owner_ref,
    pod_ready,
    sync_each,
)
from orchestrator.controllers.deployment import template_hash
from orchestrator.errors import Conflict

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"


def ordinal_of(sts_name: str, pod_name: str) -> int | None:
    m = re.fullmatch(re.escape(sts_name) + r"-(0|[1-9][0-9]*)", pod_name)
    return int(m.group(1)) if m else None


def update_revision(sts: dict) -> str:
    return f"{sts['metadata']['name']}-{template_hash(sts['spec']['template'])}"


def _new_pod(sts: dict, i: int, revision: str) -> dict:
    tmpl = copy.deepcopy(sts["spec"]["template"])
    meta = tmpl.setdefault("metadata", {})
    name = f"{sts['metadata']['name']}-{i}"
    meta.setdefault("labels", {}).update(
        {POD_NAME_LABEL: name, POD_INDEX_LABEL: str(i), REVISION_LABEL: revision})
    meta.update({"name": name, "namespace": sts["metadata"]["namespace"],
                 "ownerReferences": [owner_ref(sts)]})
    spec = tmpl["spec"]
    spec["hostname"] = name
    spec["subdomain"] = sts["spec"]["serviceName"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def _finished(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _healthy(pod: dict) -> bool:
    return not is_deleting(pod) and not _finished(pod) and pod_ready(pod) and \
        (pod.get("status") or {}).get("phase") == "Running"


def _revision(pod: dict) -> str | None:
    return (pod["metadata"].get("labels") or {}).get(REVISION_LABEL)


def reconcile(store, now: str, *, mark_deleted) -> bool:
    """One pass over every StatefulSet. `mark_deleted(pod)` starts a graceful deletion."""
    if not store.has("StatefulSet"):
        return False     # no pods to list (decoding hundreds of them costs ms every pass)
    all_pods = store.list("Pod")
    return sync_each(store, "StatefulSet", lambda sts: _sync(store, sts, all_pods, mark_deleted))


def _sync(store, sts: dict, all_pods: list[dict], mark_deleted) -> bool:
    ns, name, uid = sts["metadata"]["namespace"], sts["metadata"]["name"], sts["metadata"]["uid"]
    spec = sts["spec"]
    want = int(spec.get("replicas", 1))
    monotonic = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
    revision = update_revision(sts)
    by_ord: dict[int, dict] = {}
    for p in all_pods:
        if p["metadata"]["namespace"] == ns and controller_uid(p) == uid:
            i = ordinal_of(name, p["metadata"]["name"])
            if i is not None:
                by_ord[i] = p
    wrote = _scale(store, sts, by_ord, want, monotonic, revision, mark_deleted)
    if not wrote:
        wrote = _roll(sts, by_ord, want, revision, mark_deleted)
    return _write_status(store, sts, want, revision) or wrote


def _scale(store, sts, by_ord, want, monotonic, revision, mark_deleted) -> bool:
    wrote = False
    # Ordinals 0..want-1, in order: in OrderedReady the first one not healthy stops the pass.
    for i in range(want):
        pod = by_ord.get(i)
        if pod is None:
            try:
                store.create(_new_pod(sts, i, revision))
            except Conflict:  # a pod of that name that is not ours: wait, never replace it
                if monotonic:
                    return wrote
                continue
            wrote = True
            if monotonic:
                return wrote
            continue
        if _finished(pod) and not is_deleting(pod):
            mark_deleted(pod)  # recreated under the same name once it is gone
            wrote = True
            if monotonic:
                return wrote
            continue
        if monotonic and not _healthy(pod):
            return wrote
    # Condemned ordinals (>= want), highest first; OrderedReady waits for each to be gone
    # and only goes on while every remaining pod is healthy.
    condemned = sorted((i for i in by_ord if i >= want), reverse=True)
    for i in condemned:
        pod = by_ord[i]
        if is_deleting(pod):
            if monotonic:
                return wrote
            continue
        if monotonic and any(not _healthy(by_ord[j]) for j in by_ord if j < i):
            return wrote
        mark_deleted(pod)
        wrote = True
        if monotonic:
            return wrote
    return wrote


def _roll(sts, by_ord, want, revision, mark_deleted) -> bool:
    """RollingUpdate: replace the highest out-of-date ordinal >= partition, once every pod is
    healthy (its replacement, same name, comes from _scale on a later pass)."""
    strategy = sts["spec"].get("updateStrategy") or {"type": "RollingUpdate"}
    if strategy.get("type") != "RollingUpdate":
        return False
    partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0))
    pods = [by_ord.get(i) for i in range(want)]
    if any(p is None or not _healthy(p) for p in pods):
        return False
    for i in range(want - 1, partition - 1, -1):
        if _revision(pods[i]) != revision:
            mark_deleted(pods[i])
            return True
    return False


def _write_status(store, sts: dict, want: int, revision: str) -> bool:
    ns, name, uid = sts["metadata"]["namespace"], sts["metadata"]["name"], sts["metadata"]["uid"]
    pods = [p for p in store.list("Pod", ns) if controller_uid(p) == uid
            and ordinal_of(name, p["metadata"]["name"]) is not None and not is_deleting(p)]
    old = sts.get("status") or {}
    updated = sum(1 for p in pods if _revision(p) == revision)
    ready = sum(1 for p in pods if pod_ready(p))
    current = old.get("currentRevision") or revision
    if updated == want and len(pods) == want:
        current = revision  # the rollout is done: the update revision becomes current
    status = {
        "observedGeneration": sts["metadata"].get("generation", 1),
        "replicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
        "currentReplicas": sum(1 for p in pods if _revision(p) == current),
        "updatedReplicas": updated, "currentRevision": current, "updateRevision": revision,
        "collisionCount": 0,
    }
    if old == status:
        return False
    store.update_status("StatefulSet", name, ns, status)
    return True
