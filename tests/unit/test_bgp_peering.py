"""Peering tables (who peers with whom) against golden files, and the rules one by one."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from bgp.model import BGPConfiguration, BGPPeer, node_bgp
from bgp.peering import GLOBAL, MESH, NODE_SPECIFIC, peerings, session_count

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "bgp"
RR = {"route-reflector": "true"}


def nodes4(rr: bool = False, v6: bool = False):
    def six(last):
        return f"fd00:172:18::{last}" if v6 else None
    return [
        node_bgp("n1", "172.18.0.2", labels={"rack": "a"}, ip6=six("2")),
        node_bgp("n2", "172.18.0.3", labels={"rack": "a"}, ip6=six("3")),
        node_bgp("n3", "172.18.0.10", labels={"rack": "b", **(RR if rr else {})},
                 routeReflectorClusterID="224.0.0.1" if rr else None, ip6=six("a")),
        node_bgp("n4", "172.18.0.11", labels={"rack": "b", **(RR if rr else {})},
                 routeReflectorClusterID="224.0.0.1" if rr else None, ip6=six("b")),
    ]


SCENARIOS = {
    "mesh": (nodes4(), BGPConfiguration(), []),
    "rr2": (nodes4(rr=True), BGPConfiguration(nodeToNodeMeshEnabled=False),
            [BGPPeer("peer-with-rrs", nodeSelector="all()",
                     peerSelector="route-reflector == 'true'")]),
    "global": (nodes4(), BGPConfiguration(nodeToNodeMeshEnabled=False),
               [BGPPeer("tor", peerIP="172.18.0.254", asNumber=65001)]),
    # Dual stack: IPv6 twins of the mesh and of peerSelector peerings, none of peerIP ones.
    "mesh6": (nodes4(v6=True), BGPConfiguration(),
              [BGPPeer("n1-only", node="n1", peerIP="172.18.0.252", asNumber=65003)]),
    "rr6": (nodes4(rr=True, v6=True), BGPConfiguration(nodeToNodeMeshEnabled=False),
            [BGPPeer("peer-with-rrs", nodeSelector="all()",
                     peerSelector="route-reflector == 'true'")]),
    "per_node": (nodes4(), BGPConfiguration(),
                 [BGPPeer("rack-b-tor", nodeSelector="rack == 'b'", peerIP="172.18.0.253",
                          asNumber=65002),
                  BGPPeer("n1-only", node="n1", peerIP="172.18.0.252", asNumber=65003)]),
}


def _table(name):
    nodes, cfg, peers = SCENARIOS[name]
    return {k: [dataclasses.asdict(nb) for nb in v]
            for k, v in peerings(nodes, cfg, peers).items()}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden(name):
    path = GOLDEN / f"peerings_{name}.json"
    got = json.dumps(_table(name), indent=1, sort_keys=True) + "\n"
    if os.environ.get("CALINET_UPDATE_GOLDEN") == "1":
        path.write_text(got)
    assert got == path.read_text()


def test_mesh_is_full_never_self_and_one_active_side():
    table = peerings(*SCENARIOS["mesh"])
    for name, nbs in table.items():
        assert len(nbs) == 3 and all(nb.type == MESH for nb in nbs)
        assert name not in {nb.node for nb in nbs}
    assert session_count(table) == 6
    # each session is opened by exactly one side: the one whose peer address is smaller
    for name, nbs in table.items():
        for nb in nbs:
            back = next(b for b in table[nb.node] if b.node == name)
            assert nb.passive != back.passive


def test_passive_compares_addresses_as_strings_like_calico():
    # "172.18.0.10" < "172.18.0.2" as strings although 10 > 2 numerically
    table = peerings(*SCENARIOS["mesh"])
    n1_to_n3 = next(nb for nb in table["n1"] if nb.node == "n3")
    assert n1_to_n3.passive is False


def test_mesh_skips_route_reflectors():
    nodes, _, _ = SCENARIOS["rr2"]
    table = peerings(nodes, BGPConfiguration(), [])
    assert [nb.node for nb in table["n1"]] == ["n2"]
    assert table["n3"] == [] and table["n4"] == []


def test_two_rrs_clients_and_rr_pair():
    table = peerings(*SCENARIOS["rr2"])
    assert [nb.node for nb in table["n1"]] == ["n3", "n4"]
    assert not any(nb.rr_client for nb in table["n1"])
    by_node = {nb.node: nb for nb in table["n3"]}
    assert set(by_node) == {"n1", "n2", "n4"}
    assert by_node["n1"].rr_client and by_node["n1"].cluster_id == "224.0.0.1"
    assert not by_node["n4"].rr_client  # same cluster ID: a plain iBGP session
    assert all(nb.type == NODE_SPECIFIC for nb in table["n3"])
    assert session_count(table) == 5  # 2 clients x 2 RRs + the RR pair, vs 6 for the mesh


def test_rrs_in_different_clusters_are_clients_of_each_other():
    nodes = nodes4(rr=True)
    nodes[3] = dataclasses.replace(nodes[3], routeReflectorClusterID="224.0.0.2")
    table = peerings(nodes, *SCENARIOS["rr2"][1:])
    assert next(nb for nb in table["n3"] if nb.node == "n4").rr_client
    assert next(nb for nb in table["n4"] if nb.node == "n3").rr_client


def test_ebgp_peer_of_a_reflector_is_not_a_client():
    nodes = nodes4(rr=True)
    peers = [BGPPeer("tor", peerIP="172.18.0.254", asNumber=65001)]
    table = peerings(nodes, BGPConfiguration(nodeToNodeMeshEnabled=False), peers)
    assert [(nb.ip, nb.type, nb.rr_client) for nb in table["n3"]] == [
        ("172.18.0.254", GLOBAL, False)]


def test_global_peer_is_active_from_every_node():
    table = peerings(*SCENARIOS["global"])
    for nbs in table.values():
        assert [(nb.ip, nb.asNumber, nb.type, nb.passive, nb.node) for nb in nbs] == [
            ("172.18.0.254", 65001, GLOBAL, False, None)]


def test_node_specific_peers_follow_node_and_selector():
    table = peerings(*SCENARIOS["per_node"])
    extra = {k: [nb.ip for nb in v if nb.type == NODE_SPECIFIC] for k, v in table.items()}
    assert extra == {"n1": ["172.18.0.252"], "n2": [], "n3": ["172.18.0.253"],
                     "n4": ["172.18.0.253"]}


def test_mesh_wins_over_explicit_peer_with_same_address():
    nodes, cfg, _ = SCENARIOS["mesh"]
    peers = [BGPPeer("dup", peerIP="172.18.0.3", asNumber=64512)]
    table = peerings(nodes, cfg, peers)
    assert [nb.type for nb in table["n1"] if nb.ip == "172.18.0.3"] == [MESH]


def test_peer_ip_of_self_is_skipped():
    nodes, cfg, _ = SCENARIOS["global"]
    table = peerings(nodes, cfg, [BGPPeer("x", peerIP="172.18.0.2", asNumber=64512)])
    assert table["n1"] == []
    assert [nb.node for nb in table["n2"]] == ["n1"]
    # n1 does not peer back, so n2 must connect actively
    assert table["n2"][0].passive is False


def test_per_node_as_override_is_used():
    nodes = nodes4()
    nodes[1] = dataclasses.replace(nodes[1], asNumber=65010)
    table = peerings(nodes, BGPConfiguration(), [])
    assert next(nb for nb in table["n1"] if nb.node == "n2").asNumber == 65010


def test_two_nodes_with_one_address_rejected():
    from orchestrator.errors import ValidationError
    nodes = [node_bgp("a", "172.18.0.2"), node_bgp("b", "172.18.0.2")]
    with pytest.raises(ValidationError, match="also used by node a"):
        peerings(nodes, BGPConfiguration(), [])


def test_ipv6_twins_follow_the_ipv4_sessions():
    table = peerings(*SCENARIOS["mesh6"])
    n1 = {nb.ip: nb for nb in table["n1"]}
    assert "172.18.0.252" in n1 and not any(ip.startswith("fd00") and n1[ip].node is None
                                            for ip in n1)
    six = [nb for nb in table["n1"] if nb.family == 6]
    assert [nb.ip for nb in six] == ["fd00:172:18::3", "fd00:172:18::a", "fd00:172:18::b"]
    assert all(nb.type == MESH and nb.router_id for nb in six)
    assert {nb.router_id for nb in six} == {"172.18.0.3", "172.18.0.10", "172.18.0.11"}
    # one active side per IPv6 pair, by string order of the IPv6 addresses
    for a, nbs in table.items():
        for nb in (x for x in nbs if x.family == 6):
            back = next(x for x in table[nb.node] if x.family == 6 and x.node == a)
            assert nb.passive != back.passive
    rr = peerings(*SCENARIOS["rr6"])
    on_rr = [nb for nb in rr["n3"] if nb.family == 6]
    assert {nb.ip for nb in on_rr if nb.rr_client} == {"fd00:172:18::2", "fd00:172:18::3"}
    assert {nb.ip: nb.router_id for nb in rr["n1"] if nb.family == 6} == {
        "fd00:172:18::a": "172.18.0.10", "fd00:172:18::b": "172.18.0.11"}


def test_no_ipv6_twin_where_the_other_side_peers_by_an_ipv4_peer_ip():
    nodes = nodes4(v6=True)[:2]
    peers = [BGPPeer("b-to-a", node="n2", peerIP="172.18.0.2", asNumber=64512),
             BGPPeer("a-to-b", node="n1", peerSelector="kubernetes.io/hostname == 'n2'")]
    nodes = [node_bgp(n.name, n.ip, labels={"kubernetes.io/hostname": n.name}, ip6=n.ip6)
             for n in nodes]
    table = peerings(nodes, BGPConfiguration(nodeToNodeMeshEnabled=False), peers)
    six = {name: [nb.ip for nb in nbs if nb.family == 6] for name, nbs in table.items()}
    assert six["n1"] == [] or six["n2"], six
