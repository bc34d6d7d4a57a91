"""`calinet cordon|uncordon|drain NODE`, with kubectl's output.

Side effects: write the store (spec.unschedulable; deletionTimestamp on drained pods, which
their kubelet then tears down); drain polls the store until the evicted pods are gone.
"""

from __future__ import annotations

import time

from orchestrator.control.store import now_rfc3339
from orchestrator.errors import CalinetError, NotFound


def _node(ctx, name: str) -> dict:
    node = ctx.store.get("Node", name)
    if node is None:
        raise NotFound(f'nodes "{name}" not found')
    return node


def set_unschedulable(ctx, name: str, value: bool) -> str:
    """cordon (True) / uncordon (False): kubectl's "node/NAME cordoned" or "already ..."."""
    node = _node(ctx, name)
    verb = "cordoned" if value else "uncordoned"
    if bool((node.get("spec") or {}).get("unschedulable")) == value:
        return f"node/{name} already {verb}"
    ctx.store.patch("Node", name, "",
                    lambda o: o.setdefault("spec", {}).__setitem__("unschedulable", value))
    return f"node/{name} {verb}"


def cordon(ctx, name: str) -> str:
    return set_unschedulable(ctx, name, True)


def uncordon(ctx, name: str) -> str:
    return set_unschedulable(ctx, name, False)


def _daemonset_owned(pod: dict) -> bool:
    return any(r.get("kind") == "DaemonSet" and r.get("controller")
               for r in (pod.get("metadata") or {}).get("ownerReferences") or [])


def drain_targets(pods: list[dict], node: str) -> list[dict]:
    """Pods kubectl drain --ignore-daemonsets evicts from ``node``. Pure."""
    return [p for p in pods if (p.get("spec") or {}).get("nodeName") == node
            and not _daemonset_owned(p)]


def drain(ctx, name: str, *, timeout: float = 120.0, out=print) -> int:
    """Cordon, evict every pod but DaemonSet-owned ones, wait until they are gone.
    Returns 0 when drained; a timeout (or no running testbed to remove them) is an error."""
    out(cordon(ctx, name))
    pods = drain_targets(ctx.store.list("Pod"), name)
    ignored = [p for p in ctx.store.list("Pod")
               if p["spec"].get("nodeName") == name and _daemonset_owned(p)]
    if ignored:
        out("Warning: ignoring DaemonSet-managed Pods: " + ", ".join(
            f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in ignored))
    stamp = now_rfc3339()
    for pod in pods:
        ns, pname = pod["metadata"]["namespace"], pod["metadata"]["name"]
        # The kubelet of the node tears the sandbox down (IPs released) and removes the pod;
        # its controller has already replaced it, on another node since this one is cordoned.
        ctx.store.patch("Pod", pname, ns,
                        lambda o: o["metadata"].setdefault("deletionTimestamp", stamp))
        out(f"evicting pod {ns}/{pname}")
    waiting = {(p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"]["uid"])
               for p in pods}
    deadline = time.monotonic() + timeout
    while waiting:
        for ns, pname, uid in sorted(waiting):
            cur = ctx.store.get("Pod", pname, ns)
            if cur is None or cur["metadata"]["uid"] != uid:
                waiting.discard((ns, pname, uid))
                out(f"pod/{pname} evicted")
        if not waiting:
            break
        if not getattr(ctx, "live", True) or time.monotonic() >= deadline:
            raise CalinetError(f"drain of node {name} timed out: "
                               f"{len(waiting)} pod(s) still terminating")
        ctx.store.wait_for_change(ctx.store.current_rv(), 0.5)
    out(f"node/{name} drained")
    return 0
