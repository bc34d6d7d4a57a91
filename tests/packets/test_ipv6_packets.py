"""IPv6 packets crafted with scapy inside pods of a dual-stack cluster (ipFamilies [IPv4,
IPv6]): the helpers of orchestrator.traffic.packets send through the pod's own kernel in
either family and capture both, the Testbed wrappers fill in the pod's address of the packet's
family, and Calico's anti-spoofing (the rpfilter DROP in ip6tables' raw table) holds for
IPv6 sources.

Every exchange goes to a pod on the sender's node (near) and to one on another node (far: BGP
IPv6 route), as tests/packets/test_policy_packets.py does for IPv4.
"""

from __future__ import annotations

import random
import re
import threading
import time

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.packet import Raw

from orchestrator.cli.policy_cmd import explain_text

from .conftest import NS, TCP_ALLOWED, TCP_DENIED, UDP_ECHO, manifests
from .scapy_ns import send, sniffing, sr1, tcp_connect

pytestmark = [pytest.mark.root, pytest.mark.mininet]
TARGETS = ["near", "far"]
NO_ANSWER = 1.0
PLACEMENT = {"a": "node-1", "peer": "node-1", "near": "node-1", "far": "node-2"}
TOPO = """
name: pk6
underlay: {cidr: 172.18.0.0/16, cidr6: "fd00:172:18::/64"}
ipFamilies: [IPv4, IPv6]
nodes:
  - {name: node-1, role: control-plane, schedulable: true}
  - {name: node-2}
"""


def _port() -> int:
    return random.randint(20000, 60000)


class Dual:
    """The dual-stack testbed and the pods' addresses per family."""

    def __init__(self, tb):
        self.tb = tb

    def key(self, pod: str) -> str:
        return f"{NS}/{pod}"

    def ip6(self, pod: str) -> str:
        return self.tb.pod_ip(self.key(pod), 6)

    def ip4(self, pod: str) -> str:
        return self.tb.pod_ip(self.key(pod), 4)

    def netns(self, pod: str) -> str:
        return self.tb.pod_netns(self.key(pod))


@pytest.fixture(scope="module")
def dual(tmp_path_factory):
    from orchestrator.testbed import Testbed
    tb = Testbed(TOPO, bgp=True, dns=False, keep_state=False,
                 state_dir=str(tmp_path_factory.mktemp("state6")))
    tb.start()
    try:
        tb.apply(manifests(PLACEMENT))
        tb.wait_ready(timeout=90)
        d = Dual(tb)
        assert {p: tb.pod_node(d.key(p)) for p in PLACEMENT} == PLACEMENT
        assert all(":" in d.ip6(p) and "." in d.ip4(p) for p in PLACEMENT)
        yield d
    finally:
        tb.stop()


def syn6(dual, dst: str, port: int):
    """A SYN from a to ``dst``'s IPv6 address through Testbed.sr1, which fills in a's IPv6
    source (the packet names none)."""
    pkt = IPv6(dst=dual.ip6(dst)) / TCP(sport=_port(), dport=port, flags="S",
                                         seq=random.randint(0, 2**32 - 1))
    return dual.tb.sr1(dual.key("a"), pkt, NO_ANSWER)


def syn_ack(reply) -> bool:
    return reply is not None and reply.haslayer(TCP) and reply[TCP].flags == "SA"


@pytest.mark.parametrize("dst", TARGETS)
def test_ipv6_syn_gets_a_syn_ack_from_the_pods_address(dual, dst):
    reply = syn6(dual, dst, TCP_ALLOWED)
    assert syn_ack(reply), reply and reply.summary()
    # The answer came to a's own IPv6 address: the source Testbed.sr1 filled in.
    assert (reply[IPv6].src, reply[IPv6].dst) == (dual.ip6(dst), dual.ip6("a"))
    # The helpers also open real kernel connections over IPv6.
    tcp_connect(dual.netns("a"), dual.ip6(dst), TCP_ALLOWED).close()


@pytest.mark.parametrize("dst", TARGETS)
def test_icmpv6_echo_is_answered(dual, dst):
    ident, data = random.randint(1, 0xFFFF), b"calinet-ping6"
    pkt = IPv6(src=dual.ip6("a"), dst=dual.ip6(dst)) / ICMPv6EchoRequest(id=ident, seq=1,
                                                                         data=data)
    reply = sr1(dual.netns("a"), pkt, NO_ANSWER)
    assert reply is not None and reply.haslayer(ICMPv6EchoReply), reply
    assert (reply[ICMPv6EchoReply].id, reply[ICMPv6EchoReply].data) == (ident, data)
    # A packet naming no source takes the one of its family from src= (here given both).
    pkt6 = IPv6(dst=dual.ip6(dst)) / ICMPv6EchoRequest(id=ident, seq=2)
    reply = sr1(dual.netns("a"), pkt6, NO_ANSWER,
                src={4: dual.ip4("a"), 6: dual.ip6("a")})
    assert reply is not None and reply[ICMPv6EchoReply].seq == 2


@pytest.mark.parametrize("dst", TARGETS)
def test_a_denied_ipv6_syn_gets_no_answer(dual, dst):
    tb = dual.tb
    assert syn_ack(syn6(dual, dst, TCP_DENIED))
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "tcp-80-only", "namespace": NS},
              "spec": {"podSelector": {"matchLabels": {"pod": dst}},
                       "policyTypes": ["Ingress"],
                       "ingress": [{"ports": [{"port": TCP_ALLOWED, "protocol": "TCP"}]}]}}
    tb.apply([policy])
    try:
        tb.wait_ready(timeout=30)
        assert syn_ack(syn6(dual, dst, TCP_ALLOWED))
        assert syn6(dual, dst, TCP_DENIED) is None     # ip6tables drops it: no SYN-ACK, no RST
        # `calinet explain --family 6` on this testbed's store says the same, and why.
        ctx = type("Ctx", (), {"store": tb.store})()
        allowed = explain_text(ctx, "a", dst, f"{TCP_ALLOWED}/TCP", NS, family=6)
        denied = explain_text(ctx, "a", dst, f"{TCP_DENIED}/TCP", NS, family=6)
        assert allowed.splitlines()[0] == (f"{NS}/a ({dual.ip6('a')}) -> {NS}/{dst} "
                                           f"({dual.ip6(dst)}) TCP/{TCP_ALLOWED}: ALLOWED")
        assert denied.splitlines()[0].endswith("DENIED") and "(ip6tables)" in denied
        assert f"destination port {TCP_DENIED} not in {TCP_ALLOWED}" in denied, denied
    finally:
        tb.delete("NetworkPolicy", f"{NS}/tcp-80-only")
        tb.wait_ready(timeout=30)


def rpf6_drops(dual, node: str) -> int:
    """Packets counted by cali-PREROUTING's strict reverse-path DROP in ``node``'s ip6tables."""
    save = dual.tb.node_exec(node, ["ip6tables-save", "-c", "-t", "raw"]).stdout
    rule = [ln for ln in save.splitlines()
            if ln.startswith("[") and "-A cali-PREROUTING" in ln and "rpfilter" in ln
            and "-j DROP" in ln]
    assert len(rule) == 1, f"one rpfilter DROP in {node}'s ip6tables cali-PREROUTING:\n{save}"
    return int(re.match(r"\[(\d+):\d+\]", rule[0]).group(1))


@pytest.mark.parametrize("dst", TARGETS)
def test_spoofed_ipv6_sources_are_dropped_and_own_source_arrives(dual, dst):
    spoofed = {"a pod on the same node": dual.ip6("peer"),
               "a pod on another node": dual.ip6("far"),
               "an unused address in the pool": "fd00:10:244::ff:1",
               "an address outside the pool": "2001:db8::7"}       # documentation prefix
    sport = _port()

    def datagram(src: str, what: str):
        # To a port nobody serves: a leaked packet must not make anyone answer the victim.
        return IPv6(src=src, dst=dual.ip6(dst)) / UDP(sport=sport, dport=9) / Raw(what.encode())

    mine = lambda p: p.haslayer(IPv6) and p.haslayer(UDP) and p[UDP].sport == sport  # noqa: E731
    drops = rpf6_drops(dual, "node-1")
    with sniffing(dual.netns(dst)) as sniffer:
        send(dual.netns("a"), *(datagram(src, what) for what, src in spoofed.items()))
        # Sent last on the same path: once it is there, anything leaked would be too.
        send(dual.netns("a"), datagram(dual.ip6("a"), "own source"))
        got = sniffer.capture(2.0, until=lambda p: p[Raw].load == b"own source", match=mine)
        got += sniffer.capture(0.2, match=mine)
    assert [(p[IPv6].src, p[Raw].load.decode()) for p in got] == [(dual.ip6("a"), "own source")]
    # Dropped by Felix's ip6tables raw-table rule, not by something further on.
    assert rpf6_drops(dual, "node-1") - drops == len(spoofed)


@pytest.mark.parametrize("dst", TARGETS)
def test_sniffing_sees_both_families_with_the_pods_own_sources(dual, dst):
    """One Testbed.send with an IPv6 and an IPv4 datagram, neither naming a source: each
    leaves with a's address of its family, and the capture at the target holds both."""
    tb, sport = dual.tb, _port()
    v6 = IPv6(dst=dual.ip6(dst)) / UDP(sport=sport, dport=9) / Raw(b"six")
    v4 = IP(dst=dual.ip4(dst)) / UDP(sport=sport, dport=9) / Raw(b"four")
    with tb.sniffing(dual.key(dst)) as sniffer:
        tb.send(dual.key("a"), v6, v4)
        got = sniffer.capture(2.0, count=2,
                              match=lambda p: p.haslayer(UDP) and p[UDP].sport == sport)
    seen = sorted((p[Raw].load, p.src) for p in got)
    assert seen == [(b"four", dual.ip4("a")), (b"six", dual.ip6("a"))]
    # The UDP echo agnhost serves answers over IPv6 too (sr1 matches the reply by ports).
    echo = tb.sr1(dual.key("a"), IPv6(dst=dual.ip6(dst)) / UDP(sport=_port(), dport=UDP_ECHO)
                  / Raw(b"echo6"), NO_ANSWER)
    assert echo is not None and echo[Raw].load == b"echo6"
    # Testbed.sniff (capture from the call on, here in a thread) sees IPv6 too.
    ident, got = random.randint(1, 0xFFFF), []
    t = threading.Thread(target=lambda: got.extend(tb.sniff(
        dual.key(dst), 3.0, count=1,
        lfilter=lambda p: p.haslayer(ICMPv6EchoRequest) and p[ICMPv6EchoRequest].id == ident)))
    t.start()
    time.sleep(0.5)     # the sniffing socket is open well before this
    tb.send(dual.key("a"), IPv6(dst=dual.ip6(dst)) / ICMPv6EchoRequest(id=ident))
    t.join()
    assert [p[IPv6].src for p in got] == [dual.ip6("a")]
