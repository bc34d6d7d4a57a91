"""Routed fabrics on real Mininet with real BIRD 2 routers and ExaBGP node speakers.

- leaf-spine (Calico's "AS per rack"): every pod reaches every pod across three routed racks;
  ToRs hold ECMP routes over both spines; nodes see rack-internal next hops and the ToR for
  the rest; `calinet node status` / `calinet routes tor-a` show it as Calico and BIRD do;
  a cut ToR-spine cable is routed around at once (BIRD `check link`) and comes back;
  a BGPPeer to an address nothing owns is rejected with nothing applied.
- as-per-node ("AS per compute server"): eBGP everywhere, every route via the ToR.
- the node-to-node mesh over routed racks without ToR peering: sessions come up (multi-hop
  iBGP) but the ToRs know no pod routes, so cross-rack pods are unreachable, as in Calico
  without encapsulation; routes go via the ToR (BIRD's recursive next hop).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import ValidationError
from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "topologies" / "examples"
pytestmark = [pytest.mark.root, pytest.mark.mininet]


def pods_on(nodes, ns="fab") -> list[dict]:
    out = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    for n in nodes:
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": f"p-{n}", "namespace": ns, "labels": {"app": "p"}},
                    "spec": {"nodeName": n, "containers": [
                        {"name": "c", "image": "agnhost", "ports": [{"containerPort": 80}]}]}})
    return out


def calinet(state_dir, *args):
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "--state-dir", state_dir,
                        *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"calinet {' '.join(args)}: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def leaf_spine(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("fabric"))
    with Testbed(str(EXAMPLES / "leaf-spine.yaml"), state_dir=state, keep_state=False) as tb:
        tb.apply(pods_on(tb.nodes()))
        tb.wait_ready(timeout=90)
        yield tb


def nexthops(tb, router: str, prefix: str) -> list[str]:
    out = tb.router_exec(router, ["ip", "route", "show", prefix]).stdout
    return [ln.split()[2] for ln in out.splitlines() if ln.strip().startswith("nexthop via")] \
        or [w for ln in out.splitlines() for i, w in enumerate(ln.split())
            if i > 0 and ln.split()[i - 1] == "via"]


def block_of(tb, node: str) -> str:
    ip = tb.pod_ip(f"fab/p-{node}")
    out = tb.node_exec(node, ["ip", "-o", "route", "show", "type", "blackhole"]).stdout
    import ipaddress
    for ln in out.splitlines():
        net = ipaddress.ip_network(ln.split()[1])
        if ipaddress.ip_address(ip) in net:
            return str(net)
    raise AssertionError(f"no block of {node} holds {ip}: {out}")


def test_every_pod_reaches_every_pod_across_routed_racks(leaf_spine):
    tb = leaf_spine
    m = tb.matrix(port=80)
    assert len(m) == 9 * 8 and all(m.values()), [k for k, v in m.items() if not v]


def test_tor_routes_are_ecmp_over_both_spines_and_nodes_see_calico_next_hops(leaf_spine):
    tb = leaf_spine
    remote = block_of(tb, "node-b1")
    hops = nexthops(tb, "tor-a", remote)
    assert sorted(hops) == ["172.18.255.1", "172.18.255.3"], hops
    assert "proto bird" in tb.router_exec("tor-a", ["ip", "route", "show", remote]).stdout
    # AS per rack: rack-internal routes keep the originating node, the rest go via the ToR.
    routes = tb.node_exec("node-a1", ["ip", "route"]).stdout
    assert f"{block_of(tb, 'node-a2')} via 172.18.1.3 dev eth0 proto bird" in routes
    assert f"{remote} via 172.18.1.1 dev eth0 proto bird" in routes
    assert "default via 172.18.1.1 dev eth0" in routes


def test_node_status_and_router_tables_as_calico_and_bird_show_them(leaf_spine):
    tb = leaf_spine
    status = tb.bgp_status("node-b2")
    assert "| 172.18.2.1   | node specific | up    |" in status and "Established" in status
    cli = calinet(tb.state_dir, "node", "status", "node-b2")
    assert "node specific" in cli and "172.18.2.1" in cli
    report = calinet(tb.state_dir, "routes", "tor-a")
    assert "$ birdc show route" in report and "Table master4:" in report
    assert f"{block_of(tb, 'node-c1')}" in report and "[AS65003i]" in report
    assert "spine_1    BGP" in report and "node_a2    BGP" in report
    assert "Established" in tb.birdc("spine-2", "show", "protocols")


def test_a_cut_spine_link_is_routed_around_and_restored(leaf_spine):
    tb = leaf_spine
    remote = block_of(tb, "node-c1")
    t0 = time.monotonic()
    tb.fabric_link_down("tor-a", "spine-1")
    try:
        while nexthops(tb, "tor-a", remote) != ["172.18.255.3"]:
            assert time.monotonic() - t0 < 5, nexthops(tb, "tor-a", remote)
            time.sleep(0.02)
        rerouted = time.monotonic() - t0
        # `check link`: the session drops at carrier loss, far below the 9 s hold time.
        assert rerouted < 1.0, rerouted
        assert tb.probe("fab/p-node-a1", "fab/p-node-c1", 80, "TCP", timeout=2)
        assert tb.probe("fab/p-node-c2", "fab/p-node-a3", 80, "TCP", timeout=2)
    finally:
        tb.fabric_link_up("tor-a", "spine-1")
    deadline = time.monotonic() + 20
    while sorted(nexthops(tb, "tor-a", remote)) != ["172.18.255.1", "172.18.255.3"]:
        assert time.monotonic() < deadline, nexthops(tb, "tor-a", remote)
        time.sleep(0.1)


def test_bgppeer_to_an_address_nothing_owns_is_rejected(leaf_spine):
    tb = leaf_spine
    bad = {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
           "metadata": {"name": "nowhere"},
           "spec": {"peerIP": "172.18.1.77", "asNumber": 65001, "nodeSelector": "all()"}}
    with pytest.raises(ValidationError) as ei:
        tb.apply([bad])
    assert ei.value.field == "spec.peerIP" and "tor-a 172.18.1.1" in ei.value.message
    assert tb.client.store.get("BGPPeer", "nowhere") is None


def test_as_per_compute_server_routes_everything_through_the_tor(tmp_path):
    with Testbed(str(EXAMPLES / "as-per-node.yaml"), state_dir=str(tmp_path),
                 keep_state=False) as tb:
        tb.apply(pods_on(tb.nodes()))
        tb.wait_ready(timeout=90)
        m = tb.matrix(port=80)
        assert all(m.values()), [k for k, v in m.items() if not v]
        routes = tb.node_exec("node-a1", ["ip", "route"]).stdout
        assert f"{block_of(tb, 'node-a2')} via 172.18.1.1 dev eth0 proto bird" in routes
        text = tb.routes("tor-b")
        assert "[AS4200000201i]" in text or "[AS4200000202i]" in text


def test_mesh_over_routed_racks_without_tor_peering_cannot_cross_racks(tmp_path):
    topo = tmp_path / "mesh.yaml"
    topo.write_text("""
name: mesh-fabric
fabric: {spines: {count: 1}}
racks:
  - {name: rack-a, nodes: [a1, a2]}
  - {name: rack-b, nodes: [b1]}
nodes:
  - {name: a1, role: control-plane, schedulable: true}
  - {name: a2}
  - {name: b1}
""")
    with Testbed(str(topo), state_dir=str(tmp_path / "st"), keep_state=False) as tb:
        tb.apply(pods_on(tb.nodes()))
        tb.wait_ready(timeout=90)
        assert tb.probe("fab/p-a1", "fab/p-a2", 80, "TCP", timeout=2)
        assert not tb.probe("fab/p-a1", "fab/p-b1", 80, "TCP", timeout=1)
        routes = tb.node_exec("a1", ["ip", "route"]).stdout
        # Mesh peer b1 (172.18.2.2) is beyond a1's subnet: recursive next hop = the ToR.
        assert f"{block_of(tb, 'b1')} via 172.18.1.1 dev eth0 proto bird" in routes
        assert "node-to-node mesh" in tb.bgp_status("a1")


# -- the outside world: natOutgoing, NodePort, ipBlock egress ------------------------------

def syn_source(tb, pod: str, port: int = 80) -> str | None:
    """Source address of the SYN the external host sees when ``pod`` connects to it (None:
    nothing arrived)."""
    import threading
    got = {}

    def capture():
        got["r"] = tb.external_exec(["timeout", "3", "tcpdump", "-c1", "-nn", "-i", "eth0",
                                     f"tcp[tcpflags] & tcp-syn != 0 and dst port {port}"],
                                    timeout=10)
    t = threading.Thread(target=capture)
    t.start()
    time.sleep(0.5)
    tb.exec(pod, ["python3", "-c", "import socket; s = socket.socket(); s.settimeout(1); "
                  f"s.connect_ex(('{tb.external_ip()}', {port}))"])
    t.join()
    words = got["r"].stdout.split()
    return words[2].rsplit(".", 1)[0] if len(words) > 2 and words[1] == "IP" else None


def pool(nat: bool) -> dict:
    return {"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": "default-ipv4-ippool"},
            "spec": {"cidr": "10.244.0.0/16", "blockSize": 26, "natOutgoing": nat}}


def test_nat_outgoing_gives_pods_the_node_address_and_off_their_own(leaf_spine):
    tb = leaf_spine
    assert tb.external_ip() == "203.0.113.10"
    assert syn_source(tb, "fab/p-node-b2") == tb.node_ip("node-b2")
    nat = tb.node_exec("node-b2", ["iptables-save", "-t", "nat"]).stdout
    assert ("-A cali-nat-outgoing -m comment --comment" in nat and "-m set --match-set "
            "cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst "
            "-j MASQUERADE --random-fully" in nat)
    assert "-j cali-POSTROUTING" in nat
    try:
        tb.apply([pool(False)])
        deadline = time.monotonic() + 10
        while "Number of entries: 0" not in tb.node_exec(
                "node-b2", ["ipset", "list", "cali40masq-ipam-pools"]).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert syn_source(tb, "fab/p-node-b2") == tb.pod_ip("fab/p-node-b2")
    finally:
        tb.apply([pool(True)])


def test_a_nodeport_service_is_reachable_from_outside(leaf_spine):
    tb = leaf_spine
    tb.apply([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np", "namespace": "fab"},
               "spec": {"type": "NodePort", "selector": {"app": "p"},
                        "ports": [{"port": 80, "targetPort": 80, "nodePort": 30080}]}}])
    tb.wait_ready(timeout=30)
    code = ("import socket,sys; s = socket.socket(); s.settimeout(2); "
            f"sys.exit(s.connect_ex(('{tb.node_ip('node-c2')}', 30080)))")
    deadline = time.monotonic() + 10
    while tb.external_exec(["python3", "-c", code]).returncode != 0:
        assert time.monotonic() < deadline, "NodePort not reachable from the external host"
        time.sleep(0.2)
    tb.delete("Service", "fab/np")


def test_ipblock_egress_to_the_outside_is_enforced(leaf_spine):
    tb = leaf_spine
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "only-docs-net-81", "namespace": "fab"},
            "spec": {"podSelector": {"matchLabels": {"app": "p"}}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
                                 "ports": [{"port": 81, "protocol": "TCP"}]}]}}
    tb.apply([deny])
    try:
        time.sleep(0.5)
        assert syn_source(tb, "fab/p-node-a3", 80) is None
        assert syn_source(tb, "fab/p-node-a3", 81) == tb.node_ip("node-a3")
    finally:
        tb.delete("NetworkPolicy", "fab/only-docs-net-81")


def test_service_cluster_ips_advertised_make_services_reachable_from_the_fabric(leaf_spine):
    tb = leaf_spine
    tb.apply([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "fab"},
               "spec": {"selector": {"app": "p"}, "ports": [{"port": 80}]}}])
    tb.wait_ready(timeout=30)
    ip = tb.client.store.get("Service", "web", "fab")["spec"]["clusterIP"]
    code = ("import socket,sys; s = socket.socket(); s.settimeout(1); "
            f"sys.exit(s.connect_ex(('{ip}', 80)))")
    assert tb.external_exec(["python3", "-c", code]).returncode != 0   # not advertised yet
    cfg = {"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
           "metadata": {"name": "default"},
           "spec": {"nodeToNodeMeshEnabled": False,
                    "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}}
    tb.apply([cfg])
    try:
        deadline = time.monotonic() + 15
        while len(nexthops(tb, "tor-b", "10.96.0.0/12")) != 3:     # every node of rack b
            assert time.monotonic() < deadline, nexthops(tb, "tor-b", "10.96.0.0/12")
            time.sleep(0.1)
        assert len(nexthops(tb, "spine-2", "10.96.0.0/12")) == 3     # every ToR
        assert "10.96.0.0/12" not in tb.node_exec("node-a1", ["ip", "route"]).stdout
        assert tb.external_exec(["python3", "-c", code]).returncode == 0
    finally:
        cfg["spec"].pop("serviceClusterIPs")
        tb.apply([cfg])
        tb.delete("Service", "fab/web")


def test_two_sites_joined_by_a_rate_limited_wan(tmp_path):
    from topologies.net import netem_available
    notes = []
    with Testbed(str(EXAMPLES / "two-site.yaml"), state_dir=str(tmp_path), keep_state=False,
                 progress=notes.append) as tb:
        tb.apply(pods_on(["node-a1", "node-b2", "node-c1", "node-d2"]))
        tb.wait_ready(timeout=90)
        m = tb.matrix(port=80)
        assert len(m) == 12 and all(m.values()), [k for k, v in m.items() if not v]
        qdisc = tb.router_exec("spine-dc1", ["tc", "qdisc", "show", "dev", "eth3"]).stdout
        assert "htb" in qdisc
        has_netem, _ = netem_available()
        if has_netem:
            assert "netem" in qdisc and "delay 20" in qdisc
        else:
            assert any("no netem qdisc" in n for n in notes), notes
        remote = block_of_pod(tb, "fab/p-node-d2")
        assert f"{remote} via 172.18.255.9 dev eth3 proto bird" in tb.router_exec(
            "spine-dc1", ["ip", "route"]).stdout


def block_of_pod(tb, pod: str) -> str:
    import ipaddress
    ip = ipaddress.ip_address(tb.pod_ip(pod))
    node = tb.pod_node(pod)
    out = tb.node_exec(node, ["ip", "-o", "route", "show", "type", "blackhole"]).stdout
    return next(ln.split()[1] for ln in out.splitlines()
                if ip in ipaddress.ip_network(ln.split()[1]))
