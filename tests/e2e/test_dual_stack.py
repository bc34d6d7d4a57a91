"""Dual-stack and IPv6-only clusters on real Mininet, ExaBGP, ip6tables and ipset.

Dual stack (underlay.cidr6, ipFamilies defaulting to both): every pod has an IPv4 and an
IPv6 address (status.podIPs), its IPv6 /128 on eth0 and `default via` the host veth's
link-local address, the node a `/128 dev caliX` route; IPv6 BGP sessions carry the /122
blocks (calicoctl-style node status shows them in its IPv6 table); every pod reaches every
other over IPv6 across nodes; NetworkPolicy is enforced in ip6tables with cali60 sets (deny,
allow by label, ipBlock in IPv6), NDP to the gateway always works, and a pod cannot spoof its
IPv6 source. IPv6 only (ipFamilies: [IPv6]): pods get only IPv6 addresses and still route."""

from __future__ import annotations

import pytest

from orchestrator.testbed import Testbed

pytestmark = [pytest.mark.root, pytest.mark.mininet]
GW6 = "fe80::ecee:eeff:feee:eeee"
TOPO = """
name: dual
underlay: {cidr: 172.18.0.0/16, cidr6: "fd00:172:18::/64"}
nodes:
  - {name: node-1, role: control-plane, schedulable: true}
  - {name: node-2}
  - {name: node-3}
"""


def pods(names_nodes, ns="default"):
    return [{"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
             "spec": {"nodeName": node, "containers": [
                 {"name": "c", "image": "agnhost", "ports": [{"containerPort": 80}]}]}}
            for name, node in names_nodes]


@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    with Testbed(TOPO, state_dir=str(tmp_path_factory.mktemp("dual")), keep_state=False,
                 dns=False) as tb:
        tb.apply(pods([("a", "node-1"), ("b", "node-1"), ("c", "node-2"), ("d", "node-3")]))
        tb.wait_ready(timeout=90)
        yield tb


def test_pods_have_both_families_plumbed_as_calico_does(tb):
    st = tb.get("Pod", "default/a")["status"]
    v4, v6 = (a["ip"] for a in st["podIPs"])
    assert st["podIP"] == v4 and "." in v4 and v6.startswith("fd00:10:244:")
    assert tb.pod_ip("default/a", 6) == v6
    addr = tb.exec("default/a", ["ip", "-6", "addr", "show", "dev", "eth0"]).stdout
    assert f"inet6 {v6}/128 scope global" in addr and "tentative" not in addr
    route = tb.exec("default/a", ["ip", "-6", "route", "show", "default"]).stdout
    assert f"default via {GW6} dev eth0" in route
    node = tb.node_exec("node-1", ["ip", "-6", "route"]).stdout
    assert any(ln.startswith(f"{v6} dev cali") for ln in node.splitlines()), node
    assert "blackhole fd00:10:244::/122" in node and "proto bird" in node
    # the pod's gateway answers neighbour discovery (its own link-local address)
    r = tb.exec("default/a", ["ping", "-6", "-c1", "-W2", f"{GW6}%eth0"])
    assert r.returncode == 0, r.stdout + r.stderr


def test_ipv6_bgp_sessions_and_routes(tb):
    status = tb.bgp_status("node-1")
    v6 = status.split("IPv6 BGP status")[1]
    assert "fd00:172:18::3" in v6 and "fd00:172:18::4" in v6 and "Established" in v6
    d6 = tb.pod_ip("default/d", 6)
    block = d6.rsplit(":", 1)[0]
    routes = tb.node_exec("node-1", ["ip", "-6", "route", "show", "proto", "bird"]).stdout
    assert "via fd00:172:18::4 dev eth0" in routes and block in routes, routes


def test_every_pod_reaches_every_other_over_ipv6(tb):
    m = tb.matrix(port=80, family=6)
    assert m and all(m.values()), [k for k, v in m.items() if not v]
    m4 = tb.matrix(port=80, family=4)
    assert all(m4.values())
    r = tb.exec("default/a", ["python3", "-c", (
        "import socket,sys; s=socket.create_connection((sys.argv[1], 80), 2); "
        "s.sendall(b'GET /clientip HTTP/1.0\\r\\n\\r\\n'); print(s.recv(4096).decode())"),
        tb.pod_ip("default/c", 6)])
    assert f"[{tb.pod_ip('default/a', 6)}]:" in r.stdout, r.stdout + r.stderr


def test_network_policy_is_enforced_in_ipv6(tb):
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "c-from-a", "namespace": "default"},
            "spec": {"podSelector": {"matchLabels": {"app": "c"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [
                         {"podSelector": {"matchLabels": {"app": "a"}}},
                         {"ipBlock": {"cidr": f"{tb.pod_ip('default/d', 6)}/128"}}]}]}}
    tb.apply([deny])
    try:
        tb.wait_ready(timeout=30)
        assert tb.probe("default/a", "default/c", 80, family=6)
        assert not tb.probe("default/b", "default/c", 80, family=6, timeout=0.5)
        assert not tb.probe("default/b", "default/c", 80, family=4, timeout=0.5)
        # the ipBlock is IPv6: it admits d over IPv6 only
        assert tb.probe("default/d", "default/c", 80, family=6)
        assert not tb.probe("default/d", "default/c", 80, family=4, timeout=0.5)
        save6 = tb.node_exec("node-2", ["ip6tables-save", "-t", "filter"]).stdout
        assert "cali-pi-" in save6 and "cali60s:" in save6
        sets = tb.node_exec("node-2", ["ipset", "list", "-n"]).stdout
        assert any(n.startswith("cali60s:") for n in sets.split())
    finally:
        tb.delete("NetworkPolicy", "default/c-from-a")
    tb.wait_ready(timeout=30)
    assert tb.probe("default/b", "default/c", 80, family=6)


def test_a_pod_cannot_spoof_its_ipv6_source(tb):
    victim, spoof = tb.pod_ip("default/c", 6), "fd00:10:244::ff:1"
    assert tb.exec("default/a", ["ping", "-6", "-c1", "-W2", victim]).returncode == 0
    before = _rpf_drops(tb.node_exec("node-1", ["ip6tables-save", "-c", "-t", "raw"]).stdout)
    tb.exec("default/a", ["ip", "-6", "addr", "add", f"{spoof}/128", "dev", "eth0", "nodad"])
    try:
        r = tb.exec("default/a", ["ping", "-6", "-c1", "-W1", "-I", spoof, victim])
        assert r.returncode != 0, r.stdout
    finally:
        tb.exec("default/a", ["ip", "-6", "addr", "del", f"{spoof}/128", "dev", "eth0"])
    after = _rpf_drops(tb.node_exec("node-1", ["ip6tables-save", "-c", "-t", "raw"]).stdout)
    assert after > before


def _rpf_drops(save: str) -> int:
    for ln in save.splitlines():
        if "rpfilter" in ln and "-j DROP" in ln:
            return int(ln.split("]")[0].strip("[").split(":")[0])
    raise AssertionError(save)


def test_ipv6_only_cluster(tmp_path):
    topo = TOPO.replace("name: dual", "name: only6") + "ipFamilies: [IPv6]\n"
    with Testbed(topo, state_dir=str(tmp_path / "s"), keep_state=False, dns=False) as tb:
        tb.apply(pods([("x", "node-1"), ("y", "node-2")]))
        tb.wait_ready(timeout=90)
        st = tb.get("Pod", "default/x")["status"]
        assert [":" in a["ip"] for a in st["podIPs"]] == [True] and ":" in st["podIP"]
        assert [p["metadata"]["name"] for p in tb.list("IPPool")] == ["default-ipv6-ippool"]
        addr = tb.exec("default/x", ["ip", "-4", "addr", "show", "dev", "eth0"]).stdout
        assert "inet " not in addr
        m = tb.matrix(port=80)
        assert m and all(m.values()), m
