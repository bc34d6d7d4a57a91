"""Unit tests of IPIP as Calico programs it: the BGP agent's `dev tunl0 onlink` routes (Always,
CrossSubnet by next hop), their `ip -batch` text and read-back, recursive next hops left alone
on tunnelled routes, tunl0's plan and render (Felix's IPIP manager), pod MTU, the encapsulation
agent's IPIP tunnel addresses and annotations, and the apply-time refusal without the kernel
module or without BGP."""

from __future__ import annotations

import json

import pytest

from bgp import codec
from bgp.agent import parse_ipip
from bgp.fib import Fib
from bgp.rib import RIB, IpipPool, Route, desired_routes, parse_current, render_batch
from encap import ipip
from encap import plan as vx
from orchestrator.errors import ValidationError
from orchestrator.host.runner import RecordingRunner, Result

ME = "172.18.1.2"


def _rib() -> RIB:
    rib = RIB(ME)
    rib.apply(codec.RouteUpdate("172.18.1.3", (codec.Path("10.244.0.64/26", "172.18.1.3"),)))
    rib.apply(codec.RouteUpdate("172.18.2.2", (codec.Path("10.244.0.128/26", "172.18.2.2"),
                                               codec.Path("10.250.0.0/26", "172.18.2.2"))))
    return rib


def test_always_sends_every_pool_route_through_tunl0_and_others_natively():
    routes = desired_routes(_rib(), ["10.244.0.0/26"], [], ME,
                            ipip=[IpipPool("10.244.0.0/16", "Always")], subnet="172.18.1.0/24")
    assert routes == [
        Route("10.244.0.0/26", "blackhole"),
        Route("10.244.0.64/26", "unicast", "172.18.1.3", "tunl0", True),
        Route("10.244.0.128/26", "unicast", "172.18.2.2", "tunl0", True),
        Route("10.250.0.0/26", "unicast", "172.18.2.2")]      # not an IPIP pool


def test_cross_subnet_tunnels_only_to_next_hops_off_the_node_subnet():
    routes = desired_routes(_rib(), [], [], ME,
                            ipip=[IpipPool("10.244.0.0/16", "CrossSubnet")],
                            subnet="172.18.1.0/24")
    by = {r.prefix: r for r in routes}
    assert by["10.244.0.64/26"] == Route("10.244.0.64/26", "unicast", "172.18.1.3")
    assert by["10.244.0.128/26"] == Route("10.244.0.128/26", "unicast", "172.18.2.2",
                                          "tunl0", True)


def test_tunnelled_routes_render_onlink_and_read_back_equal():
    want = [Route("10.244.0.0/26", "blackhole"),
            Route("10.244.0.128/26", "unicast", "172.18.2.2", "tunl0", True),
            Route("10.250.0.0/26", "unicast", "172.18.2.2")]
    assert render_batch([], want) == (
        "route replace blackhole 10.244.0.0/26 proto 12\n"
        "route replace 10.244.0.128/26 via 172.18.2.2 dev tunl0 onlink proto 12\n"
        "route replace 10.250.0.0/26 via 172.18.2.2 proto 12\n")
    kernel = [{"type": "blackhole", "dst": "10.244.0.0/26", "protocol": "bird", "flags": []},
              {"dst": "10.244.0.128/26", "gateway": "172.18.2.2", "dev": "tunl0",
               "protocol": "bird", "flags": ["onlink"]},
              {"dst": "10.250.0.0/26", "gateway": "172.18.2.2", "dev": "eth0",
               "protocol": "bird", "flags": []}]
    assert parse_current(kernel) == want
    assert render_batch(parse_current(kernel), want) == ""
    # A pool switched from IPIP to native replaces the route in place.
    native = [want[0], Route("10.244.0.128/26", "unicast", "172.18.2.2"), want[2]]
    assert render_batch(parse_current(kernel), native) == (
        "route replace 10.244.0.128/26 via 172.18.2.2 proto 12\n")


def test_recursive_resolution_keeps_a_tunnelled_next_hop():
    """Across routed racks the plain route goes via the ToR, but a tunl0 route's next hop is
    the outer destination: the kernel routes the encapsulated packet there itself."""
    runner = RecordingRunner()
    runner.responses[("ip", "-j", "route", "show", "table", "main", "proto", "kernel")] = Result(
        0, json.dumps([{"dst": "172.18.1.0/24", "dev": "eth0"}]), "")
    runner.responses[("ip", "-j", "route", "show", "table", "main", "default")] = Result(
        0, json.dumps([{"dst": "default", "gateway": "172.18.1.1", "dev": "eth0"}]), "")
    fib = Fib(runner, recursive=True)
    out = fib.resolve([Route("10.244.0.128/26", "unicast", "172.18.2.2", "tunl0", True),
                       Route("10.250.0.0/26", "unicast", "172.18.2.2")])
    assert out == [Route("10.244.0.128/26", "unicast", "172.18.2.2", "tunl0", True),
                   Route("10.250.0.0/26", "unicast", "172.18.1.1")]


def test_announce_json_ipip_fields_are_validated():
    pools, subnet = parse_ipip({"ipip": [{"cidr": "10.244.0.0/16", "mode": "CrossSubnet"}],
                                "subnet": "172.18.1.0/24"})
    assert pools == [IpipPool("10.244.0.0/16", "CrossSubnet")] and subnet == "172.18.1.0/24"
    assert parse_ipip({}) == ([], None)
    for bad in ({"ipip": [{"cidr": "10.244.0.0/33"}]}, {"ipip": [{"mode": "Always"}]},
                {"ipip": [{"cidr": "10.244.0.0/16", "mode": "Sometimes"}]},
                {"ipip": [], "subnet": "nope"}):
        with pytest.raises(ValidationError, match="announce.json ipip"):
            parse_ipip(bad)


def test_tunl0_plan_and_render():
    assert ipip.plan(None, 1500, True) is None and ipip.plan("10.244.0.0", 1500, False) is None
    dev = ipip.plan("10.244.0.0", 1500, True)
    assert dev == ipip.IpipDevice(1480, "10.244.0.0")
    # The module made tunl0 (down, MTU 1480 by default, no address): address and up only.
    fallback = {"ifname": "tunl0", "mtu": 1480, "flags": ["NOARP"], "addr_info": []}
    assert ipip.render(fallback, dev) == ("addr add 10.244.0.0/32 dev tunl0\n"
                                          "link set dev tunl0 up\n")
    # No fallback device in this namespace: make one, as Felix does.
    assert ipip.render(None, dev).splitlines()[0] == "link add tunl0 type ipip"
    held = {"ifname": "tunl0", "mtu": 1480, "flags": ["NOARP", "UP", "LOWER_UP"],
            "addr_info": [{"family": "inet", "local": "10.244.0.0", "prefixlen": 32}]}
    assert ipip.render(held, dev) == ""
    assert ipip.render({**held, "mtu": 1400}, ipip.IpipDevice(1430, "10.244.0.64")) == (
        "link set dev tunl0 mtu 1430\naddr del 10.244.0.0/32 dev tunl0\n"
        "addr add 10.244.0.64/32 dev tunl0\n")
    assert ipip.render(held, None) == "addr del 10.244.0.0/32 dev tunl0\nlink set dev tunl0 down\n"
    assert ipip.render(None, None) == ""


def test_pod_mtu_follows_the_largest_encapsulation():
    assert vx.pod_mtu(1500, [vx.PoolFacts("10.244.0.0/16", ipip_mode="Always")]) == 1480
    assert vx.pod_mtu(1500, [vx.PoolFacts("10.244.0.0/16", ipip_mode="Always"),
                             vx.PoolFacts("10.245.0.0/16", vxlan_mode="Always")]) == 1450
    assert vx.pod_mtu(1500, [vx.PoolFacts("10.244.0.0/16", ipip_mode="Always",
                                          disabled=True)]) == 1500


class _Routing:
    def __init__(self):
        self.unprogrammed, self.ipip = None, None

    def set_unprogrammed(self, cidrs):
        self.unprogrammed = list(cidrs)

    def set_ipip(self, pools):
        self.ipip = list(pools)


def _read(dev: dict | None) -> str:
    return json.dumps([dev] if dev else [])


def test_encap_agent_assigns_ipip_tunnel_addresses_and_programs_tunl0(tmp_path):
    from orchestrator.control.store import Store
    from orchestrator.ipam.store import IPAM
    from orchestrator.node.encap_agent import EncapAgent, tunnel_ips
    store = Store(str(tmp_path / "s.db"))
    store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a1"}})
    store.create({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                  "metadata": {"name": "ipip"},
                  "spec": {"cidr": "10.244.0.0/16", "blockSize": 26,
                           "ipipMode": "CrossSubnet"}})
    runner = RecordingRunner()
    runner.responses[("sh",)] = Result(0, _read(None), "")
    routing, kubelet = _Routing(), type("K", (), {"pod_mtu": 1500})()
    agent = EncapAgent(store, IPAM(store), {"a1": (7, "172.18.1.2", "172.18.1.0/24")}, runner,
                       fresh=True, routing=routing, kubelets={"a1": kubelet})
    assert agent.poll() == ["a1"]
    ann = store.get("Node", "a1")["metadata"]["annotations"]
    ip = ann["projectcalico.org/IPv4IPIPTunnelAddr"]
    assert ip.startswith("10.244.") and "projectcalico.org/IPv4VXLANTunnelAddr" not in ann
    assert IPAM(store).ips_for_handle("ipip-tunnel-addr-a1") == [ip]
    assert tunnel_ips(store) == {ip: "a1"}
    assert routing.ipip == [("10.244.0.0/16", "CrossSubnet")] and routing.unprogrammed == []
    assert kubelet.pod_mtu == 1480
    batches = [c["input"] for c in runner.calls if c["argv"][:2] == ["ip", "-batch"]]
    assert batches == [f"link add tunl0 type ipip\nlink set dev tunl0 mtu 1480\n"
                       f"addr add {ip}/32 dev tunl0\nlink set dev tunl0 up\n"]
    assert all(c["pid"] == 7 for c in runner.calls)
    runner.calls.clear()
    assert agent.poll() == [] and runner.calls == []          # nothing changed, nothing read
    # The pool goes: address released, annotation removed, tunl0 emptied and down.
    store.delete("IPPool", "ipip")
    runner.responses[("sh",)] = Result(0, _read(
        {"ifname": "tunl0", "mtu": 1480, "flags": ["UP"],
         "addr_info": [{"family": "inet", "local": ip}]}), "")
    agent.poll()
    assert "projectcalico.org/IPv4IPIPTunnelAddr" not in (
        store.get("Node", "a1")["metadata"].get("annotations") or {})
    assert IPAM(store).ips_for_handle("ipip-tunnel-addr-a1") == []
    assert [c["input"] for c in runner.calls if c["argv"][:2] == ["ip", "-batch"]] == [
        f"addr del {ip}/32 dev tunl0\nlink set dev tunl0 down\n"]
    assert routing.ipip == [] and kubelet.pod_mtu == 1500 and agent.converged() == []
    agent.stop()


def _pool(mode="Always"):
    return {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"},
            "spec": {"cidr": "10.250.0.0/16", "ipipMode": mode}}


def test_admission_refuses_ipip_without_the_module_or_without_bgp(monkeypatch):
    from encap import features
    from orchestrator.node.encap_agent import IPIPAdmission
    monkeypatch.setattr(features, "available", lambda kind, *a: (False, "Unknown device type."))
    with pytest.raises(ValidationError) as ei:
        IPIPAdmission()(None, [_pool()])
    assert "spec.ipipMode" in str(ei.value) and "Unknown device type" in str(ei.value)
    monkeypatch.setattr(features, "available", lambda kind, *a: (True, ""))
    IPIPAdmission()(None, [_pool("CrossSubnet")])           # module and BGP: accepted
    IPIPAdmission(bgp=False)(None, [_pool("Never")])          # no IPIP asked for
    with pytest.raises(ValidationError, match="needs BGP"):
        IPIPAdmission(bgp=False)(None, [_pool()])
