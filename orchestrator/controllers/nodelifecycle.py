"""Node lifecycle controller: node health from kubelet heartbeats, unreachable taints, eviction.

Side effects: writes Node status/taints and marks pods deleted through the store.

As kube-controller-manager's node lifecycle controller does, a node's health is judged by when
*this controller* last saw its heartbeat (the kube-node-lease Lease's renewTime) change, on its
own monotonic clock: clocks of the writers never matter, and a restarted controller gives every
node a full grace period before calling it lost. A node silent for longer than ``grace`` gets
Ready=Unknown (NodeStatusUnknown) and the node.kubernetes.io/unreachable:NoExecute taint; the
taint manager part then evicts its pods once their toleration of that taint runs out (pods
without a matching toleration: ``eviction_delay``, standing in for the 300 s that Kubernetes'
DefaultTolerationSeconds admission adds). IPAM blocks are left alone: they stay affine to the
node, as in Calico. A node heard from again is Ready and untainted.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from orchestrator.control.scheduler import tolerates
from orchestrator.controllers.common import is_deleting

LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE_KEY = "node.kubernetes.io/unreachable"
NOT_READY_KEY = "node.kubernetes.io/not-ready"
DEFAULT_GRACE = 4.0
DEFAULT_EVICTION_DELAY = 2.0


def micro_time() -> str:
    """metav1.MicroTime: RFC 3339 with microseconds (a Lease's renewTime)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_object(node: str, renew_time: str, duration: float = DEFAULT_GRACE) -> dict:
    """The coordination.k8s.io/v1 Lease a kubelet renews as its heartbeat."""
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": int(round(duration)),
                     "renewTime": renew_time}}


def ready_condition(node: dict) -> dict | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond
    return None


def unreachable_taint(node: dict) -> dict | None:
    for t in (node.get("spec") or {}).get("taints") or []:
        if t.get("key") == UNREACHABLE_KEY and t.get("effect") == "NoExecute":
            return t
    return None


def toleration_seconds(pod: dict, taint: dict, default: float) -> float | None:
    """How long the pod stays on a node with ``taint``: None = for ever (a matching
    toleration without tolerationSeconds), ``default`` when nothing matches. DaemonSet pods
    tolerate it for ever (their controller adds the toleration)."""
    matching = [t for t in (pod.get("spec") or {}).get("tolerations") or []
                if tolerates(t, taint)]
    if not matching:
        if any(r.get("kind") == "DaemonSet" and r.get("controller")
               for r in (pod.get("metadata") or {}).get("ownerReferences") or []):
            return None
        return default
    seconds = [t.get("tolerationSeconds") for t in matching]
    if any(s is None for s in seconds):
        return None
    return max(0.0, float(min(seconds)))


class NodeLifecycleController:
    def __init__(self, store, *, mark_deleted, grace: float = DEFAULT_GRACE,
                 eviction_delay: float = DEFAULT_EVICTION_DELAY, monotonic=time.monotonic):
        self.store = store
        self.mark_deleted = mark_deleted
        self.grace = grace
        self.eviction_delay = eviction_delay
        self.monotonic = monotonic
        self.seen: dict[str, tuple[str | None, float]] = {}  # node -> (renewTime, seen at)
        self.tainted_at: dict[str, float] = {}  # node -> when we first saw it tainted

    def healthy(self, node: str, mono: float) -> bool:
        lease = self.store.get("Lease", node, LEASE_NAMESPACE)
        renew = ((lease or {}).get("spec") or {}).get("renewTime")
        prev = self.seen.get(node)
        if prev is None or prev[0] != renew:
            # A renewal, or a first sighting (this controller just started): either starts
            # a full grace period.
            self.seen[node] = (renew, mono)
            return True
        return mono - prev[1] <= self.grace

    def reconcile(self, now: str) -> bool:
        mono = self.monotonic()
        wrote = False
        nodes = self.store.list("Node")
        names = {n["metadata"]["name"] for n in nodes}
        for gone in [n for n in self.seen if n not in names]:
            self.seen.pop(gone, None)
            self.tainted_at.pop(gone, None)
        tainted = []
        for node in nodes:
            name = node["metadata"]["name"]
            ok = self.healthy(name, mono)
            wrote |= self._set_health(name, ok, now)
            if not ok:
                tainted.append(name)
                self.tainted_at.setdefault(name, mono)
            else:
                self.tainted_at.pop(name, None)
        if tainted:
            wrote |= self._evict(tainted, mono, now)
        return wrote

    def _set_health(self, name: str, ok: bool, now: str) -> bool:
        node = self.store.get("Node", name)
        cond = ready_condition(node) or {}
        has_taint = unreachable_taint(node) is not None
        if ok and cond.get("status") == "True" and not has_taint:
            return False
        if not ok and cond.get("status") == "Unknown" and has_taint:
            return False

        def edit(obj):
            spec = obj.setdefault("spec", {})
            taints = [t for t in spec.get("taints") or [] if t.get("key") != UNREACHABLE_KEY]
            conds = [c for c in (obj.setdefault("status", {}).get("conditions") or [])
                     if c.get("type") != "Ready"]
            old = ready_condition(obj) or {}
            if ok:
                new = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "kubelet is posting ready status"}
            else:
                taints.append({"key": UNREACHABLE_KEY, "effect": "NoExecute", "timeAdded": now})
                new = {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                       "message": "Kubelet stopped posting node status."}
            if old.get("lastHeartbeatTime"):
                new["lastHeartbeatTime"] = old["lastHeartbeatTime"]
            new["lastTransitionTime"] = (old.get("lastTransitionTime", now)
                                         if old.get("status") == new["status"] else now)
            spec["taints"] = taints
            obj["status"]["conditions"] = [new] + conds
        self.store.patch("Node", name, "", edit)
        return True

    def _evict(self, nodes: list[str], mono: float, now: str) -> bool:
        wrote = False
        taint = {"key": UNREACHABLE_KEY, "value": "", "effect": "NoExecute"}
        for pod in self.store.list("Pod"):
            node = pod["spec"].get("nodeName")
            if node not in nodes or is_deleting(pod):
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            wait = toleration_seconds(pod, taint, self.eviction_delay)
            if wait is None or mono - self.tainted_at[node] < wait:
                continue
            self.mark_deleted(pod)
            wrote = True
        return wrote
