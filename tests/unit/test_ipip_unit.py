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
    assert ipip.plan("10.244.0.0", 1500, False) is None
    # No tunnel address (outside every IPIP pool's nodeSelector, IPAM exhausted): still up,
    # or the kernel refuses the BGP agent's onlink routes through it.
    bare = ipip.plan(None, 1500, True)
    assert bare == ipip.IpipDevice(1480, None)
    assert ipip.render({"ifname": "tunl0", "mtu": 1480, "flags": ["NOARP"], "addr_info": []},
                       bare) == "link set dev tunl0 up\n"
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
    # The new address first: the last one going would flush every route through tunl0.
    assert ipip.render({**held, "mtu": 1400}, ipip.IpipDevice(1430, "10.244.0.64")) == (
        "link set dev tunl0 mtu 1430\naddr add 10.244.0.64/32 dev tunl0\n"
        "addr del 10.244.0.0/32 dev tunl0\n")
    # No IPIP pool left: our address goes, the device stays up (as Felix leaves it).
    assert ipip.render(held, None) == "addr del 10.244.0.0/32 dev tunl0\n"
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
        f"addr del {ip}/32 dev tunl0\n"]
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


class _OrderedRouting(_Routing):
    """Records, at each set_ipip, which tunl0 batches had been written by then."""

    def __init__(self, runner):
        super().__init__()
        self.runner, self.seen = runner, []

    def set_ipip(self, pools):
        super().set_ipip(pools)
        self.seen.append((list(pools), sum(c["argv"][:2] == ["ip", "-batch"]
                                           for c in self.runner.calls)))


def _store_with_pool(tmp_path, mode="Always", selector=None):
    from orchestrator.control.store import Store
    store = Store(str(tmp_path / "s.db"))
    for n in ("a1", "a2"):
        store.create({"apiVersion": "v1", "kind": "Node",
                      "metadata": {"name": n, "labels": {"rack": n}}})
    spec = {"cidr": "10.244.0.0/16", "blockSize": 26, "ipipMode": mode}
    if selector:
        spec["nodeSelector"] = selector
    store.create({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                  "metadata": {"name": "ipip"}, "spec": spec})
    return store


def test_tunl0_is_up_before_the_bgp_agents_route_through_it_and_routes_leave_first(tmp_path):
    from orchestrator.ipam.store import IPAM
    from orchestrator.node.encap_agent import EncapAgent
    store = _store_with_pool(tmp_path)
    runner = RecordingRunner()
    runner.responses[("sh",)] = Result(0, _read(None), "")
    routing = _OrderedRouting(runner)
    agent = EncapAgent(store, IPAM(store), {"a1": (7, "172.18.1.2", "172.18.1.0/24")}, runner,
                       fresh=True, routing=routing)
    agent.poll()
    assert routing.seen == [([("10.244.0.0/16", "Always")], 1)]    # after tunl0's batch
    store.delete("IPPool", "ipip")
    agent.poll()
    assert routing.seen[-1] == ([], 1)        # routes back to native before the address goes
    agent.stop()


def test_a_node_outside_the_pools_selector_gets_tunl0_up_without_an_address(tmp_path):
    from orchestrator.ipam.store import IPAM
    from orchestrator.node.encap_agent import EncapAgent
    store = _store_with_pool(tmp_path, selector="rack == 'a1'")
    runner = RecordingRunner()
    runner.responses[("sh",)] = Result(0, _read(None), "")
    agent = EncapAgent(store, IPAM(store), {"a1": (7, "172.18.1.2", "172.18.1.0/24"),
                                            "a2": (8, "172.18.1.3", "172.18.1.0/24")},
                       runner, fresh=True)
    agent.poll()
    assert agent.ipip_plans["a2"] == ipip.IpipDevice(1480, None)
    a2 = [c["input"] for c in runner.calls if c["pid"] == 8 and c["argv"][:2] == ["ip", "-batch"]]
    assert a2 == ["link add tunl0 type ipip\nlink set dev tunl0 mtu 1480\n"
                  "link set dev tunl0 up\n"]
    assert agent.ipip_plans["a1"].address is not None
    agent.stop()


def test_a_tunnel_address_failure_is_retried_and_reported_until_it_succeeds(tmp_path):
    from orchestrator.errors import CalinetError
    from orchestrator.ipam.store import IPAM
    from orchestrator.node.encap_agent import EncapAgent
    store = _store_with_pool(tmp_path)
    ipam = IPAM(store)
    real, fail = ipam.auto_assign, {"on": True}

    def flaky(*a, **kw):
        if fail["on"]:
            raise CalinetError("no free address in IPPool ipip")
        return real(*a, **kw)
    ipam.auto_assign = flaky
    runner = RecordingRunner()
    runner.responses[("sh",)] = Result(0, _read(None), "")
    agent = EncapAgent(store, ipam, {"a1": (7, "172.18.1.2", "172.18.1.0/24")}, runner,
                       fresh=True)
    agent.poll()
    assert agent.converged() == ["node a1: IPIP tunnel address: no free address in IPPool ipip"]
    fail["on"] = False
    agent.poll()                       # nothing in the store changed: retried all the same
    agent.poll()                       # (the annotation it wrote is one more change to see)
    assert agent.converged() == [] and agent.ipip_plans["a1"].address is not None
    agent.stop()


def test_a_tunnel_address_outside_the_pools_now_selecting_the_node_is_replaced(tmp_path):
    from orchestrator.ipam.store import IPAM
    from orchestrator.node.encap_agent import EncapAgent
    store = _store_with_pool(tmp_path)
    runner = RecordingRunner()
    runner.responses[("sh",)] = Result(0, _read(None), "")
    ipam = IPAM(store)
    agent = EncapAgent(store, ipam, {"a1": (7, "172.18.1.2", "172.18.1.0/24")}, runner,
                       fresh=True)
    agent.poll()
    old = ipam.ips_for_handle("ipip-tunnel-addr-a1")[0]
    store.create({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                  "metadata": {"name": "ipip2"},
                  "spec": {"cidr": "10.250.0.0/16", "blockSize": 26, "ipipMode": "Always"}})
    store.patch("IPPool", "ipip", "", lambda o: o["spec"].update(ipipMode="Never"))
    agent.poll()
    new = ipam.ips_for_handle("ipip-tunnel-addr-a1")
    assert old.startswith("10.244.") and new and new[0].startswith("10.250.")
    assert store.get("Node", "a1")["metadata"]["annotations"][
        "projectcalico.org/IPv4IPIPTunnelAddr"] == new[0]
    agent.stop()
