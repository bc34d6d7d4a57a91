"""Shared by the encapsulation e2e tests (VXLAN, IPIP): one agnhost pod per node, a node's
own block, a Node annotation."""

from __future__ import annotations

import contextlib


def pods_on(nodes, ns: str, labels: bool = False) -> list[dict]:
    """A Namespace and a pod `p-<node>` pinned to each node (labelled app=<node> if asked)."""
    out = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    for n in nodes:
        meta = {"name": f"p-{n}", "namespace": ns, **({"labels": {"app": n}} if labels else {})}
        out.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                    "spec": {"nodeName": n, "containers": [
                        {"name": "c", "image": "agnhost", "ports": [{"containerPort": 80}]}]}})
    return out


def block_of(tb, node: str) -> str:
    """The node's (first) affine block: its `blackhole <block> proto bird` route."""
    out = tb.node_exec(node, ["ip", "-o", "route", "show", "type", "blackhole"]).stdout
    return out.split()[1]


def annotation(tb, node: str, key: str) -> str:
    return tb.client.store.get("Node", node)["metadata"]["annotations"][key]


def pool(mode_field: str, mode: str) -> dict:
    """The default pool with ``mode_field`` (vxlanMode, ipipMode) set to ``mode``."""
    return {"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": "default-ipv4-ippool"},
            "spec": {"cidr": "10.244.0.0/16", "blockSize": 26, mode_field: mode,
                     "natOutgoing": True}}


@contextlib.contextmanager
def ready_testbed(topology, state: str, pods: list[dict]):
    """A started testbed of ``topology`` with ``pods`` applied and ready; stopped after."""
    from orchestrator.testbed import Testbed
    with Testbed(str(topology), state_dir=state, keep_state=False) as tb:
        tb.apply(pods)
        tb.wait_ready(timeout=90)
        yield tb
