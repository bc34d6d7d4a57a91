"""orchestrator.host.sockdiag's pure parts: the LISTEN dump request and the reply parser."""

from __future__ import annotations

import socket
import struct

import pytest

from orchestrator.host import sockdiag


def reply(kind: int, body: bytes, seq: int = 1) -> bytes:
    msg = struct.pack("=IHHII", 16 + len(body), kind, 2, seq, 0) + body
    return msg + b"\0" * (-len(msg) % 4)


def diag_msg(port: int, state: int = sockdiag.TCP_LISTEN) -> bytes:
    # inet_diag_msg: family, state, timer, retrans, then the sockid (sport big-endian...)
    return struct.pack("=BBBB", socket.AF_INET, state, 0, 0) + struct.pack("!H", port) + \
        b"\0" * 66


def test_request_asks_for_tcp_listen_sockets_of_one_family():
    req = sockdiag.listen_request(socket.AF_INET6, 7)
    length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", req)
    assert (length, kind, seq) == (len(req), sockdiag.SOCK_DIAG_BY_FAMILY, 7)
    assert flags == sockdiag.NLM_F_REQUEST | sockdiag.NLM_F_DUMP
    family, proto, _ext, states = struct.unpack_from("=BBBxI", req, 16)
    assert (family, proto, states) == (socket.AF_INET6, socket.IPPROTO_TCP, 1 << 10)
    assert len(req) == 16 + 56          # nlmsghdr + inet_diag_req_v2


def test_replies_give_listening_ports_and_the_end_of_the_dump():
    data = reply(20, diag_msg(80)) + reply(20, diag_msg(8080)) + reply(20, diag_msg(22, 1))
    assert sockdiag.parse_listening(data) == ({80, 8080}, False)
    assert sockdiag.parse_listening(reply(3, struct.pack("=i", 0))) == (set(), True)


def test_an_error_reply_raises():
    with pytest.raises(OSError):
        sockdiag.parse_listening(reply(2, struct.pack("=i", -1) + b"\0" * 16))
