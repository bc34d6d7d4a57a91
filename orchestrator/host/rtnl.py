"""A minimal rtnetlink client: configure fresh sandboxes without forking `ip` or `sysctl`.

Side effects: links, addresses, routes and sysctls inside one network namespace (the netlink
socket is created inside it by a setns thread, and stays bound to it; sysctls are written to
/proc/sys/net by that thread, which resolves them in its own namespace). Only what the CNI
needs. Pod side: lo and eth0 up, an IPv4 address as /32 with `169.254.1.1 dev eth0 scope
link` and `default via 169.254.1.1`, an IPv6 one as /128 with `default via <host veth
link-local>` (DAD off first, as Calico's CNI). Node side: each new host veth gets its MAC and
goes up, its `<pod IP>/32` (`/128`) `dev caliX` routes and its proxy_arp/proxy_ndp/forwarding/...
sysctls. At hundreds
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


def _family(ip: str) -> tuple[int, int, bytes]:
    """(address family, full prefix length, packed address) of an IPv4 or IPv6 address."""
    if ":" in ip:
        return socket.AF_INET6, 128, socket.inet_pton(socket.AF_INET6, ip)
    return socket.AF_INET, 32, socket.inet_aton(ip)


def addr_add(index: int, ip: str, seq: int) -> bytes:
    fam, plen, a = _family(ip)
    body = struct.pack("=BBBBI", fam, plen, 0, RT_SCOPE_UNIVERSE, index)
    body += _attr(IFA_LOCAL, a) + _attr(IFA_ADDRESS, a)
    return _msg(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq, body)


def route_replace(index: int, seq: int, *, dst: str | None = None, gateway: str | None = None) -> bytes:
    """``dst``/full-length (or the default route) dev ``index``, via ``gateway`` if given."""
    fam, plen, _ = _family(dst or gateway)
    # IPv6 routes have no scope (the kernel ignores it); IPv4 device routes are link scope.
    scope = RT_SCOPE_LINK if gateway is None and fam == socket.AF_INET else RT_SCOPE_UNIVERSE
    body = struct.pack("=BBBBBBBBI", fam, plen if dst else 0, 0, 0, RT_TABLE_MAIN,
                       RTPROT_BOOT, scope, RTN_UNICAST, 0)
    if dst:
        body += _attr(RTA_DST, _family(dst)[2])
    if gateway:
        body += _attr(RTA_GATEWAY, _family(gateway)[2])
    body += _attr(RTA_OIF, struct.pack("=I", index))
    return _msg(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq, body)


def pod_requests(ips, gateway: str, gateway6: str, lo: int, eth0: int) -> list[tuple[str, bytes]]:
    """Pure: (what, request) in the order `ip -batch` would run them, seq 1, 2, ...: lo and
    eth0 up, then per address (IPv4 /32: link route to ``gateway``, default via it; IPv6 /128:
    default via ``gateway6``, the host veth's link-local address)."""
    steps: list[tuple[str, object]] = [("lo up", lambda q: link_up(lo, q)),
                                       ("eth0 up", lambda q: link_up(eth0, q))]
    for ip in ips:
        steps.append((f"addr {ip}", lambda q, ip=ip: addr_add(eth0, ip, q)))
        if ":" in ip:
            steps.append(("IPv6 default route", lambda q: route_replace(eth0, q, gateway=gateway6)))
        else:
            steps += [(f"route {gateway}", lambda q: route_replace(eth0, q, dst=gateway)),
                      ("default route", lambda q: route_replace(eth0, q, gateway=gateway))]
    return [(what, make(seq)) for seq, (what, make) in enumerate(steps, 1)]


def pod_messages(ip: str, gateway: str, lo: int, eth0: int) -> list[bytes]:
    """Pure: the requests for an IPv4-only pod (seq 1..5)."""
    return [m for _, m in pod_requests([ip], gateway, "", lo, eth0)]


def host_requests(veths: list[tuple[int, str, tuple]], mac: str) -> list[tuple[str, bytes]]:
    """Pure: per host veth (index, name, pod IPs), as the node batch `link set <v> address
    <mac>`, `link set <v> up`, then `route replace <ip>/32 dev <v> scope link` (/128 for
    IPv6) per address; seq 1, 2, ... in that order."""
    steps = []
    for index, name, ips in veths:
        steps.append((f"{name} address/up", lambda q, i=index: link_up_with_mac(i, mac, q)))
        steps += [(f"route {ip} dev {name}", lambda q, i=index, ip=ip: route_replace(i, q, dst=ip))
                  for ip in ips]
    return [(what, make(seq)) for seq, (what, make) in enumerate(steps, 1)]


def host_messages(veths: list[tuple[int, str]], mac: str) -> list[bytes]:
    """Pure: host_requests for IPv4-only pods given as (index, pod IP)."""
    return [m for _, m in host_requests([(i, str(i), (ip,)) for i, ip in veths], mac)]


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


def _write_sysctls(sysctls: dict[str, str]) -> None:
    for key, value in sysctls.items():
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)


def _open(iface: str, sysctls: dict[str, str]):
    _write_sysctls(sysctls)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    return sock, socket.if_nametoindex("lo"), socket.if_nametoindex(iface)


def pod_sysctls(ips, iface: str = "eth0") -> dict[str, str]:
    """What Calico's CNI writes in an IPv6 pod's namespace before its links go up: IPv6 on
    (all, default, lo; without it eth0 gets no link-local address) and no DAD on eth0 (it
    would hold the address tentative for a second on a point-to-point link)."""
    if not any(":" in ip for ip in ips):
        return {}
    return {"net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.default.disable_ipv6": "0",
            "net.ipv6.conf.lo.disable_ipv6": "0", f"net.ipv6.conf.{iface}.accept_dad": "0"}


def write_sysctls(netns: str, sysctls: dict[str, str]) -> None:
    """Write sysctls inside a named network namespace (no `sysctl` fork)."""
    if sysctls:
        try:
            run_in(netns_path(netns), _write_sysctls, sysctls)
        except OSError as exc:
            raise ApplyError(f"sysctls in {netns}: {exc}",
                             "".join(f"sysctl -w {k}={v}\n" for k, v in sysctls.items())) from exc


def configure_pod(netns: str, ips, gateway: str, gateway6: str = "", iface: str = "eth0",
                  timeout: float = 5.0) -> None:
    """Bring up lo/iface and give it ``ips`` (a str: one address) with their routes."""
    ips = [ips] if isinstance(ips, str) else list(ips)
    text = _describe(ips, gateway, gateway6, iface)
    try:
        sock, lo, idx = run_in(netns_path(netns), _open, iface, pod_sysctls(ips, iface))
    except OSError as exc:
        raise ApplyError(f"netlink in {netns}: {exc}", text) from exc
    reqs = pod_requests(ips, gateway, gateway6, lo, idx)
    try:
        acks = _exchange(sock, [m for _, m in reqs], timeout)
    except OSError as exc:
        raise ApplyError(f"netlink in {netns}: {exc}", text) from exc
    _raise_failed(acks, reqs, f"netlink in {netns}", text)


def _raise_failed(acks: dict[int, int], reqs: list[tuple[str, bytes]], where: str,
                  text: str) -> None:
    failed = {seq: err for seq, err in acks.items() if err}
    if failed:
        detail = ", ".join(f"{reqs[s - 1][0] if 0 < s <= len(reqs) else s}: {os.strerror(e)}"
                           for s, e in sorted(failed.items()))
        raise ApplyError(f"{where}: {detail}", text)


def _open_node(veths: list[str], sysctls: dict[str, str]):
    """Runs in the node's namespace: write the sysctls, open the socket, resolve the veths."""
    _write_sysctls(sysctls)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    return sock, [socket.if_nametoindex(v) for v in veths]


def configure_hosts(pid: int, veths: list[tuple[str, object]], mac: str,
                    sysctls: dict[str, str], timeout: float = 5.0) -> None:
    """Host side of fresh veths in the node ``pid``: sysctls (before the links go up: DAD
    off first), MAC + up, a route per pod address. ``veths``: (name, IP or IPs)."""
    veths = [(v, (ips,) if isinstance(ips, str) else tuple(ips)) for v, ips in veths]
    text = _describe_hosts(veths, mac, sysctls)
    try:
        sock, indexes = run_in(netns_path(pid=pid), _open_node, [v for v, _ in veths], sysctls)
    except OSError as exc:
        raise ApplyError(f"node pid {pid}: {exc}", text) from exc
    reqs = host_requests([(i, v, ips) for i, (v, ips) in zip(indexes, veths)], mac)
    try:
        acks = _exchange(sock, [m for _, m in reqs], timeout)
    except OSError as exc:
        raise ApplyError(f"netlink in node pid {pid}: {exc}", text) from exc
    _raise_failed(acks, reqs, f"netlink in node pid {pid}", text)


def _full(ip: str) -> str:
    return f"{ip}/128" if ":" in ip else f"{ip}/32"


def _describe_hosts(veths, mac: str, sysctls: dict[str, str]) -> str:
    lines = [f"sysctl -w {k}={v}" for k, v in sysctls.items()]
    for v, ips in veths:
        lines += [f"link set {v} address {mac}", f"link set {v} up"]
        lines += [f"route replace {_full(ip)} dev {v}" + ("" if ":" in ip else " scope link")
                  for ip in ips]
    return "".join(line + "\n" for line in lines)


def _describe(ips, gateway: str, gateway6: str, iface: str) -> str:
    lines = [f"sysctl -w {k}={v}" for k, v in pod_sysctls(ips, iface).items()]
    lines += ["link set lo up", f"link set {iface} up"]
    for ip in ips:
        lines.append(f"addr add {_full(ip)} dev {iface}")
        if ":" in ip:
            lines.append(f"route replace default via {gateway6} dev {iface}")
        else:
            lines += [f"route replace {gateway} dev {iface} scope link",
                      f"route replace default via {gateway} dev {iface}"]
    return "".join(line + "\n" for line in lines)
