"""Unit tests of encap (Felix's VXLAN manager): the pure per-node plan in each mode, the
applier's diff (read -> ip/bridge batches, idempotent), pod MTU, and the BGP agent leaving
VXLAN pools to it."""

from __future__ import annotations

import json

from bgp import codec
from bgp.rib import RIB, desired_routes
from encap import plan as vx
from encap.apply import _SEP, Current, VxlanApplier, parse_current, render
from orchestrator.host.runner import RecordingRunner, Result

NODES = [vx.NodeFacts("a1", "172.18.1.2", "172.18.1.0/24", "10.244.0.0", None),
         vx.NodeFacts("a2", "172.18.1.3", "172.18.1.0/24", "10.244.0.64", None),
         vx.NodeFacts("b1", "172.18.2.2", "172.18.2.0/24", "10.244.0.128", None),
         vx.NodeFacts("b2", "172.18.2.3", "172.18.2.0/24", None, None)]   # no VTEP yet
BLOCKS = {"10.244.0.0/26": "a1", "10.244.0.64/26": "a2", "10.244.0.128/26": "b1",
          "10.244.0.192/26": "b2", "10.245.0.0/26": "b1"}


def pools(mode: str):
    return [vx.PoolFacts("10.244.0.0/16", mode), vx.PoolFacts("10.245.0.0/16", vx.NEVER)]


def test_always_routes_every_remote_block_through_the_tunnel():
    p = vx.plan("a1", NODES, pools(vx.ALWAYS), BLOCKS, borrowed=[("10.244.0.5", "b1")])
    assert p.device == vx.Device("vxlan.calico", 4096, 4789, "172.18.1.2", 1450, "10.244.0.0",
                                 "66:ca:ac:12:01:02", "eth0")
    assert [(r.prefix, r.via, r.dev, r.onlink) for r in p.routes] == [
        ("10.244.0.5/32", "10.244.0.128", "vxlan.calico", True),   # borrowed onto b1
        ("10.244.0.64/26", "10.244.0.64", "vxlan.calico", True),
        ("10.244.0.128/26", "10.244.0.128", "vxlan.calico", True)]
    # b2 has no tunnel address yet: no route (BGP does not program VXLAN pools either), and
    # the non-VXLAN pool's block is left to BGP.
    assert p.neighbors == (("10.244.0.128", "66:ca:ac:12:02:02"),
                           ("10.244.0.64", "66:ca:ac:12:01:03"))
    assert p.fdb == (("66:ca:ac:12:01:03", "172.18.1.3"), ("66:ca:ac:12:02:02", "172.18.2.2"))


def test_cross_subnet_is_native_inside_the_rack_and_tunnelled_across():
    p = vx.plan("a1", NODES, pools(vx.CROSS_SUBNET), BLOCKS)
    assert [(r.prefix, r.via, r.dev, r.onlink) for r in p.routes] == [
        ("10.244.0.64/26", "172.18.1.3", "eth0", False),
        ("10.244.0.128/26", "10.244.0.128", "vxlan.calico", True)]


def test_no_vxlan_pool_or_no_tunnel_address_means_no_device():
    assert vx.plan("a1", NODES, pools(vx.NEVER), BLOCKS) == vx.NodePlan()
    assert vx.plan("b2", NODES, pools(vx.ALWAYS), BLOCKS) == vx.NodePlan()
    disabled = [vx.PoolFacts("10.244.0.0/16", vx.ALWAYS, disabled=True)]
    assert vx.plan("a1", NODES, disabled, BLOCKS) == vx.NodePlan()


def test_pod_mtu_and_unprogrammed_pools():
    assert vx.pod_mtu(1500, pools(vx.ALWAYS)) == 1450
    assert vx.pod_mtu(1500, pools(vx.NEVER)) == 1500
    assert vx.unprogrammed(pools(vx.CROSS_SUBNET)) == ["10.244.0.0/16"]


def _read(device=None, routes=(), neigh=(), fdb=()) -> str:
    return f"\n{_SEP}\n".join(json.dumps(x) for x in
                              ([device] if device else [], list(routes), list(neigh), list(fdb)))


def test_render_from_nothing_creates_device_then_entries_then_routes():
    p = vx.plan("a1", NODES, pools(vx.CROSS_SUBNET), BLOCKS)
    ip_text, br_text = render(Current(None, {}, {}, {}), p)
    assert ip_text.splitlines() == [
        "link add vxlan.calico type vxlan id 4096 local 172.18.1.2 dev eth0 dstport 4789 "
        "nolearning noudpcsum",
        "link set dev vxlan.calico address 66:ca:ac:12:01:02 mtu 1450",
        "addr add 10.244.0.0/32 dev vxlan.calico",
        "link set dev vxlan.calico up",
        "neigh replace 10.244.0.128 lladdr 66:ca:ac:12:02:02 dev vxlan.calico nud permanent",
        "neigh replace 10.244.0.64 lladdr 66:ca:ac:12:01:03 dev vxlan.calico nud permanent",
        "route replace 10.244.0.64/26 via 172.18.1.3 dev eth0 proto 80",
        "route replace 10.244.0.128/26 via 10.244.0.128 dev vxlan.calico onlink proto 80"]
    assert br_text.splitlines() == [
        "fdb replace 66:ca:ac:12:01:03 dev vxlan.calico dst 172.18.1.3 self permanent",
        "fdb replace 66:ca:ac:12:02:02 dev vxlan.calico dst 172.18.2.2 self permanent"]


def test_render_against_what_is_there_writes_only_the_difference():
    p = vx.plan("a1", NODES, pools(vx.ALWAYS), BLOCKS)
    device = {"ifname": "vxlan.calico", "mtu": 1450, "address": "66:ca:ac:12:01:02",
              "flags": ["BROADCAST", "UP"],
              "linkinfo": {"info_data": {"id": 4096, "port": 4789, "local": "172.18.1.2"}},
              "addr_info": [{"family": "inet", "local": "10.244.0.0", "prefixlen": 32}]}
    cur = parse_current(_read(
        device,
        routes=[{"dst": "10.244.0.64/26", "gateway": "10.244.0.64", "dev": "vxlan.calico",
                 "flags": ["onlink"]},
                {"dst": "10.244.9.0/26", "gateway": "172.18.1.9", "dev": "eth0", "flags": []}],
        neigh=[{"dst": "10.244.0.64", "lladdr": "66:ca:ac:12:01:03"},
               {"dst": "10.244.0.250", "lladdr": "66:ca:ac:12:09:09"}],
        fdb=[{"mac": "66:ca:ac:12:01:03", "dst": "172.18.1.3", "state": "permanent"}]))
    ip_text, br_text = render(cur, p)
    assert ip_text.splitlines() == [
        "neigh del 10.244.0.250 dev vxlan.calico",
        "neigh replace 10.244.0.128 lladdr 66:ca:ac:12:02:02 dev vxlan.calico nud permanent",
        "route del 10.244.9.0/26 proto 80",
        "route replace 10.244.0.128/26 via 10.244.0.128 dev vxlan.calico onlink proto 80"]
    assert br_text == "fdb replace 66:ca:ac:12:02:02 dev vxlan.calico dst 172.18.2.2 self permanent\n"


def test_a_device_with_another_vni_is_recreated_and_no_plan_removes_it():
    p = vx.plan("a1", NODES, pools(vx.ALWAYS), BLOCKS)
    wrong = {"mtu": 1450, "address": "66:ca:ac:12:01:02", "flags": ["UP"],
             "linkinfo": {"info_data": {"id": 1, "port": 4789, "local": "172.18.1.2"}},
             "addr_info": []}
    ip_text, _ = render(parse_current(_read(wrong)), p)
    assert ip_text.startswith("link del dev vxlan.calico\nlink add vxlan.calico type vxlan")
    ip_text, br_text = render(parse_current(_read(wrong, routes=[
        {"dst": "10.244.0.64/26", "gateway": "172.18.1.3", "dev": "eth0"}])), vx.NodePlan())
    assert ip_text == "link del dev vxlan.calico\nroute del 10.244.0.64/26 proto 80\n"
    assert br_text == ""


def test_applier_fresh_node_reads_nothing_and_repeats_nothing():
    runner = RecordingRunner()
    ap = VxlanApplier("a1", 42, runner, fresh=True)
    p = vx.plan("a1", NODES, pools(vx.ALWAYS), BLOCKS)
    assert ap.apply(p)
    assert [c["argv"] for c in runner.calls] == [["ip", "-batch", "-"], ["bridge", "-batch", "-"]]
    assert all(c["pid"] == 42 for c in runner.calls)
    runner.calls.clear()
    assert not ap.apply(p) and runner.calls == []
    runner.responses[("sh",)] = Result(0, _read(), "")
    ap.apply(vx.NodePlan())          # nothing there: one read, no write
    assert [c["argv"][0] for c in runner.calls] == ["sh"]


def test_bgp_agent_leaves_vxlan_pool_routes_to_felix():
    rib = RIB("172.18.1.2")
    rib.apply(codec.RouteUpdate("172.18.1.3", (codec.Path("10.244.0.64/26", "172.18.1.3"),
                                              codec.Path("10.245.0.0/26", "172.18.1.3"))))
    routes = desired_routes(rib, ["10.244.0.0/26"], [], "172.18.1.2",
                            unprogrammed=["10.244.0.0/16"])
    assert [(r.prefix, r.type) for r in routes] == [("10.244.0.0/26", "blackhole"),
                                                    ("10.245.0.0/26", "unicast")]


def test_encap_agent_sees_a_deleted_pool_and_releases_tunnel_addresses(tmp_path):
    """The change check covers deletions (the store's version counter is global, so the
    newest version alone would not move when an older pool goes)."""
    from orchestrator.control.store import Store
    from orchestrator.ipam.store import IPAM
    from orchestrator.node.encap_agent import EncapAgent
    store = Store(str(tmp_path / "s.db"))
    store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a1"}})
    for name, cidr, mode in (("vx", "10.244.0.0/16", "Always"), ("b", "10.250.0.0/16", "Never")):
        store.create({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                      "metadata": {"name": name},
                      "spec": {"cidr": cidr, "blockSize": 26, "vxlanMode": mode}})
    runner = RecordingRunner()
    agent = EncapAgent(store, IPAM(store), {"a1": (1, "172.18.1.2", "172.18.1.0/24")}, runner,
                       fresh=True)
    agent.poll()
    ann = store.get("Node", "a1")["metadata"]["annotations"]
    assert ann["projectcalico.org/IPv4VXLANTunnelAddr"].startswith("10.244.")
    assert agent.plans["a1"].device is not None
    store.delete("IPPool", "vx")
    runner.responses[("sh",)] = Result(0, _read(), "")
    agent.poll()
    assert "projectcalico.org/IPv4VXLANTunnelAddr" not in (
        store.get("Node", "a1")["metadata"].get("annotations") or {})
    assert agent.plans["a1"] == vx.NodePlan() and agent.converged() == []
    assert IPAM(store).ips_for_handle("vxlan-tunnel-addr-a1") == []
    agent.stop()
