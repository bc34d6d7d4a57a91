"""Connectivity probes from pod namespaces: TCP connect, UDP echo, SCTP INIT -> INIT-ACK.

Side effects: opens sockets inside named network namespaces (through orchestrator.host.netns) and
sends probe packets to testbed addresses only. Every probe of a batch runs at once in one
selector loop, so a batch costs about one timeout however many probes a policy drops; sockets
are made in their source namespace by a pool of at most ``workers`` threads (one per source).

IPv4 and IPv6 destinations alike for TCP and UDP (a socket of the destination's family).

SCTP: this kernel has no SCTP sockets, so the probe crafts an INIT on a raw IPPROTO_SCTP socket
(orchestrator.traffic.sctp) and succeeds on a matching INIT-ACK (the agnhost-like server answers INIT
that way). No reply (a DROP, or nobody serving SCTP there) shows as a timeout.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import selectors
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from orchestrator.errors import CalinetError, ValidationError
from orchestrator.host import netns as netns_mod
from orchestrator.traffic import sctp

PROTOCOLS = ("TCP", "UDP", "SCTP")
# Keep well below the usual 1024 open-file limit with a resent SYN's second socket each;
# bigger batches run in waves.
MAX_IN_FLIGHT = 400
UDP_PAYLOAD = b"calinet-probe"
# A TCP probe with no answer after this long sends one more SYN from a new socket. A listener
# whose accept queue is full drops the SYN (python3 -m http.server listens with backlog 5;
# nine pods probing each other send eight SYNs to each at once), and TCP retransmits a SYN
# only after its initial RTO of 1 s: a probe timing out at 1 s never saw that retransmission
# and reported a reachable pod as unreachable. This is the retransmission, made early.
RESEND_AFTER = 0.3


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    elapsed: float


@dataclass
class _Probe:
    key: tuple
    dst_ip: str
    sock: socket.socket | None = None
    start: float = 0.0
    result: ProbeResult | None = None
    sport: int = 0
    tag: int = 0
    resent: bool = False


def probe(src_netns: str, dst_ip: str, port: int, protocol: str = "TCP",
          timeout: float = 1.0) -> ProbeResult:
    """One probe from the named netns ``src_netns`` to dst_ip:port."""
    return probe_many([(src_netns, dst_ip)], port, protocol, timeout)[(src_netns, dst_ip)]


def matrix(pairs, port: int, protocol: str = "TCP", timeout: float = 1.0,
           workers: int = 32) -> dict[tuple[str, str], bool]:
    """{(src_netns, dst_ip): reachable} for every pair, all probed in parallel."""
    return {k: r.ok for k, r in probe_many(pairs, port, protocol, timeout, workers).items()}


def probe_many(pairs, port: int, protocol: str = "TCP", timeout: float = 1.0,
               workers: int = 32) -> dict[tuple[str, str], ProbeResult]:
    """Like matrix() but with the full ProbeResult (detail, elapsed) per pair."""
    proto = _check_args(port, protocol, timeout, workers)
    keys = list(dict.fromkeys((str(s), str(d)) for s, d in pairs))
    for _, dst in keys:
        try:
            addr = ipaddress.ip_address(dst)
        except ValueError:
            raise ValidationError(f"{dst!r} is not an IP address", obj="probe",
                                  field="dst_ip") from None
        if addr.version == 6 and proto == "SCTP":
            raise ValidationError(f"{dst}: SCTP probes are IPv4 only (the INIT is crafted on "
                                  "an IPv4 raw socket); probe IPv6 with TCP or UDP",
                                  obj="probe", field="dst_ip")
    results: dict[tuple[str, str], ProbeResult] = {}
    for i in range(0, len(keys), MAX_IN_FLIGHT):
        results.update(_wave(keys[i:i + MAX_IN_FLIGHT], port, proto, timeout, workers))
    return {k: results[k] for k in keys}


def _check_args(port, protocol, timeout, workers) -> str:
    proto = str(protocol).upper()
    if proto not in PROTOCOLS:
        raise ValidationError(f"unknown protocol {protocol!r} (want one of {PROTOCOLS})",
                              obj="probe", field="protocol")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValidationError(f"port {port!r} out of range 1..65535", obj="probe", field="port")
    if not timeout > 0:
        raise ValidationError(f"timeout {timeout!r} must be > 0", obj="probe", field="timeout")
    if workers < 1:
        raise ValidationError(f"workers {workers!r} must be >= 1", obj="probe", field="workers")
    return proto


def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _make_sockets(src: str, families: list[int], proto: str) -> list[socket.socket]:
    """Runs inside ``src``: the sockets the probes of that source need (one per probe, of
    its destination's address family)."""
    if proto == "SCTP":
        return [socket.socket(socket.AF_INET, socket.SOCK_RAW, sctp.IPPROTO_SCTP)]
    kind = socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM
    return [socket.socket(f, kind) for f in families]


def _open_all(by_src: dict[str, list[_Probe]], proto: str, workers: int) -> dict:
    """{src: [sockets] or CalinetError}; one setns thread per source, ``workers`` at a time."""
    def one(src):
        try:
            return netns_mod.run_in(netns_mod.netns_path(src), _make_sockets, src,
                                    [_family(p.dst_ip) for p in by_src[src]], proto)
        except (CalinetError, OSError) as exc:
            return exc
    with ThreadPoolExecutor(max_workers=min(workers, max(1, len(by_src)))) as pool:
        return dict(zip(by_src, pool.map(one, by_src), strict=True))


def _wave(keys, port: int, proto: str, timeout: float, workers: int) -> dict:
    by_src: dict[str, list[_Probe]] = {}
    for key in keys:
        by_src.setdefault(key[0], []).append(_Probe(key, key[1]))
    opened = _open_all(by_src, proto, workers)
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    pending: list[_Probe] = []
    raw_index: dict[int, dict] = {}   # raw socket fd -> {(dst_ip, sport, tag): probe}
    try:
        for src, probes in by_src.items():
            got = opened[src]
            if isinstance(got, BaseException):
                for p in probes:
                    p.result = ProbeResult(False, f"cannot open socket in {src}: {got}", 0.0)
                continue
            socks.extend(got)
            if proto == "SCTP":
                raw = got[0]
                raw.setblocking(False)
                sel.register(raw, selectors.EVENT_READ, ("SCTP", raw_index.setdefault(
                    raw.fileno(), {})))
                for p in probes:
                    _start_sctp(p, raw, port, raw_index[raw.fileno()])
                    pending.append(p)
                continue
            for p, s in zip(probes, got, strict=True):
                p.sock = s
                s.setblocking(False)
                p.start = time.monotonic()
                if proto == "TCP":
                    _start_tcp(p, s, port, sel)
                else:
                    _start_udp(p, port, sel)
                pending.append(p)

        def resend(todo: list[_Probe]) -> None:
            again: dict[str, list[_Probe]] = {}
            for p in todo:
                again.setdefault(p.key[0], []).append(p)
            for src, got in _open_all(again, proto, workers).items():
                if isinstance(got, BaseException):
                    continue            # the first socket still stands for these probes
                socks.extend(got)
                for p, s in zip(again[src], got, strict=True):
                    s.setblocking(False)
                    p.resent = True
                    _start_tcp(p, s, port, sel)

        _loop(sel, pending, port, timeout, resend if proto == "TCP" else None)
    finally:
        sel.close()
        for s in socks:
            s.close()
    return {p.key: p.result for probes in by_src.values() for p in probes}


def _start_tcp(p: _Probe, sock: socket.socket, port: int, sel) -> None:
    rc = sock.connect_ex((p.dst_ip, port))
    if rc == 0:
        p.result = ProbeResult(True, _connected(p), time.monotonic() - p.start)
    elif rc in (errno.EINPROGRESS, errno.EAGAIN):
        sel.register(sock, selectors.EVENT_WRITE, ("TCP", p))
    else:
        p.result = ProbeResult(False, f"connect: {os.strerror(rc)}", time.monotonic() - p.start)


def _connected(p: _Probe) -> str:
    return "connected after a resent SYN" if p.resent else "connected"


def _start_udp(p: _Probe, port: int, sel) -> None:
    try:
        p.sock.connect((p.dst_ip, port))
        p.sock.send(UDP_PAYLOAD)
    except OSError as exc:
        p.result = ProbeResult(False, f"send: {exc.strerror or exc}", time.monotonic() - p.start)
        return
    sel.register(p.sock, selectors.EVENT_READ, ("UDP", p))


def _start_sctp(p: _Probe, raw: socket.socket, port: int, index: dict) -> None:
    # Raw sockets have no ports: pick an ephemeral-range source port and a random tag, and
    # recognise the INIT-ACK by (peer address, our port, our tag).
    while True:
        p.sport = random.randint(32768, 60999)
        p.tag = random.randint(1, 0xFFFFFFFF)
        if (p.dst_ip, p.sport, p.tag) not in index:
            break
    index[(p.dst_ip, p.sport, p.tag)] = p
    p.start = time.monotonic()
    try:
        raw.sendto(sctp.build_init(p.sport, port, p.tag), (p.dst_ip, 0))
    except OSError as exc:
        p.result = ProbeResult(False, f"send: {exc.strerror or exc}", 0.0)


def _loop(sel, pending: list[_Probe], port: int, timeout: float, resend=None) -> None:
    start = time.monotonic()
    deadline = start + timeout
    # Only when the resent SYN still has a round trip's worth of time before the deadline.
    resend_at = start + RESEND_AFTER if resend and timeout > 2 * RESEND_AFTER else None
    while any(p.result is None for p in pending):
        now = time.monotonic()
        left = deadline - now
        if left <= 0:
            break
        if resend_at is not None and now >= resend_at:
            resend_at = None
            resend([p for p in pending if p.result is None])
            continue
        wait = left if resend_at is None else min(left, resend_at - now)
        for skey, _ in sel.select(wait):
            kind, obj = skey.data
            if kind == "TCP":
                _finish_tcp(obj, skey.fileobj, sel)
            elif kind == "UDP":
                _finish_udp(obj, sel)
            else:
                _read_sctp(skey.fileobj, obj, port)
    now = time.monotonic()
    for p in pending:
        if p.result is None:
            p.result = ProbeResult(False, f"timeout after {timeout}s", now - p.start)


def _finish_tcp(p: _Probe, sock: socket.socket, sel) -> None:
    sel.unregister(sock)
    if p.result is not None:        # the other of its two SYNs answered first
        return
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    elapsed = time.monotonic() - p.start
    p.result = (ProbeResult(True, _connected(p), elapsed) if err == 0
                else ProbeResult(False, f"connect: {os.strerror(err)}", elapsed))


def _finish_udp(p: _Probe, sel) -> None:
    try:
        data = p.sock.recv(65535)
    except BlockingIOError:
        return
    except OSError as exc:   # ICMP port/host unreachable surfaces here
        sel.unregister(p.sock)
        p.result = ProbeResult(False, f"recv: {exc.strerror or exc}", time.monotonic() - p.start)
        return
    sel.unregister(p.sock)
    p.result = ProbeResult(True, f"reply of {len(data)} bytes", time.monotonic() - p.start)


def _read_sctp(raw: socket.socket, index: dict, port: int) -> None:
    while True:
        try:
            datagram = raw.recv(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            continue   # a queued ICMP error: not attributable, the probe times out instead
        try:
            src_ip, _, payload = sctp.strip_ipv4(datagram)
            sport, dport, vtag, chunks = sctp.parse(payload)
        except ValidationError:
            continue   # someone else's garbage on the shared raw socket
        p = index.get((src_ip, dport, vtag))
        if p is None or p.result is not None or sport != port:
            continue
        elapsed = time.monotonic() - p.start
        types = {c.type for c in chunks}
        if sctp.INIT_ACK in types:
            p.result = ProbeResult(True, "INIT-ACK", elapsed)
        elif sctp.ABORT in types:
            p.result = ProbeResult(False, "ABORT", elapsed)
