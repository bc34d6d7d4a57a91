"""Packets crafted with scapy inside pods against the Felix-style policy dataplane.

Each test first shows the traffic passes with no policy (so a later silence is the policy's
doing), then applies its own policies (deleted again by the ``policies`` fixture) and checks
what arrives. Every exchange is tried to a pod on the sender's node (near: the sender's egress
and the target's ingress in one FORWARD pass) and to one on another node (far: egress on
node-1, BGP route, ingress on node-2).
"""

from __future__ import annotations

import random
import re
import time

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.sctp import SCTP, SCTPChunkInit, SCTPChunkInitAck
from scapy.packet import Raw

from .conftest import (
    NS,
    SCTP_ALLOWED,
    SCTP_DENIED,
    TCP_ALLOWED,
    TCP_DENIED,
    UDP_ECHO,
    UDP_OTHER,
)
from .scapy_ns import send, sniffing, sr1, tcp_connect

pytestmark = [pytest.mark.root, pytest.mark.mininet]
TARGETS = ["near", "far"]
NO_ANSWER = 1.0         # how long "nothing came back" is waited for (answers take < 10 ms)


def _port() -> int:
    # A fresh source port per probe: no conntrack entry of an earlier probe can match it.
    return random.randint(20000, 60000)


def _tag() -> int:
    return random.randint(1, 0xFFFFFFFF)


def k8s_ingress(name: str, target: str, ports: list[dict] | None = None) -> dict:
    """A Kubernetes NetworkPolicy on pod ``target``: ingress from anywhere to ``ports`` only
    (None: no ingress rule at all, i.e. deny all ingress)."""
    spec = {"podSelector": {"matchLabels": {"pod": target}}, "policyTypes": ["Ingress"]}
    if ports is not None:
        spec["ingress"] = [{"ports": ports}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def calico_ingress(name: str, target: str, order: float, rules: list[dict]) -> dict:
    return {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"order": order, "selector": f"pod == '{target}'", "types": ["Ingress"],
                     "ingress": rules}}


# -- probes from pod a -------------------------------------------------------------------

def syn(cluster, dst: str, port: int):
    pkt = IP(src=cluster.ip("a"), dst=cluster.ip(dst)) / TCP(
        sport=_port(), dport=port, flags="S", seq=random.randint(0, 2**32 - 1))
    return sr1(cluster.netns("a"), pkt, NO_ANSWER)


def syn_ack(reply) -> bool:
    return reply is not None and reply.haslayer(TCP) and reply[TCP].flags == "SA"


def icmp(cluster, dst: str, icmp_type: int):
    pkt = IP(src=cluster.ip("a"), dst=cluster.ip(dst)) / ICMP(
        type=icmp_type, id=random.randint(1, 0xFFFF), seq=1)
    if icmp_type == 8:
        pkt = pkt / Raw(b"calinet-ping")
    return sr1(cluster.netns("a"), pkt, NO_ANSWER)


def udp_echo(cluster, dst: str, port: int = UDP_ECHO) -> bytes | None:
    payload = f"calinet-udp-{_tag()}".encode()
    pkt = IP(src=cluster.ip("a"), dst=cluster.ip(dst)) / UDP(sport=_port(), dport=port) / \
        Raw(payload)
    reply = sr1(cluster.netns("a"), pkt, NO_ANSWER)
    if reply is None:
        return None
    assert reply.haslayer(Raw) and reply[Raw].load == payload, reply.summary()
    return reply[Raw].load


def sctp_init(cluster, dst: str, port: int) -> bool:
    """INIT answered with an INIT-ACK addressed to our association (its verification tag is
    our initiate tag, RFC 9260 section 8.5)."""
    tag = _tag()
    pkt = IP(src=cluster.ip("a"), dst=cluster.ip(dst)) / SCTP(
        sport=_port(), dport=port, tag=0) / SCTPChunkInit(
        init_tag=tag, a_rwnd=106496, n_out_streams=1, n_in_streams=1, init_tsn=tag)
    reply = sr1(cluster.netns("a"), pkt, NO_ANSWER)
    if reply is None:
        return False
    assert reply.haslayer(SCTPChunkInitAck) and reply[SCTP].tag == tag, reply.summary()
    return True


# -- 1. anti-spoofing ------------------------------------------------------------------------

def rpf_drops(cluster, node: str) -> int:
    """Packets counted by cali-PREROUTING's strict reverse-path DROP on ``node``."""
    save = cluster.tb.node_exec(node, ["iptables-save", "-c", "-t", "raw"]).stdout
    rule = [ln for ln in save.splitlines()
            if ln.startswith("[") and "-A cali-PREROUTING" in ln and "rpfilter" in ln
            and "-j DROP" in ln]
    assert len(rule) == 1, f"one rpfilter DROP in {node}'s cali-PREROUTING:\n{save}"
    return int(re.match(r"\[(\d+):\d+\]", rule[0]).group(1))


@pytest.mark.parametrize("dst", TARGETS)
def test_spoofed_sources_are_dropped_and_own_source_arrives(cluster, dst):
    a = cluster.netns("a")
    spoofed = {"a pod on the same node": cluster.ip("peer"),
               "a pod on another node": cluster.ip("other"),
               "an address outside the pool": "192.0.2.7"}   # TEST-NET-1
    sport = _port()

    def datagram(src: str, what: str):
        # To a port nobody serves: a leaked packet must not make anyone answer the victim.
        return IP(src=src, dst=cluster.ip(dst)) / UDP(sport=sport, dport=9) / Raw(what.encode())

    drops = rpf_drops(cluster, "node-1")
    with sniffing(cluster.netns(dst)) as sniffer:
        send(a, *(datagram(src, what) for what, src in spoofed.items()))
        # Sent last on the same path: once it is there, anything leaked would be too.
        send(a, datagram(cluster.ip("a"), "own source"))
        got = sniffer.capture(2.0, until=lambda p: p.haslayer(Raw)
                              and p[Raw].load == b"own source",
                              match=lambda p: p.haslayer(UDP) and p[UDP].sport == sport)
        got += sniffer.capture(0.2, match=lambda p: p.haslayer(UDP) and p[UDP].sport == sport)
    arrived = [(p[IP].src, p[Raw].load.decode()) for p in got]
    assert arrived == [(cluster.ip("a"), "own source")]
    # Dropped by Felix's raw-table rule, not by something further on.
    assert rpf_drops(cluster, "node-1") - drops == len(spoofed)


# -- 2. TCP SYN ------------------------------------------------------------------------------

@pytest.mark.parametrize("dst", TARGETS)
def test_syn_to_denied_port_gets_no_answer(cluster, policies, dst):
    assert syn_ack(syn(cluster, dst, TCP_ALLOWED)) and syn_ack(syn(cluster, dst, TCP_DENIED))
    policies(k8s_ingress("tcp-80-only", dst, [{"port": TCP_ALLOWED, "protocol": "TCP"}]))
    assert syn_ack(syn(cluster, dst, TCP_ALLOWED))
    assert syn(cluster, dst, TCP_DENIED) is None   # dropped: no SYN-ACK, no RST either


# -- 3. ICMP ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dst", TARGETS)
def test_icmp_echo_allowed_then_denied_by_calico_policy(cluster, policies, dst):
    def reply_type(icmp_type):
        r = icmp(cluster, dst, icmp_type)
        return None if r is None else r[ICMP].type

    # Echo -> echo-reply, timestamp -> timestamp-reply (the kernel answers both).
    assert (reply_type(8), reply_type(13)) == (0, 14)
    policies(calico_ingress("allow-echo", dst, 100,
                            [{"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}}]))
    # Only echo requests are allowed now: the timestamp request hits the end-of-tier drop.
    assert (reply_type(8), reply_type(13)) == (0, None)
    # A lower order runs first: its Deny wins over the Allow.
    policies(calico_ingress("deny-echo", dst, 10,
                            [{"action": "Deny", "protocol": "ICMP", "icmp": {"type": 8}}]))
    assert reply_type(8) is None


# -- 4. UDP ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dst", TARGETS)
def test_udp_echo_request_and_reply(cluster, policies, dst):
    assert udp_echo(cluster, dst) is not None
    # The target takes UDP_ECHO from a only; a itself is isolated both ways and may only send
    # to the target's UDP_ECHO: the echo back passes a's ingress as an established flow.
    policies([
        k8s_ingress("udp-echo-only", dst, [{"port": UDP_ECHO, "protocol": "UDP"}]),
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "sender-isolated", "namespace": NS},
         "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                  "policyTypes": ["Ingress", "Egress"],
                  "egress": [{"to": [{"podSelector": {"matchLabels": {"pod": dst}}}],
                              "ports": [{"port": UDP_ECHO, "protocol": "UDP"}]}]}},
    ])
    assert udp_echo(cluster, dst) is not None
    assert udp_echo(cluster, dst, UDP_OTHER) is None
    policies(calico_ingress("deny-udp", dst, 10, [{"action": "Deny", "protocol": "UDP"}]))
    assert udp_echo(cluster, dst) is None


# -- 5. SCTP ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dst", TARGETS)
def test_sctp_init_answered_only_on_allowed_port(cluster, policies, dst):
    assert sctp_init(cluster, dst, SCTP_ALLOWED) and sctp_init(cluster, dst, SCTP_DENIED)
    policies(k8s_ingress("sctp-one-port", dst, [{"port": SCTP_ALLOWED, "protocol": "SCTP"}]))
    assert sctp_init(cluster, dst, SCTP_ALLOWED)
    assert not sctp_init(cluster, dst, SCTP_DENIED)


# -- 6. conntrack ----------------------------------------------------------------------------

def echoes(sock, token: bytes, timeout: float = 2.0) -> bool:
    """Send a line on an open connection to agnhost and wait for it to come back (agnhost may
    greet with its hostname first)."""
    sock.sendall(token + b"\n")
    buf, deadline = b"", time.monotonic() + timeout
    while token not in buf and (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except TimeoutError:
            break
        if not data:
            break
        buf += data
    return token in buf


@pytest.mark.parametrize("dst", TARGETS)
def test_established_connection_survives_a_deny(cluster, policies, dst):
    a, ip = cluster.netns("a"), cluster.ip(dst)
    conn = tcp_connect(a, ip, TCP_ALLOWED)
    try:
        assert echoes(conn, b"before-the-policy")
        policies(k8s_ingress("deny-all-ingress", dst))
        # Felix's endpoint chains accept ESTABLISHED first: the open connection goes on.
        assert echoes(conn, b"after-the-policy")
        with pytest.raises(OSError):            # TimeoutError: the SYN is dropped
            tcp_connect(a, ip, TCP_ALLOWED, timeout=NO_ANSWER).close()
        assert syn(cluster, dst, TCP_ALLOWED) is None
        assert echoes(conn, b"still-open")
    finally:
        conn.close()
