"""BGP faults on a real cluster with short timers (hold 3 s, as experiments set them): a
speaker killed with SIGKILL is restarted and forwarding goes on meanwhile (graceful restart);
a node's link cut: its routes are withdrawn everywhere within the hold time, and come back
when the link does."""

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
HOLD = 3
SHORT_TIMERS = f"""
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {{name: default}}
spec: {{holdTime: {HOLD}, keepaliveTime: 1}}
"""


@pytest.fixture
def mesh(tmp_path):
    with Testbed(str(EXAMPLES / "three-node.yaml"), bgp=True, state_dir=str(tmp_path),
                 keep_state=False, manifests=[SHORT_TIMERS]) as tb:
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
    via2 = f"via {mesh.node_ip('node-2')}"
    old = mesh.kill_speaker("node-2")
    sp = mesh.routing.supervisor.speaker("node-2")
    # Graceful restart: from the kill until the new speaker is up, node-1 keeps node-2's
    # routes (its session went down at once: without GR they would be withdrawn within ms)
    # and traffic keeps flowing. Sampled all along, not once.
    samples = probes = down = 0
    deadline = time.monotonic() + 20
    while not (sp.proc is not None and sp.proc.pid != old and sp.ready()):
        assert time.monotonic() < deadline, "the supervisor did not restart node-2's speaker"
        assert via2 in bird_routes(mesh, "node-1"), f"node-2's routes withdrawn {samples}"
        samples += 1
        row = next(ln for ln in mesh.bgp_status("node-1").splitlines()
                   if f" {mesh.node_ip('node-2')} " in ln)
        down += "Established" not in row
        if samples % 5 == 1:
            assert mesh.probe(a, b, 8080, "TCP", timeout=1.0)
            probes += 1
        time.sleep(0.02)
    # node-1 saw the session down (so the routes it kept were kept by graceful restart)
    assert samples >= 3 and probes >= 1 and down >= 1, (samples, probes, down)
    mesh.wait_ready(timeout=20)  # includes: every node routes every other node's blocks
    assert all(mesh.matrix(8080, "TCP", timeout=1.0).values())


def bird_routes(tb, node):
    return tb.node_exec(node, ["ip", "route", "show", "proto", "bird"]).stdout


def test_link_down_withdraws_the_nodes_routes_within_hold_time_and_link_up_restores(mesh):
    pods = by_node(mesh)
    a, c = pods["node-1"][0], pods["node-3"][0]
    via3 = f"via {mesh.node_ip('node-3')}"
    assert "hold-time 3;" in Path(mesh.routing.node_dir("node-1"), "exabgp.conf").read_text()
    assert all(via3 in bird_routes(mesh, n) for n in ("node-1", "node-2"))
    cut = time.monotonic()
    mesh.link_down("node-3")
    try:
        gone = wait_until(lambda: not any(via3 in bird_routes(mesh, n)
                                          for n in ("node-1", "node-2")),
                          HOLD + 3, "node-3's routes to be withdrawn on node-1 and node-2")
        # the hold timer is what notices a pulled cable: not before it, but soon after
        assert HOLD - 1.5 <= gone - cut <= HOLD + 1.5, gone - cut
        assert not mesh.probe(a, c, 8080, "TCP", timeout=0.5)
        # node-3 keeps its own blackholes and its default route (a cable, not a config)
        own = bird_routes(mesh, "node-3")
        assert "blackhole" in own and "via" not in own
        assert "default dev eth0" in mesh.node_exec("node-3", ["ip", "route"]).stdout
        row = next(ln for ln in mesh.bgp_status("node-1").splitlines()
                   if f" {mesh.node_ip('node-3')} " in ln)
        assert "Established" not in row and "| start " in row, row
    finally:
        mesh.link_up("node-3")
    wait_until(lambda: mesh.probe(a, c, 8080, "TCP", timeout=0.5), 30,
               "node-3 to be reachable again")
    mesh.wait_ready(timeout=30)
    assert all(via3 in bird_routes(mesh, n) for n in ("node-1", "node-2"))
    assert all(mesh.matrix(8080, "TCP", timeout=1.0).values())
