"""The programs of built-in images: their argv (after Kubernetes command/args rules) -> what runs.

Pure. agnhost subcommands (netexec, serve-hostname, porter, pause; any other subcommand
serves the container ports), nginx/httpd (the nginx-like server on the container's TCP ports,
default 80), iperf3 (the host's iperf3) and pause become an ImageProgram whose argv starts
our own server script (serve.py's port specs) with the interpreter this process runs on.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from orchestrator.errors import ValidationError

HERE = os.path.dirname(os.path.abspath(__file__))
AGNHOST = os.path.join(HERE, "agnhost.py")
HTTP_SERVER = os.path.join(HERE, "http_server.py")
ZYGOTE = os.path.join(HERE, "zygote.py")
SCRIPT_MODES = {AGNHOST: "", HTTP_SERVER: "http"}   # serve.main's default_mode per script


class ImageError(ValidationError):
    """A container cannot be started from its image/command; ``reason`` is the kubelet's
    waiting reason (ErrImagePull for an unknown image, CreateContainerConfigError for env
    that cannot be built, CreateContainerError for arguments the built-in cannot honour)."""

    def __init__(self, message: str, *, reason: str = "ErrImagePull", obj: str | None = None,
                 field: str | None = None):
        self.reason = reason
        super().__init__(message, obj=obj, field=field)


@dataclass
class ImageProgram:
    """What a container runs: argv and its environment (the container's own variables;
    the runtime adds PATH/HOME). ``ready_socket`` ("TCP", 80) marks the socket whose
    listening makes the container ready; None means ready once running. ``serve_args``
    (not None) marks one of our built-in servers: the runtime may fork it from its zygote as
    serve.main(serve_args, serve_mode) instead of exec'ing ``argv`` (which means the same)."""
    argv: list[str]
    env: dict[str, str]
    image: str = ""
    ready_socket: tuple[str, int] | None = None
    serve_args: list[str] | None = None
    serve_mode: str = ""


@dataclass(frozen=True)
class Context:
    """What a program builder may look at: the container, already validated and expanded."""
    image: str
    hostname: str
    ports: tuple[tuple[int, str], ...]      # (containerPort, protocol) in spec order
    env: dict[str, str]
    obj: str                                # "Pod default/web-0 container app" for errors
    field: str                              # "spec.containers[0]"

    def error(self, message: str, subfield: str = "args",
              reason: str = "CreateContainerError") -> ImageError:
        return ImageError(message, reason=reason, obj=self.obj, field=f"{self.field}.{subfield}")


def server(ctx: Context, specs: list[str], script: str = AGNHOST) -> ImageProgram:
    """Our server script serving ``specs`` ("80/TCP", "81/UDP/hostname"...)."""
    args = ["--hostname", ctx.hostname]
    for s in specs:
        args += ["--port", s]
    # The first TCP port (else UDP) listening is the sign the server is up.
    parsed = [(s.split("/") + ["TCP"])[:2] for s in specs]
    ready = next(((proto, int(p)) for proto in ("TCP", "UDP") for p, pr in parsed
                  if pr == proto), None)
    return ImageProgram([sys.executable, "-S", "-E", script, *args], dict(ctx.env), ctx.image,
                        ready, serve_args=args, serve_mode=SCRIPT_MODES[script])


def container_ports(ctx: Context, default: list[str] | None = None) -> list[str]:
    return [f"{p}/{proto}" for p, proto in ctx.ports] or list(default or [])


def parse_flags(args: list[str], spec: dict, ctx: Context, what: str) -> dict:
    """pflag/Go flag style: --name=v, --name v, -name v; bool flags alone mean true.

    ``spec`` maps flag name -> default (its type decides parsing). Unknown flags are an
    error naming the supported ones, since silently ignoring one would change behaviour.
    """
    values = dict(spec)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg in ("-", "--"):
            raise ctx.error(f"{what}: unexpected argument {arg!r}")
        name, eq, value = arg.lstrip("-").partition("=")
        if name not in spec:
            raise ctx.error(f"{what}: flag --{name} is not supported by calinet's built-in "
                            f"agnhost (supported: {', '.join('--' + k for k in spec) or 'none'})")
        default = spec[name]
        if isinstance(default, bool):
            if eq and value.lower() not in ("true", "false", "1", "0"):
                raise ctx.error(f"{what}: --{name} wants true or false, not {value!r}")
            values[name] = (value.lower() in ("true", "1")) if eq else True
        else:
            if not eq:
                i += 1
                if i >= len(args):
                    raise ctx.error(f"{what}: --{name} needs a value")
                value = args[i]
            if isinstance(default, int):
                try:
                    values[name] = int(value)
                except ValueError:
                    raise ctx.error(f"{what}: --{name} wants a number, not {value!r}") from None
            else:
                values[name] = value
        i += 1
    return values


def _port(ctx: Context, what: str, flag: str, value: int) -> int:
    if not 1 <= value <= 65535:
        raise ctx.error(f"{what}: --{flag}={value} is not a port (1..65535)")
    return value


def agnhost(args: list[str], ctx: Context) -> ImageProgram:
    sub = args[0] if args else None
    rest = args[1:]
    if sub == "netexec":
        f = parse_flags(rest, {"http-port": 8080, "udp-port": 8081, "sctp-port": -1,
                               "delay-shutdown": 0}, ctx, "agnhost netexec")
        specs = [f"{_port(ctx, 'netexec', 'http-port', f['http-port'])}/TCP"]
        if f["udp-port"] != -1:
            specs.append(f"{_port(ctx, 'netexec', 'udp-port', f['udp-port'])}/UDP")
        if f["sctp-port"] != -1:
            specs.append(f"{_port(ctx, 'netexec', 'sctp-port', f['sctp-port'])}/SCTP")
        return server(ctx, specs)
    if sub == "serve-hostname":
        return serve_hostname(rest, ctx)
    if sub == "porter":
        return porter(rest, ctx)
    if sub == "pause":
        parse_flags(rest, {}, ctx, "agnhost pause")
        return server(ctx, [])
    # No subcommand, or one we do not emulate (test-webserver, dns-server...): serve the
    # declared ports, which is what probes of such a pod expect to find open.
    return server(ctx, container_ports(ctx))


def serve_hostname(args: list[str], ctx: Context) -> ImageProgram:
    f = parse_flags(args, {"port": 9376, "tcp": False, "udp": False, "http": True,
                           "close": False}, ctx, "agnhost serve-hostname")
    port = _port(ctx, "serve-hostname", "port", f["port"])
    specs = []
    if f["tcp"]:
        specs.append(f"{port}/TCP/hostname")
    elif f["http"]:
        specs.append(f"{port}/TCP/reply={ctx.hostname}")
    if f["udp"]:
        specs.append(f"{port}/UDP/hostname")
    if not specs:
        raise ctx.error("agnhost serve-hostname: --tcp, --udp and --http are all off")
    return server(ctx, specs)


def porter(args: list[str], ctx: Context) -> ImageProgram:
    """agnhost porter: SERVE_PORT_<n>=<text> answers <text> over HTTP on port n,
    SERVE_SCTP_PORT_<n> opens SCTP port n; TLS ports are not emulated."""
    parse_flags(args, {}, ctx, "agnhost porter")
    specs = []
    for name, value in ctx.env.items():
        for prefix, proto in (("SERVE_PORT_", "TCP"), ("SERVE_SCTP_PORT_", "SCTP"),
                              ("SERVE_TLS_PORT_", "TLS")):
            if not name.startswith(prefix):
                continue
            num = name[len(prefix):]
            if not num.isdigit() or not 1 <= int(num) <= 65535:
                raise ctx.error(f"agnhost porter: {name} does not end in a port number", "env")
            if proto == "TLS":
                raise ctx.error(f"agnhost porter: {name}: TLS ports are not emulated", "env")
            specs.append(f"{int(num)}/TCP/reply={value}" if proto == "TCP" else f"{int(num)}/SCTP")
    if not specs:
        raise ctx.error("agnhost porter: no SERVE_PORT_<n> environment variable", "env")
    return server(ctx, specs)


def nginx(args: list[str], ctx: Context) -> ImageProgram:
    """nginx/httpd flags (-g 'daemon off;', -c file) configure a server we do not run: the
    nginx-like server takes the container's TCP ports (80 when none are declared)."""
    ports = [str(p) for p, proto in ctx.ports if proto == "TCP"] or ["80"]
    return server(ctx, ports, HTTP_SERVER)


def pause(args: list[str], ctx: Context) -> ImageProgram:
    return server(ctx, [])


def iperf3(args: list[str], ctx: Context) -> ImageProgram:
    """The host's iperf3 as given; a server (-s) is ready once it listens on its -p port."""
    ready = None
    if "-s" in args or "--server" in args:
        port = 5201
        for i, a in enumerate(args):
            value = None
            if a in ("-p", "--port") and i + 1 < len(args):
                value = args[i + 1]
            elif a.startswith("--port="):
                value = a[7:]
            elif a.startswith("-p") and len(a) > 2 and not a.startswith("--"):
                value = a[2:]
            if value is not None:
                if not value.isdigit() or not 1 <= int(value) <= 65535:
                    raise ctx.error(f"iperf3: port {value!r} is not 1..65535")
                port = int(value)
        ready = ("TCP", port)
    return ImageProgram(["iperf3", *args], dict(ctx.env), ctx.image, ready)


def iperf3_default_args(ctx: Context) -> list[str]:
    port = next((p for p, proto in ctx.ports if proto == "TCP"), 5201)
    return ["-s", "-p", str(port)]


REPO_ROOT = os.path.dirname(os.path.dirname(HERE))


def coredns(args: list[str], ctx: Context) -> ImageProgram:
    """The cluster DNS server (orchestrator.dns.server) in place of CoreDNS; it reads the state
    store named by the container's CALINET_STORE variable (the testbed sets it)."""
    store = ctx.env.get("CALINET_STORE")
    if not store:
        raise ctx.error("the coredns image needs env CALINET_STORE (the testbed's state.db)",
                        subfield="env", reason="CreateContainerConfigError")
    port = next((p for p, proto in ctx.ports if proto == "UDP"), 53)
    env = {**ctx.env, "PYTHONPATH": REPO_ROOT}
    return ImageProgram([sys.executable, "-m", "orchestrator.dns.server", "--store", store,
                         "--port", str(port)], env, ctx.image, ("UDP", port))


BUILDERS = {
    "coredns": coredns,
    "agnhost": agnhost,
    "netexec": lambda args, ctx: agnhost(["netexec", *args], ctx),
    "porter": lambda args, ctx: agnhost(["porter", *args], ctx),
    "serve_hostname": lambda args, ctx: agnhost(["serve-hostname", *args], ctx),
    "serve-hostname": lambda args, ctx: agnhost(["serve-hostname", *args], ctx),
    "nginx": nginx,
    "httpd": nginx,
    "httpd-foreground": nginx,
    "pause": pause,
    "iperf3": iperf3,
}
