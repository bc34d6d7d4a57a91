"""A minimal rtnetlink client: configure fresh sandboxes without forking `ip` or `sysctl`.

Side effects: links, addresses, routes and sysctls inside one network namespace (the netlink
socket is created inside it by a setns thread, and stays bound to it; sysctls are written to
/proc/sys/net by that thread, which resolves them in its own namespace). Only what the CNI
needs. Pod side: lo and eth0 up, the pod IP as /32, `169.254.1.1 dev eth0 scope link`,
`default via 169.254.1.1`. Node side: each new host veth gets its MAC and goes up, its
`<pod IP>/32 dev caliX scope link` route and its proxy_arp/forwarding/... sysctls. At hundreds
of pods the `ip -batch` forks were the largest single cost of bring-up, and with a few pods the
node's two forks were most of a new pod's way to its policy; netlink messages in one send cost
microseconds.
"""

from __future__ import annotations

import os
import socket
import struct

from orchestrator.errors import ApplyError
from orchestrator.host.netns import netns_path, run_in

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x400
NLMSG_ERROR = 2
IFF_UP = 0x1
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFLA_ADDRESS = 1
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _msg(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def link_up(index: int, seq: int) -> bytes:
    # ifinfomsg: family, pad, type, index, flags, change
    return _msg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq,
                struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP))


def link_up_with_mac(index: int, mac: str, seq: int) -> bytes:
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)
    body += _attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
    return _msg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def addr_add(index: int, ip: str, seq: int) -> bytes:
    a = socket.inet_aton(ip)
    body = struct.pack("=BBBBI", socket.AF_INET, 32, 0, RT_SCOPE_UNIVERSE, index)
    body += _attr(IFA_LOCAL, a) + _attr(IFA_ADDRESS, a)
    return _msg(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq, body)


def route_replace(index: int, seq: int, *, dst: str | None = None, gateway: str | None = None) -> bytes:
    scope = RT_SCOPE_LINK if gateway is None else RT_SCOPE_UNIVERSE
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, 32 if dst else 0, 0, 0, RT_TABLE_MAIN,
                       RTPROT_BOOT, scope, RTN_UNICAST, 0)
    if dst:
        body += _attr(RTA_DST, socket.inet_aton(dst))
    if gateway:
        body += _attr(RTA_GATEWAY, socket.inet_aton(gateway))
    body += _attr(RTA_OIF, struct.pack("=I", index))
    return _msg(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq, body)


def pod_messages(ip: str, gateway: str, lo: int, eth0: int) -> list[bytes]:
    """Pure: the requests, in the order `ip -batch` would run them (seq 1..5)."""
    return [link_up(lo, 1), link_up(eth0, 2), addr_add(eth0, ip, 3),
            route_replace(eth0, 4, dst=gateway), route_replace(eth0, 5, gateway=gateway)]


def host_messages(veths: list[tuple[int, str]], mac: str) -> list[bytes]:
    """Pure: per host veth (index, pod IP), as the node batch `link set <v> address <mac>`,
    `link set <v> up`, `route replace <ip>/32 dev <v> scope link` (seq 1, 2 for the first)."""
    out = []
    for n, (index, ip) in enumerate(veths):
        out += [link_up_with_mac(index, mac, 2 * n + 1),
                route_replace(index, 2 * n + 2, dst=ip)]
    return out


def parse_acks(data: bytes) -> dict[int, int]:
    """seq -> errno (0 = success) of the NLMSG_ERROR acknowledgements in ``data``."""
    out, off = {}, 0
    while off + 16 <= len(data):
        length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
        if length < 16:
            break
        if kind == NLMSG_ERROR:
            out[seq] = -struct.unpack_from("=i", data, off + 16)[0]
        off += (length + 3) & ~3
    return out


def _exchange(sock, msgs: list[bytes], timeout: float) -> dict[int, int]:
    """Send every request in one write, collect one ack per request; closes the socket."""
    try:
        sock.settimeout(timeout)
        sock.sendall(b"".join(msgs))
        acks: dict[int, int] = {}
        while len(acks) < len(msgs):
            acks.update(parse_acks(sock.recv(65536)))
        return acks
    finally:
        sock.close()


def _open(iface: str):
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    return sock, socket.if_nametoindex("lo"), socket.if_nametoindex(iface)


def configure_pod(netns: str, ip: str, gateway: str, iface: str = "eth0",
                  timeout: float = 5.0) -> None:
    """Bring up lo/iface, add ip/32, the link-scope gateway route and the default route."""
    sock, lo, idx = run_in(netns_path(netns), _open, iface)
    msgs = pod_messages(ip, gateway, lo, idx)
    try:
        acks = _exchange(sock, msgs, timeout)
    except OSError as exc:
        raise ApplyError(f"netlink in {netns}: {exc}", _describe(ip, gateway, iface)) from exc
    failed = {seq: err for seq, err in acks.items() if err}
    if failed:
        what = {1: "lo up", 2: f"{iface} up", 3: f"addr {ip}/32", 4: f"route {gateway}",
                5: "default route"}
        detail = ", ".join(f"{what.get(s, s)}: {os.strerror(e)}" for s, e in sorted(failed.items()))
        raise ApplyError(f"netlink in {netns}: {detail}", _describe(ip, gateway, iface))


def _open_node(veths: list[str], sysctls: dict[str, str]):
    """Runs in the node's namespace: write the sysctls, open the socket, resolve the veths."""
    for key, value in sysctls.items():
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    return sock, [socket.if_nametoindex(v) for v in veths]


def configure_hosts(pid: int, veths: list[tuple[str, str]], mac: str,
                    sysctls: dict[str, str], timeout: float = 5.0) -> None:
    """Host side of fresh veths in the node ``pid``: sysctls, MAC + up, the /32 route each."""
    text = _describe_hosts(veths, mac, sysctls)
    try:
        sock, indexes = run_in(netns_path(pid=pid), _open_node, [v for v, _ in veths], sysctls)
    except OSError as exc:
        raise ApplyError(f"node pid {pid}: {exc}", text) from exc
    msgs = host_messages(list(zip(indexes, [ip for _, ip in veths])), mac)
    try:
        acks = _exchange(sock, msgs, timeout)
    except OSError as exc:
        raise ApplyError(f"netlink in node pid {pid}: {exc}", text) from exc
    failed = {seq: err for seq, err in acks.items() if err}
    if failed:
        def what(seq):
            v, ip = veths[(seq - 1) // 2]
            return f"{v} address/up" if seq % 2 else f"route {ip}/32 dev {v}"
        detail = ", ".join(f"{what(s)}: {os.strerror(e)}" for s, e in sorted(failed.items()))
        raise ApplyError(f"netlink in node pid {pid}: {detail}", text)


def _describe_hosts(veths, mac: str, sysctls: dict[str, str]) -> str:
    lines = [f"sysctl -w {k}={v}" for k, v in sysctls.items()]
    for v, ip in veths:
        lines += [f"link set {v} address {mac}", f"link set {v} up",
                  f"route replace {ip}/32 dev {v} scope link"]
    return "".join(line + "\n" for line in lines)


def _describe(ip: str, gateway: str, iface: str) -> str:
    return (f"link set lo up\nlink set {iface} up\naddr add {ip}/32 dev {iface}\n"
            f"route replace {gateway} dev {iface} scope link\n"
            f"route replace default via {gateway} dev {iface}\n")
