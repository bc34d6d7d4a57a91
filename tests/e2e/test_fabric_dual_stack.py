"""A dual-stack routed fabric on real Mininet, BIRD 2 routers and ExaBGP node speakers
(topologies/examples/dual-stack-fabric.yaml: two racks, two spines, AS per rack, cidr6).

- every router-router and ToR-node session has an IPv6 twin, Established on both sides
  (`spine_1_v6`, `node_a1_v6`), and the nodes' IPv6 status table shows their ToR's ::1;
- routers and nodes carry the IPv6 address plan (rack /64s, /127 links, no link-local on
  router ports) and nodes route the other racks' IPv6 underlay through the fabric;
- pods on different racks reach each other over IPv6 (and IPv4);
- a ToR's IPv6 route to another rack's pod block is ECMP over both spines' /127 addresses,
  nodes see the ToR's ::1 as the next hop of other racks' blocks and their rack peer's
  address for its blocks; a cut spine cable moves the IPv6 route to the other spine.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pytest

from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "topologies" / "examples" / "dual-stack-fabric.yaml"
pytestmark = [pytest.mark.root, pytest.mark.mininet]
SPINES6 = ["fd00:172:18:ff::1", "fd00:172:18:ff::3"]    # spine-1, spine-2 ends of tor-a's links


def pods_on(nodes, ns="fab6") -> list[dict]:
    out = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    for n in nodes:
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": f"p-{n}", "namespace": ns, "labels": {"app": "p"}},
                    "spec": {"nodeName": n, "containers": [
                        {"name": "c", "image": "agnhost", "ports": [{"containerPort": 80}]}]}})
    return out


@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("fabric6"))
    with Testbed(str(TOPOLOGY), state_dir=state, keep_state=False) as tb:
        tb.apply(pods_on(tb.nodes()))
        tb.wait_ready(timeout=120)
        yield tb


def block6_of(tb, node: str) -> str:
    ip = ipaddress.ip_address(tb.pod_ip(f"fab6/p-{node}", 6))
    out = tb.node_exec(node, ["ip", "-6", "-o", "route", "show", "type", "blackhole"]).stdout
    for ln in out.splitlines():
        net = ipaddress.ip_network(ln.split()[1])
        if ip in net:
            return str(net)
    raise AssertionError(f"no IPv6 block of {node} holds {ip}: {out}")


def nexthops6(tb, router: str, prefix: str) -> list[str]:
    out = tb.router_exec(router, ["ip", "-6", "route", "show", prefix]).stdout
    hops = [ln.split()[2] for ln in out.splitlines() if ln.strip().startswith("nexthop via")]
    return hops or [w for ln in out.splitlines() for i, w in enumerate(ln.split())
                    if i > 0 and ln.split()[i - 1] == "via"]


def established(tb, router: str) -> dict[str, str]:
    return {s.name: s.info for s in tb.fabric.sessions(router)}


def test_ipv6_sessions_are_established_beside_the_ipv4_ones(tb):
    tor = established(tb, "tor-a")
    for name in ("spine_1", "spine_2", "node_a1", "node_a2",
                 "spine_1_v6", "spine_2_v6", "node_a1_v6", "node_a2_v6"):
        assert tor.get(name, "").startswith("Established"), (name, tor)
    spine = established(tb, "spine-2")
    for name in ("tor_a", "tor_b", "tor_a_v6", "tor_b_v6"):
        assert spine.get(name, "").startswith("Established"), (name, spine)
    status = tb.bgp_status("node-b2")
    v4, v6 = status.split("IPv6 BGP status")
    assert "172.18.2.1" in v4 and "fd00:172:18:2::1" in v6, status
    assert "| fd00:172:18:2::1 | node specific | up    |" in v6 and "Established" in v6, status
    report = tb.birdc("tor-b", "show", "route", "table", "master6")
    assert "fd00:172:18:1::/64" in report and block6_of(tb, "node-a1") in report, report


def test_the_ipv6_address_plan_is_on_the_interfaces(tb):
    a1 = tb.node_exec("node-a1", ["ip", "-6", "addr", "show", "dev", "eth0"]).stdout
    # The global address is added nodad (never tentative); the kernel's own link-local one
    # may still be in DAD on a busy machine, and nothing here uses it.
    line = next((ln for ln in a1.splitlines() if "inet6 fd00:172:18:1::2/64" in ln), "")
    assert "scope global" in line and "tentative" not in line, a1
    assert "default via fd00:172:18:1::1 dev eth0" in \
        tb.node_exec("node-a1", ["ip", "-6", "route"]).stdout
    tor = tb.router_exec("tor-a", ["ip", "-6", "addr"]).stdout
    for want in ("fd00:172:18:1::1/64", "fd00:172:18:ff::/127", "fd00:172:18:ff::2/127"):
        assert f"inet6 {want} scope global" in tor, tor
    assert "fe80:" not in tor and "tentative" not in tor, tor
    assert tb.router_exec("spine-1", ["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]) \
        .stdout.strip() == "1"
    # The nodes' IPv6 underlay is routed across the racks by the fabric.
    r = tb.node_exec("node-a1", ["ping", "-6", "-c1", "-W2", "fd00:172:18:2::3"])
    assert r.returncode == 0, r.stdout + r.stderr


def test_pods_on_different_racks_reach_each_other_over_ipv6(tb):
    m6 = tb.matrix(port=80, family=6)
    assert len(m6) == 4 * 3 and all(m6.values()), [k for k, v in m6.items() if not v]
    m4 = tb.matrix(port=80, family=4)
    assert len(m4) == 4 * 3 and all(m4.values()), [k for k, v in m4.items() if not v]


def test_tor_ipv6_routes_are_ecmp_over_both_spines(tb):
    remote = block6_of(tb, "node-b1")
    assert sorted(nexthops6(tb, "tor-a", remote)) == SPINES6
    assert "proto bird" in tb.router_exec("tor-a", ["ip", "-6", "route", "show", remote]).stdout
    routes = tb.node_exec("node-a1", ["ip", "-6", "route", "show", "proto", "bird"]).stdout
    assert f"{remote} via fd00:172:18:1::1 dev eth0" in routes, routes
    assert f"{block6_of(tb, 'node-a2')} via fd00:172:18:1::3 dev eth0" in routes, routes


def test_a_cut_spine_cable_moves_the_ipv6_route_to_the_other_spine(tb):
    remote = block6_of(tb, "node-b2")
    tb.fabric_link_down("tor-a", "spine-1")
    try:
        deadline = time.monotonic() + 5
        while nexthops6(tb, "tor-a", remote) != [SPINES6[1]]:
            assert time.monotonic() < deadline, nexthops6(tb, "tor-a", remote)
            time.sleep(0.05)
        assert tb.probe("fab6/p-node-a1", "fab6/p-node-b2", 80, family=6, timeout=2)
    finally:
        tb.fabric_link_up("tor-a", "spine-1")
    deadline = time.monotonic() + 20
    while sorted(nexthops6(tb, "tor-a", remote)) != SPINES6:
        assert time.monotonic() < deadline, nexthops6(tb, "tor-a", remote)
        time.sleep(0.1)


def test_the_ipv6_mesh_over_routed_racks_resolves_next_hops_via_the_tor(tmp_path):
    # No ToR peering: the IPv6 mesh twins run multi-hop across the racks (the fabric routes
    # the nodes' IPv6 underlay), b1's IPv6 next hop is beyond a1's /64, so a1 installs it via
    # its IPv6 gateway (BIRD's `gateway recursive`); the ToRs know no pod routes, so only
    # same-rack pods talk, exactly as over IPv4.
    topo = tmp_path / "mesh6.yaml"
    topo.write_text("""
name: mesh-fabric6
underlay: {cidr6: "fd00:172:18::/56"}
fabric: {spines: {count: 1}}
racks:
  - {name: rack-a, nodes: [a1, a2]}
  - {name: rack-b, nodes: [b1]}
nodes:
  - {name: a1, role: control-plane, schedulable: true}
  - {name: a2}
  - {name: b1}
""")
    with Testbed(str(topo), state_dir=str(tmp_path / "st"), keep_state=False,
                 dns=False) as tb:
        tb.apply(pods_on(tb.nodes()))
        tb.wait_ready(timeout=90)
        assert tb.probe("fab6/p-a1", "fab6/p-a2", 80, family=6, timeout=2)
        assert not tb.probe("fab6/p-a1", "fab6/p-b1", 80, family=6, timeout=1)
        routes = tb.node_exec("a1", ["ip", "-6", "route", "show", "proto", "bird"]).stdout
        assert f"{block6_of(tb, 'b1')} via fd00:172:18:1::1 dev eth0" in routes, routes
        assert f"{block6_of(tb, 'a2')} via fd00:172:18:1::3 dev eth0" in routes, routes
        v6 = tb.bgp_status("a1").split("IPv6 BGP status")[1]
        assert "fd00:172:18:2::2" in v6 and "Established" in v6, v6


SITES6 = """
name: two-site6
underlay: {cidr6: "fd00:172:18::/56"}
fabric:
  bfd: true
  sites:
    - {name: dc1, spines: [{name: spine-dc1, asNumber: 65000}]}
    - {name: dc2, spines: [{name: spine-dc2, asNumber: 65100}]}
  wan: {bandwidth: 100}
external: {attach: spine-dc1}
racks:
  - {name: rack-a, site: dc1, tor: {name: tor-a, asNumber: 65001}, nodes: [a1]}
  - {name: rack-c, site: dc2, tor: {name: tor-c, asNumber: 65003}, nodes: [c1]}
nodes:
  - {name: a1, role: control-plane, schedulable: true, asNumber: 65001, labels: {rack: a}}
  - {name: c1, asNumber: 65003, labels: {rack: c}}
manifests:
  - {apiVersion: projectcalico.org/v3, kind: BGPConfiguration, metadata: {name: default},
     spec: {nodeToNodeMeshEnabled: false}}
  - {apiVersion: projectcalico.org/v3, kind: BGPPeer, metadata: {name: a4},
     spec: {nodeSelector: "rack == 'a'", peerIP: 172.18.1.1, asNumber: 65001}}
  - {apiVersion: projectcalico.org/v3, kind: BGPPeer, metadata: {name: a6},
     spec: {nodeSelector: "rack == 'a'", peerIP: "fd00:172:18:1::1", asNumber: 65001}}
  - {apiVersion: projectcalico.org/v3, kind: BGPPeer, metadata: {name: c4},
     spec: {nodeSelector: "rack == 'c'", peerIP: 172.18.2.1, asNumber: 65003}}
  - {apiVersion: projectcalico.org/v3, kind: BGPPeer, metadata: {name: c6},
     spec: {nodeSelector: "rack == 'c'", peerIP: "fd00:172:18:2::1", asNumber: 65003}}
"""


def test_two_sites_with_bfd_and_an_external_host_are_dual_stack_too(tmp_path):
    # The WAN link and BFD carry the IPv6 sessions as they carry the IPv4 ones; the external
    # host stays IPv4 (its network is a documentation /24) and is still reached over it.
    topo = tmp_path / "sites6.yaml"
    topo.write_text(SITES6)
    with Testbed(str(topo), state_dir=str(tmp_path / "st"), keep_state=False,
                 dns=False) as tb:
        tb.apply(pods_on(tb.nodes()))
        tb.wait_ready(timeout=90)
        wan = established(tb, "spine-dc1")
        assert wan.get("spine_dc2_v6", "").startswith("Established"), wan
        bfd = tb.birdc("spine-dc1", "show", "bfd", "sessions")
        assert "fd00:172:18:ff::5" in bfd and "fd00:172:18:ff::" in bfd, bfd
        assert bfd.count(" Up ") >= 4, bfd        # 2 peers x 2 families
        m6 = tb.matrix(port=80, family=6)
        assert len(m6) == 2 and all(m6.values()), m6
        remote = block6_of(tb, "c1")
        assert nexthops6(tb, "spine-dc1", remote) == ["fd00:172:18:ff::5"]
        r = tb.node_exec("a1", ["ping", "-c1", "-W2", tb.external_ip()])
        assert r.returncode == 0, r.stdout + r.stderr
