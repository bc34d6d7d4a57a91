"""Unit tests of routed fabrics: topologies.fabric (address plan, every error rule), the BIRD
config renderer (golden files), `birdc show protocols` parsing, the node batches of routed
racks, and the BGP agent's eBGP pieces (AS path parsing, loop detection, path length)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bgp import codec
from bgp.rib import RIB
from orchestrator.errors import ValidationError
from topologies import bird
from topologies.net import render_node_batch, render_router_batch
from topologies.routers import parse_protocols
from topologies.spec import load_spec, spec_from_dict

EXAMPLES = Path(__file__).resolve().parents[2] / "topologies" / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"


def fabric_doc(**over) -> dict:
    d = {"name": "f", "fabric": {"spines": {"count": 2}},
         "racks": [{"name": "rack-a", "nodes": ["a1", "a2"]},
                   {"name": "rack-b", "nodes": ["b1"]}],
         "nodes": [{"name": "a1"}, {"name": "a2"}, {"name": "b1"}]}
    d.update(over)
    return d


def err(d) -> ValidationError:
    with pytest.raises(ValidationError) as ei:
        spec_from_dict(d, "f.yaml")
    assert ei.value.source == "f.yaml"
    return ei.value


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("CALINET_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs (CALINET_UPDATE_GOLDEN=1 rewrites it)"


# ------------------------------------------------------------------------ address plan

def test_default_plan_racks_links_and_gateways():
    s = spec_from_dict(fabric_doc(), "f.yaml")
    assert s.routed and [r.subnet for r in s.racks] == ["172.18.1.0/24", "172.18.2.0/24"]
    assert [(n.name, n.ip, n.prefixlen, n.gateway) for n in s.nodes] == [
        ("a1", "172.18.1.2", 24, "172.18.1.1"), ("a2", "172.18.1.3", 24, "172.18.1.1"),
        ("b1", "172.18.2.2", 24, "172.18.2.1")]
    f = s.fabric
    assert f.router_names == ["tor-a", "tor-b", "spine-1", "spine-2"]
    assert [(r.name, r.asNumber) for r in f.routers] == [
        ("tor-a", 65001), ("tor-b", 65002), ("spine-1", 65000), ("spine-2", 65000)]
    assert f.link_cidr == "172.18.255.0/24"
    assert [(ln.a, ln.a_intf, ln.a_ip, ln.b, ln.b_intf, ln.b_ip) for ln in f.links] == [
        ("tor-a", "eth1", "172.18.255.0", "spine-1", "eth1", "172.18.255.1"),
        ("tor-a", "eth2", "172.18.255.2", "spine-2", "eth1", "172.18.255.3"),
        ("tor-b", "eth1", "172.18.255.4", "spine-1", "eth2", "172.18.255.5"),
        ("tor-b", "eth2", "172.18.255.6", "spine-2", "eth2", "172.18.255.7")]
    tor = f.router("tor-a")
    assert tor.router_id == "172.18.1.1" and tor.interfaces[0].name == "eth0"
    assert f.addresses()["172.18.255.3"] == "router spine-2 (eth1)"
    assert f.hold_time == 9 and not f.bfd


def test_explicit_subnets_names_and_as_numbers():
    d = fabric_doc(fabric={"spines": [{"name": "sp", "asNumber": "1.10"}],
                           "linkCidr": "172.18.200.0/29", "holdTime": 30, "bfd": True,
                           "bandwidth": 100},
                   racks=[{"name": "r1", "subnet": "172.18.1.0/24",
                           "tor": {"name": "leaf1", "asNumber": 4200000001},
                           "nodes": ["a1", "a2"]},
                          {"name": "r2", "nodes": ["b1"]}],
                   nodes=[{"name": "a1", "ip": "172.18.1.9", "asNumber": 64513}, {"name": "a2"},
                          {"name": "b1"}])
    s = spec_from_dict(d, "f.yaml")
    assert s.fabric.router("sp").asNumber == 65546
    assert s.fabric.router("leaf1").asNumber == 4200000001
    assert s.fabric.router("tor-r2").rack == "r2"    # default ToR name for a rack "r2"
    assert s.racks[1].subnet == "172.18.2.0/24"      # the next free /24 after the first
    assert s.node("a1").ip == "172.18.1.9" and s.node("a1").as_number == 64513
    assert s.node("a2").ip == "172.18.1.2"
    assert s.fabric.bfd and s.fabric.hold_time == 30
    assert {ln.bandwidth for ln in s.fabric.links} == {100.0}


def test_cluster_as_comes_from_the_topology_bgpconfiguration():
    d = fabric_doc(manifests=[{"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
                               "metadata": {"name": "default"}, "spec": {"asNumber": 64600}}])
    assert spec_from_dict(d, "f.yaml").cluster_as == 64600
    assert spec_from_dict(fabric_doc(), "f.yaml").cluster_as == 64512


@pytest.mark.parametrize("change, field, words", [
    (lambda d: d["racks"][0].update(subnet="10.0.0.0/24"), "racks[0].subnet",
     "outside the underlay"),
    (lambda d: (d["racks"][0].update(subnet="172.18.1.0/24"),
                d["racks"][1].update(subnet="172.18.1.128/25")), "racks[1].subnet",
     "overlaps 172.18.1.0/24 (racks[0].subnet)"),
    (lambda d: d["racks"][0].update(subnet="172.18.255.0/24"), "racks[0].subnet",
     "overlaps 172.18.255.0/24 (fabric.linkCidr)"),
    (lambda d: d["racks"][0].update(subnet="172.18.1.0/30"), "racks[0].subnet", "too small"),
    (lambda d: d["racks"][0].update(tor={"asNumber": 0}), "racks[0].tor.asNumber",
     "out of range"),
    (lambda d: d["racks"][0].update(tor={"asNumber": "65536.1"}), "racks[0].tor.asNumber",
     "invalid AS number"),
    (lambda d: d["racks"][0].update(tor={"name": "spine-1"}), "fabric.spines[spine-1].name",
     "used twice"),
    (lambda d: d["racks"][0].update(tor={"name": "a2"}), "racks[0].tor.name",
     "also a node name"),
    (lambda d: d["racks"][0].update(tor={"mtu": 1}), "racks[0].tor", "unknown key(s) mtu"),
    (lambda d: d["nodes"][0].update(asNumber=4294967296), "nodes[0].asNumber", "out of range"),
    (lambda d: d["nodes"][0].update(ip="172.18.1.1"), "nodes[0].ip", "ToR tor-a"),
    (lambda d: d["nodes"][0].update(ip="172.18.2.5"), "nodes[0].ip", "not a host address"),
    (lambda d: d["fabric"].update(spines=[]), "fabric.spines", "non-empty"),
    (lambda d: d["fabric"].update(spines={"count": 0}), "fabric.spines.count", "1..16"),
    (lambda d: d["fabric"].update(holdTime=2), "fabric.holdTime", "3..65535"),
    (lambda d: d["fabric"].update(bfd="yes"), "fabric.bfd", "true or false"),
    (lambda d: d["fabric"].update(linkCidr="172.18.255.0/31"), "fabric.linkCidr",
     "needs 4"),
    (lambda d: d["fabric"].update(ecmp=True), "fabric", "unknown key(s) ecmp"),
    (lambda d: d.update(underlay={"cidr": "172.18.0.0/24"}), "underlay.cidr", "too small"),
    (lambda d: d.pop("racks"), "racks", "needs racks"),
])
def test_fabric_errors_name_the_field(change, field, words):
    d = fabric_doc()
    change(d)
    e = err(d)
    assert e.field == field and words in e.message, (e.field, e.message)


def test_subnet_and_tor_need_a_fabric():
    d = fabric_doc()
    del d["fabric"]
    d["racks"][0]["subnet"] = "172.18.1.0/24"
    e = err(d)
    assert e.field == "racks[0].subnet" and "need a `fabric:` section" in e.message


# ------------------------------------------------------------------------- BIRD configs

def test_bird_configs_of_the_leaf_spine_example_golden():
    s = load_spec(EXAMPLES / "leaf-spine.yaml")
    golden("bird-leaf-spine-tor-a.conf", bird.render(s.fabric.router("tor-a"), s.fabric, s))
    golden("bird-leaf-spine-spine-1.conf", bird.render(s.fabric.router("spine-1"), s.fabric, s))


def test_bird_rack_sessions_follow_the_as_model():
    # AS per rack: the nodes share the ToR's AS, so the ToR is their route reflector;
    # AS per compute server: plain eBGP, no `rr client`.
    per_rack = load_spec(EXAMPLES / "leaf-spine.yaml")
    text = bird.render(per_rack.fabric.router("tor-b"), per_rack.fabric, per_rack)
    assert "neighbor 172.18.2.2 as 65002;\n\trr client;" in text
    per_node = load_spec(EXAMPLES / "as-per-node.yaml")
    text = bird.render(per_node.fabric.router("tor-a"), per_node.fabric, per_node)
    assert "neighbor 172.18.1.2 as 4200000101;\n}" in text and "rr client" not in text
    assert "local as 65001;" in text


def test_bird_bfd_and_protocol_names():
    s = spec_from_dict(fabric_doc(fabric={"spines": {"count": 1}, "bfd": True},
                                  nodes=[{"name": "1a"}, {"name": "a2"}, {"name": "b1"}],
                                  racks=[{"name": "rack-a", "nodes": ["1a", "a2"]},
                                         {"name": "rack-b", "nodes": ["b1"]}]), "f.yaml")
    text = bird.render(s.fabric.router("tor-a"), s.fabric, s)
    assert "protocol bfd {" in text and "\tbfd on;" in text
    assert "protocol bgp n_1a from rack_node" in text
    assert bird.protocol_name("spine-1") == "spine_1"


def test_router_and_node_batches_of_a_routed_rack():
    s = spec_from_dict(fabric_doc(), "f.yaml")
    node = render_node_batch(s, "a1")
    assert "addr add 172.18.1.2/24 dev eth0" in node
    assert "route add default via 172.18.1.1 dev eth0" in node
    assert "neigh replace 172.18.1.3 " in node and "172.18.2.2" not in node
    assert "neigh replace 172.18.1.1 lladdr 02:ca:ac:12:01:01" in node
    tor = render_router_batch(s, "tor-a")
    assert "addr add 172.18.1.1/24 dev eth0" in tor and "addr add 172.18.255.0/31 dev eth1" in tor
    assert "neigh replace 172.18.255.1 lladdr 02:ca:ac:12:ff:01 dev eth1 nud permanent" in tor
    assert "neigh replace 172.18.1.2 " in tor and "172.18.2.2" not in tor
    spine = render_router_batch(s, "spine-2")
    assert "addr add 172.18.255.7/31 dev eth2" in spine


def test_parse_birdc_show_protocols():
    text = ("Name       Proto      Table      State  Since         Info\n"
            "device1    Device     ---        up     12:25:52.486  \n"
            "spine_1    BGP        ---        up     12:25:53.409  Established   \n"
            "node_a1    BGP        ---        start  2026-12-07 12:24:35  Active        "
            "Socket: Connection refused\n")
    rows = parse_protocols("tor-a", text)
    assert [(r.name, r.state, r.since, r.info) for r in rows] == [
        ("spine_1", "up", "12:25:53.409", "Established"),
        ("node_a1", "start", "2026-12-07 12:24:35", "Active Socket: Connection refused")]


# ---------------------------------------------------------------------- eBGP in the agent

def _update(peer: str, prefix: str, nh: str, as_path) -> str:
    return json.dumps({"type": "update", "neighbor": {
        "address": {"peer": peer}, "message": {"update": {
            "attribute": {"origin": "igp", "as-path": as_path},
            "announce": {"ipv4 unicast": {nh: [{"nlri": prefix}]}}}}}})


def test_codec_reads_exabgp5_as_path_segments():
    (ev,) = codec.parse(_update("172.18.1.1", "10.244.0.64/26", "172.18.1.1", {
        "0": {"element": "as-sequence", "value": [65001, 65000]},
        "1": {"element": "as-sequence", "value": [65002]}}))
    assert ev.announced[0].as_path == (65001, 65000, 65002)
    (ev,) = codec.parse(_update("172.18.1.1", "10.244.0.64/26", "172.18.1.1", [65001]))
    assert ev.announced[0].as_path == (65001,)


def test_rib_drops_paths_through_its_own_as_and_prefers_short_paths():
    rib = RIB("172.18.1.2", local_as=64512)
    rib.apply(codec.parse(_update("172.18.1.1", "10.244.0.64/26", "172.18.1.1",
                                  [65001, 64512]))[0])
    assert rib.best() == {}            # same-AS nodes behind an eBGP ToR: BIRD rejects too
    rib.apply(codec.parse(_update("172.18.1.1", "10.244.1.0/26", "172.18.1.1",
                                  [65001, 65000, 65002]))[0])
    rib.apply(codec.parse(_update("172.18.1.9", "10.244.1.0/26", "172.18.1.9", [65009]))[0])
    assert rib.best()["10.244.1.0/26"][0] == "172.18.1.9"


# ------------------------------------------------------------------------ external host

def test_external_host_on_a_fabric_hangs_off_a_spine_and_is_announced():
    s = spec_from_dict(fabric_doc(external={}), "f.yaml")
    ext = s.external
    assert (ext.name, ext.ip, ext.gateway, ext.attach, ext.attach_intf) == (
        "internet", "203.0.113.10", "203.0.113.1", "spine-1", "eth3")
    spine = s.fabric.router("spine-1")
    assert spine.interfaces[-1].ip == "203.0.113.1" and spine.interfaces[-1].peer == \
        "external internet"
    text = bird.render(spine, s.fabric, s)
    assert 'protocol direct external_net {\n\tipv4;\n\tinterface "eth3";\n}' in text
    assert "neigh replace 203.0.113.10 lladdr 02:ca:cb:00:71:0a dev eth3" in \
        render_router_batch(s, "spine-1")
    assert s.peer_scope()["203.0.113.1"] == "router spine-1 (eth3)"


def test_external_host_on_a_flat_underlay_is_on_link():
    from topologies.external import render_batch
    from topologies.net import node_mac
    s = spec_from_dict({"name": "flat", "nodes": [{"name": "n1"}],
                        "external": {"cidr": "198.51.100.0/24", "name": "world"}}, "f.yaml")
    assert s.external.ip == "198.51.100.10" and s.external.attach is None
    batch = render_batch(s.external, s.underlay.cidr, node_mac)
    assert "route add 172.18.0.0/16 dev eth0" in batch and "default" not in batch


@pytest.mark.parametrize("ext, field, words", [
    ({"cidr": "172.18.5.0/24"}, "external.cidr", "overlaps the underlay"),
    ({"cidr": "nope"}, "external.cidr", "not an IPv4 network"),
    ({"attach": "tor-z"}, "external.attach", "unknown router 'tor-z'"),
    ({"name": "a1"}, "external.name", "already a node or router name"),
    ({"bandwidth": 0}, "external.bandwidth", "0 < bw <= 1000"),
    ({"gateway": "x"}, "external", "unknown key(s) gateway"),
])
def test_external_errors_name_the_field(ext, field, words):
    e = err(fabric_doc(external=ext))
    assert e.field == field and words in e.message, (e.field, e.message)


def test_nat_outgoing_parts_as_felix_renders_them():
    from policy.ir import Dataplane
    from policy.natoutgoing import nat_parts, with_nat_outgoing
    from policy.render import render_full
    parts = nat_parts([{"cidr": "10.244.0.0/16", "natOutgoing": True},
                       {"cidr": "10.250.0.0/16", "natOutgoing": False},
                       {"cidr": "10.251.0.0/16", "natOutgoing": True, "disabled": True}])
    base = Dataplane()
    dp = with_nat_outgoing(base, parts)
    assert base.ipsets == {} and "nat" not in base.chains       # the compile's own is kept
    assert dp.ipsets["cali40masq-ipam-pools"].members == {"10.244.0.0/16"}
    assert dp.ipsets["cali40all-ipam-pools"].members == {"10.244.0.0/16", "10.250.0.0/16",
                                                          "10.251.0.0/16"}
    text = render_full(dp)
    assert "*nat\n:cali-POSTROUTING - [0:0]\n:cali-nat-outgoing - [0:0]\n" in text
    assert ("-m set --match-set cali40masq-ipam-pools src -m set ! --match-set "
            "cali40all-ipam-pools dst -j MASQUERADE --random-fully") in text
    assert '-I POSTROUTING 1 -m comment --comment "cali:' in text


def test_bgpconfiguration_service_ip_ranges_validated_and_kept_in_calicos_form():
    from bgp.model import configuration_from_manifest
    from orchestrator.api.bgp import normalize_bgpconfiguration_spec
    spec = normalize_bgpconfiguration_spec(
        {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
         "serviceExternalIPs": [{"cidr": "198.51.100.0/24"}]}, "default")
    assert spec["serviceClusterIPs"] == [{"cidr": "10.96.0.0/12"}]
    cfg = configuration_from_manifest({"kind": "BGPConfiguration",
                                       "metadata": {"name": "default"}, "spec": spec})
    assert cfg.service_cidrs == ["10.96.0.0/12", "198.51.100.0/24"]
    assert "serviceClusterIPs" not in normalize_bgpconfiguration_spec({}, "default")
    for bad, fld in (({"serviceClusterIPs": "10.96.0.0/12"}, "spec.serviceClusterIPs"),
                     ({"serviceClusterIPs": [{"cidr": "x"}]}, "spec.serviceClusterIPs[0].cidr"),
                     ({"serviceExternalIPs": [{"cidr": "1.2.3.0/24", "x": 1}]},
                      "spec.serviceExternalIPs[0]")):
        with pytest.raises(ValidationError) as ei:
            normalize_bgpconfiguration_spec(bad, "default")
        assert fld in str(ei.value), str(ei.value)


@pytest.mark.parametrize("change, field, words", [
    (lambda d: d["racks"][0].update(tor={"asNumber": 65000}), "racks[0].tor.asNumber",
     "also spine spine-1's"),
    (lambda d: d["racks"][1].update(tor={"asNumber": 65001}), "racks[1].tor.asNumber",
     "also tor-a's"),
    (lambda d: d.update(external={"cidr": "10.244.8.0/24"}), "external.cidr",
     "default IP pool"),
])
def test_fabric_as_and_external_sanity(change, field, words):
    d = fabric_doc()
    change(d)
    e = err(d)
    assert e.field == field and words in e.message, (e.field, e.message)


def two_sites(**over) -> dict:
    d = fabric_doc(fabric={"sites": [{"name": "dc1", "spines": [{"name": "s1"}]},
                                     {"name": "dc2", "spines": [{"name": "s2"}]}],
                           "wan": {"bandwidth": 50, "delay": "15ms", "loss": 0.5}})
    d["racks"][0]["site"], d["racks"][1]["site"] = "dc1", "dc2"
    d.update(over)
    return d


def test_sites_link_tors_to_their_own_spines_and_join_spines_by_wan():
    s = spec_from_dict(two_sites(), "f.yaml")
    links = [(ln.a, ln.b, ln.wan, ln.bandwidth, ln.delay, ln.loss) for ln in s.fabric.links]
    assert links == [("tor-a", "s1", False, None, None, None),
                     ("tor-b", "s2", False, None, None, None),
                     ("s1", "s2", True, 50.0, "15ms", 0.5)]
    assert s.fabric.router("s2").asNumber == 65100          # the second site's default
    assert s.fabric.sites == (("dc1", ("s1",)), ("dc2", ("s2",)))


@pytest.mark.parametrize("change, field, words", [
    (lambda d: d["racks"][1].update(site="dc3"), "racks[1].site", "not one of dc1, dc2"),
    (lambda d: d["racks"][1].update(site="dc1"), "fabric.sites[1]", "has no rack"),
    (lambda d: d["fabric"]["sites"][1].update(spines={"count": 2}), "fabric.sites[1].spines",
     "same number of spines"),
    (lambda d: d["fabric"].update(spines={"count": 1}), "fabric.spines", "not both"),
    (lambda d: d["fabric"].update(wan={"delay": "soon"}), "fabric.wan.delay", "milliseconds"),
    (lambda d: d["fabric"].update(wan={"loss": 101}), "fabric.wan.loss", "0..100"),
    (lambda d: d["fabric"].update(sites=[{"name": "dc1", "spines": [{"name": "s1"}]}]),
     "fabric.sites", "at least two"),
])
def test_site_errors_name_the_field(change, field, words):
    d = two_sites()
    change(d)
    e = err(d)
    assert e.field == field and words in e.message, (e.field, e.message)


def test_wan_and_site_need_sites():
    e = err(fabric_doc(fabric={"spines": {"count": 1}, "wan": {}}))
    assert e.field == "fabric.wan"
    d = fabric_doc()
    d["racks"][0]["site"] = "dc1"
    assert err(d).field == "racks[0].site"


def test_a_later_bgpconfiguration_cannot_change_the_as_the_tors_expect():
    from orchestrator.node.routing import FabricASAdmission
    s = spec_from_dict(fabric_doc(), "f.yaml")
    check = FabricASAdmission(s)
    same = {"kind": "BGPConfiguration", "metadata": {"name": "default"},
            "spec": {"asNumber": 64512, "nodeToNodeMeshEnabled": False}}
    check(None, [same])
    with pytest.raises(ValidationError) as ei:
        check(None, [dict(same, spec={"asNumber": 64999})])
    assert ei.value.field == "spec.asNumber" and "AS 64512" in ei.value.message
    flat = spec_from_dict({"name": "flat", "nodes": [{"name": "n1"}]}, "f.yaml")
    FabricASAdmission(flat)(None, [dict(same, spec={"asNumber": 64999})])   # no fabric: fine
