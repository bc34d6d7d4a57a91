"""Who peers with whom: the peer list Calico's confd renders into each node's bird.cfg.

Pure. Rules (confd bird.cfg.template / bgp_processor.go):
- node-to-node mesh when enabled: every node with every other node, except route reflectors
  (nodes with a routeReflectorClusterID), which the mesh skips; never a node with itself;
- a BGPPeer applies to the nodes it selects (node, nodeSelector, or all nodes when it has
  neither: a "global" peer); its target is peerIP/asNumber, or every node its peerSelector
  matches. A peerSelector peering is set up in both directions (Calico's automatic reverse
  peering), so a route reflector also peers with the clients that selected it;
- on a route reflector, a same-AS peer outside its cluster is an `rr client` (RR-RR in the
  same cluster is a plain iBGP session);
- between two nodes that configure each other, the one whose peer has the greater address
  (compared as strings, as Calico does) is passive, so each session is opened from one side;
- one session per peer address: the first rule that names it wins (mesh, then peers by name);
- IPv6 (Calico's bird6 twin of each file): between nodes that both have an IPv6 address, the
  mesh and every peerSelector peering get an IPv6 session too, between the nodes' IPv6
  addresses, with the same type, AS, route-reflector role and passive rule (string order of the
  IPv6 addresses); a BGPPeer with an IPv4 peerIP stays IPv4 only, as in bird.cfg, and one
  with an IPv6 peerIP (a dual-stack fabric's ToR, fd00:172:18:1::1) is an IPv6 session of
  the nodes it selects that have an IPv6 address (bird6.cfg), after their IPv6 twins.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from bgp.model import BGPConfiguration, BGPPeer, NodeBGP, selects
from orchestrator.errors import ValidationError

MESH = "node-to-node mesh"
GLOBAL = "global"
NODE_SPECIFIC = "node specific"


@dataclass(frozen=True)
class Neighbor:
    ip: str
    asNumber: int
    type: str
    rr_client: bool = False
    passive: bool = False
    node: str | None = None        # the peer's node name when the peer is a cluster node
    cluster_id: str | None = None  # the local cluster ID when rr_client
    router_id: str | None = None   # the peer's BGP identifier when not ``ip`` (IPv6 sessions)

    @property
    def family(self) -> int:
        return 6 if ":" in self.ip else 4


def _applies(peer: BGPPeer, node: NodeBGP) -> bool:
    if peer.is_global:
        return True
    if peer.node:
        return peer.node == node.name
    return selects(peer.nodeSelector, node.label_map)


def _targets(peer: BGPPeer, local: NodeBGP, nodes: Sequence[NodeBGP],
             by_ip: dict[str, NodeBGP]) -> list[tuple[str, int | None, NodeBGP | None, bool]]:
    """(address, AS or None, its node, whether the peering has an IPv6 twin)."""
    out: list = []
    if peer.peerSelector:
        if _applies(peer, local):
            out += [(n.ip, None, n, True) for n in nodes
                    if selects(peer.peerSelector, n.label_map)]
        if selects(peer.peerSelector, local.label_map):
            out += [(n.ip, None, n, True) for n in nodes if _applies(peer, n)]
    elif _applies(peer, local):
        out.append((peer.peerIP, peer.asNumber, by_ip.get(peer.peerIP), False))
    return out


def peerings(nodes: Iterable[NodeBGP], config: BGPConfiguration,
             peers: Iterable[BGPPeer]) -> dict[str, list[Neighbor]]:
    """node name -> its BGP neighbors, sorted by address."""
    nodes = sorted(nodes, key=lambda n: n.name)
    by_ip: dict[str, NodeBGP] = {}     # the nodes by IPv4 and by IPv6 address
    for n in nodes:
        for ip, fld in ((n.ip, "spec.bgp.ipv4Address"), (n.ip6, "spec.bgp.ipv6Address")):
            if ip is None:
                continue
            if ip in by_ip:
                raise ValidationError(f"address {ip} also used by node {by_ip[ip].name}",
                                      obj=f"Node {n.name}", field=fld)
            by_ip[ip] = n
    peers = sorted(peers, key=lambda p: p.name)
    raw: dict[str, dict[str, Neighbor]] = {}
    twins: dict[str, set[str]] = {}     # node -> peer IPv4 addresses with an IPv6 twin
    for local in nodes:
        chosen: dict[str, Neighbor] = {}
        twin = twins.setdefault(local.name, set())
        if config.nodeToNodeMeshEnabled and not local.is_route_reflector:
            for other in nodes:
                if other.ip != local.ip and not other.is_route_reflector:
                    chosen.setdefault(other.ip, Neighbor(other.ip, other.as_number(config),
                                                         MESH, node=other.name))
                    twin.add(other.ip)
        for peer in peers:
            kind = GLOBAL if peer.is_global else NODE_SPECIFIC
            for ip, asn, other, has_twin in _targets(peer, local, nodes, by_ip):
                if ip in (local.ip, local.ip6) or ip in chosen:
                    continue
                if ":" in ip and not local.ip6:
                    continue   # an IPv6 peerIP: only nodes with an IPv6 address run bird6
                if asn is None:
                    asn = other.as_number(config)
                chosen[ip] = Neighbor(ip, asn, kind, node=other.name if other else None)
                if has_twin:
                    twin.add(ip)
        raw[local.name] = {ip: _rr(local, nb, config, by_ip) for ip, nb in chosen.items()}
    out = {}
    for local in nodes:
        mine = raw[local.name]
        v4 = [replace(nb, passive=_passive(local, nb, by_ip, raw))
              for nb in sorted((nb for nb in mine.values() if nb.family == 4),
                               key=lambda nb: ipaddress.IPv4Address(nb.ip))]
        v6 = []
        if local.ip6:
            for nb in v4:
                other = by_ip.get(nb.ip)
                # Both ends must have the twin (an explicit peerIP BGPPeer on one side has none).
                if (nb.ip in twins[local.name] and other is not None and other.ip6
                        and local.ip in twins.get(other.name, ())):
                    # Its reverse exists exactly when the IPv4 one's does (same rules).
                    passive = local.ip in raw[other.name] and other.ip6 > local.ip6
                    v6.append(replace(nb, ip=other.ip6, passive=passive, router_id=other.ip))
            twinned = {nb.ip for nb in v6}
            for nb in mine.values():
                if nb.family == 6 and nb.ip not in twinned:   # BGPPeers with an IPv6 peerIP
                    other = by_ip.get(nb.ip)
                    v6.append(replace(nb, passive=_passive(local, nb, by_ip, raw),
                                      router_id=other.ip if other else None))
            v6.sort(key=lambda nb: ipaddress.IPv6Address(nb.ip))
        out[local.name] = v4 + v6
    return out


def _rr(local: NodeBGP, nb: Neighbor, config: BGPConfiguration,
        by_ip: dict[str, NodeBGP]) -> Neighbor:
    if not local.is_route_reflector or nb.asNumber != local.as_number(config):
        return nb
    other = by_ip.get(nb.ip)
    peer_cluster = other.routeReflectorClusterID if other else None
    if peer_cluster == local.routeReflectorClusterID:
        return nb
    return replace(nb, rr_client=True, cluster_id=local.routeReflectorClusterID)


def _passive(local: NodeBGP, nb: Neighbor, by_ip: dict[str, NodeBGP],
             raw: dict[str, dict[str, Neighbor]]) -> bool:
    other = by_ip.get(nb.ip)
    me = local.ip6 if nb.family == 6 else local.ip
    if other is None or me not in raw[other.name]:
        return False  # an outside router, or a node that does not peer back: we must connect
    return nb.ip > me  # string comparison, exactly as Calico's template


def why_no_peer(node: NodeBGP, config: BGPConfiguration) -> str:
    """Why ``node`` got no neighbor from peerings() (no BGPPeer selected it, or it would have
    one) and how to fix it: one line, for a wait that would otherwise only time out."""
    fix = ("apply BGPPeer objects that peer it with the other nodes (topology `manifests:`, "
           "Testbed(manifests=) or `calinet apply`; e.g. spec: {nodeSelector: all(), "
           "peerSelector: route-reflector == 'true'} with the reflectors labelled so)")
    if config.nodeToNodeMeshEnabled and node.is_route_reflector:
        cause = (f"its topology sets routeReflectorClusterID {node.routeReflectorClusterID} "
                 "(a route reflector), which the node-to-node mesh skips, and no BGPPeer "
                 "selects it")
    elif not config.nodeToNodeMeshEnabled:
        cause = "BGPConfiguration default sets nodeToNodeMeshEnabled: false and no BGPPeer selects it"
        fix += ", or turn the node-to-node mesh back on"
    else:
        cause = ("the node-to-node mesh has no other member (the other nodes are route "
                 "reflectors) and no BGPPeer selects it")
    return f"{cause}; its pods are unreachable from other nodes; {fix}"


def session_count(table: dict[str, list[Neighbor]]) -> int:
    """Distinct BGP sessions (a pair of nodes that configure each other counts once)."""
    pairs = set()
    for name, nbs in table.items():
        for nb in nbs:
            pairs.add(frozenset((name, nb.node or nb.ip)))
    return len(pairs)
