"""Answers of the built-in servers: UDP replies, HTTP pages, SCTP INIT-ACKs.

Pure (stdlib only, no sockets): serve.py feeds it what arrived and sends what it returns, and
unit tests call it directly. Lives beside serve.py so `python3 -S` scripts import it by name.
"""

from __future__ import annotations

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 413: "Payload Too Large"}
METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ")


def classify(buf: bytes):
    """First bytes of a TCP stream -> "http", "echo", or None while they could be either."""
    if buf.startswith(METHODS):
        return "http"
    if len(buf) < 8 and b"\n" not in buf and any(m.startswith(buf) for m in METHODS):
        return None
    return "echo"


def parse_request(buf: bytes, limit: int):
    """A complete HTTP request in ``buf`` -> (method, target); None while incomplete.

    A broken request gives (method or "GET", status) with the 4xx status to answer.
    """
    end, sep = buf.find(b"\r\n\r\n"), 4
    if end < 0:
        end, sep = buf.find(b"\n\n"), 2
    if end < 0:
        return ("GET", 413) if len(buf) > limit else None
    head = buf[:end].decode("latin-1").split("\n")
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            value = value.strip()
            length = int(value) if value.isdigit() else -1
    if length < 0:
        return "GET", 400
    if length > limit:
        return "GET", 413
    if len(buf) < end + sep + length:
        return None
    parts = head[0].strip().split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return "GET", 400
    return parts[0], parts[1]


def host_port(peer) -> str:
    """A client address as Go's RemoteAddr prints it (what agnhost /clientip answers):
    ip:port, [ipv6]:port; an IPv4 client of a dual-stack socket without its ::ffff: prefix."""
    ip = str(peer[0])
    if ip.startswith("::ffff:") and "." in ip:
        ip = ip[7:]
    return f"[{ip}]:{peer[1]}" if ":" in ip else f"{ip}:{peer[1]}"


def route(mode: str, target: str, peer, hostname: str):
    """-> (status, body, content type, exit code or None) for a TCP port's ``mode``.

    ``auto`` follows agnhost netexec: /, /hostname, /healthz, /clientip, /echo?msg=,
    /exit?code= (the server exits with that code once the answer is sent).
    """
    path, _, query = target.partition("?")
    if mode.startswith("reply="):
        return 200, mode[6:], "text/plain", None
    if mode == "http":
        return nginx_page(path, hostname) + (None,)
    if path in ("/", "/hostname"):
        return 200, hostname, "text/plain", None
    if path == "/healthz":
        return 200, "ok", "text/plain", None
    if path == "/clientip":
        return 200, host_port(peer), "text/plain", None
    if path == "/echo":
        return 200, query_arg(query, "msg"), "text/plain", None
    if path == "/exit":
        code = query_arg(query, "code") or "0"
        if not code.isdigit() or int(code) > 255:
            return 400, f"bad exit code {code!r}\n", "text/plain", None
        return 200, f"exiting with code {code}\n", "text/plain", int(code)
    return 404, "404 page not found\n", "text/plain", None


def http_response(method: str, status: int, body: str, ctype: str, mode: str) -> bytes:
    data = body.encode()
    server = "nginx (calinet)" if mode == "http" else "agnhost (calinet)"
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {ctype}; charset=utf-8\r\nContent-Length: {len(data)}\r\n"
            f"Server: {server}\r\nConnection: close\r\n\r\n")
    return head.encode() + (b"" if method == "HEAD" else data)


def sctp_reply(codec, datagram: bytes, ports: set[int], tag: int):
    """INIT to a served port -> (peer_ip, INIT-ACK with our initiate ``tag``); else None.

    ``codec`` is orchestrator/traffic/sctp.py, passed in because the scripts load it by path.
    """
    try:
        src_ip, _dst_ip, payload = codec.strip_ipv4(datagram)
        src, dst, _vtag, chunks = codec.parse(payload)
        if dst not in ports or not chunks or chunks[0].type != codec.INIT:
            return None
        peer_tag = codec.parse_init(chunks[0]).initiate_tag
    except codec.ValidationError:
        return None
    return src_ip, codec.build_init_ack(dst, src, peer_tag, tag)


def udp_reply(data: bytes, peer, mode: str, hostname: str) -> bytes:
    if mode == "hostname":
        return hostname.encode()
    cmd = data.strip()
    if cmd == b"hostname":
        return hostname.encode()
    if cmd == b"clientip":
        return host_port(peer).encode()
    if cmd.startswith(b"echo "):
        return cmd[5:]
    return data


def nginx_page(path: str, hostname: str) -> tuple[int, str, str]:
    if path in ("/", "/index.html"):
        return 200, (f"<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n"
                     f"<body><h1>Welcome to nginx!</h1>\n<p>Served by pod {hostname}.</p>"
                     f"</body></html>\n"), "text/html"
    if path == "/hostname":
        return 200, hostname + "\n", "text/plain"
    if path == "/healthz":
        return 200, "ok\n", "text/plain"
    return 404, ("<html><head><title>404 Not Found</title></head><body>"
                 "<center><h1>404 Not Found</h1></center></body></html>\n"), "text/html"


def query_arg(query: str, name: str) -> str:
    if not query:
        return ""
    from urllib.parse import parse_qs  # lazy: only /echo and /exit need it
    values = parse_qs(query, keep_blank_values=True).get(name)
    return values[0] if values else ""
