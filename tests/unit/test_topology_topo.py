"""Unit tests of topologies.topo (graph shape, names) and net.py's pure helpers. No root."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ValidationError
from orchestrator.host.runner import RecordingRunner, Result
from topologies import net as tnet
from topologies.spec import load_spec, spec_from_dict
from topologies.topo import IFNAMSIZ, CalinetTopo

EXAMPLES = Path(__file__).resolve().parents[2] / "topologies" / "examples"
TB = "ab12"


def edges(topo):
    return sorted(tuple(sorted((a, b))) for a, b in topo.links())


def test_flat_cluster_one_switch():
    t = CalinetTopo(load_spec(EXAMPLES / "three-node.yaml"), TB)
    assert t.switches() == ["cnab12s1"]
    assert t.hosts() == ["node-1", "node-2", "node-3"]
    assert edges(t) == [("cnab12s1", "node-1"), ("cnab12s1", "node-2"), ("cnab12s1", "node-3")]
    assert t.nodeInfo("node-2")["ip"] == "172.18.0.3/16"
    assert t.switch_ports() == {"cnab12s1": ["cnab12s1-eth1", "cnab12s1-eth2", "cnab12s1-eth3"]}
    assert t.node_port("node-3") == "cnab12s1-eth3"
    assert t.spine is None


def test_node_links_name_eth0_inside_the_node():
    t = CalinetTopo(load_spec(EXAMPLES / "three-node.yaml"), TB)
    for _a, _b, info in t.links(withInfo=True):
        # node1 is the node: Mininet creates intfName1 inside node1's namespace, so "eth0"
        # never exists (not even briefly) in the root namespace next to the real eth0.
        assert t.isSwitch(info["node2"]) and not t.isSwitch(info["node1"])
        assert info["intfName1"] == "eth0"
        assert "bw" not in info


def test_racks_tor_and_spine():
    t = CalinetTopo(load_spec(EXAMPLES / "racks.yaml"), TB)
    assert t.spine == "cnab12s0"
    assert t.switches() == ["cnab12s0", "cnab12s1", "cnab12s2"]
    assert t.node_switch == {"node-a1": "cnab12s1", "node-a2": "cnab12s1", "node-a3": "cnab12s1",
                             "node-b1": "cnab12s2", "node-b2": "cnab12s2", "node-b3": "cnab12s2"}
    e = edges(t)
    assert ("cnab12s0", "cnab12s1") in e and ("cnab12s0", "cnab12s2") in e
    assert ("cnab12s1", "cnab12s2") not in e
    assert len(e) == 6 + 2
    ports = t.switch_ports()
    assert ports["cnab12s0"] == ["cnab12s0-eth1", "cnab12s0-eth2"]
    assert len(ports["cnab12s1"]) == 4 and len(ports["cnab12s2"]) == 4
    assert t.node_port("node-b1") == "cnab12s2-eth1"


def test_names_fit_ifnamsiz_for_50_nodes():
    t = CalinetTopo(load_spec(EXAMPLES / "scale-50.yaml"), "ffff")
    names = [n for sw, ports in t.switch_ports().items() for n in [sw, *ports]]
    assert len(names) == 51
    assert max(len(n) for n in names) <= IFNAMSIZ
    assert "cnffffs1-eth50" in names


def test_too_many_ports_on_one_switch_is_an_error():
    s = spec_from_dict({"name": "big", "generate": {"count": 1000}})
    with pytest.raises(ValidationError, match="exceeds 15 characters"):
        CalinetTopo(s, TB)


def test_bandwidth_on_shaped_links_only():
    s = spec_from_dict({"name": "bw", "underlay": {"bandwidth": 100},
                        "nodes": [{"name": "a"}, {"name": "b", "bandwidth": 5}]})
    t = CalinetTopo(s, TB)
    bw = {info["node1"]: info.get("bw") for _a, _b, info in t.links(withInfo=True)}
    assert bw == {"a": 100.0, "b": 5.0}


def test_bad_testbed_id():
    with pytest.raises(ValidationError, match="4 lowercase hex"):
        CalinetTopo(load_spec(EXAMPLES / "three-node.yaml"), "XYZ")


def test_node_named_like_a_switch_is_rejected():
    s = spec_from_dict({"name": "c", "nodes": [{"name": "cnab12s1"}]})
    with pytest.raises(ValidationError, match="collides"):
        CalinetTopo(s, TB)


# ------------------------------------------------------------------ net.py pure helpers

def test_bridge_batch_has_no_address_and_enslaves_ports():
    lines = tnet.bridge_batch("cnab12s1", ["cnab12s1-eth1", "cnab12s1-eth2"])
    assert lines[0] == ("link add name cnab12s1 type bridge stp_state 0 nf_call_iptables 0 "
                        "nf_call_ip6tables 0 nf_call_arptables 0")
    assert "link set dev cnab12s1 addrgenmode none" in lines
    assert "link set dev cnab12s1-eth2 master cnab12s1" in lines
    assert lines[-1] == "link set dev cnab12s1 up"
    assert not any("eth0" in ln or " addr add" in ln for ln in lines)


LINKS = """\
1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue state UNKNOWN
4: eth0: <BROADCAST,UP> mtu 1400 qdisc pfifo_fast state UP
9: cnab12s1: <BROADCAST,UP> mtu 1500 qdisc noqueue state UP
10: cnab12s1-eth1@if11: <BROADCAST,UP> mtu 1500 master cnab12s1 state UP
12: cnab12s10-eth3@if13: <BROADCAST,UP> mtu 1500 state UP
14: cnab12sx: <BROADCAST> mtu 1500 state DOWN
15: cnab13s1: <BROADCAST> mtu 1500 state DOWN
16: cnab12s1-ethx: <BROADCAST> mtu 1500 state DOWN
"""


def test_our_links_matches_only_this_testbeds_names():
    r = RecordingRunner(responses={("ip", "-o", "link", "show"): Result(0, LINKS, "")})
    assert tnet._our_links(r, "ab12") == ["cnab12s1", "cnab12s1-eth1", "cnab12s10-eth3"]
    assert r.calls[0]["pid"] is None and r.calls[0]["netns"] is None


def test_quiet_tc_filter_drops_only_known_noise():
    import logging
    f = tnet._QuietTC()

    def rec(msg):
        return logging.LogRecord("mininet", logging.ERROR, __file__, 1, msg, None, None)

    assert not f.filter(rec("*** Error: Error: Cannot delete qdisc with handle of zero.\n"))
    assert f.filter(rec("*** Error: RTNETLINK answers: Operation not permitted\n"))


def test_start_cluster_without_root_says_why(monkeypatch):
    from orchestrator.errors import Unavailable
    monkeypatch.setattr(tnet.os, "geteuid", lambda: 1000)
    with pytest.raises(Unavailable, match="needs root"):
        tnet.start_cluster(load_spec(EXAMPLES / "three-node.yaml"), TB, runner=RecordingRunner())


def test_node_batch_sets_a_known_mac_and_permanent_neighbours_for_every_other_node():
    spec = load_spec(EXAMPLES / "three-node.yaml")
    assert tnet.node_mac("172.18.0.2") == "02:ca:ac:12:00:02"
    assert tnet.render_node_batch(spec, "node-2") == (
        "link set dev eth0 address 02:ca:ac:12:00:03\n"
        "addr add 172.18.0.3/16 dev eth0\n"
        "link set dev eth0 up\n"
        "link set dev lo up\n"
        "route add default dev eth0\n"
        "neigh replace 172.18.0.2 lladdr 02:ca:ac:12:00:02 dev eth0 nud permanent\n"
        "neigh replace 172.18.0.4 lladdr 02:ca:ac:12:00:04 dev eth0 nud permanent\n")


def test_node_macs_are_unique_in_a_large_cluster():
    spec = load_spec(EXAMPLES / "scale-50.yaml")
    macs = {tnet.node_mac(n.ip) for n in spec.nodes}
    assert len(macs) == len(spec.nodes) == 50
