"""The built-in server (serve.py/answers.py): argument parsing, answers, and the real process
on loopback (no root: TCP/UDP on 127.0.0.1; SCTP needs a raw socket and is tested as root in
tests/integration/test_containers.py)."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from orchestrator.images import answers, serve
from orchestrator.images.programs import AGNHOST, HTTP_SERVER
from orchestrator.traffic import sctp

# -- pure parts ---------------------------------------------------------------------------

@pytest.mark.parametrize("spec,want", [
    ("80", (80, "TCP", "auto")),
    ("81/udp", (81, "UDP", "echo")),
    ("82/SCTP", (82, "SCTP", "")),
    ("80/TCP/http", (80, "TCP", "http")),
    ("80/TCP/reply=a/b c", (80, "TCP", "reply=a/b c")),
    ("9376/UDP/hostname", (9376, "UDP", "hostname")),
])
def test_parse_port(spec, want):
    assert serve.parse_port(spec) == want


@pytest.mark.parametrize("spec", ["x", "0", "65536", "80/ICMP", "80/UDP/http", "80/TCP/nope",
                                  "80/SCTP/echo"])
def test_parse_port_rejects(spec):
    with pytest.raises(serve.UsageError, match="--port"):
        serve.parse_port(spec)


def test_parse_args():
    o = serve.parse_args(["--hostname", "h", "--port=80", "--port", "81/UDP", "--bind=127.0.0.1"])
    assert o == {"hostname": "h", "bind": "127.0.0.1", "ports": [(80, "TCP", "auto"),
                                                                  (81, "UDP", "echo")]}
    assert serve.parse_args(["--port", "80"], "http")["ports"] == [(80, "TCP", "http")]
    for bad in (["--nope"], ["--port"], ["--port", "80", "--port", "80/TCP"]):
        with pytest.raises(serve.UsageError):
            serve.parse_args(bad)


def test_classify():
    assert answers.classify(b"GET / HTTP/1.1\r\n") == "http"
    assert answers.classify(b"GE") is None
    assert answers.classify(b"G\n") == "echo"
    assert answers.classify(b"hello") == "echo"


def test_parse_request():
    assert answers.parse_request(b"GET /x HTTP/1.1\r\nHost: a\r\n", 100) is None
    assert answers.parse_request(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 100) == ("GET", "/x")
    body = b"POST /e HTTP/1.1\r\nContent-Length: 4\r\n\r\nab"
    assert answers.parse_request(body, 100) is None          # waits for the body
    assert answers.parse_request(body + b"cd", 100) == ("POST", "/e")
    assert answers.parse_request(b"GET /\r\n\r\n", 100) == ("GET", 400)
    assert answers.parse_request(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 100) \
        == ("GET", 400)
    assert answers.parse_request(b"GET " + b"a" * 200, 100) == ("GET", 413)


def test_route_agnhost_and_nginx():
    peer = ("10.0.0.9", 4000)
    assert answers.route("auto", "/", peer, "h")[:2] == (200, "h")
    assert answers.route("auto", "/hostname", peer, "h")[:2] == (200, "h")
    assert answers.route("auto", "/clientip", peer, "h")[:2] == (200, "10.0.0.9:4000")
    assert answers.route("auto", "/echo?msg=a%20b+c", peer, "h")[:2] == (200, "a b c")
    assert answers.route("auto", "/exit?code=7", peer, "h")[3] == 7
    assert answers.route("auto", "/exit?code=x", peer, "h")[0] == 400
    assert answers.route("auto", "/nope", peer, "h")[0] == 404
    assert answers.route("reply=hi", "/any", peer, "h")[:2] == (200, "hi")
    status, body, ctype, code = answers.route("http", "/", peer, "web-0")
    assert status == 200 and "web-0" in body and ctype == "text/html" and code is None
    assert answers.route("http", "/hostname", peer, "web-0")[1] == "web-0\n"
    assert answers.route("http", "/healthz", peer, "web-0")[:2] == (200, "ok\n")
    assert answers.route("http", "/missing", peer, "web-0")[0] == 404


def test_http_response_head_has_no_body():
    full = answers.http_response("GET", 200, "hello", "text/plain", "auto")
    head = answers.http_response("HEAD", 200, "hello", "text/plain", "auto")
    assert full.startswith(b"HTTP/1.1 200 OK\r\n") and full.endswith(b"\r\n\r\nhello")
    assert b"Content-Length: 5\r\n" in head and head.endswith(b"\r\n\r\n")


def test_udp_reply():
    peer = ("10.0.0.9", 4000)
    assert answers.udp_reply(b"hostname\n", peer, "echo", "h") == b"h"
    assert answers.udp_reply(b"clientip", peer, "echo", "h") == b"10.0.0.9:4000"
    assert answers.udp_reply(b"echo hi", peer, "echo", "h") == b"hi"
    assert answers.udp_reply(b"\x00raw", peer, "echo", "h") == b"\x00raw"
    assert answers.udp_reply(b"anything", peer, "hostname", "h") == b"h"


def _ipv4(src: str, dst: str, payload: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, 132, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + payload


def test_sctp_reply_answers_init_on_served_ports_only():
    init = sctp.build_init(40000, 82, 0x11223344)
    got = answers.sctp_reply(sctp, _ipv4("10.0.0.9", "10.0.0.1", init), {82}, 0x55667788)
    assert got is not None and got[0] == "10.0.0.9"
    src, dst, vtag, chunks = sctp.parse(got[1])
    assert (src, dst, vtag) == (82, 40000, 0x11223344)
    assert chunks[0].type == sctp.INIT_ACK
    assert sctp.parse_init(chunks[0]).initiate_tag == 0x55667788
    # Independent check of the packet (checksum included) with scapy's SCTP layer.
    from scapy.layers.sctp import SCTP
    pkt = SCTP(got[1])
    assert pkt.sport == 82 and pkt.tag == 0x11223344
    del pkt.chksum                  # scapy recomputes it: the bytes must come out the same
    assert bytes(pkt) == got[1]
    assert answers.sctp_reply(sctp, _ipv4("10.0.0.9", "10.0.0.1", init), {83}, 1) is None
    ack = sctp.build_init_ack(40000, 82, 5, 6)
    assert answers.sctp_reply(sctp, _ipv4("10.0.0.9", "10.0.0.1", ack), {82}, 1) is None
    assert answers.sctp_reply(sctp, b"\x45junk", {82}, 1) is None
    corrupt = bytearray(init)
    corrupt[-1] ^= 0xFF
    assert answers.sctp_reply(sctp, _ipv4("10.0.0.9", "10.0.0.1", bytes(corrupt)), {82}, 1) is None


def test_load_sctp_codec_without_package_init():
    code = ("import sys; sys.path.insert(0, %r); import serve; c = serve.load_sctp_codec(); "
            "print(c.IPPROTO_SCTP, 'orchestrator.testbed' in sys.modules)"
            % os.path.dirname(AGNHOST))
    out = subprocess.run([sys.executable, "-S", "-E", "-c", code], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["132", "False"]


# -- the real process on loopback -----------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start():
    procs = []

    def run(script, *args):
        p = subprocess.Popen([sys.executable, "-S", "-E", script, "--bind", "127.0.0.1",
                              "--hostname", "web-0", *args], stderr=subprocess.PIPE)
        procs.append(p)
        return p

    yield run
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        p.stderr.close()


def _connect(port, deadline=5.0):
    end = time.monotonic() + deadline
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=2)
        except ConnectionRefusedError:
            if time.monotonic() > end:
                raise
            time.sleep(0.005)


def _recv_all(s) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def _get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
        return r.status, r.read().decode(), r.headers


def test_agnhost_tcp_greets_echoes_and_speaks_http(start):
    port = _free_port()
    start(AGNHOST, "--port", f"{port}/TCP", "--port", f"{port}/UDP")
    with _connect(port) as s:                       # silent client: greeted
        assert s.recv(100) == b"web-0\n"
        s.sendall(b"ping\n")
        assert s.recv(100) == b"ping\n"
    with _connect(port) as s:                       # talking client: pure echo
        s.sendall(b"hello\n")
        assert s.recv(100) == b"hello\n"
        big = os.urandom(300_000)
        s.sendall(big)
        s.shutdown(socket.SHUT_WR)
        assert _recv_all(s) == big
    assert _get(port, "/hostname")[:2] == (200, "web-0")
    assert _get(port, "/echo?msg=hi%21")[:2] == (200, "hi!")
    assert _get(port, "/clientip")[1].startswith("127.0.0.1:")
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(port, "/missing")
    assert err.value.code == 404
    req = urllib.request.Request(f"http://127.0.0.1:{port}/echo?msg=x", data=b"y" * 5000)
    with urllib.request.urlopen(req, timeout=3) as r:
        assert r.read() == b"x"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(3)
        u.sendto(b"hostname", ("127.0.0.1", port))
        assert u.recvfrom(100)[0] == b"web-0"
        u.sendto(b"\x01\x02", ("127.0.0.1", port))
        assert u.recvfrom(100)[0] == b"\x01\x02"


def test_exit_endpoint_and_sigterm(start):
    port = _free_port()
    p = start(AGNHOST, "--port", str(port))
    _connect(port).close()
    assert _get(port, "/exit?code=7")[0] == 200
    assert p.wait(timeout=5) == 7
    port = _free_port()
    p = start(AGNHOST, "--port", str(port))
    # The port accepts connections from listen() on, a moment before "serving" is logged:
    # a SIGTERM sent in between would end it before the line is written.
    assert b"serving" in p.stderr.readline()
    _connect(port).close()
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=5) == 0


def test_hostname_and_reply_modes(start):
    a, b = _free_port(), _free_port()
    start(AGNHOST, "--port", f"{a}/TCP/hostname", "--port", f"{b}/TCP/reply=porter says hi",
          "--port", f"{a}/UDP/hostname")
    with _connect(a) as s:
        assert _recv_all(s) == b"web-0\n"
    assert _get(b, "/whatever")[:2] == (200, "porter says hi")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(3)
        u.sendto(b"x", ("127.0.0.1", a))
        assert u.recvfrom(100)[0] == b"web-0"


def test_http_server_is_nginx_like(start):
    port = _free_port()
    start(HTTP_SERVER, "--port", str(port))
    _connect(port).close()
    status, body, headers = _get(port, "/")
    assert status == 200 and "web-0" in body and "nginx" in body
    assert headers["Server"].startswith("nginx")
    assert _get(port, "/hostname")[1] == "web-0\n"
    assert _get(port, "/healthz")[1] == "ok\n"
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(port, "/x")
    assert err.value.code == 404


def test_port_in_use_exits_2_with_reason(start):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        p = start(AGNHOST, "--port", str(busy.getsockname()[1]))
        assert p.wait(timeout=5) == 2
        assert b"Address already in use" in p.stderr.read()


def test_bad_arguments_exit_2(start):
    p = start(AGNHOST, "--port", "80/ICMP")
    assert p.wait(timeout=5) == 2
    assert b"protocol must be TCP, UDP or SCTP" in p.stderr.read()
