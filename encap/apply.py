"""Applier of a node's VXLAN plan: read what the kernel holds, write the difference.

Side effects: in the node's network namespace (Runner, nsenter by pid), one read (a shell
running `ip -j -d addr show dev vxlan.calico`, `ip -j route show proto 80`, `ip -j neigh`
and `bridge -j fdb` of the device) and at most one `ip -batch` plus one `bridge -batch`.
Everything touched is ours by name or protocol: the `vxlan.calico` device, its neighbour and
FDB entries, and `proto 80` routes (Felix's route protocol; nothing else on a node uses it).
Idempotent: a second apply of the same plan reads and writes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from encap.plan import DEVICE, RTPROT_FELIX, NodePlan, Route
from orchestrator.errors import ApplyError, CommandError
from orchestrator.host.runner import DEFAULT, Runner

_SEP = "@@calinet@@"
_READ = (f"ip -j -d addr show dev {DEVICE} 2>/dev/null || echo '[]'; echo {_SEP}; "
         f"ip -j route show table main proto {RTPROT_FELIX}; echo {_SEP}; "
         f"ip -j neigh show dev {DEVICE} nud permanent 2>/dev/null || echo '[]'; echo {_SEP}; "
         f"bridge -j fdb show dev {DEVICE} 2>/dev/null || echo '[]'")


@dataclass(frozen=True)
class Current:
    device: dict | None
    routes: dict          # prefix -> Route
    neighbors: dict       # ip -> mac
    fdb: dict             # mac -> dst


def parse_current(text: str) -> Current:
    """Pure: the four JSON documents of the read."""
    parts = [json.loads(p.strip() or "[]") for p in text.split(_SEP)]
    while len(parts) < 4:
        parts.append([])
    links, routes, neigh, fdb = parts[:4]
    device = links[0] if links else None
    cur_routes = {}
    for r in routes:
        dst = r.get("dst", "")
        prefix = dst if "/" in dst else f"{dst}/32"
        cur_routes[prefix] = Route(prefix, r.get("gateway", ""), r.get("dev", ""),
                                   "onlink" in (r.get("flags") or []))
    neighbors = {n["dst"]: n.get("lladdr", "") for n in neigh if n.get("dst")}
    entries = {f["mac"]: f.get("dst", "") for f in fdb
               if f.get("dst") and "permanent" in (f.get("state") or "permanent")}
    return Current(device, cur_routes, neighbors, entries)


def _device_ok(cur: dict, plan) -> tuple[bool, list[str]]:
    """(same identity, fix-up lines) of an existing device against the plan's."""
    info = ((cur.get("linkinfo") or {}).get("info_data") or {})
    same = (info.get("id") == plan.vni and info.get("port") == plan.port
            and info.get("local") == plan.local)
    fix = []
    if cur.get("mtu") != plan.mtu:
        fix.append(f"link set dev {plan.name} mtu {plan.mtu}")
    if cur.get("address") != plan.mac:
        fix.append(f"link set dev {plan.name} address {plan.mac}")
    addrs = {a.get("local") for a in cur.get("addr_info") or [] if a.get("family") == "inet"}
    for a in sorted(addrs - {plan.address}):
        fix.append(f"addr del {a}/32 dev {plan.name}")
    if plan.address not in addrs:
        fix.append(f"addr add {plan.address}/32 dev {plan.name}")
    if "UP" not in (cur.get("flags") or []):
        fix.append(f"link set dev {plan.name} up")
    return same, fix


def render(cur: Current, plan: NodePlan) -> tuple[str, str]:
    """Pure: (`ip -batch` text, `bridge -batch` text) turning ``cur`` into ``plan``."""
    ip_lines: list[str] = []
    br_lines: list[str] = []
    dev = plan.device
    fresh = False
    if dev is None:
        if cur.device is not None:
            ip_lines.append(f"link del dev {DEVICE}")   # its neighbours, FDB and routes go too
    else:
        same, fix = _device_ok(cur.device, dev) if cur.device is not None else (False, [])
        if cur.device is not None and not same:
            ip_lines.append(f"link del dev {DEVICE}")
        if cur.device is None or not same:
            fresh = True
            # noudpcsum: Felix's netlink request always carries UDPCSum, false, so the outer
            # UDP header has a zero checksum (RFC 7348 allows it); iproute2 alone would turn
            # it on and checksum every encapsulated packet in software.
            ip_lines += [f"link add {DEVICE} type vxlan id {dev.vni} local {dev.local} dev "
                         f"{dev.parent} dstport {dev.port} nolearning noudpcsum",
                         f"link set dev {DEVICE} address {dev.mac} mtu {dev.mtu}",
                         f"addr add {dev.address}/32 dev {DEVICE}",
                         f"link set dev {DEVICE} up"]
        else:
            ip_lines += fix
    gone_with_device = fresh or (dev is None and cur.device is not None)
    want_neigh = dict(plan.neighbors)
    have_neigh = {} if gone_with_device else cur.neighbors
    for ip in sorted(set(have_neigh) - set(want_neigh)):
        ip_lines.append(f"neigh del {ip} dev {DEVICE}")
    for ip, mac in plan.neighbors:
        if have_neigh.get(ip) != mac:
            ip_lines.append(f"neigh replace {ip} lladdr {mac} dev {DEVICE} nud permanent")
    want_fdb = {mac: dst for mac, dst in plan.fdb}
    have_fdb = {} if gone_with_device else cur.fdb
    for mac in sorted(set(have_fdb) - set(want_fdb)):
        br_lines.append(f"fdb del {mac} dev {DEVICE} dst {have_fdb[mac]} self")
    for mac, dst in plan.fdb:
        if have_fdb.get(mac) != dst:
            br_lines.append(f"fdb replace {mac} dev {DEVICE} dst {dst} self permanent")
    want = {r.prefix: r for r in plan.routes}
    have = {p: r for p, r in cur.routes.items()
            if not (gone_with_device and r.dev == DEVICE)}
    for prefix in sorted(set(have) - set(want)):
        ip_lines.append(f"route del {prefix} proto {RTPROT_FELIX}")
    for r in plan.routes:
        if have.get(r.prefix) != r:
            ip_lines.append(f"route replace {r.prefix} via {r.via} dev {r.dev}"
                            f"{' onlink' if r.onlink else ''} proto {RTPROT_FELIX}")
    text = "".join(ln + "\n" for ln in ip_lines)
    return text, "".join(ln + "\n" for ln in br_lines)


class VxlanApplier:
    """One node's VXLAN state. ``fresh``: the node namespace was just made (nothing to read)."""

    def __init__(self, node: str, pid: int, runner: Runner = DEFAULT, *, fresh: bool = False):
        self.node, self.pid, self.runner = node, pid, runner
        self.fresh = fresh
        self.applied: NodePlan | None = None

    def current(self) -> Current:
        if self.fresh:
            return Current(None, {}, {}, {})
        try:
            out = self.runner.run(["sh", "-c", _READ], pid=self.pid, timeout=10).stdout
            return parse_current(out)
        except (CommandError, ValueError) as exc:
            raise ApplyError(f"reading the VXLAN state of {self.node}: {exc}") from exc

    def apply(self, plan: NodePlan) -> bool:
        """Make the node hold ``plan``; True when something was written."""
        if plan == self.applied:
            return False
        ip_text, br_text = render(self.current(), plan)
        self.fresh = False
        try:
            if ip_text:
                self.runner.run(["ip", "-batch", "-"], pid=self.pid, input=ip_text, timeout=30)
            if br_text:
                self.runner.run(["bridge", "-batch", "-"], pid=self.pid, input=br_text,
                                timeout=30)
        except CommandError as exc:
            self.applied = None
            raise ApplyError(f"programming VXLAN on {self.node}: {exc}",
                             ip_text + br_text) from exc
        self.applied = plan
        return bool(ip_text or br_text)
