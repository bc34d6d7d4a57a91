"""BGP faults on a real cluster: a speaker killed with SIGKILL is restarted and forwarding
goes on meanwhile (graceful restart); a node's link cut and restored."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "topologies" / "examples"
pytestmark = [pytest.mark.root, pytest.mark.mininet]

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


@pytest.fixture
def mesh(tmp_path):
    with Testbed(str(EXAMPLES / "three-node.yaml"), bgp=True, state_dir=str(tmp_path),
                 keep_state=False) as tb:
        tb.apply(APP)
        tb.wait_ready(timeout=60)
        yield tb


def by_node(tb):
    out = {}
    for p in tb.pods():
        out.setdefault(tb.pod_node(p), []).append(p)
    return out


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_killed_speaker_restarts_and_forwarding_continues(mesh):
    pods = by_node(mesh)
    a, b = pods["node-1"][0], pods["node-2"][0]
    old = mesh.kill_speaker("node-2")
    # Graceful restart: node-1 keeps node-2's routes while the speaker is down.
    assert mesh.probe(a, b, 8080, "TCP")
    routes = mesh.node_exec("node-1", ["ip", "route", "show", "proto", "bird"]).stdout
    assert f"via {mesh.node_ip('node-2')}" in routes
    sp = mesh.routing.supervisor.speaker("node-2")
    wait_until(lambda: sp.proc is not None and sp.proc.pid != old and sp.ready(), 20,
               "the supervisor to restart node-2's speaker")
    mesh.wait_ready(timeout=20)  # includes: every node routes every other node's blocks
    assert all(mesh.matrix(8080, "TCP", timeout=1.0).values())


def test_link_down_cuts_the_node_off_and_link_up_restores_it(mesh):
    pods = by_node(mesh)
    a, c = pods["node-1"][0], pods["node-3"][0]
    mesh.link_down("node-3")
    try:
        assert not mesh.probe(a, c, 8080, "TCP", timeout=0.5)
        # The node keeps its own routes (a pulled cable, not a deleted interface).
        assert "default dev eth0" in mesh.node_exec("node-3", ["ip", "route"]).stdout
    finally:
        mesh.link_up("node-3")
    wait_until(lambda: mesh.probe(a, c, 8080, "TCP", timeout=0.5), 30,
               "node-3 to be reachable again")
    mesh.wait_ready(timeout=30)
    assert all(mesh.matrix(8080, "TCP", timeout=1.0).values())
