"""A node without BGP peers: Routing.converged() names the cause and the fix in one line, only
once the node holds pods, and Testbed.wait_ready's timeout puts that line first."""

from __future__ import annotations

import pytest

from bgp.model import BGPConfiguration, node_bgp
from bgp.peering import why_no_peer
from orchestrator.errors import SupervisorTimeout
from orchestrator.node.routing import NO_PEER, Routing

RR = node_bgp("rr-1", "172.18.0.2", labels={"route-reflector": "true"},
              routeReflectorClusterID="224.0.0.1")
CLIENT = node_bgp("node-3", "172.18.0.4")


def test_a_route_reflector_left_out_of_the_mesh():
    text = why_no_peer(RR, BGPConfiguration())
    assert "\n" not in text
    assert text.startswith("its topology sets routeReflectorClusterID 224.0.0.1")
    assert "mesh skips" in text and "no BGPPeer selects it" in text
    assert "apply BGPPeer objects" in text and "topology `manifests:`" in text


def test_mesh_off_and_no_peer_selects_the_node():
    text = why_no_peer(CLIENT, BGPConfiguration(nodeToNodeMeshEnabled=False))
    assert "nodeToNodeMeshEnabled: false" in text and "turn the node-to-node mesh back on" in text


class _Speaker:
    def __init__(self, peers, routes=()):
        self.expected_peers = list(peers)
        self.proc = type("P", (), {"poll": lambda self: None})()
        self.state = "running"
        self._routes = [{"prefix": r} for r in routes]

    def status(self):
        return {"running": True, "routes": self._routes}

    def peers_down(self):
        return []


def routing(announced: dict, speakers: dict, config: BGPConfiguration | None = None) -> Routing:
    r = Routing.__new__(Routing)       # the state converged() reads, without processes
    r._fingerprint = "fp"
    r._fingerprint_now = lambda: "fp"
    r._announced = {n: (tuple(b), ()) for n, b in announced.items()}
    r.nodes = {"rr-1": RR, "node-3": CLIENT}
    r.config = config or BGPConfiguration()
    r.supervisor = type("S", (), {"speaker": lambda self, n: speakers[n]})()
    return r


def test_converged_reports_the_unpeered_node_first_once_it_holds_pods():
    speakers = {"rr-1": _Speaker([]), "node-3": _Speaker(["172.18.0.9"])}
    assert routing({"rr-1": [], "node-3": ["10.244.3.0/26"]}, speakers).converged() == []
    problems = routing({"rr-1": ["10.244.1.0/26"], "node-3": ["10.244.3.0/26"]},
                       speakers).converged()
    assert problems[0] == f"node rr-1 {NO_PEER}: " + why_no_peer(RR, BGPConfiguration())
    assert problems[1] == "node node-3: no route yet for 10.244.1.0/26"


def test_wait_ready_timeout_names_the_unpeered_node_first(monkeypatch):
    from orchestrator.testbed import Testbed
    tb = Testbed.__new__(Testbed)
    tb.store = type("St", (), {"current_rv": lambda self: 1,
                               "wait_for_change": lambda self, rv, t: None})()
    line = f"node rr-1 {NO_PEER}: " + why_no_peer(RR, BGPConfiguration())
    tb._not_ready = lambda **kw: ["node node-3: no route yet for 10.244.1.0/26",
                             "Pod default/a Pending", line]
    with pytest.raises(SupervisorTimeout) as ei:
        tb.wait_ready(timeout=0)
    assert str(ei.value).startswith(f"not ready after 0s: {line}; node node-3: no route yet")
