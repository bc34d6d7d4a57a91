"""ExaBGP text commands and JSON parsing, against lines captured from real ExaBGP 5.0.15
(tests/fixtures/bgp/*.jsonl, written by tests/integration/test_exabgp_real.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgp import codec
from bgp.codec import EOR, PeerState, RouteUpdate
from bgp.codec import Path as P
from orchestrator.errors import ValidationError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "bgp"


def _events(name):
    out = []
    for line in (FIX / name).read_text().splitlines():
        out += codec.parse(line)
    return out


def test_announce_and_withdraw_text():
    assert codec.announce("10.244.0.0/26", "172.18.0.2") == \
        "announce route 10.244.0.0/26 next-hop 172.18.0.2"
    assert codec.withdraw("10.244.0.5/32") == "withdraw route 10.244.0.5/32"
    assert codec.announce("10.244.1.0/26", "172.18.0.3", neighbors=["172.18.0.4", "172.18.0.5"],
                          originator_id="172.18.0.3", cluster_list=["224.0.0.1"]) == (
        "neighbor 172.18.0.4 , neighbor 172.18.0.5 announce route 10.244.1.0/26 "
        "next-hop 172.18.0.3 originator-id 172.18.0.3 cluster-list [ 224.0.0.1 ]")
    assert codec.withdraw("10.244.1.0/26", neighbors=["172.18.0.4"]) == \
        "neighbor 172.18.0.4 withdraw route 10.244.1.0/26"


@pytest.mark.parametrize("call", [lambda: codec.announce("10.244.0.1/26", "1.2.3.4"),
                                  lambda: codec.announce("10.244.0.0/26", "x"),
                                  lambda: codec.withdraw("nope"),
                                  lambda: codec.announce("10.0.0.0/8", "1.1.1.1",
                                                         neighbors=["a"])])
def test_bad_command_input(call):
    with pytest.raises(ValidationError):
        call()


def test_real_mesh_receiver_session():
    peer = "10.213.7.1"
    events = _events("mesh_receiver.jsonl")
    # ExaBGP sends end-of-RIB right after OPEN, before or after the first routes from the
    # API process depending on timing: an EOR does not mean "the peer told us everything".
    assert events.index(EOR(peer)) > events.index(PeerState(peer, "up"))
    assert [e for e in events if e != EOR(peer)][:6] == [
        PeerState(peer, "connected"), PeerState(peer, "up"),
        RouteUpdate(peer, announced=(P("10.244.0.0/26", peer),)),
        RouteUpdate(peer, withdrawn=("10.244.0.0/26",)),
        PeerState(peer, "down", "closing connection"), PeerState(peer, "connected")]


def test_real_reflected_route_carries_originator_and_cluster_list():
    rr = "10.213.7.3"
    updates = [e for e in _events("rr_client.jsonl") if isinstance(e, RouteUpdate)]
    assert updates == [
        RouteUpdate(rr, announced=(P("10.244.1.0/26", "10.213.7.1", "10.213.7.1",
                                     ("224.0.0.1",)),)),
        RouteUpdate(rr, withdrawn=("10.244.1.0/26",))]


def test_real_reflector_sees_both_clients():
    events = _events("rr_reflector.jsonl")
    assert {e.peer for e in events if isinstance(e, EOR)} == {"10.213.7.1", "10.213.7.2"}
    assert [e.peer for e in events if isinstance(e, PeerState) and e.state == "up"] == [
        "10.213.7.2", "10.213.7.1"]


def test_multi_next_hop_update_and_compact_nlri():
    line = ('{"type": "update", "neighbor": {"address": {"peer": "10.0.0.9"}, "message": '
            '{"update": {"attribute": {"local-preference": 200}, "announce": {"ipv4 unicast": '
            '{"10.0.0.9": [{"nlri": "10.244.0.64/26"}, "10.244.0.0/26"], '
            '"10.0.0.8": [{"nlri": "10.244.9.0/26"}]}}, '
            '"withdraw": {"ipv4 unicast": [{"nlri": "10.244.3.0/26"}]}}}}}')
    [ev] = codec.parse(line)
    assert ev.announced == (P("10.244.9.0/26", "10.0.0.8", local_preference=200),
                            P("10.244.0.64/26", "10.0.0.9", local_preference=200),
                            P("10.244.0.0/26", "10.0.0.9", local_preference=200))
    assert ev.withdrawn == ("10.244.3.0/26",)


def test_ignored_and_notification():
    assert codec.parse('{"type": "keepalive", "neighbor": {}}') == []
    assert codec.parse('{"type": "update", "neighbor": {"address": {"peer": "1.1.1.1"}, '
                       '"message": {"eor": {"afi": "l2vpn", "safi": "evpn"}}}}') == []
    # an IPv6 session's end-of-RIB counts (ipv6 unicast)
    assert codec.parse('{"type": "update", "neighbor": {"address": {"peer": "fd00::3"}, '
                       '"message": {"eor": {"afi": "ipv6", "safi": "unicast"}}}}') == [
        codec.EOR("fd00::3")]
    [n] = codec.parse('{"type": "notification", "neighbor": {"address": {"peer": "1.1.1.1"}, '
                      '"message": {"notification": {"code": 6, "subcode": 2, "data": ""}}}}')
    assert (n.peer, n.code, n.subcode) == ("1.1.1.1", 6, 2)


@pytest.mark.parametrize("line", ["not json", "[1]", '{"no": "type"}'])
def test_garbage_lines(line):
    with pytest.raises(ValidationError, match="exabgp output"):
        codec.parse(line)


def test_real_grouped_update_keeps_announcement_order():
    n0 = "10.213.7.1"
    grouped = [e for e in _events("faults_receiver.jsonl")
               if isinstance(e, RouteUpdate) and len(e.announced) > 1]
    assert grouped == [RouteUpdate(n0, announced=(
        P("10.244.0.64/26", n0), P("10.244.0.128/26", n0), P("10.244.2.7/32", n0)))]


def test_ipv6_unicast_updates_and_commands():
    line = ('{"type": "update", "neighbor": {"address": {"peer": "fd00:172:18::3"}, "message": '
            '{"update": {"announce": {"ipv6 unicast": {"fd00:172:18::3": '
            '[{"nlri": "fd00:10:244::40/122"}]}}, '
            '"withdraw": {"ipv6 unicast": [{"nlri": "fd00:10:244::80/122"}]}}}}}')
    [ev] = codec.parse(line)
    assert ev.peer == "fd00:172:18::3"
    assert ev.announced == (P("fd00:10:244::40/122", "fd00:172:18::3"),)
    assert ev.withdrawn == ("fd00:10:244::80/122",)
    assert codec.announce("fd00:10:244::/122", "fd00:172:18::2") == \
        "announce route fd00:10:244::/122 next-hop fd00:172:18::2"
    # reflected over an IPv6 session: the identifiers stay 32-bit
    assert codec.announce("fd00:10:244::/122", "fd00:172:18::3", neighbors=["fd00:172:18::4"],
                          originator_id="172.18.0.3", cluster_list=["224.0.0.1"]) == (
        "neighbor fd00:172:18::4 announce route fd00:10:244::/122 next-hop fd00:172:18::3 "
        "originator-id 172.18.0.3 cluster-list [ 224.0.0.1 ]")
    with pytest.raises(ValidationError, match="family"):
        codec.announce("fd00:10:244::/122", "172.18.0.2")
    with pytest.raises(ValidationError, match="IPv4"):
        codec.announce("fd00:10:244::/122", "fd00::1", originator_id="fd00::1")
