"""Node lifecycle on a real three-node cluster with BGP: a node whose link is cut turns
NotReady within the grace period, its Deployment pods are evicted and come back Ready on the
other nodes, and the node is Ready again when its link returns; drain moves a node's pods
away and uncordon lets the scheduler use it again."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.cli import nodes_cmd
from orchestrator.controllers.common import pod_ready
from orchestrator.node.kubelet import HEARTBEAT_SECONDS
from orchestrator.present.printers import node_status_text, table
from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "topologies" / "examples"
pytestmark = [pytest.mark.root, pytest.mark.mininet]

GRACE = 4.0
EVICTION = 2.0
APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 6
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers: [{name: echo, image: agnhost, ports: [{containerPort: 8080}]}]
"""


@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    with Testbed(str(EXAMPLES / "three-node.yaml"), bgp=True,
                 state_dir=str(tmp_path_factory.mktemp("state")), keep_state=False,
                 node_grace=GRACE, eviction_delay=EVICTION) as tb:
        tb.apply(APP)
        tb.wait_ready(timeout=60)
        yield tb


def echo_pods(tb):
    return [p for p in tb.store.list("Pod", "default")
            if p["metadata"].get("labels", {}).get("app") == "echo"]


def by_node(tb):
    out = {}
    for p in echo_pods(tb):
        out.setdefault(p["spec"].get("nodeName"), []).append(p)
    return out


def status(tb, node):
    return node_status_text(tb.store.get("Node", node))


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def six_ready_off(tb, node):
    pods = echo_pods(tb)
    return (len(pods) == 6 and all(pod_ready(p) and not p["metadata"].get("deletionTimestamp")
                                   and p["spec"].get("nodeName") != node for p in pods))


def test_link_down_node_turns_not_ready_pods_move_and_it_comes_back(tb):
    assert by_node(tb).get("node-3"), "the spread should have put echo pods on node-3"
    blocks = set(tb.ipam.blocks_for_node("node-3"))
    assert blocks
    cut = time.monotonic()
    tb.link_down("node-3")
    try:
        lost = wait_until(lambda: status(tb, "node-3") == "NotReady", GRACE + 2,
                          "node-3 to turn NotReady")
        # Not before the grace period, counted as the controller counts it: from when it
        # last saw the Lease renewed. That is up to one heartbeat before the cut, so the
        # cut itself may come as little as GRACE - HEARTBEAT_SECONDS before NotReady.
        renewed_seen = tb.manager.nodelifecycle.seen["node-3"][1]
        assert lost - renewed_seen >= GRACE, (lost - renewed_seen, lost - cut)
        assert lost - cut >= GRACE - HEARTBEAT_SECONDS - 0.1, lost - cut
        node = tb.store.get("Node", "node-3")
        cond = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert (cond["status"], cond["reason"]) == ("Unknown", "NodeStatusUnknown")
        assert {"node.kubernetes.io/unreachable": "NoExecute"} == {
            t["key"]: t["effect"] for t in node["spec"]["taints"]}
        assert status(tb, "node-1") == status(tb, "node-2") == "Ready"
        wait_until(lambda: six_ready_off(tb, "node-3"), 30,
                   "six Ready echo pods on node-1 and node-2")
        # Evicted pods' sandboxes are gone and their addresses released; the node's IPAM
        # blocks stay affine to it, as in Calico.
        assert set(tb.ipam.blocks_for_node("node-3")) == blocks
        text, problems = tb.ipam_check()
        assert not problems, text
    finally:
        tb.link_up("node-3")
    wait_until(lambda: status(tb, "node-3") == "Ready", 10, "node-3 to be Ready again")
    assert tb.store.get("Node", "node-3")["spec"]["taints"] == []
    tb.wait_ready(timeout=60)


def test_drain_moves_pods_away_and_uncordon_allows_scheduling(tb):
    ctx = SimpleNamespace(store=tb.store, live=True)
    lines = []
    assert nodes_cmd.drain(ctx, "node-2", timeout=60, out=lines.append) == 0
    assert lines[0] == "node/node-2 cordoned" and lines[-1] == "node/node-2 drained"
    tb.wait_ready(timeout=60)
    assert "node-2" not in by_node(tb)
    assert status(tb, "node-2") == "Ready,SchedulingDisabled"
    rows = table("Node", tb.store.list("Node")).splitlines()
    assert any(r.split()[:2] == ["node-2", "Ready,SchedulingDisabled"] for r in rows), rows
    assert nodes_cmd.uncordon(ctx, "node-2") == "node/node-2 uncordoned"
    tb.store.patch("Deployment", "echo", "default",
                   lambda o: o["spec"].__setitem__("replicas", 9))
    tb.wait_ready(timeout=60)
    assert by_node(tb).get("node-2"), by_node(tb).keys()
