"""scapy inside a pod's network namespace: send, sr1 and sniff on the pod's eth0.

Side effects: raw sockets (AF_INET/IPPROTO_RAW to send, AF_PACKET bound to eth0 to receive)
created by a thread that setns()-es into the pod's netns (orchestrator.host.netns); the packets
they send. A socket stays in the namespace it was made in, so everything after its creation
runs in the calling thread. Needs root (CAP_NET_RAW and CAP_SYS_ADMIN for setns).

Why not scapy's own send()/sr1()/sniff(): those pick the interface and the source address
from conf.route / conf.ifaces, which scapy reads once for the namespace of the process (the
host's), not the pod's. Here the kernel of the pod's netns routes every packet (the raw socket
is an L3 socket with IP_HDRINCL), so a crafted packet starts at its IPv4 layer and carries its
own IP source; that is also what lets a test spoof one. The ``src=`` arguments fill in the
source only where the packet leaves it unset (``Testbed.send/sr1`` pass the pod's IP).

    from scapy.layers.inet import IP, TCP
    reply = sr1(netns, IP(src=a_ip, dst=b_ip) / TCP(dport=80, flags="S"), timeout=1.0)
    with sniffing(b_netns) as sniffer:          # capture starts before anything is sent
        send(a_netns, IP(src=a_ip, dst=b_ip) / UDP(dport=9))
        got = sniffer.capture(0.5, match=lambda p: p.haslayer(UDP))
"""

from __future__ import annotations

import select
import socket
import time
from contextlib import contextmanager

from scapy.data import ETH_P_IP
from scapy.layers.inet import IP
from scapy.supersocket import L3RawSocket

from orchestrator.host.netns import netns_path, run_in

IFACE = "eth0"      # the pod side of the veth, as Calico's CNI names it
TIMEOUT = 1.0       # seconds to wait for an answer that should come in well under 50 ms


class PodSocket(L3RawSocket):
    """scapy's L3RawSocket bound to one pod's eth0. Create it with ``open_in(netns)``."""

    def __init__(self, iface: str = IFACE):
        # iface=None keeps scapy from resolving the name against the host's interface list;
        # the bind below resolves it in the namespace the socket lives in (the pod's).
        super().__init__(type=ETH_P_IP)
        self.ins.bind((iface, ETH_P_IP))
        self.iface = iface

    @classmethod
    def open_in(cls, netns: str, iface: str = IFACE) -> "PodSocket":
        return run_in(netns_path(netns), cls, iface, timeout=5.0)

    def drain(self) -> None:
        """Forget what was captured so far (packets seen before the exchange of interest)."""
        while select.select([self.ins], [], [], 0)[0]:
            self.ins.recv(65535)

    def capture(self, timeout: float = TIMEOUT, until=None, match=None,
                count: int | None = None) -> list:
        """Packets arriving on eth0 (IP layer up) for at most ``timeout`` seconds; those
        ``match`` rejects are skipped; stops early once ``until(packet)`` is true for one or
        once ``count`` packets were kept."""
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


def send(netns: str, *pkts, src: str | None = None) -> None:
    """Send each packet (IPv4 layer first) from the pod in ``netns``. A packet without an IP
    source gets ``src``; with neither, ValueError."""
    with pod_socket(netns) as s:
        for p in pkts:
            s.send(_with_src(p, src))


def sr1(netns: str, pkt, timeout: float = TIMEOUT, *, src: str | None = None):
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
    """A real kernel TCP connection from the pod (raises OSError / TimeoutError on failure)."""
    sock = run_in(netns_path(netns), socket.socket, socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((ip, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _with_src(pkt, src: str | None):
    """``pkt`` itself when it names its IP source, else a copy carrying ``src``."""
    if not isinstance(pkt, IP):
        # An Ethernet header would be the kernel's to add; an IPv6 packet cannot go out of
        # this IPv4 raw socket.
        raise ValueError(f"a pod sends IPv4 packets, IP layer first: {pkt.summary()}")
    if pkt.getfieldval("src") is not None:
        return pkt
    if src is None:
        # Without it scapy would fill the source in from the host's routing table.
        raise ValueError(f"set the IP source address explicitly: {pkt.summary()}")
    pkt = pkt.copy()
    pkt.src = src
    return pkt
