"""The agent's routing decisions: a RIB per peer, best paths, kernel routes, reflection.

Pure. `RIB.apply` folds codec events (updates, peer state, end-of-RIB) into per-peer tables;
`desired_routes` turns the best paths plus the node's own blocks into exactly the routes
Calico's BIRD installs (`blackhole <own block> proto bird`, `<remote prefix> via <node IP>
proto bird`, and for IPIP pools `<remote prefix> via <node IP> dev tunl0 onlink proto bird`,
which is what Calico's BIRD fork makes of its kernel filter's `krt_tunnel = "tunl0"`);
`render_batch` is the `ip -batch` text from the current routes to those.
A /32 another node borrowed from one of our blocks is installed via that node even though it
lies inside our own blackholed block: longest prefix wins, which is what Calico issue #3246
got wrong. `advertised` and `reflected` say what the agent should announce itself and, on a
route reflector, on behalf of its clients (RFC 4456 originator-id / cluster-list).
Both families: IPv6 blocks (/122) and borrowed /128s are handled like IPv4's, the routes
learnt over the IPv6 sessions going via the peer node's IPv6 address, as BIRD6's do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from bgp import codec
from bgp.peering import Neighbor
from orchestrator.host.naming import IPIP_DEVICE, RTPROT_BIRD

UNICAST = "unicast"
BLACKHOLE = "blackhole"
ALWAYS, CROSS_SUBNET = "Always", "CrossSubnet"


@dataclass(frozen=True)
class Route:
    prefix: str
    type: str = UNICAST     # "unicast" | "blackhole"
    via: str | None = None  # next hop of a unicast route
    dev: str | None = None  # IPIP_DEVICE for a tunnelled route; None: whatever the kernel picks
    onlink: bool = False    # the next hop is the tunnel's outer destination, not a neighbour

    def line(self) -> str:
        """The route as `ip route replace` takes it (without proto)."""
        if self.type == BLACKHOLE:
            return f"blackhole {self.prefix}"
        dev = f" dev {self.dev}" if self.dev else ""
        return f"{self.prefix} via {self.via}{dev}{' onlink' if self.onlink else ''}"


@dataclass(frozen=True)
class IpipPool:
    cidr: str
    mode: str = ALWAYS      # "Always" | "CrossSubnet"


def _net(prefix: str):
    return ipaddress.ip_network(prefix)


def _sort_key(prefix: str):
    """IPv4 before IPv6, then by address and length."""
    net = _net(prefix)
    return net.version, int(net.network_address), net.prefixlen


def ip_key(ip: str):
    """Sort key of an address of either family (IPv4 first)."""
    addr = ipaddress.ip_address(ip)
    return addr.version, int(addr)


def host_prefix(ip: str) -> str:
    """An address as its full-length prefix: /32, or /128 for IPv6."""
    ip = ip.split("/")[0]
    return f"{ip}/128" if ":" in ip else f"{ip}/32"


class RIB:
    """Adj-RIB-In per peer plus the peers' session state.

    ``router_id`` and ``cluster_id`` are the local node's: paths that carry them come back
    from a reflector (our own route, or a reflection loop) and are dropped, per RFC 4456.
    """

    def __init__(self, router_id: str, cluster_id: str | None = None,
                 local_as: int | None = None):
        self.router_id = router_id
        self.cluster_id = cluster_id
        # eBGP loop detection (RFC 4271 9.1.2): a path through our own AS is dropped, as
        # BIRD does unless told `allow local as` (Calico's numAllowedLocalASNumbers).
        self.local_as = local_as
        self.paths: dict[str, dict[str, codec.Path]] = {}
        self.up: set[str] = set()
        self.stale: dict[str, set[str]] = {}  # peer -> prefixes kept across a restart

    def apply(self, event, *, retain_stale: bool = False) -> None:
        """Fold one event. A peer going down loses its routes, unless ``retain_stale``
        (graceful restart: forwarding continues until the peer's end-of-RIB or the agent's
        restart timer, see `expire_stale`)."""
        if isinstance(event, codec.RouteUpdate):
            table = self.paths.setdefault(event.peer, {})
            stale = self.stale.get(event.peer, set())
            for prefix in event.withdrawn:
                table.pop(prefix, None)
                stale.discard(prefix)
            for path in event.announced:
                stale.discard(path.prefix)
                if self._looped(path):
                    table.pop(path.prefix, None)
                else:
                    table[path.prefix] = path
        elif isinstance(event, codec.PeerState):
            if event.state == "up":
                self.up.add(event.peer)
            elif event.state == "down":
                self.up.discard(event.peer)
                if retain_stale and self.paths.get(event.peer):
                    self.stale[event.peer] = set(self.paths[event.peer])
                else:
                    self.paths.pop(event.peer, None)
                    self.stale.pop(event.peer, None)
        elif isinstance(event, codec.EOR):
            self.expire_stale(event.peer)

    def expire_stale(self, peer: str) -> None:
        """Drop what a restarted peer did not re-announce (EOR seen, or restart time over)."""
        for prefix in self.stale.pop(peer, set()):
            self.paths.get(peer, {}).pop(prefix, None)

    def _looped(self, path: codec.Path) -> bool:
        return (path.originator_id == self.router_id
                or (self.cluster_id is not None and self.cluster_id in path.cluster_list)
                or (self.local_as is not None and self.local_as in path.as_path))

    def best(self) -> dict[str, tuple[str, codec.Path]]:
        """prefix -> (peer, path) by BGP preference: highest local-pref, shortest AS path,
        shortest cluster list, lowest originator (the peer's router id when none), lowest
        peer address."""
        out: dict[str, tuple] = {}
        for peer in sorted(self.paths, key=ip_key):
            for prefix, path in self.paths[peer].items():
                key = (-path.local_preference, len(path.as_path), len(path.cluster_list),
                       ip_key(path.originator_id or peer), ip_key(peer))
                if prefix not in out or key < out[prefix][0]:
                    out[prefix] = (key, peer, path)
        return {p: (v[1], v[2]) for p, v in sorted(out.items(), key=lambda i: _sort_key(i[0]))}


def restart_expected(event: codec.PeerState) -> bool:
    """Whether a peer going down should keep its routes as stale (graceful restart).

    RFC 4724: only a session that ends without a NOTIFICATION (the speaker died or
    restarted: ExaBGP 5.0 reports "closing connection") is a restart; a hold-timer expiry
    ("notification sent (4,0)") or a Cease received means the routes go now.
    """
    return event.state == "down" and not event.reason.startswith("notification")


def tunnelled(prefix: str, next_hop: str, ipip: Sequence[IpipPool],
              subnet: str | None) -> bool:
    """Whether a route goes through tunl0: its prefix lies in an IPIP pool, and the pool is
    Always, or CrossSubnet with a next hop off the node's own subnet (Calico's kernel filter:
    `if defined(bgp_next_hop) && bgp_next_hop ~ <subnet> then krt_tunnel = ""`)."""
    net = _net(prefix)
    for pool in ipip:
        if net.version == 4 and net.subnet_of(_net(pool.cidr)):
            if pool.mode == CROSS_SUBNET and subnet is not None:
                return ipaddress.IPv4Address(next_hop) not in _net(subnet)
            return True
    return False


def desired_routes(rib: RIB, own_blocks: Iterable[str], borrowed_here: Iterable[str],
                   node_ip: str, *, unprogrammed: Iterable[str] = (),
                   ipip: Sequence[IpipPool] = (), subnet: str | None = None,
                   node_ip6: str | None = None) -> list[Route]:
    """The node's `proto bird` routes, sorted by prefix.

    ``own_blocks``: CIDRs of the node's affine blocks (blackholed, never routed away, even if
    a stale peer still announces one). ``borrowed_here``: IPs (or /32s) of local pods taken
    from other nodes' blocks; their `dev caliX` routes belong to the CNI, so no BGP route may
    replace them. A remote /32 inside one of our blocks is kept: it beats the blackhole.
    ``unprogrammed``: pool CIDRs whose remote routes belong to the VXLAN agent (Felix's, in
    Calico: BIRD's kernel export filter rejects VXLAN pools), so none is installed here.
    ``ipip``: the IPIP pools; their remote routes go `dev tunl0 onlink` (see `tunnelled`;
    ``subnet`` is the node's own underlay subnet, for CrossSubnet).
    """
    own = {str(_net(b)) for b in own_blocks}
    skip = [_net(c) for c in unprogrammed]
    local = {host_prefix(ip) for ip in borrowed_here}
    mine = {node_ip, node_ip6} - {None}
    out = [Route(b, BLACKHOLE) for b in own]
    for prefix, (_peer, path) in rib.best().items():
        if prefix in own or prefix in local or path.next_hop in mine:
            continue
        net = _net(prefix)
        if skip and any(net.version == c.version and net.subnet_of(c) for c in skip):
            continue
        if ipip and tunnelled(prefix, path.next_hop, ipip, subnet):
            out.append(Route(prefix, UNICAST, path.next_hop, IPIP_DEVICE, onlink=True))
        else:
            out.append(Route(prefix, UNICAST, path.next_hop))
    return sorted(out, key=lambda r: _sort_key(r.prefix))


def advertised(own_blocks: Iterable[str], borrowed_here: Iterable[str]) -> list[str]:
    """What a node announces, as Calico's export filter does: each affine block (but not /32
    blocks, which bird_aggr skips) and a /32 per IP borrowed from another node's block."""
    blocks = [str(_net(b)) for b in own_blocks if _net(b).prefixlen < _net(b).max_prefixlen]
    borrowed = [host_prefix(ip) for ip in borrowed_here]
    return sorted(set(blocks) | set(borrowed), key=_sort_key)


def reflected(rib: RIB, neighbors: Sequence[Neighbor]) -> dict[str, dict[str, codec.Path]]:
    """Route reflector duty: neighbor ip -> prefix -> path to send it (RFC 4456).

    A best path from a client goes to every other peer; one from a non-client only to
    clients. The next hop is kept (Calico's RR does not rewrite it for iBGP); originator-id
    is set once (the first reflector's view of the origin) and our cluster ID is prepended.
    Empty when this node is no reflector.
    """
    if rib.cluster_id is None or not any(nb.rr_client for nb in neighbors):
        return {}
    clients = {nb.ip for nb in neighbors if nb.rr_client}
    # A peer's BGP identifier: its address, but over IPv6 sessions the node's IPv4 one.
    rid = {nb.ip: nb.router_id or nb.ip for nb in neighbors}
    out: dict[str, dict[str, codec.Path]] = {nb.ip: {} for nb in neighbors}
    for prefix, (peer, path) in rib.best().items():
        sent = replace(path, originator_id=path.originator_id or rid.get(peer, peer),
                       cluster_list=(rib.cluster_id, *path.cluster_list))
        version = _net(prefix).version
        for nb in neighbors:
            if nb.ip == peer or rid[nb.ip] == sent.originator_id:
                continue
            if ip_key(nb.ip)[0] != version:
                continue     # each family's routes go over that family's sessions
            if peer in clients or nb.ip in clients:
                out[nb.ip][prefix] = sent
    return out


def reflection_commands(before: Mapping[str, Mapping[str, codec.Path]],
                        after: Mapping[str, Mapping[str, codec.Path]]) -> list[str]:
    """ExaBGP commands that turn the reflected set ``before`` into ``after``."""
    cmds = []
    for nb in sorted(set(before) | set(after), key=ip_key):
        old, new = before.get(nb, {}), after.get(nb, {})
        for prefix in sorted(set(old) - set(new), key=_sort_key):
            cmds.append(codec.withdraw(prefix, neighbors=[nb]))
        for prefix in sorted(new, key=_sort_key):
            p = new[prefix]
            if old.get(prefix) != p:
                cmds.append(codec.announce(prefix, p.next_hop, neighbors=[nb],
                                           originator_id=p.originator_id,
                                           cluster_list=p.cluster_list,
                                           local_preference=p.local_preference))
    return cmds


def parse_current(ip_json: Sequence[Mapping]) -> list[Route]:
    """Routes from `ip -j route show proto bird` (or proto 12), sorted by prefix."""
    out = []
    for r in ip_json:
        dst = r.get("dst", "")
        if dst == "default":
            prefix = "::/0" if ":" in r.get("gateway", "") else "0.0.0.0/0"
        else:
            prefix = str(_net(dst if "/" in dst else host_prefix(dst)))
        if r.get("type") == BLACKHOLE:
            out.append(Route(prefix, BLACKHOLE))
        elif r.get("gateway"):
            # Only the tunnel device is part of a route's identity: a plain route's dev is
            # whatever the kernel resolved its next hop to.
            if r.get("dev") == IPIP_DEVICE:
                out.append(Route(prefix, UNICAST, r["gateway"], IPIP_DEVICE,
                                 "onlink" in (r.get("flags") or [])))
            else:
                out.append(Route(prefix, UNICAST, r["gateway"]))
    return sorted(out, key=lambda r: _sort_key(r.prefix))


def render_batch(current: Iterable[Route], desired: Iterable[Route]) -> str:
    """`ip -batch` text turning our current routes into the desired ones; "" when equal.

    Deletions first (by prefix), then `route replace` for new or changed routes; replace
    swaps a blackhole for a unicast route of the same prefix in one step.
    """
    cur = {r.prefix: r for r in current}
    want = {r.prefix: r for r in desired}
    lines = []
    for prefix in sorted(set(cur) - set(want), key=_sort_key):
        kind = "blackhole " if cur[prefix].type == BLACKHOLE else ""
        lines.append(f"route del {kind}{prefix} proto {RTPROT_BIRD}")
    for prefix in sorted(want, key=_sort_key):
        r = want[prefix]
        if cur.get(prefix) == r:
            continue
        lines.append(f"route replace {r.line()} proto {RTPROT_BIRD}")
    return "".join(line + "\n" for line in lines)
