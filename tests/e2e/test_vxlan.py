"""VXLAN as Felix programs it, on real Mininet with real vxlan devices and BIRD fabrics.

- CrossSubnet over routed racks (vxlan-cross-subnet example: mesh, no ToR peering): every
  pod reaches every pod; same-rack blocks native via eth0, cross-rack via vxlan.calico onlink
  (proto 80), permanent ARP/FDB for every VTEP, tunnel addresses from IPAM under Calico's
  handle, the packets on the fabric really are UDP 4789, pods' MTU 1450 and a DF ping one
  byte over it fails; `ipam check` counts the tunnel IPs; the BGP agents program nothing for
  the VXLAN pool.
- Switching the pool to Never at runtime: Felix's routes go, BGP's come back, cross-rack
  pods are cut off (the ToRs know no pod routes), exactly as in Calico.
- VXLAN-only (no BGP at all) on a flat cluster: the route agent alone connects pods.
- Felix's host rules: VXLAN from a node passes cali-INPUT, a forged one from a ToR (not in
  cali40all-vxlan-net) is dropped there.
- An IPIP pool on a kernel without the ipip module is refused, nothing applied.
- The project's conformance corpus passes over VXLAN across racks (slow).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import encap_pods
import pytest

from encap.features import available
from orchestrator.errors import ValidationError
from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "topologies" / "examples"
pytestmark = [pytest.mark.root, pytest.mark.mininet]
NODES = ["node-a1", "node-a2", "node-b1", "node-b2"]


def pods_on(nodes, ns="vx") -> list[dict]:
    return encap_pods.pods_on(nodes, ns)


def pool(mode: str) -> dict:
    return encap_pods.pool("vxlanMode", mode)


@pytest.fixture(scope="module")
def cross_subnet(tmp_path_factory):
    with encap_pods.ready_testbed(EXAMPLES / "vxlan-cross-subnet.yaml", str(tmp_path_factory.mktemp("vxlan")),
                                  pods_on(NODES)) as tb:
        yield tb


block_of = encap_pods.block_of


def tunnel_ip(tb, node: str) -> str:
    return encap_pods.annotation(tb, node, "projectcalico.org/IPv4VXLANTunnelAddr")


def test_cross_subnet_routes_native_in_rack_and_vxlan_across(cross_subnet):
    tb = cross_subnet
    m = tb.matrix(port=80)
    assert len(m) == 12 and all(m.values()), [k for k, v in m.items() if not v]
    routes = tb.node_exec("node-a1", ["ip", "route"]).stdout
    assert f"{block_of(tb, 'node-a2')} via 172.18.1.3 dev eth0 proto 80" in routes
    assert (f"{block_of(tb, 'node-b1')} via {tunnel_ip(tb, 'node-b1')} dev vxlan.calico "
            "proto 80 onlink") in routes
    # The BGP agent keeps only its own blackhole: the VXLAN pool's routes are Felix's.
    assert all(ln.startswith("blackhole") for ln in routes.splitlines() if "proto bird" in ln)
    link = tb.node_exec("node-a1", ["ip", "-d", "link", "show", "vxlan.calico"]).stdout
    assert "mtu 1450" in link and "vxlan id 4096" in link and "dstport 4789" in link
    assert "nolearning" in link and "local 172.18.1.2" in link
    neigh = tb.node_exec("node-a1", ["ip", "neigh", "show", "dev", "vxlan.calico"]).stdout
    assert f"{tunnel_ip(tb, 'node-b2')} lladdr 66:ca:ac:12:02:03 PERMANENT" in neigh
    fdb = tb.node_exec("node-a1", ["bridge", "fdb", "show", "dev", "vxlan.calico"]).stdout
    assert "66:ca:ac:12:02:03 dst 172.18.2.3 self permanent" in fdb


def test_tunnel_addresses_come_from_ipam_with_calicos_handle(cross_subnet):
    tb = cross_subnet
    ips = tb.ipam.ips_for_handle("vxlan-tunnel-addr-node-b1")
    assert ips == [tunnel_ip(tb, "node-b1")]
    assert tb.ipam.attributes(ips[0])["type"] == "vxlanTunnelAddress"
    text, problems = tb.ipam_check()
    assert "Found 4 node tunnel IPs." in text and problems == 0, text


def test_cross_rack_packets_are_vxlan_on_the_fabric_and_mtu_is_50_less(cross_subnet):
    tb = cross_subnet
    src, dst = "vx/p-node-a1", tb.pod_ip("vx/p-node-b1")
    eth0 = tb.exec(src, ["ip", "-o", "link", "show", "eth0"]).stdout
    assert "mtu 1450" in eth0
    seen = {}

    def capture():
        seen["out"] = tb.router_exec("tor-a", ["timeout", "5", "tcpdump", "-c", "1", "-nn",
                                               "-i", "eth0", "udp", "port", "4789"], timeout=10)
    t = threading.Thread(target=capture)
    t.start()
    import time
    time.sleep(0.5)
    for _ in range(5):
        tb.exec(src, ["ping", "-c1", "-W1", dst])
    t.join()
    assert "VXLAN" in seen["out"].stdout or ".4789:" in seen["out"].stdout, seen["out"]
    ok = tb.exec(src, ["ping", "-c1", "-W2", "-M", "do", "-s", "1422", dst])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    big = tb.exec(src, ["ping", "-c1", "-W2", "-M", "do", "-s", "1423", dst])
    assert big.returncode != 0 and "mtu=1450" in big.stdout + big.stderr


def _drop_count(tb, node: str) -> int:
    out = tb.node_exec(node, ["iptables", "-w", "-L", "cali-INPUT", "-v", "-n", "-x"]).stdout
    line = next(ln for ln in out.splitlines() if "Drop IPv4 VXLAN packets from non-allowed" in ln)
    return int(line.split()[0])


def test_felix_host_rules_drop_vxlan_from_outside_the_cluster(cross_subnet):
    tb = cross_subnet
    save = tb.node_exec("node-a1", ["iptables-save", "-t", "filter"]).stdout
    assert "Allow IPv4 VXLAN packets from allowed hosts" in save
    assert "Allow IPIP packets" not in save              # no IPIP pool: no IPIP rules
    members = tb.node_exec("node-a1", ["ipset", "list", "cali40all-vxlan-net"]).stdout
    assert all(ip in members for ip in ("172.18.1.2", "172.18.1.3", "172.18.2.2", "172.18.2.3"))
    before = _drop_count(tb, "node-a1")
    send = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "[s.sendto(b'x' * 60, ('172.18.1.2', 4789)) for _ in range(3)]")
    tb.router_exec("tor-a", [sys.executable, "-c", send])
    assert _drop_count(tb, "node-a1") >= before + 3
    assert tb.probe("vx/p-node-b1", "vx/p-node-a1", 80, "TCP", timeout=2)   # nodes still pass


def test_switching_the_pool_to_never_hands_routes_back_to_bgp(cross_subnet):
    tb = cross_subnet
    try:
        tb.apply([pool("Never")])
        tb.wait_ready(timeout=30)
        routes = tb.node_exec("node-a1", ["ip", "route"]).stdout
        assert "proto 80" not in routes and "vxlan.calico" not in routes
        # The mesh across the fabric: BGP next hop beyond the rack resolves via the ToR,
        # which knows no pod routes: cross-rack traffic dies there, same-rack works.
        assert f"{block_of(tb, 'node-b1')} via 172.18.1.1 dev eth0 proto bird" in routes
        assert tb.probe("vx/p-node-a1", "vx/p-node-a2", 80, "TCP", timeout=2)
        assert not tb.probe("vx/p-node-a1", "vx/p-node-b1", 80, "TCP", timeout=1)
        assert tb.node_exec("node-a1", ["ip", "link", "show", "vxlan.calico"]).returncode != 0
    finally:
        tb.apply([pool("CrossSubnet")])
        tb.wait_ready(timeout=30)
    assert tb.probe("vx/p-node-a1", "vx/p-node-b1", 80, "TCP", timeout=2)


def test_an_ipip_pool_without_the_kernel_module_is_refused(cross_subnet):
    tb = cross_subnet
    ok, _why = available("ipip")
    if ok:
        pytest.skip("this kernel has IPIP: the refusal is for kernels without it")
    bad = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "ipip"},
           "spec": {"cidr": "10.250.0.0/16", "ipipMode": "Always"}}
    with pytest.raises(ValidationError) as ei:
        tb.apply([bad])
    assert "spec.ipipMode" in str(ei.value) and "Vagrant VM" in str(ei.value)
    assert tb.client.store.get("IPPool", "ipip") is None


def test_vxlan_only_without_bgp_connects_a_flat_cluster(tmp_path):
    with Testbed(str(EXAMPLES / "three-node.yaml"), state_dir=str(tmp_path), bgp=False,
                 keep_state=False, manifests=[[pool("Always")]]) as tb:
        tb.apply(pods_on(["node-1", "node-2", "node-3"]))
        tb.wait_ready(timeout=60)
        m = tb.matrix(port=80)
        assert all(m.values()), [k for k, v in m.items() if not v]
        routes = tb.node_exec("node-1", ["ip", "route"]).stdout
        assert routes.count("dev vxlan.calico proto 80 onlink") == 2, routes


@pytest.mark.slow
def test_conformance_corpus_passes_over_vxlan_across_racks(tmp_path):
    out = tmp_path / "results.json"
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "conformance",
                        str(REPO / "conformance" / "cases"), "--topology",
                        str(EXAMPLES / "vxlan-cross-subnet.yaml"), "--json", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    results = json.loads(out.read_text())
    cases = results["cases"] if isinstance(results, dict) else results
    assert len(cases) >= 100
