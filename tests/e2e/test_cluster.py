"""A real 3-node cluster: scheduling, Calico-style plumbing, IPAM, same-node traffic."""

from __future__ import annotations

import ipaddress
import json

import pytest

from orchestrator.errors import ValidationError
from orchestrator.host import naming

pytestmark = [pytest.mark.root, pytest.mark.mininet]

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: e2e}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: e2e}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: agnhost
        ports: [{containerPort: 80, name: http}, {containerPort: 81, protocol: UDP}]
"""


@pytest.fixture(scope="module")
def app(three_node):
    three_node.apply(APP)
    three_node.wait_ready(timeout=60)
    return three_node


def pods_by_node(tb):
    out = {}
    for key in tb.pods("e2e"):
        out.setdefault(tb.pod_node(key), []).append(key)
    return out


def test_replicas_spread_over_all_nodes(app):
    spread = pods_by_node(app)
    assert sorted(spread) == sorted(app.nodes())
    assert sorted(len(v) for v in spread.values()) == [2, 2, 2]


def test_pod_ips_come_from_blocks_affine_to_their_node(app):
    pool = ipaddress.ip_network("10.244.0.0/16")
    ips = [app.pod_ip(k) for k in app.pods("e2e")]
    assert len(set(ips)) == len(ips)
    blocks = {b["spec"]["cidr"]: b["spec"].get("affinity") for b in app.store.list("IPAMBlock")}
    for k in app.pods("e2e"):
        ip = ipaddress.ip_address(app.pod_ip(k))
        assert ip in pool
        owner = [aff for cidr, aff in blocks.items() if ip in ipaddress.ip_network(cidr)]
        assert owner == [f"host:{app.pod_node(k)}"]


def test_calico_plumbing_inside_pod_and_node(app):
    key = app.pods("e2e")[0]
    ns, name = key.split("/")
    ip, node = app.pod_ip(key), app.pod_node(key)
    veth = naming.veth_name(ns, name)
    addrs = json.loads(app.exec(key, ["ip", "-j", "addr", "show", "eth0"]).stdout)
    assert [(a["local"], a["prefixlen"]) for a in addrs[0]["addr_info"] if a["family"] == "inet"] \
        == [(ip, 32)]
    routes = app.exec(key, ["ip", "route"]).stdout
    assert "default via 169.254.1.1 dev eth0" in routes
    assert "169.254.1.1 dev eth0 scope link" in routes
    link = json.loads(app.node_exec(node, ["ip", "-j", "link", "show", veth]).stdout)[0]
    assert link["address"] == "ee:ee:ee:ee:ee:ee"
    for path, want in ((f"net/ipv4/conf/{veth}/proxy_arp", "1"),
                       (f"net/ipv4/neigh/{veth}/proxy_delay", "0"),
                       (f"net/ipv4/conf/{veth}/forwarding", "1")):
        assert app.node_exec(node, ["cat", f"/proc/sys/{path}"]).stdout.strip() == want
    node_routes = app.node_exec(node, ["ip", "route", "show", f"{ip}/32"]).stdout
    assert f"{ip} dev {veth} scope link" in node_routes
    blackholes = app.node_exec(node, ["ip", "route", "show", "type", "blackhole"]).stdout
    assert "blackhole 10.244." in blackholes


def test_same_node_traffic_node_to_pod_and_pod_to_node(app):
    spread = pods_by_node(app)
    node, (a, b) = next(iter(sorted(spread.items())))
    assert app.probe(a, b, 80, "TCP")
    assert app.probe(a, b, 81, "UDP")
    assert not app.probe(a, b, 82, "TCP", timeout=0.5)  # nothing listens there
    assert app.node_exec(node, ["ping", "-c1", "-W1", app.pod_ip(a)]).returncode == 0
    node_ip = app.node_ip(node)
    assert app.exec(a, ["ping", "-c1", "-W1", node_ip]).returncode == 0


def test_cross_node_pods_unreachable_without_bgp(app):
    spread = pods_by_node(app)
    nodes = sorted(spread)
    src, dst = spread[nodes[0]][0], spread[nodes[1]][0]
    assert not app.probe(src, dst, 80, "TCP", timeout=0.3)
    # No route to the remote block on the source node: nothing leaks off the testbed.
    routes = app.node_exec(nodes[0], ["ip", "route", "get", app.pod_ip(dst)]).stdout
    assert "dev eth0" in routes


def test_deployment_scales_up_and_down_and_releases_ips(app):
    app.apply(APP.replace("replicas: 6", "replicas: 9"))
    app.wait_ready(timeout=60)
    assert len(app.pods("e2e")) == 9
    app.apply(APP.replace("replicas: 6", "replicas: 2"))
    app.wait_ready(timeout=60)
    assert len(app.pods("e2e")) == 2
    text, problems = app.ipam_check()
    assert problems == 0, text
    handles = app.store.list("IPAMHandle")
    assert len([h for h in handles]) == len(app.pods())


def test_invalid_manifest_changes_nothing(app):
    # Not the store version: node heartbeats (Leases) write every second.
    before = app.store.get("Deployment", "web", "e2e")
    bad = APP.replace("containerPort: 80", "containerPort: 70000")
    with pytest.raises(ValidationError, match=r"containerPort"):
        app.apply(bad)
    after = app.store.get("Deployment", "web", "e2e")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_unschedulable_pod_stays_pending_with_reason(app):
    app.apply("""
apiVersion: v1
kind: Pod
metadata: {name: huge, namespace: e2e}
spec:
  containers: [{name: c, image: agnhost, resources: {requests: {cpu: "64"}}}]
""")
    import time
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pod = app.get("Pod", "e2e/huge")
        conds = {c["type"]: c for c in (pod.get("status") or {}).get("conditions", [])}
        if conds.get("PodScheduled", {}).get("reason") == "Unschedulable":
            break
        time.sleep(0.1)
    assert pod["status"]["phase"] == "Pending"
    assert "Insufficient cpu" in conds["PodScheduled"]["message"]
    app.delete("Pod", "e2e/huge")
