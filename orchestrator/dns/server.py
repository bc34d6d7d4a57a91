"""The cluster DNS server: answers the cluster.local zone from the store, over UDP and TCP.

Side effects: listens on port 53 (or --port) in the network namespace it runs in (a
kube-system pod, started by the testbed with the built-in `coredns` image), reads the state
store (--store, read-only use) and rebuilds the zone when the store's version moved. Names
outside the zone get REFUSED: the testbed never forwards to outside resolvers. The wire format
is dnspython's (a maintained DNS library), never hand-written.

    python -m orchestrator.dns.server --store STATE.db [--port 53] [--domain cluster.local]
"""

from __future__ import annotations

import argparse
import selectors
import socket
import struct
import sys
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from orchestrator.dns.records import DOMAIN, canonical_pod_name, zone

TTL = 5


def answer(wire: bytes, records: dict, domain: str = DOMAIN) -> bytes | None:
    """The response to one query (None for garbage that is not a DNS query)."""
    try:
        q = dns.message.from_wire(wire)
    except Exception:  # noqa: BLE001 - not DNS: no answer
        return None
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    if not q.question:
        r.set_rcode(dns.rcode.FORMERR)
        return r.to_wire()
    question = q.question[0]
    name = canonical_pod_name(question.name.to_text().rstrip(".").lower(), domain)
    if not (name == domain or name.endswith("." + domain)):
        r.flags &= ~dns.flags.AA
        r.set_rcode(dns.rcode.REFUSED)
        return r.to_wire()
    rdtype = dns.rdatatype.to_text(question.rdtype)
    values = records.get((name, rdtype))
    if values:
        r.answer.append(dns.rrset.from_text_list(question.name, TTL, dns.rdataclass.IN,
                                                 rdtype, values))
    elif not any(k[0] == name for k in records):
        r.set_rcode(dns.rcode.NXDOMAIN)
    return r.to_wire()


class Zone:
    """The records, rebuilt from the store when its version changed (checked per query at
    most every 50 ms: a new Service answers within that)."""

    def __init__(self, store, domain: str = DOMAIN):
        import time
        self.store, self.domain, self._time = store, domain, time.monotonic
        self._rv, self._checked, self.records = None, 0.0, {}
        self._lock = threading.Lock()

    def get(self) -> dict:
        with self._lock:
            now = self._time()
            if now - self._checked >= 0.05:
                self._checked = now
                rv = self.store.current_rv()
                if rv != self._rv:
                    self._rv = rv
                    self.records = zone(self.store.list("Service"), self.store.list("Pod"),
                                        self.store.list("EndpointSlice"), self.domain)
            return self.records


def serve(udp: socket.socket, tcp: socket.socket, records_of, domain: str = DOMAIN,
          stop: threading.Event | None = None) -> None:
    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ, "udp")
    sel.register(tcp, selectors.EVENT_READ, "tcp")
    while stop is None or not stop.is_set():
        for key, _ in sel.select(0.2):
            if key.data == "udp":
                wire, addr = udp.recvfrom(65535)
                out = answer(wire, records_of(), domain)
                if out is not None:
                    udp.sendto(out, addr)
            else:
                conn, _ = tcp.accept()
                conn.settimeout(2)
                try:
                    head = conn.recv(2)
                    if len(head) == 2:
                        (n,) = struct.unpack("!H", head)
                        wire = b""
                        while len(wire) < n:
                            chunk = conn.recv(n - len(wire))
                            if not chunk:
                                break
                            wire += chunk
                        out = answer(wire, records_of(), domain)
                        if out is not None:
                            conn.sendall(struct.pack("!H", len(out)) + out)
                except OSError:
                    pass
                finally:
                    conn.close()


def _bound(kind: int, port: int, host: str | None) -> socket.socket:
    """A socket on ``port``: IPv6 with V6ONLY off (IPv4 clients arrive as ::ffff:a.b.c.d),
    so an IPv6-only or dual-stack coredns pod answers both families; IPv4 only where the
    namespace has IPv6 disabled (an IPv4-only pod may) or ``host`` is an IPv4 address."""
    if host is None or ":" in host:
        try:
            sock = socket.socket(socket.AF_INET6, kind)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host or "::", port))
            return sock
        except OSError:
            if host is not None:
                raise
            sock.close()
    sock = socket.socket(socket.AF_INET, kind)
    if kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host or "0.0.0.0", port))
    return sock


def sockets(port: int, host: str | None = None) -> tuple[socket.socket, socket.socket]:
    udp = _bound(socket.SOCK_DGRAM, port, host)
    tcp = _bound(socket.SOCK_STREAM, port, host)
    tcp.listen(16)
    return udp, tcp


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="calinet-dns", description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--domain", default=DOMAIN)
    args = p.parse_args(argv)
    from orchestrator.control.store import Store
    z = Zone(Store(args.store), args.domain)
    udp, tcp = sockets(args.port)
    print(f"calinet DNS: {args.domain} on port {args.port}", flush=True)
    serve(udp, tcp, z.get, args.domain)
    return 0


if __name__ == "__main__":
    sys.exit(main())
