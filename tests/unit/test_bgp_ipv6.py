"""BGP for IPv6 (pure): the agent announces IPv6 blocks with the node's IPv6 next hop over
the IPv6 sessions, learns and programs IPv6 routes (blackholes of its /122s, remote blocks
via the peer's IPv6 address), reflects IPv6 routes with the origin's 32-bit router id, reads
both families back from the kernel in one fork, and `calicoctl node status` splits the
peers into its IPv4 and IPv6 tables."""

from __future__ import annotations

import io
import json

import pytest

from bgp import codec
from bgp.agent import COALESCE, Agent, SpeakerConfig, parse_announce, parse_config
from bgp.fib import Fib
from bgp.peering import MESH, NODE_SPECIFIC, Neighbor
from bgp.rib import BLACKHOLE, UNICAST, Route, advertised, parse_current, render_batch
from bgp.status import render_node_status
from orchestrator.host.runner import RecordingRunner, Result

ME, ME6 = "172.18.0.2", "fd00:172:18::2"
A, A6 = "172.18.0.3", "fd00:172:18::3"
B, B6 = "172.18.0.4", "fd00:172:18::4"
CID = "224.0.0.1"


class FakeFib:
    def __init__(self):
        self.routes = []

    def current(self):
        return list(self.routes)

    def apply(self, desired):
        self.routes = list(desired)
        return ""


def line(kind, peer, **neighbor):
    return json.dumps({"type": kind, "neighbor": {"address": {"peer": peer}, **neighbor}})


def update6(peer, *prefixes, nh=None, withdraw=()):
    upd = {"attribute": {"origin": "igp", "local-preference": 100}}
    if prefixes:
        upd["announce"] = {"ipv6 unicast": {nh or peer: [{"nlri": p} for p in prefixes]}}
    if withdraw:
        upd["withdraw"] = {"ipv6 unicast": [{"nlri": p} for p in withdraw]}
    return line("update", peer, message={"update": upd})


def make(tmp_path, neighbors):
    out = io.StringIO()
    ag = Agent("n1", ME, str(tmp_path), config=SpeakerConfig(tuple(neighbors)), fib=FakeFib(),
               out=out, node_ip6=ME6)
    return ag, out


def test_ipv6_blocks_are_announced_with_the_ipv6_next_hop(tmp_path):
    ag, out = make(tmp_path, [Neighbor(A, 64512, MESH), Neighbor(A6, 64512, MESH,
                                                                 router_id=A)])
    ag.set_announce({"blocks": ["10.244.0.0/26", "fd00:10:244::/122"],
                     "borrowed": ["fd00:10:244::80"]}, 0.0)
    assert out.getvalue().splitlines() == [
        "announce route 10.244.0.0/26 next-hop 172.18.0.2",
        "announce route fd00:10:244::/122 next-hop fd00:172:18::2",
        "announce route fd00:10:244::80/128 next-hop fd00:172:18::2"]
    ag.tick(0.0)
    assert Route("fd00:10:244::/122", BLACKHOLE) in ag.fib.routes
    assert parse_announce({"blocks": ["fd00:10:244::/122"]})[0] == ["fd00:10:244::/122"]


def test_ipv6_routes_learnt_are_programmed_via_the_peer(tmp_path):
    ag, _ = make(tmp_path, [Neighbor(A6, 64512, MESH, router_id=A)])
    ag.set_announce({"blocks": ["fd00:10:244::/122"]}, 0.0)
    ag.feed(line("state", A6, state="up"), 0.0)
    ag.feed(update6(A6, "fd00:10:244::40/122", "fd00:10:244::5/128"), 0.0)
    ag.tick(COALESCE)
    assert ag.fib.routes == [Route("fd00:10:244::/122", BLACKHOLE),
                             Route("fd00:10:244::5/128", UNICAST, A6),
                             Route("fd00:10:244::40/122", UNICAST, A6)]
    # one of our own addresses as next hop (our route reflected back) is never installed
    ag.feed(update6(A6, "fd00:10:244::c0/122", nh=ME6), 1.0)
    ag.tick(1.0 + COALESCE)
    assert not any(r.prefix == "fd00:10:244::c0/122" for r in ag.fib.routes)
    st = ag.status()
    assert st["node_ip6"] == ME6 and st["peers"][0]["ip"] == A6


def test_reflection_keeps_families_apart_and_uses_router_ids(tmp_path):
    nbs = [Neighbor(A, 64512, NODE_SPECIFIC, rr_client=True, cluster_id=CID),
           Neighbor(B, 64512, NODE_SPECIFIC, rr_client=True, cluster_id=CID),
           Neighbor(A6, 64512, NODE_SPECIFIC, rr_client=True, cluster_id=CID, router_id=A),
           Neighbor(B6, 64512, NODE_SPECIFIC, rr_client=True, cluster_id=CID, router_id=B)]
    ag, out = make(tmp_path, nbs)
    for peer in (A, B, A6, B6):
        ag.feed(line("state", peer, state="up"), 0.0)
    ag.feed(update6(A6, "fd00:10:244::40/122"), 0.0)
    ag.tick(COALESCE)
    assert out.getvalue().splitlines() == [codec.announce(
        "fd00:10:244::40/122", A6, neighbors=[B6], originator_id=A, cluster_list=[CID],
        local_preference=100)]


def test_parse_config_reads_the_ipv6_router_id():
    text = ('neighbor fd00:172:18::3 {\n    description "Mesh_fd00_172_18__3 peer-id '
            '172.18.0.3";\n    peer-as 64512;\n    passive true;\n}\n')
    (nb,) = parse_config(text).neighbors
    assert (nb.ip, nb.type, nb.router_id, nb.passive) == (A6, MESH, A, True)


def test_kernel_routes_of_both_families_in_one_read():
    table_all = [
        {"type": "blackhole", "dst": "10.244.0.0/26", "dev": "lo", "flags": []},
        {"type": "blackhole", "dst": "fd00:10:244::/122", "dev": "lo", "metric": 1024},
        {"dst": "fd00:10:244::40/122", "gateway": A6, "dev": "eth0", "metric": 1024},
        {"dst": "10.9.0.0/26", "gateway": A, "dev": "eth0", "table": "7"}]     # not main
    runner = RecordingRunner(responses={("ip", "-j"): Result(0, json.dumps(table_all), "")})
    assert Fib(runner).current() == [Route("10.244.0.0/26", BLACKHOLE),
                                     Route("fd00:10:244::/122", BLACKHOLE),
                                     Route("fd00:10:244::40/122", UNICAST, A6)]
    assert runner.calls[0]["argv"] == ["ip", "-j", "route", "show", "table", "all", "proto",
                                       "12"]
    assert parse_current([{"dst": "fd00:10:244::5", "gateway": A6}]) == [
        Route("fd00:10:244::5/128", UNICAST, A6)]
    assert render_batch([], [Route("fd00:10:244::40/122", UNICAST, A6)]) == \
        "route replace fd00:10:244::40/122 via fd00:172:18::3 proto 12\n"


def test_advertised_skips_full_length_blocks_in_both_families():
    assert advertised(["fd00:10:244::/122", "fd00:10:244::9/128", "10.244.0.0/26"],
                      ["fd00:10:244::80"]) == [
        "10.244.0.0/26", "fd00:10:244::/122", "fd00:10:244::80/128"]


def test_node_status_has_an_ipv6_table():
    st = {"running": True, "peers": [
        {"ip": A, "type": MESH, "state": "up", "since": 0, "info": "Established"},
        {"ip": A6, "type": MESH, "state": "up", "since": 0, "info": "Established"}]}
    text = render_node_status(st, 10.0)
    v4, v6 = text.split("IPv6 BGP status")
    assert A in v4 and A6 not in v4 and A6 in v6 and "No IPv6 peers found" not in text
    only4 = render_node_status({"running": True, "peers": st["peers"][:1]}, 10.0)
    assert only4.endswith("IPv6 BGP status\nNo IPv6 peers found.\n")


def test_ipv6_service_ranges_are_advertisable_on_ipv6_clusters_only(tmp_path):
    from bgp.model import configuration_from_manifest
    from orchestrator.errors import ValidationError
    from orchestrator.node.routing import BGPAdmission
    cfg = {"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
           "metadata": {"name": "default"},
           "spec": {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"},
                                          {"cidr": "fd00:10:96::/112"}]}}
    assert configuration_from_manifest(cfg).serviceClusterIPs == ("10.96.0.0/12",
                                                                  "fd00:10:96::/112")
    (tmp_path / "bgp").mkdir()
    with pytest.raises(ValidationError) as ei:
        BGPAdmission(str(tmp_path), "172.18.0.0/16", families=(4,))(None, [cfg])
    assert ei.value.field == "spec.serviceClusterIPs[1].cidr" and "IPv4 only" in str(ei.value)
