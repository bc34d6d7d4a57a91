"""IPIP as Calico programs it, on real Mininet with BIRD fabrics and the kernel's ipip module.

Runs where the module exists (the Vagrant VM); elsewhere every test but the refusal skips,
saying so. On the ipip-cross-subnet example (two routed racks, mesh across the fabric):
- CrossSubnet: same-rack blocks `via <node> dev eth0 proto bird`, cross-rack `via <node> dev
  tunl0 proto bird onlink`; every pod reaches every pod; tunl0 up at MTU 1480 holding the
  node's IPIP tunnel address (IPAM handle ipip-tunnel-addr-<node>, Node annotation
  projectcalico.org/IPv4IPIPTunnelAddr); on the fabric the packets are IP protocol 4; pods'
  MTU 1480, a DF ping at it passes and one byte over fails.
- Policy holds over the tunnel (a default-deny ingress cuts a cross-rack pair).
- Always at runtime: same-rack routes move into the tunnel too; Never: cross-rack dies at the
  ToR (it knows no pod routes), as in Calico; back to CrossSubnet restores it.
- Without the module: the example is refused at start-up, naming the field.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import encap_pods
import pytest

from encap.features import available
from orchestrator.errors import ValidationError
from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "topologies" / "examples" / "ipip-cross-subnet.yaml"
pytestmark = [pytest.mark.root, pytest.mark.mininet]
NODES = ["node-a1", "node-a2", "node-b1", "node-b2"]


def _need_ipip():
    ok, why = available("ipip")
    if not ok:
        pytest.skip(f"this kernel has no ipip module ({why}): IPIP runs in the Vagrant VM")


def pods_on(nodes, ns="ip") -> list[dict]:
    return encap_pods.pods_on(nodes, ns, labels=True)


def pool(mode: str) -> dict:
    return encap_pods.pool("ipipMode", mode)


@pytest.fixture(scope="module")
def ipip_tb(tmp_path_factory):
    _need_ipip()
    with encap_pods.ready_testbed(EXAMPLE, str(tmp_path_factory.mktemp("ipip")),
                                  pods_on(NODES)) as tb:
        yield tb


block_of = encap_pods.block_of


def tunnel_ip(tb, node: str) -> str:
    return encap_pods.annotation(tb, node, "projectcalico.org/IPv4IPIPTunnelAddr")


def test_without_the_module_the_example_is_refused_at_start(tmp_path):
    if available("ipip")[0]:
        pytest.skip("this kernel has IPIP: the refusal is for kernels without it")
    with pytest.raises(ValidationError) as ei:
        Testbed(str(EXAMPLE), state_dir=str(tmp_path / "s"), keep_state=False).start()
    text = str(ei.value)
    assert "ipip-cross-subnet.yaml" in text and "spec.ipipMode" in text, text


def test_cross_subnet_routes_native_in_rack_and_tunl0_across(ipip_tb):
    tb = ipip_tb
    m = tb.matrix(port=80)
    assert len(m) == 12 and all(m.values()), [k for k, v in m.items() if not v]
    routes = tb.node_exec("node-a1", ["ip", "route"]).stdout
    assert f"{block_of(tb, 'node-a2')} via 172.18.1.3 dev eth0 proto bird" in routes, routes
    assert (f"{block_of(tb, 'node-b1')} via 172.18.2.2 dev tunl0 proto bird onlink"
            in routes), routes
    link = tb.node_exec("node-a1", ["ip", "-d", "addr", "show", "tunl0"]).stdout
    assert "mtu 1480" in link and ",UP" in link and f"inet {tunnel_ip(tb, 'node-a1')}/32" in link
    ips = tb.ipam.ips_for_handle("ipip-tunnel-addr-node-b1")
    assert ips == [tunnel_ip(tb, "node-b1")]
    assert tb.ipam.attributes(ips[0])["type"] == "ipipTunnelAddress"
    text, problems = tb.ipam_check()
    assert "Found 4 node tunnel IPs." in text and problems == 0, text
    assert "dev tunl0" in tb.routes("node-a1")


def test_cross_rack_packets_are_ip_in_ip_and_mtu_is_20_less(ipip_tb):
    tb = ipip_tb
    src, dst = "ip/p-node-a1", tb.pod_ip("ip/p-node-b1")
    assert "mtu 1480" in tb.exec(src, ["ip", "-o", "link", "show", "eth0"]).stdout
    seen = {}

    def capture():
        seen["out"] = tb.router_exec("tor-a", ["timeout", "5", "tcpdump", "-c", "1", "-nn",
                                               "-i", "eth0", "ip", "proto", "4"], timeout=10)
    t = threading.Thread(target=capture)
    t.start()
    time.sleep(0.5)
    for _ in range(5):
        tb.exec(src, ["ping", "-c1", "-W1", dst])
    t.join()
    out = seen["out"].stdout
    assert "172.18.1.2 > 172.18.2.2" in out and dst in out, seen["out"]
    ok = tb.exec(src, ["ping", "-c1", "-W2", "-M", "do", "-s", "1452", dst])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    big = tb.exec(src, ["ping", "-c1", "-W2", "-M", "do", "-s", "1453", dst])
    assert big.returncode != 0 and "mtu=1480" in big.stdout + big.stderr


def test_policy_holds_over_the_tunnel(ipip_tb):
    tb = ipip_tb
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny-b1", "namespace": "ip"},
            "spec": {"podSelector": {"matchLabels": {"app": "node-b1"}},
                     "policyTypes": ["Ingress"]}}
    try:
        tb.apply([deny])
        tb.wait_ready(timeout=30)
        assert not tb.probe("ip/p-node-a1", "ip/p-node-b1", 80, "TCP", timeout=1)
        assert tb.probe("ip/p-node-a1", "ip/p-node-b2", 80, "TCP", timeout=2)
    finally:
        tb.delete("NetworkPolicy", "ip/deny-b1")
        tb.wait_ready(timeout=30)
    assert tb.probe("ip/p-node-a1", "ip/p-node-b1", 80, "TCP", timeout=2)


def test_always_then_never_at_runtime(ipip_tb):
    tb = ipip_tb
    try:
        tb.apply([pool("Always")])
        tb.wait_ready(timeout=30)
        routes = tb.node_exec("node-a1", ["ip", "route"]).stdout
        assert (f"{block_of(tb, 'node-a2')} via 172.18.1.3 dev tunl0 proto bird onlink"
                in routes), routes
        assert tb.probe("ip/p-node-a1", "ip/p-node-a2", 80, "TCP", timeout=2)
        tb.apply([pool("Never")])
        tb.wait_ready(timeout=30)
        routes = tb.node_exec("node-a1", ["ip", "route"]).stdout
        assert "tunl0" not in routes, routes
        assert f"{block_of(tb, 'node-b1')} via 172.18.1.1 dev eth0 proto bird" in routes
        assert not tb.probe("ip/p-node-a1", "ip/p-node-b1", 80, "TCP", timeout=1)
        assert "projectcalico.org/IPv4IPIPTunnelAddr" not in (
            tb.client.store.get("Node", "node-a1")["metadata"].get("annotations") or {})
    finally:
        tb.apply([pool("CrossSubnet")])
        tb.wait_ready(timeout=30)
    assert tb.probe("ip/p-node-a1", "ip/p-node-b1", 80, "TCP", timeout=2)
