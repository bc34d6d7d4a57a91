"""Packet log of the policies' Log actions: an NFLOG listener per node, lines in a file.

Side effects: one netlink (NETLINK_NETFILTER) socket per node, made inside the node's network
namespace by a setns thread, bound to Felix's NFLOG groups 1 (inbound) and 2 (outbound); one
reader thread per node appending to <state>/policy/<node>/packets.log. Why not the kernel's LOG
target: inside a network namespace other than the machine's own it writes nothing unless
net.netfilter.nf_log_all_netns is set, a machine-wide switch this project must not flip.

The message layout is nfnetlink_log's (linux/netfilter/nfnetlink_log.h): a config command
binds a group; each logged packet arrives as NFULNL_MSG_PACKET with NFULA_PREFIX (the rule's
--nflog-prefix, which names the policy) and NFULA_PAYLOAD (the packet from its IP header).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import select
import socket
import struct
import threading
import time

from orchestrator.host.netns import netns_path, run_in

log = logging.getLogger(__name__)

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 0, 1
NFULA_CFG_CMD, NFULA_CFG_MODE = 1, 2
NFULNL_CFG_CMD_BIND = 1
NFULNL_COPY_PACKET = 2
NFULA_PACKET_HDR, NFULA_IFINDEX_INDEV, NFULA_IFINDEX_OUTDEV = 1, 4, 5
NFULA_PAYLOAD, NFULA_PREFIX = 9, 10
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
GROUPS = (1, 2)                       # Felix: 1 inbound, 2 outbound
_PROTOS = {1: "ICMP", 6: "TCP", 17: "UDP", 132: "SCTP"}


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def config_message(group: int, seq: int, *, copy_range: int = 128) -> bytes:
    """Bind ``group`` and ask for the first ``copy_range`` bytes of each packet."""
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(group))
    body += _attr(NFULA_CFG_CMD, struct.pack("=B", NFULNL_CFG_CMD_BIND))
    body += _attr(NFULA_CFG_MODE, struct.pack(">IBB", copy_range, NFULNL_COPY_PACKET, 0))
    kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
    return struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def _attrs(data: bytes) -> dict[int, bytes]:
    out, off = {}, 0
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        if length < 4:
            break
        out[kind & 0x7FFF] = data[off + 4: off + length]
        off += (length + 3) & ~3
    return out


def describe_payload(payload: bytes) -> str:
    """`TCP 10.0.0.1:1234 -> 10.0.0.2:80` from an IPv4 packet."""
    if len(payload) < 20 or payload[0] >> 4 != 4:
        return f"{len(payload)} bytes (not IPv4)"
    ihl = (payload[0] & 0xF) * 4
    proto = payload[9]
    src, dst = (str(ipaddress.IPv4Address(payload[12:16])),
                str(ipaddress.IPv4Address(payload[16:20])))
    name = _PROTOS.get(proto, f"proto {proto}")
    l4 = payload[ihl:]
    if proto in (6, 17, 132) and len(l4) >= 4:
        sport, dport = struct.unpack_from("!HH", l4)
        return f"{name} {src}:{sport} -> {dst}:{dport}"
    if proto == 1 and len(l4) >= 2:
        return f"{name} {src} -> {dst} type {l4[0]} code {l4[1]}"
    return f"{name} {src} -> {dst}"


def parse_packets(data: bytes) -> list[tuple[str, str]]:
    """(prefix, packet description) for each NFULNL_MSG_PACKET in a netlink buffer."""
    out, off = [], 0
    while off + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, off)
        if length < 16:
            break
        if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET:
            attrs = _attrs(data[off + 20: off + length])
            prefix = attrs.get(NFULA_PREFIX, b"").split(b"\0", 1)[0].decode(errors="replace")
            out.append((prefix, describe_payload(attrs.get(NFULA_PAYLOAD, b""))))
        off += (length + 3) & ~3
    return out


class NodeLog:
    """The listener of one node (start(), stop())."""

    def __init__(self, node: str, pid: int | None, path: str, *, netns: str | None = None):
        self.node, self.path = node, path
        self._ns = netns_path(netns=netns) if netns else netns_path(pid=pid)
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lines = 0

    def start(self) -> None:
        self._sock = run_in(self._ns, self._open)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._thread = threading.Thread(target=self._run, name=f"calinet-nflog-{self.node}",
                                        daemon=True)
        self._thread.start()

    @staticmethod
    def _open() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        sock.bind((0, 0))
        for seq, group in enumerate(GROUPS, start=1):
            sock.send(config_message(group, seq))
            reply = sock.recv(4096)
            _len, kind = struct.unpack_from("=IH", reply)
            if kind == NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", reply, 16)
                if err:
                    sock.close()
                    raise OSError(-err, f"binding NFLOG group {group}: {os.strerror(-err)}")
        return sock

    def _run(self) -> None:
        assert self._sock is not None
        with open(self.path, "a", buffering=1) as f:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._sock], [], [], 0.2)
                if not ready:
                    continue
                try:
                    data = self._sock.recv(65536)
                except OSError as exc:
                    log.warning("NFLOG on %s: %s", self.node, exc)
                    continue
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
                for prefix, what in parse_packets(data):
                    f.write(f"{stamp} {self.node} {prefix}: {what}\n")
                    self.lines += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        if self._sock:
            self._sock.close()
            self._sock = None
