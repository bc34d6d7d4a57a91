"""The scapy helpers' pure part (orchestrator.traffic.packets, no root, no socket): which
family a packet is, and the IP source ``src=`` fills in: the address of the packet's family,
never one of the other family, and a clear error when none fits."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether

from orchestrator.traffic.packets import _with_src, family_of, unsourced_families

A4, A6 = "10.244.0.5", "fd00:10:244::5"
BOTH = {4: A4, 6: A6}


def test_family_of_the_first_layer():
    assert family_of(IP(dst="10.244.0.9") / TCP()) == 4
    assert family_of(IPv6(dst="fd00:10:244::9") / ICMPv6EchoRequest()) == 6
    with pytest.raises(ValueError, match="IPv4 or IPv6 layer first"):
        family_of(Ether() / IPv6(dst="fd00::1"))


@pytest.mark.parametrize("pkt, src", [
    (IP(dst="10.244.0.9") / UDP(dport=9), A4),
    (IPv6(dst="fd00:10:244::9") / UDP(dport=9), A6),
])
def test_a_packet_without_source_gets_the_address_of_its_family(pkt, src):
    out = _with_src(pkt, BOTH)
    assert out.src == src and out is not pkt
    assert pkt.getfieldval("src") is None          # the caller's packet is left as it was
    assert _with_src(pkt, src).src == src          # one address of the right family works too
    # the source is in the checksum: the built packet carries it
    assert out.__class__(bytes(out)).src == src


def test_an_explicit_source_is_kept_even_when_spoofed():
    spoofed = IPv6(src="fd00:10:244::ff:1", dst="fd00:10:244::9") / UDP()
    assert _with_src(spoofed, BOTH) is spoofed
    assert _with_src(spoofed, None) is spoofed     # no pod address needed at all


def test_the_wrong_family_or_no_source_is_a_clear_error():
    with pytest.raises(ValueError, match=r"src '10.244.0.5' is an IPv4 address and the "
                                         r"packet is IPv6"):
        _with_src(IPv6(dst="fd00::9") / UDP(), A4)
    with pytest.raises(ValueError, match="set the IPv6 source address explicitly"):
        _with_src(IPv6(dst="fd00::9") / UDP(), {4: A4})    # an IPv4-only pod
    with pytest.raises(ValueError, match="set the IPv4 source address explicitly"):
        _with_src(IP(dst="10.0.0.9") / UDP(), None)
    with pytest.raises(ValueError, match="src 'pod-a' is not an IPv4 or IPv6 address"):
        _with_src(IP(dst="10.0.0.9") / UDP(), "pod-a")


def test_unsourced_families_are_those_src_must_fill_in():
    pkts = [IP(dst="10.0.0.9") / UDP(), IPv6(src=A6, dst="fd00::9") / UDP()]
    assert unsourced_families(pkts) == {4}
    assert unsourced_families(pkts + [IPv6(dst="fd00::9")]) == {4, 6}
    assert unsourced_families([IP(src=A4, dst="10.0.0.9")]) == set()
