"""Root tests of topologies.net: real Mininet clusters on Linux bridges, torn down afterwards.

Every cluster gets a random testbed id, so its bridges/ports ("cn<id>s*") are unique and the
teardown check can prove nothing of ours is left behind.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from orchestrator.errors import Conflict
from orchestrator.host.runner import DEFAULT
from topologies.net import start_cluster
from topologies.spec import load_spec, spec_from_dict

pytestmark = [pytest.mark.root, pytest.mark.mininet,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: Mininet, bridges")]

EXAMPLES = Path(__file__).resolve().parents[2] / "topologies" / "examples"


def _tb_id() -> str:
    while True:
        tb = secrets.token_hex(2)
        if not _links_with(f"cn{tb}s"):
            return tb


def _links_with(prefix: str) -> list[str]:
    out = DEFAULT.run(["ip", "-o", "link", "show"]).stdout
    return [ln.split(":")[1].strip() for ln in out.splitlines()
            if ln.count(":") >= 2 and ln.split(":")[1].strip().startswith(prefix)]


@pytest.fixture
def cluster_of():
    started = []

    def make(spec):
        tb = _tb_id()
        c = start_cluster(spec, tb)
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()
        assert _links_with(f"cn{c.testbed_id}s") == []


def ping(c, src, dst, timeout=2):
    return c.node_exec(src, ["ping", "-c", "1", "-W", str(timeout), c.nodes[dst].ip],
                       timeout=timeout + 5).returncode == 0


def test_three_node_flat(cluster_of):
    c = cluster_of(load_spec(EXAMPLES / "three-node.yaml"))
    assert set(c.nodes) == {"node-1", "node-2", "node-3"}
    assert c.switches == [f"cn{c.testbed_id}s1"]
    for name, node in c.nodes.items():
        assert node.intf == "eth0"
        addrs = c.node_exec(name, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert f"inet {node.ip}/16" in addrs
        routes = c.node_exec(name, ["ip", "route", "show", "default"]).stdout
        assert routes.split() == ["default", "dev", "eth0", "scope", "link"]
        fwd = c.node_exec(name, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()
        assert fwd == "1"
        # Each node is its own namespace: the node sees its eth0, not the machine's.
        assert node.ip not in DEFAULT.run(["ip", "-4", "-o", "addr"]).stdout
    assert ping(c, "node-1", "node-3") and ping(c, "node-3", "node-2")
    # Mininet's view agrees with what was configured (its CLI uses host.IP()).
    assert c.nodes["node-2"].host.IP() == c.nodes["node-2"].ip
    assert all(os.path.exists(f"/proc/{p}") for p in c.pids())
    assert len(c.pids()) == 4


def test_underlay_neighbours_are_permanent_and_outside_the_shared_gc_limit(cluster_of):
    # All nodes share one kernel neighbour table whose gc_thresh3 (1024) counts every netns;
    # permanent entries do not count, so a big mesh cannot overflow it.
    from topologies.net import node_mac
    c = cluster_of(load_spec(EXAMPLES / "three-node.yaml"))
    for name, node in c.nodes.items():
        link = c.node_exec(name, ["ip", "-o", "link", "show", "dev", "eth0"]).stdout
        assert f"link/ether {node_mac(node.ip)} " in link
        neigh = c.node_exec(name, ["ip", "neigh", "show", "dev", "eth0"]).stdout.splitlines()
        want = sorted(f"{o.ip} lladdr {node_mac(o.ip)} PERMANENT"
                      for o in c.nodes.values() if o.name != name)
        assert sorted(ln.strip() for ln in neigh if "PERMANENT" in ln) == want
    assert ping(c, "node-1", "node-3") and ping(c, "node-2", "node-1")


def test_bridges_have_no_address_and_only_our_ports(cluster_of):
    c = cluster_of(load_spec(EXAMPLES / "three-node.yaml"))
    sw = c.switches[0]
    assert DEFAULT.run(["ip", "-o", "addr", "show", "dev", sw]).stdout.strip() == ""
    ports = DEFAULT.run(["ip", "-o", "link", "show", "master", sw]).stdout
    names = sorted(ln.split(":")[1].strip().split("@")[0] for ln in ports.splitlines())
    assert names == [f"{sw}-eth{i}" for i in (1, 2, 3)]


def test_racks_across_tor_and_spine(cluster_of):
    c = cluster_of(load_spec(EXAMPLES / "racks.yaml"))
    tb = c.testbed_id
    assert c.switches == [f"cn{tb}s0", f"cn{tb}s1", f"cn{tb}s2"]
    assert c.nodes["node-a1"].switch == f"cn{tb}s1" and c.nodes["node-b3"].switch == f"cn{tb}s2"
    assert ping(c, "node-a1", "node-b3")      # ToR a -> spine -> ToR b
    assert ping(c, "node-b2", "node-a2")
    assert ping(c, "node-a1", "node-a3")      # same rack


def test_link_down_and_up(cluster_of):
    c = cluster_of(load_spec(EXAMPLES / "three-node.yaml"))
    assert ping(c, "node-1", "node-2")
    c.link_down("node-2")
    assert "state DOWN" in c.node_exec("node-2", ["ip", "link", "show", "eth0"]).stdout
    assert not ping(c, "node-1", "node-2", timeout=1)
    c.link_up("node-2")
    assert ping(c, "node-1", "node-2", timeout=3)


def test_bandwidth_shapes_both_ends(cluster_of):
    c = cluster_of(spec_from_dict({"name": "bw", "underlay": {"bandwidth": 100},
                                   "nodes": [{"name": "a"}, {"name": "b", "bandwidth": 10}]}))
    node_side = c.node_exec("b", ["tc", "class", "show", "dev", "eth0"]).stdout
    switch_side = DEFAULT.run(["tc", "class", "show", "dev", c.nodes["b"].switch_port]).stdout
    assert "rate 10Mbit" in node_side and "rate 10Mbit" in switch_side
    assert "rate 100Mbit" in c.node_exec("a", ["tc", "class", "show", "dev", "eth0"]).stdout
    assert ping(c, "a", "b")


def test_stop_is_idempotent_and_complete():
    tb = _tb_id()
    c = start_cluster(load_spec(EXAMPLES / "racks.yaml"), tb)
    pids = c.pids()
    try:
        assert len(_links_with(f"cn{tb}s")) == 3 + 6 + 2 * 2   # bridges, node ports, uplinks
    finally:
        c.stop()
    c.stop()
    assert _links_with(f"cn{tb}s") == []
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)


def test_testbed_id_in_use_is_refused_and_leaves_nothing(cluster_of):
    c = cluster_of(load_spec(EXAMPLES / "three-node.yaml"))
    before = _links_with(f"cn{c.testbed_id}s")
    with pytest.raises(Conflict, match="in use"):
        start_cluster(load_spec(EXAMPLES / "three-node.yaml"), c.testbed_id)
    assert _links_with(f"cn{c.testbed_id}s") == before
    assert ping(c, "node-1", "node-2")


def test_mininet_start_after_bring_up_is_harmless(cluster_of):
    c = cluster_of(load_spec(EXAMPLES / "three-node.yaml"))
    c.net.start()
    assert ping(c, "node-1", "node-3")


def test_failed_bring_up_removes_what_it_created(monkeypatch):
    import topologies.net as tnet

    def boom(*_a, **_k):
        raise RuntimeError("injected failure after the underlay was built")

    monkeypatch.setattr(tnet, "_configure_nodes", boom)
    tb = _tb_id()
    with pytest.raises(RuntimeError, match="injected"):
        tnet.start_cluster(load_spec(EXAMPLES / "racks.yaml"), tb)
    assert _links_with(f"cn{tb}s") == []
