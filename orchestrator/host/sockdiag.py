"""Is anything listening on a TCP port in a network namespace? One sock_diag (inet_diag) dump.

Side effects: a NETLINK_SOCK_DIAG socket created inside the namespace (by a setns thread,
orchestrator.host.netns.run_in), one dump request per address family, closed after.

Why not /proc/<pid>/net/tcp: the kernel builds that file by walking the whole established-
socket hash table, which all namespaces share and which is sized by the machine's memory; on
this 24 GiB machine one read of tcp and tcp6 cost ~9 ms, and the kubelet checked every new
container that way until it listened (a 500-pod bring-up spent seconds in it, under the
container runtime's lock). A dump asking only for LISTEN sockets walks only the listening
hash (inet_diag_dump_icsk skips the established table when no other state is asked for).
The message layouts are those of linux/inet_diag.h; parse_listening is pure.
"""

from __future__ import annotations

import socket
import struct

from orchestrator.host.netns import run_in

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10
_NLMSG = struct.Struct("=IHHII")                 # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid
# (sport, dport big-endian; src, dst 4 x 32 bit; interface; cookie 2 x 32 bit).
_REQ = struct.Struct("=BBBxI" + "HH16s16sI8s")
_MSG_HEAD = struct.Struct("=BBBBH")              # family, state, timer, retrans, sport (BE)


def listen_request(family: int, seq: int) -> bytes:
    """A dump request for the TCP sockets of ``family`` in state LISTEN."""
    body = _REQ.pack(family, socket.IPPROTO_TCP, 0, 1 << TCP_LISTEN,
                     0, 0, b"\0" * 16, b"\0" * 16, 0, b"\0" * 8)
    return _NLMSG.pack(_NLMSG.size + len(body), SOCK_DIAG_BY_FAMILY,
                       NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def parse_listening(data: bytes) -> tuple[set[int], bool]:
    """(local ports of the LISTEN sockets in these reply messages, whether the dump ended)."""
    ports, done, off = set(), False, 0
    while off + _NLMSG.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, off)
        if length < _NLMSG.size:
            break
        if kind == NLMSG_DONE:
            done = True
        elif kind == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, off + _NLMSG.size)
            raise OSError(-err, f"sock_diag: {err}")
        elif kind == SOCK_DIAG_BY_FAMILY:
            _fam, state, _t, _r, sport = _MSG_HEAD.unpack_from(data, off + _NLMSG.size)
            if state == TCP_LISTEN:
                ports.add(socket.ntohs(sport))
        off += (length + 3) & ~3
    return ports, done


def _listening_here(port: int) -> bool:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    try:
        sock.settimeout(2.0)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
            sock.send(listen_request(family, seq))
            while True:
                ports, done = parse_listening(sock.recv(65536))
                if port in ports:
                    return True
                if done:
                    break
        return False
    finally:
        sock.close()


def tcp_listening(netns_path: str, port: int) -> bool:
    """Whether a TCP socket listens on ``port`` in the namespace at ``netns_path``
    (/run/netns/NAME or /proc/PID/ns/net)."""
    return run_in(netns_path, _listening_here, port)
