"""Built-in container server: TCP, UDP and SCTP ports in one selectors loop (agnhost/nginx-like).

Runs as its own process inside a pod's network namespace, started through agnhost.py or
http_server.py as `python3 -S -E <script>`; stdlib only (plus orchestrator/traffic/sctp.py, loaded
only when an SCTP port is served) so a pod's server starts in milliseconds. Touches: the
sockets it binds (TCP/UDP on the given ports, one raw IPPROTO_SCTP socket when SCTP ports are
served) and stderr, its log.

Port spec: PORT[/PROTO[/MODE]]. TCP modes: ``auto`` (default: an HTTP request gets the
agnhost netexec endpoints, other bytes are echoed, a client silent for 50 ms is greeted with
the hostname line), ``http`` (nginx-like pages), ``hostname`` (write the hostname, close),
``reply=TEXT`` (HTTP answering TEXT on every path, agnhost porter). UDP modes: ``echo``
(default: "hostname"/"clientip"/"echo X" as agnhost netexec, anything else echoed) and
``hostname``. SCTP: INIT to a served port is answered with INIT-ACK, everything else ignored
(several processes of one pod may each hold a raw socket and see every packet).
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
import time

if __package__:             # imported as orchestrator.images.serve (tests, the runtime)
    from . import answers
else:                       # run as a script: its directory is sys.path[0]
    import answers

GREET_DELAY = 0.05          # seconds a TCP client may stay silent before it is greeted
MAX_REQUEST = 1 << 20       # HTTP header + body bytes we are willing to buffer
TCP_MODES = ("auto", "http", "hostname")
UDP_MODES = ("echo", "hostname")


class UsageError(Exception):
    """Bad command line; main() reports it and exits 2."""


def parse_port(spec: str) -> tuple[int, str, str]:
    """"80", "81/UDP", "80/TCP/http", "80/TCP/reply=a/b" -> (port, PROTO, mode)."""
    parts = spec.split("/", 2)
    try:
        port = int(parts[0])
    except ValueError:
        raise UsageError(f"--port {spec!r}: port must be a number") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {spec!r}: port must be 1..65535")
    proto = parts[1].upper() if len(parts) > 1 else "TCP"
    defaults = {"TCP": "auto", "UDP": "echo", "SCTP": ""}
    if proto not in defaults:
        raise UsageError(f"--port {spec!r}: protocol must be TCP, UDP or SCTP")
    mode = parts[2] if len(parts) > 2 else defaults[proto]
    ok = {"TCP": TCP_MODES, "UDP": UDP_MODES, "SCTP": ("",)}[proto]
    if mode not in ok and not (proto == "TCP" and mode.startswith("reply=")):
        raise UsageError(f"--port {spec!r}: mode {mode!r} is not one of {ok} for {proto}")
    return port, proto, mode


def parse_args(argv: list[str], default_mode: str = "") -> dict:
    """Hand-rolled (argparse costs more than the whole server's startup)."""
    opts = {"hostname": os.environ.get("HOSTNAME") or socket.gethostname(),
            "bind": "", "ports": []}
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name not in ("--port", "--hostname", "--bind"):
            raise UsageError(f"unknown argument {arg!r} (expected --port, --hostname, --bind)")
        if not eq:
            value = next(it, None)
            if value is None:
                raise UsageError(f"{name} needs a value")
        if name == "--port":
            if default_mode and "/" not in value:
                value = f"{value}/TCP/{default_mode}"
            opts["ports"].append(parse_port(value))
        else:
            opts[name[2:]] = value
    seen = set()
    for port, proto, _ in opts["ports"]:
        if (port, proto) in seen:
            raise UsageError(f"port {port}/{proto} given twice")
        seen.add((port, proto))
    return opts


def _log(text: str) -> None:
    os.write(2, (text + "\n").encode(errors="replace"))


class Conn:
    """One accepted TCP connection."""

    __slots__ = ("sock", "peer", "mode", "kind", "inbuf", "outbuf", "closing", "greet_at",
                 "exit_code")

    def __init__(self, sock, peer, mode, now):
        self.sock = sock
        self.peer = peer
        self.mode = mode
        self.kind = None            # None until we know: "http" or "echo"
        self.inbuf = b""
        self.outbuf = b""
        self.closing = False        # close once outbuf is flushed
        self.greet_at = now + GREET_DELAY if mode == "auto" else None
        self.exit_code = None       # /exit?code=N: exit once the answer is out


class Server:
    def __init__(self, hostname: str, ports: list[tuple[int, str, str]], bind: str = ""):
        """``bind`` "": every address of both families (as agnhost's Go `:port` listener:
        one IPv6 socket that takes IPv4 too), or IPv4 only where IPv6 is off."""
        self.hostname = hostname
        self.ports = ports
        self.bind = bind
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        self.sctp_ports: set[int] = set()
        self.sctp = None            # the codec module, loaded on demand
        self.exit_code: int | None = None

    # -- setup -----------------------------------------------------------------------------

    def open(self) -> None:
        for port, proto, mode in self.ports:
            try:
                if proto == "TCP":
                    s = self._socket(socket.SOCK_STREAM, port)
                    s.listen(128)
                    s.setblocking(False)
                    self.sel.register(s, selectors.EVENT_READ, (self._accept, mode))
                elif proto == "UDP":
                    s = self._socket(socket.SOCK_DGRAM, port)
                    s.setblocking(False)
                    self.sel.register(s, selectors.EVENT_READ, (self._datagram, mode))
                else:
                    self.sctp_ports.add(port)
            except OSError as exc:
                raise UsageError(f"cannot serve {port}/{proto}: {exc.strerror}") from None
        if self.sctp_ports:
            self.sctp = load_sctp_codec()
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_RAW, self.sctp.IPPROTO_SCTP)
            except OSError as exc:
                raise UsageError(f"cannot open a raw SCTP socket: {exc.strerror}") from None
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, (self._sctp_packet, ""))
        served = " ".join(f"{p}/{pr}" + (f"({m})" if m not in ("", "auto", "echo") else "")
                          for p, pr, m in self.ports)
        _log(f"serving {served or 'nothing (paused)'} as {self.hostname}")

    def _socket(self, kind: int, port: int) -> socket.socket:
        bind = self.bind
        if bind in ("", "::"):
            try:
                s = socket.socket(socket.AF_INET6, kind)
                if bind == "":
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:        # no IPv6 here: IPv4 only
                if bind == "::":
                    raise
                s, bind = socket.socket(socket.AF_INET, kind), "0.0.0.0"
            else:
                bind = "::"
        else:
            s = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, kind)
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind, port))
        except OSError:
            s.close()
            raise
        return s

    # -- loop ------------------------------------------------------------------------------

    def run(self) -> int:
        while self.exit_code is None:
            now = time.monotonic()
            due = [c.greet_at for c in self.conns.values() if c.greet_at is not None]
            timeout = max(0.0, min(due) - now) if due else None
            for key, mask in self.sel.select(timeout):
                handler, mode = key.data
                handler(key.fileobj, mask, mode)
            now = time.monotonic()
            for c in list(self.conns.values()):
                if c.greet_at is not None and c.greet_at <= now:
                    c.greet_at = None
                    c.kind = "echo"
                    self._send(c, self.hostname.encode() + b"\n")
        return self.exit_code

    # -- TCP -------------------------------------------------------------------------------

    def _accept(self, lsock, _mask, mode) -> None:
        while True:
            try:
                sock, peer = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:   # e.g. EMFILE: keep serving the connections we have
                _log(f"accept: {exc}")
                return
            sock.setblocking(False)
            c = Conn(sock, peer, mode, time.monotonic())
            self.conns[sock.fileno()] = c
            self.sel.register(sock, selectors.EVENT_READ, (self._conn_event, c))
            if mode == "hostname":
                c.closing = True
                self._send(c, self.hostname.encode() + b"\n")

    def _conn_event(self, sock, mask, c: Conn) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(c)
        if mask & selectors.EVENT_READ and sock.fileno() in self.conns:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._close(c)
                return
            if not data:
                c.closing = True
                c.greet_at = None
                if not c.outbuf:
                    self._close(c)
                return
            self._received(c, data)

    def _received(self, c: Conn, data: bytes) -> None:
        c.greet_at = None
        if c.mode == "hostname":
            return      # the answer is already on its way; the client has nothing to say
        if c.kind == "echo":
            self._send(c, data)
            return
        c.inbuf += data
        if c.kind is None:
            c.kind = answers.classify(c.inbuf)
            if c.kind is None:
                return      # could still become an HTTP request line
            if c.kind == "echo" and c.mode != "auto":
                c.kind = "http"   # http/reply ports answer a non-HTTP client with 400
            if c.kind == "echo":
                buf, c.inbuf = c.inbuf, b""
                self._send(c, buf)
                return
        self._http(c)

    def _http(self, c: Conn) -> None:
        req = answers.parse_request(c.inbuf, MAX_REQUEST)
        if req is None:
            return      # incomplete; the body too, since closing on unread data resets the answer
        method, target = req
        if isinstance(target, int):
            status, body, ctype, code = target, "bad request\n", "text/plain", None
        else:
            status, body, ctype, code = answers.route(c.mode, target, c.peer, self.hostname)
            _log(f'{answers.host_port(c.peer).rsplit(":", 1)[0].strip("[]")} '
                 f'"{method} {target}" {status} {len(body)}')
        c.exit_code = code
        c.closing = True
        c.inbuf = b""
        self._send(c, answers.http_response(method, status, body, ctype, c.mode))

    def _send(self, c: Conn, data: bytes) -> None:
        c.outbuf += data
        self._flush(c)

    def _flush(self, c: Conn) -> None:
        if c.outbuf:
            try:
                n = c.sock.send(c.outbuf)
                c.outbuf = c.outbuf[n:]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._close(c)
                return
        if c.outbuf:
            self.sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE,
                            (self._conn_event, c))
            return
        if c.closing:
            if c.exit_code is not None:
                self.exit_code = c.exit_code
            self._close(c)
        elif self.sel.get_key(c.sock).events & selectors.EVENT_WRITE:
            self.sel.modify(c.sock, selectors.EVENT_READ, (self._conn_event, c))

    def _close(self, c: Conn) -> None:
        if self.conns.pop(c.sock.fileno(), None) is None:
            return
        self.sel.unregister(c.sock)
        c.sock.close()

    # -- UDP -------------------------------------------------------------------------------

    def _datagram(self, sock, _mask, mode) -> None:
        while True:
            try:
                data, peer = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:       # e.g. a queued ICMP error from an earlier reply
                continue
            try:
                sock.sendto(answers.udp_reply(data, peer, mode, self.hostname), peer)
            except OSError as exc:
                _log(f"udp reply to {peer[0]}:{peer[1]}: {exc.strerror}")

    # -- SCTP ------------------------------------------------------------------------------

    def _sctp_packet(self, sock, _mask, _mode) -> None:
        while True:
            try:
                datagram = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            tag = int.from_bytes(os.urandom(4), "big") or 1
            reply = answers.sctp_reply(self.sctp, datagram, self.sctp_ports, tag)
            if reply is not None:
                try:
                    sock.sendto(reply[1], (reply[0], 0))
                except OSError as exc:
                    _log(f"sctp reply to {reply[0]}: {exc.strerror}")


def load_sctp_codec():
    """Import orchestrator/traffic/sctp.py without running orchestrator/__init__.py.

    We run with -S (no site-packages) and the package's __init__ may import the whole
    testbed; a bare package object whose __path__ points at the directory lets
    `orchestrator.traffic.sctp` and its `orchestrator.errors` import load alone.
    """
    import importlib
    import types
    pkg_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if "orchestrator" not in sys.modules:
        pkg = types.ModuleType("orchestrator")
        pkg.__path__ = [pkg_dir]
        sys.modules["orchestrator"] = pkg
    return importlib.import_module("orchestrator.traffic.sctp")


def main(argv: list[str] | None = None, default_mode: str = "", on_listening=None) -> int:
    """Entry point of the agnhost/http_server scripts; returns the process exit code.
    ``on_listening()`` is called once every socket is open (the zygote's ready signal)."""
    def stop(signum, _frame):
        raise SystemExit(0)     # like agnhost pause: SIGTERM is a clean exit

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv, default_mode)
        server = Server(opts["hostname"], opts["ports"], opts["bind"])
        server.open()
    except UsageError as exc:
        _log(f"error: {exc}")
        return 2
    if on_listening is not None:
        on_listening()
    return server.run()
