"""Pod sandbox plumbing the way Calico's CNI plugin does it (calico.md section 1).

Side effects: creates/deletes named network namespaces (`ip netns`), veth pairs whose host end
lives in a node's (unnamed, reached by pid) namespace, addresses, routes and sysctls, all through
orchestrator.host.runner. Per node the work is two forks (the `ip -j` read and the root `ip -batch`
that makes namespaces and veths); fresh sandboxes are then configured over in-process netlink
on both ends (orchestrator.host.rtnl), sandboxes being repaired through `ip -batch` / `sysctl`.
Reads back state with `ip -j` so a second ADD of a correct sandbox writes nothing. The planning and batch rendering below are pure.
"""

from __future__ import annotations

import ipaddress
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from orchestrator.errors import ApplyError, CommandError, ValidationError
from orchestrator.host import naming, rtnl
from orchestrator.host.runner import DEFAULT, NETNS_DIR, RecordingRunner, Runner

POD_IFACE = "eth0"
# (sysctl path template, wanted value); <i> is the host-side veth.
NODE_SYSCTLS = (
    ("net.ipv4.conf.<i>.route_localnet", "1"),
    ("net.ipv4.neigh.<i>.proxy_delay", "0"),
    ("net.ipv4.conf.<i>.proxy_arp", "1"),
    ("net.ipv4.conf.<i>.forwarding", "1"),
)
NODE_SYSCTLS_V6 = (("net.ipv6.conf.<i>.accept_ra", "0"),)
# For a pod with an IPv6 address (Calico's disableDAD + configureSysctls); written before the
# host veth goes up, so its link-local address (the pod's IPv6 gateway) is never tentative.
NODE_SYSCTLS_POD6 = (
    ("net.ipv6.conf.<i>.accept_dad", "0"),
    ("net.ipv6.conf.<i>.disable_ipv6", "0"),
    ("net.ipv6.conf.<i>.proxy_ndp", "1"),
    ("net.ipv6.conf.<i>.forwarding", "1"),
)
# Pod batches are pure fork+exec latency; a few in flight overlap it on 2 cores.
POD_WORKERS = 4
# Link group used to delete many host veths in one netlink request: each single veth delete
# waits for an RCU grace period (~18 ms), `ip link del group` pays it once per batch.
DELETE_GROUP = 0xCA11


@dataclass(frozen=True)
class SandboxSpec:
    namespace: str
    pod: str
    ip: str
    netns: str
    veth: str
    node_pid: int
    # Both ends of the veth. Calico's CNI takes it from its config, which calico-node writes
    # with the auto-detected MTU: the underlay's, less the encapsulation (VXLAN 50, IPIP 20).
    mtu: int = 1500
    # The pod's other addresses (dual stack: the second family's); ``ip`` is the primary one.
    extra_ips: tuple = ()

    @property
    def ips(self) -> tuple:
        """Every address of the pod, primary first."""
        return (self.ip, *self.extra_ips)

    @property
    def ipv4(self) -> bool:
        return any(":" not in ip for ip in self.ips)

    @property
    def ipv6(self) -> bool:
        return any(":" in ip for ip in self.ips)

    @classmethod
    def for_pod(cls, testbed_id: str, namespace: str, pod: str, ip: str,
                node_pid: int) -> "SandboxSpec":
        """The spec with Calico's names for this pod (naming.veth_name / pod_netns)."""
        return cls(namespace, pod, ip, naming.pod_netns(testbed_id, namespace, pod),
                   naming.veth_name(namespace, pod), node_pid)

    @property
    def obj(self) -> str:
        return f"Pod {self.namespace}/{self.pod}"


def validate(spec: SandboxSpec) -> None:
    """Raise ValidationError naming the pod and field of the first bad field."""
    def bad(fld, msg):
        raise ValidationError(msg, obj=spec.obj, field=fld)
    versions: dict[int, str] = {}
    for i, ip in enumerate(spec.ips):
        fld = "ip" if i == 0 else f"extra_ips[{i - 1}]"
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            bad(fld, f"{ip!r} is not an IP address")
        if addr.version in versions:
            bad(fld, f"{ip}: the pod already has an IPv{addr.version} address "
                     f"({versions[addr.version]}); one per family")
        if addr.is_link_local or addr.is_multicast or addr.is_loopback or addr.is_unspecified:
            bad(fld, f"{ip} is a link-local, multicast, loopback or unspecified address")
        versions[addr.version] = ip
    if not (spec.veth.startswith(naming.VETH_PREFIX) and 4 < len(spec.veth) <= 15
            and spec.veth.isalnum()):
        bad("veth", f"{spec.veth!r} is not a cali* interface name of at most 15 characters")
    if not spec.netns or "/" in spec.netns or spec.netns.startswith(".") or " " in spec.netns:
        bad("netns", f"{spec.netns!r} is not a valid netns name")
    if not isinstance(spec.node_pid, int) or spec.node_pid <= 0:
        bad("node_pid", f"{spec.node_pid!r} is not a process id")


# ---------------------------------------------------------------- observed state (pure parse)

@dataclass(frozen=True)
class Link:
    name: str
    ifindex: int
    kind: str = ""
    mac: str = ""
    up: bool = False
    peer_ifindex: int | None = None
    peer_nsid: int | None = None


@dataclass
class NodeView:
    links: dict[str, Link] = field(default_factory=dict)
    routes: list[dict] = field(default_factory=list)
    nsids: dict[str, int] = field(default_factory=dict)   # named netns -> nsid seen from node
    sysctls: dict[str, str] = field(default_factory=dict)


@dataclass
class PodView:
    links: dict[str, Link] = field(default_factory=dict)
    addrs: list[str] = field(default_factory=list)   # global "ip/len" on eth0, IPv4 then IPv6
    routes: list[dict] = field(default_factory=list)


def json_stream(text: str) -> list:
    """The JSON documents `ip -j -batch` prints back to back, in order."""
    dec, docs, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return docs
        doc, i = dec.raw_decode(text, i)
        docs.append(doc)


def parse_links(doc: list) -> dict[str, Link]:
    return {d["ifname"]: Link(d["ifname"], d["ifindex"],
                              (d.get("linkinfo") or {}).get("info_kind", ""),
                              d.get("address", ""), "UP" in d.get("flags", []),
                              d.get("link_index"), d.get("link_netnsid"))
            for d in doc}


def parse_node(text: str) -> NodeView:
    """Output of NODE_READ (`ip -d -j -batch` in the node)."""
    docs = json_stream(text)
    # `netns list` prints nothing at all, not [], while /run/netns does not exist yet: the
    # first sandbox on a fresh machine is wired before any named netns was ever created.
    links, routes, netns = (docs + [[]])[:3] if len(docs) == 2 else docs
    return NodeView(parse_links(links), main_routes(routes),
                    {n["name"]: n["id"] for n in netns if "id" in n})


def parse_pod(text: str) -> PodView:
    """Output of POD_READ (`ip -d -j -n <pod> -batch`)."""
    links, addrs, routes = json_stream(text)
    eth0 = [f"{a['local']}/{a['prefixlen']}" for fam in ("inet", "inet6") for d in addrs
            if d.get("ifname") == POD_IFACE for a in d.get("addr_info", [])
            if a.get("family") == fam and a.get("scope") == "global"]
    return PodView(parse_links(links), eth0, main_routes(routes))


def main_routes(routes: list[dict]) -> list[dict]:
    """The main table's routes of `route show table all` (both families in one batch line,
    where `route show` is IPv4 only): those that name no table, less the kernel's own
    (fe80::/64 on every IPv6 link)."""
    # `ip -d` names the main table too ("table": "main"); without -d it names none.
    return [r for r in routes if r.get("table", "main") == "main"
            and r.get("protocol") != "kernel"]


def parse_sysctl(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            out[key.strip()] = value.strip()
    return out


NODE_READ = "link show\nroute show table all\nnetns list\n"
POD_READ = "link show\naddr show\nroute show table all\n"


# ---------------------------------------------------------------- discrepancies (pure)

def sysctl_wants(spec: SandboxSpec, ipv6: bool) -> dict[str, str]:
    """The host veth's sysctls: IPv4's for a pod with an IPv4 address, IPv6's for one with
    an IPv6 address (as Calico's hasIPv4/hasIPv6), accept_ra=0 wherever IPv6 exists."""
    table = ((NODE_SYSCTLS if spec.ipv4 else ()) + (NODE_SYSCTLS_POD6 if spec.ipv6 else ())
             + (NODE_SYSCTLS_V6 if ipv6 or spec.ipv6 else ()))
    return {k.replace("<i>", spec.veth): v for k, v in table}


def full(ip: str) -> str:
    """The address as the host route's destination: /32, or /128 for IPv6."""
    return f"{ip}/128" if ":" in ip else f"{ip}/32"


def _route_dst(r: dict) -> str:
    dst = r.get("dst", "")
    return dst if "/" in dst or dst == "default" else full(dst)


def pair_problems(spec: SandboxSpec, node: NodeView, pod: PodView | None) -> list[str]:
    """Is the veth pair there and joined host <-> pod? Anything here means re-create."""
    if pod is None:
        return [f"netns {spec.netns} missing"]
    host, eth0 = node.links.get(spec.veth), pod.links.get(POD_IFACE)
    out = []
    if host is None:
        out.append(f"host veth {spec.veth} missing on node")
    elif host.kind != "veth":
        out.append(f"host {spec.veth} is a {host.kind or 'non-veth'} device, not a veth")
    if eth0 is None:
        out.append(f"{POD_IFACE} missing in {spec.netns}")
    if host and eth0 and not (host.peer_ifindex == eth0.ifindex
                              and eth0.peer_ifindex == host.ifindex
                              and host.peer_nsid is not None
                              and node.nsids.get(spec.netns) == host.peer_nsid):
        out.append(f"{spec.veth} and {spec.netns}/{POD_IFACE} are not peers of one veth pair")
    return out


def node_problems(spec: SandboxSpec, node: NodeView, ipv6: bool) -> list[str]:
    out = []
    host = node.links.get(spec.veth)
    if host is not None:
        if host.mac.lower() != naming.HOST_VETH_MAC:
            out.append(f"{spec.veth} MAC {host.mac} != {naming.HOST_VETH_MAC}")
        if not host.up:
            out.append(f"{spec.veth} is down")
    wants = {full(ip) for ip in spec.ips}
    for ip in spec.ips:
        want = full(ip)
        # IPv6 routes have no scope; an IPv4 device route is link scope.
        if not any(_route_dst(r) == want and r.get("dev") == spec.veth and "gateway" not in r
                   and (":" in ip or r.get("scope") == "link") for r in node.routes):
            out.append(f"node route {want} dev {spec.veth}"
                       f"{'' if ':' in ip else ' scope link'} missing")
    for r in node.routes:
        if r.get("dev") == spec.veth and _route_dst(r) not in wants:
            out.append(f"stale node route {_route_dst(r)} dev {spec.veth}")
    for key, value in sysctl_wants(spec, ipv6).items():
        if node.sysctls.get(key) != value:
            out.append(f"sysctl {key}={node.sysctls.get(key)} (want {value})")
    return out


def pod_problems(spec: SandboxSpec, pod: PodView) -> list[str]:
    out = []
    for name in ("lo", POD_IFACE):
        if name in pod.links and not pod.links[name].up:
            out.append(f"{name} is down in {spec.netns}")
    want = sorted(full(ip) for ip in spec.ips)
    if sorted(pod.addrs) != want:
        out.append(f"{POD_IFACE} addresses {pod.addrs} != {want}")
    gw = naming.POD_GATEWAY
    if spec.ipv4 and not any(_route_dst(r) == f"{gw}/32" and r.get("dev") == POD_IFACE
                             and r.get("scope") == "link" for r in pod.routes):
        out.append(f"pod route {gw} dev {POD_IFACE} scope link missing")
    gws = ([gw] if spec.ipv4 else []) + ([naming.POD_GATEWAY6] if spec.ipv6 else [])
    for g in gws:
        if not any(r.get("dst") == "default" and r.get("gateway") == g
                   and r.get("dev") == POD_IFACE for r in pod.routes):
            out.append(f"pod route default via {g} dev {POD_IFACE} missing")
    return out


def route_conflict(spec: SandboxSpec, node: NodeView) -> str | None:
    """The interface (or route kind) that already routes the pod IP elsewhere, as Calico checks."""
    wants = {full(ip) for ip in spec.ips}
    for r in node.routes:
        if _route_dst(r) in wants and r.get("dev") != spec.veth:
            return r.get("dev") or r.get("type") or "a non-device route"
    return None


# ---------------------------------------------------------------- plan + render (pure)

@dataclass
class AddPlan:
    stale_links: list[str] = field(default_factory=list)   # host links to delete first
    recreate: list[str] = field(default_factory=list)      # existing netns to delete + re-add
    create: list[SandboxSpec] = field(default_factory=list)
    node_fix: list[SandboxSpec] = field(default_factory=list)
    node_route_dels: list[str] = field(default_factory=list)
    sysctl: list[SandboxSpec] = field(default_factory=list)
    pod_fix: list[SandboxSpec] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.stale_links or self.create or self.node_fix or self.sysctl
                    or self.pod_fix or self.node_route_dels)


def plan_add(specs: list[SandboxSpec], node: NodeView, pods: dict[str, PodView | None],
             ipv6: bool) -> AddPlan:
    """What to write so every spec's sandbox matches Calico's. ``pods``: netns -> view/None."""
    seen: dict[str, SandboxSpec] = {}
    for s in specs:
        for ip in s.ips:
            other = seen.setdefault(ip, s)
            if other is not s:
                raise ApplyError(f"{s.obj} and {other.obj} both want IP {ip}")
        conflict = route_conflict(s, node)
        if conflict:
            ips = " / ".join(s.ips)
            raise ApplyError(f"{s.obj}: IP {ips} is already routed via {conflict} on the node "
                             f"(wanted dev {s.veth})",
                             "".join(f"{full(ip)} dev {s.veth}\n" for ip in s.ips))
    plan = AddPlan()
    for s in specs:
        pod = pods.get(s.netns)
        if pair_problems(s, node, pod):
            if s.veth in node.links:
                plan.stale_links.append(s.veth)   # Calico deletes a stale host veth first
            if pod is not None:
                plan.recreate.append(s.netns)
            plan.create.append(s)
            plan.node_fix.append(s)
            plan.sysctl.append(s)
            plan.pod_fix.append(s)
            continue
        probs = node_problems(s, node, ipv6)
        if any(not p.startswith(("sysctl", "stale")) for p in probs):
            plan.node_fix.append(s)
        if any(p.startswith("sysctl") for p in probs):
            plan.sysctl.append(s)
        wants = {full(ip) for ip in s.ips}
        plan.node_route_dels += [f"route del {_route_dst(r)} dev {s.veth}" for r in node.routes
                                 if r.get("dev") == s.veth and _route_dst(r) not in wants]
        if pod_problems(s, pod):
            plan.pod_fix.append(s)
    return plan


def render_stale_batch(plan: AddPlan) -> str:
    return "".join(f"link del {name}\n" for name in plan.stale_links)


def _mtu(s: SandboxSpec) -> str:
    return "" if s.mtu == 1500 else f" mtu {s.mtu}"


def render_root_batch(plan: AddPlan) -> str:
    """Root namespace: (re)create netns and veth pairs straight into node and pod namespaces."""
    lines = [f"netns del {n}" for n in plan.recreate]
    lines += [f"netns add {s.netns}" for s in plan.create]
    # Created directly in the target namespaces: the root namespace never holds the name,
    # so a real cali* interface on the machine can never collide with it.
    lines += [f"link add {s.veth}{_mtu(s)} netns {s.node_pid} type veth peer name {POD_IFACE}"
              f"{_mtu(s)} netns {s.netns}" for s in plan.create]
    return "".join(line + "\n" for line in lines)


def render_node_batch(plan: AddPlan) -> str:
    lines = list(plan.node_route_dels)
    for s in plan.node_fix:
        lines += [f"link set {s.veth} address {naming.HOST_VETH_MAC}",
                  f"link set {s.veth} up"]
        lines += [f"route replace {full(ip)} dev {s.veth}" + ("" if ":" in ip else " scope link")
                  for ip in s.ips]
    return "".join(line + "\n" for line in lines)


def sysctl_argv(specs: list[SandboxSpec], ipv6: bool) -> list[str]:
    return ["sysctl", "-q", "-w"] + [f"{k}={v}" for s in specs
                                     for k, v in sysctl_wants(s, ipv6).items()]


def render_pod_batch(spec: SandboxSpec) -> str:
    """A sandbox being repaired (its sysctls are written before, rtnl.pod_sysctls)."""
    gw, gw6 = naming.POD_GATEWAY, naming.POD_GATEWAY6
    lines = [f"link set lo up\nlink set {POD_IFACE} up\n"
             f"addr flush dev {POD_IFACE} scope global\n"]
    for ip in spec.ips:
        if ":" in ip:
            # nodad: this repair may run before accept_dad=0 took effect on the link.
            lines.append(f"addr add {ip}/128 dev {POD_IFACE} nodad\n"
                         f"route replace ::/0 via {gw6} dev {POD_IFACE}\n")
        else:
            lines.append(f"addr add {ip}/32 dev {POD_IFACE}\n"
                         f"route replace {gw} dev {POD_IFACE} scope link\n"
                         f"route replace default via {gw} dev {POD_IFACE}\n")
    return "".join(lines)


def render_delete(specs: list[SandboxSpec], node: NodeView | None,
                  present: set[str]) -> tuple[str, str]:
    """(node batch, root batch) removing what of ``specs`` is still there."""
    node_lines = []
    if node is not None:
        node_lines = [f"link set {s.veth} group {DELETE_GROUP}" for s in specs
                      if s.veth in node.links]
        if node_lines:
            node_lines.append(f"link del group {DELETE_GROUP}")   # routes go with the links
    root = [f"netns del {s.netns}" for s in specs if s.netns in present]
    return ("".join(x + "\n" for x in node_lines), "".join(x + "\n" for x in root))


# ---------------------------------------------------------------- applier (side effects)

def _ipv6() -> bool:
    return os.path.isdir("/proc/sys/net/ipv6")


class CNI:
    """Applies SandboxSpecs: ADD / DEL / CHECK, bulk per node, idempotent."""

    def __init__(self, runner: Runner = DEFAULT, *, netlink: bool | None = None):
        self.runner = runner
        # Fresh pod sides over in-process netlink; a runner that only records commands (unit
        # tests) sees them as `ip -n <ns> -batch` instead, unless netlink=True is asked for.
        self.netlink = (not isinstance(runner, RecordingRunner)) if netlink is None else netlink

    # -- reads
    def _netns_present(self, name: str) -> bool:
        return os.path.exists(os.path.join(NETNS_DIR, name))

    def read_node(self, pid: int, specs: list[SandboxSpec] = ()) -> NodeView:
        """Links, main routes and netns ids of the node; sysctls of the given pods' veths."""
        view = parse_node(self.runner.run(["ip", "-d", "-j", "-batch", "-"], pid=pid,
                                          input=NODE_READ).stdout)
        keys = [k for s in specs if s.veth in view.links for k in sysctl_wants(s, _ipv6())]
        if keys:
            res = self.runner.run(["sysctl"] + keys, pid=pid, check=False)
            view.sysctls = parse_sysctl(res.stdout)
        return view

    def read_pod(self, netns: str) -> PodView | None:
        if not self._netns_present(netns):
            return None
        return parse_pod(self.runner.run(["ip", "-d", "-j", "-n", netns, "-batch", "-"],
                                         input=POD_READ).stdout)

    # -- ADD
    def add(self, spec: SandboxSpec) -> None:
        self.add_many([spec])

    def add_many(self, specs: list[SandboxSpec]) -> None:
        for spec in specs:
            validate(spec)
        for pid, group in _by_node(specs).items():
            self._add_node(pid, group)

    def _add_node(self, pid: int, specs: list[SandboxSpec]) -> None:
        ipv6 = _ipv6()
        _refuse_own_netns(pid)
        present = [s.netns for s in specs if self._netns_present(s.netns)]
        pods: dict[str, PodView | None] = {s.netns: None for s in specs}
        if present:   # only on re-ADD: reads are fork latency, overlap them
            with ThreadPoolExecutor(max_workers=min(POD_WORKERS, len(present))) as pool:
                pods.update(zip(present, pool.map(self.read_pod, present), strict=True))
        node = self.read_node(pid, [s for s in specs if pods[s.netns] is not None])
        plan = plan_add(specs, node, pods, ipv6)
        if plan.empty():
            return
        self._batch(render_stale_batch(plan), pid=pid, what=f"stale veth removal (node pid {pid})")
        self._batch(render_root_batch(plan), what="netns/veth creation")
        # A fresh sandbox is configured over netlink in-process, both ends (no fork per pod,
        # none per node); one being repaired goes through `ip -batch` and `sysctl`, whose
        # `addr flush` and reads handle what a previous run left.
        fresh = {s.netns for s in plan.create} if self.netlink else set()
        hosts = [s for s in plan.node_fix if s.netns in fresh]
        if hosts:
            rtnl.configure_hosts(pid, [(s.veth, s.ips) for s in hosts], naming.HOST_VETH_MAC,
                                 {k: v for s in hosts for k, v in sysctl_wants(s, ipv6).items()})
        rest = replace(plan, node_fix=[s for s in plan.node_fix if s.netns not in fresh],
                       sysctl=[s for s in plan.sysctl if s.netns not in fresh])
        self._batch(render_node_batch(rest), pid=pid, what=f"host veth setup (node pid {pid})")
        if rest.sysctl:
            argv = sysctl_argv(rest.sysctl, ipv6)
            try:
                self.runner.run(argv, pid=pid)
            except CommandError as exc:
                raise ApplyError(f"CNI sysctls on node pid {pid} failed: {exc}",
                                 " ".join(argv)) from exc
        for s in plan.pod_fix:
            if s.netns in fresh:
                rtnl.configure_pod(s.netns, s.ips, naming.POD_GATEWAY, naming.POD_GATEWAY6,
                                   POD_IFACE)
        repair = [s for s in plan.pod_fix if s.netns not in fresh]
        if repair:
            with ThreadPoolExecutor(max_workers=min(POD_WORKERS, len(repair))) as pool:
                list(pool.map(self._pod_batch, repair))

    def _pod_batch(self, spec: SandboxSpec) -> None:
        if self.netlink:
            rtnl.write_sysctls(spec.netns, rtnl.pod_sysctls(spec.ips, POD_IFACE))
        self._batch(render_pod_batch(spec), netns=spec.netns, what=f"{spec.obj} eth0 setup")

    def _batch(self, text: str, *, what: str, pid: int | None = None,
               netns: str | None = None) -> None:
        if not text:
            return
        argv = ["ip", "-batch", "-"] if netns is None else ["ip", "-n", netns, "-batch", "-"]
        try:
            self.runner.run(argv, pid=pid, input=text)
        except CommandError as exc:
            raise ApplyError(f"CNI {what} failed: {exc.stderr.strip() or exc}", text) from exc

    # -- DEL
    def delete(self, spec: SandboxSpec) -> None:
        self.delete_many([spec])

    def delete_many(self, specs: list[SandboxSpec]) -> None:
        """Remove sandboxes; what is already gone is skipped (DEL is idempotent)."""
        for spec in specs:
            validate(spec)
        for pid, group in _by_node(specs).items():
            node = self.read_node(pid) if _node_alive(pid) else None
            present = {s.netns for s in group if self._netns_present(s.netns)}
            node_text, root_text = render_delete(group, node, present)
            self._batch(node_text, pid=pid, what=f"host veth removal (node pid {pid})")
            self._batch(root_text, what="netns removal")

    # -- CHECK
    def check(self, spec: SandboxSpec) -> list[str]:
        """Every way the sandbox differs from what Calico's CNI would have built ([] = good)."""
        validate(spec)
        pod = self.read_pod(spec.netns)
        if not _node_alive(spec.node_pid):
            return [f"node pid {spec.node_pid} is not running"] + (
                pod_problems(spec, pod) if pod is not None else [f"netns {spec.netns} missing"])
        node = self.read_node(spec.node_pid, [spec])
        problems = pair_problems(spec, node, pod)
        problems += node_problems(spec, node, _ipv6())
        if pod is not None:
            problems += pod_problems(spec, pod)
        return problems


def _node_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}/ns/net")


def _refuse_own_netns(pid: int) -> None:
    """Never plumb into the namespace calinet itself runs in (the machine's real one)."""
    try:
        node_ino = os.stat(f"/proc/{pid}/ns/net").st_ino
    except FileNotFoundError:
        raise ApplyError(f"node pid {pid} does not exist (node stopped?)") from None
    if node_ino == os.stat("/proc/self/ns/net").st_ino:
        raise ApplyError(f"node pid {pid} shares calinet's own network namespace; refusing to "
                         "put pod interfaces there")


def _by_node(specs: list[SandboxSpec]) -> dict[int, list[SandboxSpec]]:
    out: dict[int, list[SandboxSpec]] = {}
    for s in specs:
        out.setdefault(s.node_pid, []).append(s)
    return out
