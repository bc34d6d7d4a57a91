"""scapy inside a pod's network namespace: send, sr1 and sniff on the pod's eth0, IPv4 and IPv6.

Side effects: raw sockets (AF_INET and AF_INET6, both IPPROTO_RAW, to send; one AF_PACKET
socket bound to eth0 for every protocol to receive) created by a thread that setns()-es into
the pod's netns (orchestrator.host.netns); the packets they send. A socket stays in the
namespace it was made in, so everything after its creation runs in the calling thread. Needs
root (CAP_NET_RAW and CAP_SYS_ADMIN for setns).

Why not scapy's own send()/sr1()/sniff(): those pick the interface and the source address
from conf.route / conf.ifaces, which scapy reads once for the namespace of the process (the
host's), not the pod's. Here the kernel of the pod's netns routes every packet: the send
sockets are L3 raw sockets that take the whole IP header from the caller (IP_HDRINCL for
IPv4; for IPv6 Linux implies it for IPPROTO_RAW, the only way an AF_INET6 socket takes a full
header), so a crafted packet starts at its IPv4 or IPv6 layer and carries its own source;
that is also what lets a test spoof one. The ``src=`` arguments fill in the source only where
the packet leaves it unset (``Testbed.send/sr1`` pass the pod's address of the packet's
family). Captures hold both families, IP layer up; ARP is left out, IPv6 neighbour discovery
(ICMPv6, part of IPv6) is not.

    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    reply = sr1(netns, IP(src=a_ip, dst=b_ip) / TCP(dport=80, flags="S"), timeout=1.0)
    reply6 = sr1(netns, IPv6(dst=b_ip6) / TCP(dport=80, flags="S"), src={4: a_ip, 6: a_ip6})
    with sniffing(b_netns) as sniffer:          # capture starts before anything is sent
        send(a_netns, IP(src=a_ip, dst=b_ip) / UDP(dport=9))
        got = sniffer.capture(0.5, match=lambda p: p.haslayer(UDP))
"""

from __future__ import annotations

import ipaddress
import select
import socket
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager

from scapy.compat import raw
from scapy.data import ETH_P_ALL, MTU
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.supersocket import L3RawSocket

from orchestrator.host.netns import netns_path, run_in

IFACE = "eth0"      # the pod side of the veth, as Calico's CNI names it
TIMEOUT = 1.0       # seconds to wait for an answer that should come in well under 50 ms

# What ``src=`` may be: one address (it must be of the packet's family), or the pod's address
# per family ({4: "10.244.0.5", 6: "fd00:10:244::5"}) for packets of either.
Source = str | Mapping[int, str] | None


def family_of(pkt) -> int:
    """4 or 6: the IP version of the packet's first layer, which must be IPv4 or IPv6 (an
    Ethernet header would be the kernel's to add)."""
    if isinstance(pkt, IP):
        return 4
    if isinstance(pkt, IPv6):
        return 6
    raise ValueError(f"a pod sends IP packets, IPv4 or IPv6 layer first: {pkt.summary()}")


def unsourced_families(pkts: Iterable) -> set[int]:
    """The families of those ``pkts`` that leave their IP source unset (the ones ``src=``
    has to fill in)."""
    return {family_of(p) for p in pkts if p.getfieldval("src") is None}


class PodSocket(L3RawSocket):
    """scapy's L3RawSocket bound to one pod's eth0, sending and receiving IPv4 and IPv6.
    Create it with ``open_in(netns)``."""

    def __init__(self, iface: str = IFACE):
        # iface=None keeps scapy from resolving the name against the host's interface list;
        # the bind below resolves it in the namespace the socket lives in (the pod's). One
        # socket for every protocol rather than one per family: one select(), and the
        # packets of both families come out in the order they arrived.
        super().__init__(type=ETH_P_ALL)
        try:
            self.ins.bind((iface, ETH_P_ALL))
            # IPPROTO_RAW: on Linux the caller writes the IPv6 header too (hdrincl), and the
            # kernel routes by the destination given to sendto(), as the IPv4 socket does.
            self.outs6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        except BaseException:
            super().close()
            raise
        self.iface = iface

    @classmethod
    def open_in(cls, netns: str, iface: str = IFACE) -> "PodSocket":
        return run_in(netns_path(netns), cls, iface, timeout=5.0)

    def close(self) -> None:
        if not self.closed:
            self.outs6.close()
        super().close()

    def send(self, x) -> int:
        """Send one packet (IPv4 or IPv6 layer first) through the socket of its family.
        Unlike scapy's L3RawSocket, which logs a failed sendto() and returns 0, this raises
        it: a pod without a route of that family (ENETUNREACH) must not look like a drop."""
        sock = self.outs6 if family_of(x) == 6 else self.outs
        data = raw(x)
        x.sent_time = time.time()
        try:
            return sock.sendto(data, (x.dst, 0))
        except OSError as exc:
            raise OSError(exc.errno, f"the pod cannot send {x.summary()}: "
                                     f"{exc.strerror}") from None

    def recv(self, x: int = MTU, **kwargs):
        """The next packet arriving on eth0 from its IP layer up; None for the pod's own
        outgoing ones and for what is neither IPv4 nor IPv6 (ARP)."""
        pkt = super().recv(x, **kwargs)
        return pkt if isinstance(pkt, (IP, IPv6)) else None

    def drain(self) -> None:
        """Forget what was captured so far (packets seen before the exchange of interest)."""
        while select.select([self.ins], [], [], 0)[0]:
            self.ins.recv(65535)

    def capture(self, timeout: float = TIMEOUT, until=None, match=None,
                count: int | None = None) -> list:
        """Packets arriving on eth0 (IPv4 or IPv6 layer up) for at most ``timeout`` seconds;
        those ``match`` rejects are skipped; stops early once ``until(packet)`` is true for
        one or once ``count`` packets were kept."""
        deadline = time.monotonic() + timeout
        seen = []
        while (left := deadline - time.monotonic()) > 0:
            if count is not None and len(seen) >= count:
                break
            if not select.select([self.ins], [], [], left)[0]:
                break
            pkt = self.recv()   # None for the packets the pod itself sends
            if pkt is None or (match is not None and not match(pkt)):
                continue
            seen.append(pkt)
            if until is not None and until(pkt):
                break
        return seen

    def exchange(self, pkt, timeout: float = TIMEOUT):
        """Send ``pkt`` and return the first packet that answers it (scapy's ``answers``:
        addresses and ports swapped, the protocol's own notion of a reply), or None."""
        self.drain()
        self.send(pkt)
        got = self.capture(timeout, until=lambda p: True, match=lambda p: p.answers(pkt))
        return got[0] if got else None


@contextmanager
def pod_socket(netns: str, iface: str = IFACE):
    """A PodSocket in ``netns``, closed when the block ends."""
    s = PodSocket.open_in(netns, iface)
    try:
        yield s
    finally:
        s.close()


def send(netns: str, *pkts, src: Source = None) -> None:
    """Send each packet (IPv4 or IPv6 layer first) from the pod in ``netns``. A packet
    without an IP source gets ``src`` (see Source); with none for its family, ValueError.
    Every packet is checked before the first is sent."""
    pkts = [_with_src(p, src) for p in pkts]
    with pod_socket(netns) as s:
        for p in pkts:
            s.send(p)


def sr1(netns: str, pkt, timeout: float = TIMEOUT, *, src: Source = None):
    """Send one packet from the pod and return its answer, or None after ``timeout``
    seconds (a dropped packet and a silent peer look the same: nothing)."""
    pkt = _with_src(pkt, src)
    with pod_socket(netns) as s:
        return s.exchange(pkt, timeout)


def sniff(netns: str, timeout: float = TIMEOUT, count: int | None = None,
          lfilter=None) -> list:
    """Packets arriving at the pod's eth0 during the next ``timeout`` seconds (fewer if
    ``count`` are seen first), keeping those ``lfilter(packet)`` accepts. Capture starts
    when this is called: to catch the answer to something you send, use ``sniffing()``."""
    with pod_socket(netns) as s:
        return s.capture(timeout, match=lfilter, count=count)


@contextmanager
def sniffing(netns: str, iface: str = IFACE):
    """Capture on the pod's eth0 from the moment the block starts: ``with sniffing(b) as
    sniffer: send(a, ...); got = sniffer.capture(0.5, match=..., count=...)``."""
    with pod_socket(netns, iface) as s:
        yield s


def tcp_connect(netns: str, ip: str, port: int, timeout: float = TIMEOUT) -> socket.socket:
    """A real kernel TCP connection from the pod to an IPv4 or IPv6 address (raises OSError /
    TimeoutError on failure)."""
    family = socket.AF_INET6 if _version(ip, "ip") == 6 else socket.AF_INET
    sock = run_in(netns_path(netns), socket.socket, family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((ip, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _version(addr: str, what: str) -> int:
    try:
        return ipaddress.ip_address(addr).version
    except ValueError:
        raise ValueError(f"{what} {addr!r} is not an IPv4 or IPv6 address") from None


def _with_src(pkt, src: Source):
    """``pkt`` itself when it names its IP source, else a copy carrying the ``src`` of its
    family."""
    family = family_of(pkt)
    if pkt.getfieldval("src") is not None:
        return pkt
    addr = src.get(family) if isinstance(src, Mapping) else src
    if addr is None:
        # Without it scapy would fill the source in from the host's routing table.
        raise ValueError(f"set the IPv{family} source address explicitly: {pkt.summary()}")
    if (v := _version(addr, "src")) != family:
        raise ValueError(f"src {addr!r} is an IPv{v} address and the packet is IPv{family}: "
                         f"{pkt.summary()}")
    pkt = pkt.copy()
    pkt.src = addr
    return pkt
