"""Pod routing over BGP on real Mininet clusters: one ExaBGP speaker per node (full mesh),
Calico's routes on every node, all-pairs reachability, a block claimed while running."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "topologies" / "examples"
pytestmark = [pytest.mark.root, pytest.mark.mininet]

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: net}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: net}
spec:
  replicas: %d
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      %s
      containers: [{name: echo, image: agnhost, ports: [{containerPort: 8080}, {containerPort: 8081, protocol: UDP}]}]
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    with Testbed(str(EXAMPLES / "three-node.yaml"), bgp=True,
                 state_dir=str(tmp_path_factory.mktemp("bgp")), keep_state=False) as tb:
        tb.apply(APP % (9, ""))
        tb.wait_ready(timeout=60)
        yield tb


def test_every_pod_reaches_every_pod_across_nodes(mesh):
    pods = mesh.pods("net")
    assert len({mesh.pod_node(p) for p in pods}) == 3
    for proto, port in (("TCP", 8080), ("UDP", 8081)):
        res = mesh.matrix(port, proto, pods=pods, timeout=1.0)
        assert len(res) == 72
        assert all(res.values()), [k for k, v in res.items() if not v]


def test_routes_are_calicos(mesh):
    blocks = {b["spec"]["cidr"]: b["spec"]["affinity"].split(":", 1)[1]
              for b in mesh.store.list("IPAMBlock")}
    for node in mesh.nodes():
        routes = mesh.node_exec(node, ["ip", "route", "show", "proto", "bird"]).stdout
        for cidr, owner in blocks.items():
            if owner == node:
                assert f"blackhole {cidr}" in routes
            else:
                assert f"{cidr} via {mesh.node_ip(owner)} dev eth0" in routes
        status = mesh.bgp_status(node)
        assert status.startswith("Calico process is running.")
        assert status.count("node-to-node mesh") == 2 and status.count("Established") == 2


def test_node_status_and_routes_from_another_terminal(mesh):
    def calinet(*args):
        return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "--state-dir",
                               mesh.state_dir, *args], cwd=REPO, capture_output=True,
                              text=True, timeout=60)
    r = calinet("node", "status", "node-2")
    assert r.returncode == 0 and "IPv4 BGP status" in r.stdout and "Established" in r.stdout
    r = calinet("routes", "node-2")
    assert r.returncode == 0 and "blackhole" in r.stdout and "unicast" in r.stdout
    r = calinet("node", "status", "node-9")
    assert r.returncode == 1 and "node-9" in r.stderr


def test_block_claimed_while_running_is_routed_everywhere(mesh):
    before = {b["spec"]["cidr"] for b in mesh.store.list("IPAMBlock")}
    # 70 more pods pinned to node-3 overflow its first /26: a new block is claimed.
    mesh.apply(APP.replace("name: echo", "name: many").replace("app: echo", "app: many")
               % (70, "nodeSelector: {kubernetes.io/hostname: node-3}"))
    mesh.wait_ready(timeout=90)
    new = {b["spec"]["cidr"] for b in mesh.store.list("IPAMBlock")} - before
    assert new, "no new block was claimed"
    ip3 = mesh.node_ip("node-3")
    deadline = time.monotonic() + 5
    for node in ("node-1", "node-2"):
        while True:
            routes = mesh.node_exec(node, ["ip", "route", "show", "proto", "bird"]).stdout
            if all(f"{c} via {ip3}" in routes for c in new) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert all(f"{c} via {ip3}" in routes for c in new), routes
    far = [p for p in mesh.pods("net") if p.startswith("net/many-") and
           any(ipaddress.ip_address(mesh.pod_ip(p)) in ipaddress.ip_network(c) for c in new)]
    near = [p for p in mesh.pods("net") if mesh.pod_node(p) == "node-1"]
    assert mesh.probe(near[0], far[0], 8080, "TCP")


def test_racks_cluster_routes_across_racks(tmp_path):
    with Testbed(str(EXAMPLES / "racks.yaml"), bgp=True, state_dir=str(tmp_path),
                 keep_state=False) as tb:
        tb.apply(APP % (12, ""))
        tb.wait_ready(timeout=90)
        pods = tb.pods("net")
        res = tb.matrix(8080, "TCP", pods=pods, timeout=1.0)
        assert all(res.values()), [k for k, v in res.items() if not v]
