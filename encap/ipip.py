"""A node's IPIP device, as Felix's IPIP manager keeps it: plan (pure), render (pure), apply.

The device is `tunl0`, the ipip module's fallback tunnel of every network namespace: no local
or remote address, so each route through it names its outer destination (`<block> via <node
IP> dev tunl0 onlink proto bird`; those routes are the BGP agent's, see bgp.rib.tunnelled).
Felix keeps it up, at MTU 20 below the underlay's (outer IPv4 header), holding the node's
IPIP tunnel address (IPAM handle `ipip-tunnel-addr-<node>`) as a /32: traffic the node itself
sends into the tunnel leaves with that source, which the remote node routes back by the pool.
A node without a tunnel address (outside every IPIP pool's nodeSelector, or IPAM exhausted)
still has tunl0 up, as Felix's configureIPIPDevice leaves it: its routes through tunl0 need
the device up, not an address.

Side effects (IpipApplier): in the node's network namespace, one read (`ip -j -d addr show dev
tunl0`) and at most one `ip -batch`. Order matters to the kernel: removing a device's last
IPv4 address flushes every route through it, so a new address is added before the old one
goes. When no IPIP pool is left our address goes and the device stays up, as Felix leaves it
(the fallback device itself cannot be deleted: the module owns it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from orchestrator.errors import ApplyError, CommandError
from orchestrator.host.naming import IPIP_DEVICE
from orchestrator.host.runner import DEFAULT, Runner

IPIP_OVERHEAD = 20     # the outer IPv4 header


@dataclass(frozen=True)
class IpipDevice:
    mtu: int
    address: str | None    # the node's IPIP tunnel address (/32); None: none (yet)
    name: str = IPIP_DEVICE


def plan(tunnel_ip: str | None, underlay_mtu: int, active: bool) -> IpipDevice | None:
    """tunl0's state on a node: None when no IPIP pool is enabled (then it holds no address
    of ours); otherwise up at the tunnel MTU, with the tunnel address if the node has one."""
    if not active:
        return None
    return IpipDevice(underlay_mtu - IPIP_OVERHEAD, tunnel_ip)


def parse_current(text: str) -> dict | None:
    """Pure: the device from `ip -j -d addr show dev tunl0` ("[]" when there is none)."""
    links = json.loads(text.strip() or "[]")
    return links[0] if links else None


def render(cur: dict | None, want: IpipDevice | None) -> str:
    """Pure: the `ip -batch` text turning ``cur`` into ``want``; "" when nothing differs."""
    lines: list[str] = []
    addrs = set() if cur is None else {
        a.get("local") for a in cur.get("addr_info") or [] if a.get("family") == "inet"}
    up = cur is not None and "UP" in (cur.get("flags") or [])
    if want is None:
        return "".join(f"addr del {a}/32 dev {IPIP_DEVICE}\n" for a in sorted(addrs))
    if cur is None:
        # With net.core.fb_tunnels_only_for_init_net set, a new namespace has no tunl0:
        # Felix then adds one by name (an ipip device without endpoints is the same thing).
        lines.append(f"link add {IPIP_DEVICE} type ipip")
    if cur is None or cur.get("mtu") != want.mtu:
        lines.append(f"link set dev {IPIP_DEVICE} mtu {want.mtu}")
    if want.address is not None and want.address not in addrs:
        lines.append(f"addr add {want.address}/32 dev {IPIP_DEVICE}")
    # Only after the new one is there: the last address going would flush tunl0's routes.
    lines += [f"addr del {a}/32 dev {IPIP_DEVICE}" for a in sorted(addrs - {want.address})]
    if not up:
        lines.append(f"link set dev {IPIP_DEVICE} up")
    return "".join(ln + "\n" for ln in lines)


_READ = f"ip -j -d addr show dev {IPIP_DEVICE} 2>/dev/null || echo '[]'"


class IpipApplier:
    """One node's tunl0 (read before every write: the module may or may not have made one)."""

    def __init__(self, node: str, pid: int, runner: Runner = DEFAULT):
        self.node, self.pid, self.runner = node, pid, runner
        self.applied: IpipDevice | None | str = "unknown"

    def apply(self, want: IpipDevice | None) -> bool:
        """Make tunl0 ``want``; True when something was written."""
        if want == self.applied:
            return False
        try:
            cur = parse_current(self.runner.run(["sh", "-c", _READ], pid=self.pid,
                                                timeout=10).stdout)
        except (CommandError, ValueError) as exc:
            raise ApplyError(f"reading {IPIP_DEVICE} of {self.node}: {exc}") from exc
        text = render(cur, want)
        try:
            if text:
                self.runner.run(["ip", "-batch", "-"], pid=self.pid, input=text, timeout=30)
        except CommandError as exc:
            self.applied = "unknown"
            raise ApplyError(f"programming {IPIP_DEVICE} on {self.node}: {exc}", text) from exc
        self.applied = want
        return bool(text)
