"""Realise a ClusterSpec as a running Mininet network: the cluster's nodes and underlay.

Side effects (root): Mininet host shells (one unnamed netns per node, by pid), veth pairs
(``eth0`` inside each node, ``cn<tb>sN-ethM`` in the root namespace), Linux bridges
``cn<tb>sN`` in the root namespace with no address (nothing bridges or routes to the machine's
real interfaces), sysctls inside node namespaces. ``Cluster.stop`` removes exactly those,
by name and pid.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import resource
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mininet.link import Link, TCLink
from mininet.log import lg, setLogLevel
from mininet.net import Mininet
from mininet.node import Host
from mininet.nodelib import LinuxBridge

from orchestrator.errors import CommandError, Conflict, NotFound, SupervisorTimeout, Unavailable
from orchestrator.host import naming
from orchestrator.host.runner import DEFAULT, Result, Runner
from topologies.spec import ClusterSpec
from topologies.topo import NODE_INTF, CalinetTopo

# Importing mininet.log makes every logger created afterwards a MininetLogger, whose handler
# prints without a newline; calinet's own loggers must stay ordinary ones.
logging.setLoggerClass(logging.Logger)
_log = logging.getLogger(__name__)

STOP_DEADLINE = 10.0
PORTS_GONE_DEADLINE = 5.0
CONFIG_DEADLINE = 30.0
_RC_MARK = "calinet-rc="


class _QuietTC(logging.Filter):
    """Drop Mininet's harmless tc noise: TCIntf always deletes a root qdisc that a fresh veth
    does not have, and htb warns about its quantum at high rates."""

    HARMLESS = ("Cannot delete qdisc with handle of zero", "quantum of class")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(h in msg for h in self.HARMLESS)


_QUIET_TC = _QuietTC()


def bridge_batch(switch: str, ports: list[str]) -> list[str]:
    """`ip -batch` lines that create one underlay bridge and plug its ports in.

    addrgenmode none: neither the bridge nor its ports get an IPv6 link-local address, so the
    root namespace has no address on the underlay and never routes into it.
    """
    # nf_call_*tables 0: frames crossing our bridges skip the root namespace's iptables
    # (br_netfilter), so a host firewall with FORWARD DROP cannot break the underlay; this is
    # a per-bridge setting and changes nothing else on the machine.
    lines = [f"link add name {switch} type bridge stp_state 0 nf_call_iptables 0 "
             "nf_call_ip6tables 0 nf_call_arptables 0",
             f"link set dev {switch} addrgenmode none"]
    for port in ports:
        lines += [f"link set dev {port} addrgenmode none",
                  f"link set dev {port} master {switch}",
                  f"link set dev {port} up"]
    lines.append(f"link set dev {switch} up")
    return lines


class CalinetBridge(LinuxBridge):
    """Mininet's LinuxBridge, created with `ip` and one batch instead of many brctl calls."""

    @classmethod
    def setup(cls):
        # Replaces LinuxBridge.setup, which warns on the console about bridge-nf-call-*: that
        # setting only means bridged frames also traverse the root namespace's FORWARD chain.
        if shutil.which("ip") is None:
            raise Unavailable("`ip` (iproute2) is not on PATH")
        nf = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
        if nf.exists() and nf.read_text().strip() == "1":
            _log.debug("bridge-nf-call-iptables=1: underlay frames pass the root FORWARD chain")

    def start(self, _controllers):
        """Create the bridge (if absent) and plug in its ports: idempotent, so a Mininet
        ``net.start()`` after start_cluster (which creates all bridges in one batch) is harmless."""
        ports = [str(i) for i in self.intfList() if self.name in i.name]
        lines = bridge_batch(self.name, ports)
        if self.cmd(f"ip link show dev {self.name} >/dev/null 2>&1; echo $?").strip() == "0":
            lines = lines[1:]
        quoted = " ".join(shlex.quote(ln) for ln in lines)
        out = self.cmd(f"printf '%s\\n' {quoted} | ip -batch -")
        if out.strip():
            raise CommandError(["ip", "-batch", "-"], 1, "", out)

    def stop(self, deleteIntfs=True):  # noqa: N803 - Mininet's signature
        self.cmd("ip link del dev", self.name)
        super(LinuxBridge, self).stop(deleteIntfs)


class CalinetHost(Host):
    """A node. Mininet's per-host serial configuration (ifconfig round trips) is skipped:
    start_cluster configures all nodes at once (see _configure_nodes)."""

    def configDefault(self, **more):  # noqa: N802 - Mininet's name
        self.params.update(more)


class _FastLink(Link):
    """Link whose interfaces are not brought up one shell round trip at a time."""

    def __init__(self, *args, **params):
        params.setdefault("up", None)
        super().__init__(*args, **params)


class _FastTCLink(TCLink):
    def __init__(self, *args, **params):
        params.setdefault("up", None)
        super().__init__(*args, **params)


@dataclass
class RouterHandle:
    name: str
    pid: int
    host: object = field(default=None, repr=False)


@dataclass
class NodeHandle:
    name: str
    pid: int
    ip: str
    intf: str = NODE_INTF
    host: object = field(default=None, repr=False)   # the mininet Host
    prefixlen: int = 16
    switch: str = ""          # bridge the node's eth0 is plugged into
    switch_port: str = ""     # root-namespace end of the node's veth


class Cluster:
    """A running cluster underlay. Use as a context manager or call ``stop()``."""

    def __init__(self, spec: ClusterSpec, testbed_id: str, net: Mininet, topo: CalinetTopo,
                 runner: Runner = DEFAULT):
        self.spec = spec
        self.testbed_id = testbed_id
        self.net = net
        self.topo = topo
        self.runner = runner
        self.stopped = False
        self.unavailable: list[str] = []   # features asked for that this kernel lacks
        self.switches: list[str] = list(topo.switches())
        self.nodes: dict[str, NodeHandle] = {}
        for n in spec.nodes:
            host = net[n.name]
            self.nodes[n.name] = NodeHandle(
                name=n.name, pid=host.pid, ip=n.ip, host=host,
                prefixlen=n.prefixlen, switch=topo.node_switch[n.name],
                switch_port=topo.node_port(n.name))
        # Fabric routers and the external host: hosts that are not nodes.
        self.routers: dict[str, RouterHandle] = {
            name: RouterHandle(name, net[name].pid, net[name])
            for name in [r.name for r in (spec.fabric.routers if spec.fabric else ())]
            + ([spec.external.name] if spec.external else [])}

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def node(self, name: str) -> NodeHandle:
        try:
            return self.nodes[name]
        except KeyError:
            raise NotFound(f"node {name!r} is not in cluster {self.spec.name!r} "
                           f"(nodes: {', '.join(self.nodes)})") from None

    def router(self, name: str) -> RouterHandle:
        try:
            return self.routers[name]
        except KeyError:
            known = ", ".join(self.routers) or "none: the topology has no fabric"
            raise NotFound(f"router {name!r} is not in cluster {self.spec.name!r} "
                           f"(routers: {known})") from None

    def router_exec(self, name: str, argv, timeout: float = 30.0, *,
                    check: bool = False) -> Result:
        """Run argv in a fabric router's network namespace."""
        return self.runner.run(argv, pid=self.router(name).pid, timeout=timeout, check=check)

    def fabric_link(self, a: str, b: str, state: str) -> None:
        """Set the cable between routers ``a`` and ``b`` down or up. Down is a pulled cable:
        only ``a``'s end changes administratively, ``b``'s end loses carrier (BIRD's `check
        link` sees it at once on both sides). Up brings both ends up, whichever was cut."""
        fabric = self.spec.fabric
        link = next((ln for ln in (fabric.links if fabric else ())
                     if {ln.a, ln.b} == {a, b}), None)
        if link is None:
            raise NotFound(f"no fabric link between {a!r} and {b!r}")
        ends = [(a, link.a_intf if link.a == a else link.b_intf)]
        if state == "up":
            ends.append((b, link.b_intf if link.a == a else link.a_intf))
        for router, intf in ends:
            self.router_exec(router, ["ip", "link", "set", "dev", intf, state], timeout=5,
                             check=True)

    def node_exec(self, name: str, argv, timeout: float = 30.0, *, check: bool = False,
                  input: str | None = None) -> Result:
        """Run argv in the node's network namespace (nsenter by pid; parallel-safe)."""
        return self.runner.run(argv, pid=self.node(name).pid, timeout=timeout, check=check,
                               input=input)

    def pids(self) -> list[int]:
        """Every Mininet shell pid (nodes and bridges), for the ownership ledger."""
        return [n.pid for n in self.net.hosts + self.net.switches if n.pid]

    def link_down(self, name: str) -> None:
        self._set_link(name, "down")

    def link_up(self, name: str) -> None:
        self._set_link(name, "up")

    def _set_link(self, name: str, state: str) -> None:
        # A pulled cable: only the switch side goes down, so the node's eth0 loses carrier
        # but stays administratively up. Setting eth0 itself down would make the kernel delete
        # every route through it (the default route proxy ARP needs, the BGP routes), which a
        # real link failure does not do.
        node = self.node(name)
        self.runner.run(["ip", "link", "set", "dev", node.switch_port, state], timeout=5)

    def owned_links(self) -> list[str]:
        """Root-namespace interfaces that carry this testbed's switch prefix."""
        return _our_links(self.runner, self.testbed_id)

    def stop(self) -> None:
        """Idempotent. End the node shells, delete our bridges and any ports left (by name).

        Stop processes started inside the nodes first (ExaBGP, containers): a process still in
        a node's namespace keeps its eth0 alive, which costs PORTS_GONE_DEADLINE here."""
        if self.stopped:
            return
        self.stopped = True
        _teardown(self.net, self.topo, self.runner, self.testbed_id)


def _is_ours(name: str, prefix: str) -> bool:
    # prefix "cnab12s" then the switch index, optionally "-ethN".
    rest = name[len(prefix):].split("-eth")
    return rest[0].isdigit() and (len(rest) == 1 or rest[1].isdigit())


def _teardown(net: Mininet, topo: CalinetTopo, runner: Runner, testbed_id: str) -> None:
    """End the node shells, then delete whatever of ours is left, by name.

    Ending the shells first lets the kernel destroy each node namespace and its veth in one
    batched unregister (much faster than one `ip link del` per veth, ~20 ms each); ports
    still held (a process of someone else's still in the namespace) are deleted by name.
    """
    _end_shells(net.hosts)
    switch_ports = topo.switch_ports()
    all_ports = {p for ps in switch_ports.values() for p in ps}
    # Only node-facing ports vanish with their namespace; switch-to-switch links do not.
    node_ports = {topo.node_port(n) for n in topo.node_switch}
    deadline = time.monotonic() + PORTS_GONE_DEADLINE
    while True:
        left = set(_our_links(runner, testbed_id)) & all_ports
        if not left & node_ports or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    lines = [f"link del dev {p}" for p in sorted(left)]
    lines += [f"link del dev {s}" for s in switch_ports]
    # -force: keep going when an interface is already gone (half-built net).
    runner.run(["ip", "-force", "-batch", "-"], input="\n".join(lines) + "\n", timeout=30,
               check=False)
    _end_shells(net.switches)
    left = _our_links(runner, testbed_id)
    if left:
        raise SupervisorTimeout(f"testbed {testbed_id}: interfaces still present after stop: "
                                f"{', '.join(left)}")


def _end_shells(nodes) -> None:
    shells = [n for n in nodes if n.shell is not None]
    procs = [n.shell for n in shells]
    for n in shells:
        n.waitExited = False     # Mininet would wait without a deadline; we wait below
        n.terminate()
    deadline = time.monotonic() + STOP_DEADLINE
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(p.pid)
            p.wait(timeout=5)


def _our_links(runner: Runner, testbed_id: str) -> list[str]:
    """Root-namespace interfaces named like this testbed's bridges and their ports."""
    prefix = naming.switch_name(testbed_id, 0)[:-1]
    out = runner.run(["ip", "-o", "link", "show"], timeout=10, check=False).stdout
    names = [ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines()
             if ln.count(":") >= 2]
    return [n for n in names if n.startswith(prefix) and _is_ours(n, prefix)]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def node_mac(ip: str) -> str:
    """The underlay MAC of the node with this address: locally administered (02), then 'ca',
    then the four address bytes, so it is known before the node exists and unique per cluster
    (clusters on one machine sit on separate bridges)."""
    return "02:ca:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(ip).packed[-4:])


def render_node_batch(spec: ClusterSpec, name: str) -> str:
    """The `ip -batch` that configures one node's underlay (pure).

    Every other node gets a permanent neighbour entry. Real nodes each have their own kernel
    and ARP table; here every node, pod and the machine itself share one: the neighbour table's
    garbage-collection limits (net.ipv4.neigh.default.gc_thresh3, 1024 by default) are
    counted over all namespaces together. A 50-node BGP mesh alone needs 50 x 49 = 2450
    dynamic entries; past the limit the kernel drops packets to unresolved neighbours
    ("neighbor table overflow!"), so BGP SYNs vanished and sessions waited out TCP's SYN
    back-off. Permanent entries are exempt from those limits (as Mininet's --arp), and calinet
    changes no machine-wide sysctl. A node's `ip neigh` thus shows PERMANENT for its peers,
    where a real node shows REACHABLE/STALE.
    """
    me = next(n for n in spec.nodes if n.name == name)
    lines = [f"link set dev {NODE_INTF} address {node_mac(me.ip)}",
             f"addr add {me.ip}/{me.prefixlen} dev {NODE_INTF}",
             f"link set dev {NODE_INTF} up", "link set dev lo up"]
    if me.gateway:
        # Routed rack: the ToR is the gateway, as on a real routed fabric.
        lines.append(f"route add default via {me.gateway} dev {NODE_INTF}")
    else:
        # On-link default route: a Calico node has one, and proxy ARP for 169.254.1.1 on
        # cali interfaces only answers when the node has a route to it via another intf.
        lines.append(f"route add default dev {NODE_INTF}")
    # Permanent entries only for what shares the node's L2 segment (its rack when routed).
    lines += [f"neigh replace {n.ip} lladdr {node_mac(n.ip)} dev {NODE_INTF} nud permanent"
              for n in spec.nodes if n.name != name and (not me.gateway or n.rack == me.rack)]
    if me.gateway:
        lines.append(f"neigh replace {me.gateway} lladdr {node_mac(me.gateway)} "
                     f"dev {NODE_INTF} nud permanent")
    if me.ip6:
        # IPv6 beside it (underlay.cidr6): `nodad`, or the address stays tentative for a
        # second of duplicate address detection and nothing can bind to it; the same default
        # route (on-link, or via the ToR's ::1 in a routed rack) and permanent neighbours
        # (same MACs) as IPv4. The family of each line comes from its address (`ip -batch`
        # takes no -6 per line).
        lines += [f"addr add {me.ip6}/{me.prefixlen6} dev {NODE_INTF} nodad",
                  f"route add ::/0 via {me.gateway6} dev {NODE_INTF}" if me.gateway6
                  else f"route add ::/0 dev {NODE_INTF}"]
        lines += [f"neigh replace {n.ip6} lladdr {node_mac(n.ip)} dev {NODE_INTF} nud permanent"
                  for n in spec.nodes if n.name != name and n.ip6
                  and (not me.gateway or n.rack == me.rack)]
        if me.gateway6:
            lines.append(f"neigh replace {me.gateway6} lladdr {node_mac(me.gateway)} "
                         f"dev {NODE_INTF} nud permanent")
    return "\n".join(lines) + "\n"


def render_router_batch(spec: ClusterSpec, name: str) -> str:
    """The `ip -batch` that configures one fabric router's interfaces (pure): addresses,
    MACs derived from them (node_mac), and permanent neighbours for everything on its links
    (see render_node_batch for why)."""
    fabric = spec.fabric
    router = fabric.router(name)
    lines = ["link set dev lo up"]
    for intf in router.interfaces:
        lines += [f"link set dev {intf.name} address {node_mac(intf.ip)}",
                  f"addr add {intf.ip}/{intf.prefixlen} dev {intf.name}"]
        if fabric.ipv6:
            # Dual stack: no link-local address (set before the link comes up), so BIRD
            # announces one global next hop, not global + link-local (which ExaBGP would
            # read as two routes); `nodad` as on the nodes.
            lines.append(f"link set dev {intf.name} addrgenmode none")
            if intf.ip6:
                lines.append(f"addr add {intf.ip6}/{intf.prefixlen6} dev {intf.name} nodad")
        lines.append(f"link set dev {intf.name} up")
    if router.role == "tor":
        lines += [f"neigh replace {n.ip} lladdr {node_mac(n.ip)} dev {router.interfaces[0].name}"
                  " nud permanent" for n in spec.nodes if n.rack == router.rack]
        lines += [f"neigh replace {n.ip6} lladdr {node_mac(n.ip)} "
                  f"dev {router.interfaces[0].name} nud permanent"
                  for n in spec.nodes if n.rack == router.rack and n.ip6]
    ext = spec.external
    if ext is not None and ext.attach == name:
        lines.append(f"neigh replace {ext.ip} lladdr {node_mac(ext.ip)} dev {ext.attach_intf} "
                     "nud permanent")
    for link in fabric.links:
        if name in (link.a, link.b):
            mine_a = link.a == name
            intf, peer_ip = (link.a_intf, link.b_ip) if mine_a else (link.b_intf, link.a_ip)
            lines.append(f"neigh replace {peer_ip} lladdr {node_mac(peer_ip)} dev {intf} "
                         "nud permanent")
            peer_ip6 = link.b_ip6 if mine_a else link.a_ip6
            if peer_ip6:
                lines.append(f"neigh replace {peer_ip6} lladdr {node_mac(peer_ip)} dev {intf} "
                             "nud permanent")
    return "\n".join(lines) + "\n"


def _configure_nodes(spec: ClusterSpec, net: Mininet, deadline: float) -> None:
    """Address, route and forwarding for every node, all shells working at once.

    One `ip -batch` per node, sent to every node shell before waiting for any: the shells run
    in parallel instead of one serial round trip per command per node.
    """
    with tempfile.TemporaryDirectory(prefix="calinet-topo-") as tmp:
        hosts = []
        batches = [(n.name, render_node_batch(spec, n.name), n) for n in spec.nodes]
        batches += [(r.name, render_router_batch(spec, r.name), None)
                    for r in (spec.fabric.routers if spec.fabric else ())]
        if spec.external is not None:
            from topologies.external import render_batch as external_batch
            batches.append((spec.external.name,
                            external_batch(spec.external, spec.underlay.cidr, node_mac), None))
        # IPv6 forwarding on IPv6 nodes and on dual-stack routers. Routers keep their IPv6
        # addresses while a port is down (as IPv4 does, and a router's configuration does):
        # the kernel's default drops them, so a cable cut (fabric_link_down, fail-router)
        # would take them for good.
        routers6 = {r.name for r in spec.fabric.routers} if spec.fabric and spec.fabric.ipv6 \
            else set()
        for name, text, n in batches:
            host = net[name]
            batch = Path(tmp) / f"{name}.ip"
            batch.write_text(text)
            v6 = (" && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"
                  if (n is not None and n.ip6) or name in routers6 else "")
            if name in routers6:
                v6 += " && echo 1 > /proc/sys/net/ipv6/conf/all/keep_addr_on_down"
            host.sendCmd(f"ip -batch {batch} && echo 1 > /proc/sys/net/ipv4/ip_forward{v6};"
                         f" echo {_RC_MARK}$?")
            hosts.append((name, n, host))
        for name, n, host in hosts:
            out = _wait_output(host, deadline)
            rc = out.rsplit(_RC_MARK, 1)[-1].strip() if _RC_MARK in out else "?"
            if rc != "0":
                raise CommandError(["ip", "-batch", f"({name})"], -1, out, out)
            if n is None:
                continue
            intf = host.intf(NODE_INTF)
            # Keep Mininet's own view (host.IP(), its CLI) in line with what we configured.
            intf.ip, intf.prefixLen, intf.mac = n.ip, n.prefixlen, node_mac(n.ip)


def _wait_output(host: Host, deadline: float) -> str:
    out = ""
    while host.waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SupervisorTimeout(f"node {host.name}: shell did not finish configuring")
        out += host.monitor(timeoutms=int(min(left, 1.0) * 1000))
    return out


def netem_available(runner: Runner = DEFAULT) -> tuple[bool, str]:
    """Whether tc's netem qdisc works here (probed on a dummy device in a throwaway netns)."""
    name = f"calinet-probe-{os.getpid()}-netem"
    if runner.run(["ip", "netns", "add", name], check=False, timeout=10).returncode != 0:
        return False, "cannot make a probe namespace"
    try:
        # A veth (the dummy module is not everywhere), like the links netem would shape.
        runner.run(["ip", "-n", name, "link", "add", "p0", "type", "veth", "peer", "name", "p1"],
                   check=False)
        r = runner.run(["ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "p0", "root",
                        "netem", "delay", "1ms"], check=False, timeout=10)
        return r.returncode == 0, (r.stderr or r.stdout).strip()
    finally:
        runner.run(["ip", "netns", "del", name], check=False, timeout=10)


def _preflight(testbed_id: str, runner: Runner) -> None:
    if os.geteuid() != 0:
        raise Unavailable("starting a cluster needs root (network namespaces, bridges)")
    for tool in ("mnexec", "ip", "nsenter"):
        if shutil.which(tool) is None:
            raise Unavailable(f"`{tool}` is not on PATH (install Debian's mininet/iproute2)")
    if not naming.is_testbed_id(testbed_id):
        raise Conflict(f"testbed id {testbed_id!r} must be 4 lowercase hex digits")
    clash = _our_links(runner, testbed_id)
    if clash:
        raise Conflict(f"testbed id {testbed_id} is in use: {', '.join(clash[:5])} exist")


def start_cluster(spec: ClusterSpec, testbed_id: str, *, log: logging.Logger | None = None,
                  runner: Runner = DEFAULT, verbose: bool = False) -> Cluster:
    """Bring the cluster's nodes and underlay up; on any failure remove what was created."""
    log = log or _log
    _preflight(testbed_id, runner)
    setLogLevel("info" if verbose else "warning")
    if _QUIET_TC not in lg.filters:
        lg.addFilter(_QUIET_TC)
    # Mininet.init would raise machine-wide sysctls (fixLimits); calinet changes nothing
    # outside its own objects, so only this process's open-file limit is raised.
    Mininet.inited = True
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 16384):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))
    t0 = time.monotonic()
    unavailable = []
    netem = True
    if any(ln.delay or ln.loss for ln in (spec.fabric.links if spec.fabric else ())):
        netem, why = netem_available(runner)
        if not netem:
            unavailable.append(f"WAN delay/loss: this kernel has no netem qdisc ({why}); the "
                               "WAN links are rate-limited only (the Vagrant VM has netem)")
            log.warning("%s", unavailable[-1])
    topo = CalinetTopo(spec, testbed_id, netem=netem)
    shaped = (any(n.bandwidth is not None for n in spec.nodes)
              or any(ln.bandwidth is not None for ln in (spec.fabric.links if spec.fabric else ()))
              or (spec.external is not None and spec.external.bandwidth is not None))
    net = Mininet(topo=None, switch=CalinetBridge, controller=None, host=CalinetHost,
                  link=_FastTCLink if shaped else _FastLink, autoSetMacs=False, build=False,
                  waitConnected=False)
    net.topo = topo
    try:
        net.build()
        ports = topo.switch_ports()
        lines = [ln for sw, p in ports.items() for ln in bridge_batch(sw, p)]
        runner.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", timeout=30)
        _configure_nodes(spec, net, time.monotonic() + CONFIG_DEADLINE)
    except BaseException:
        _teardown(net, topo, runner, testbed_id)
        raise
    cluster = Cluster(spec, testbed_id, net, topo, runner)
    cluster.unavailable = unavailable
    log.info("cluster %s (testbed %s): %d nodes, %d routers, %d switches up in %.2fs",
             spec.name, testbed_id, len(spec.nodes), len(cluster.routers),
             len(cluster.switches), time.monotonic() - t0)
    return cluster
