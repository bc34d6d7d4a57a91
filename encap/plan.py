"""What a node's VXLAN dataplane must hold, as Felix's VXLAN manager programs it. Pure.

Inputs: the nodes (address, subnet, tunnel address and MAC), the IP pools with their
``vxlanMode``, the IPAM blocks with the node each is affine to, and borrowed addresses (a pod
whose IP comes from another node's block). Output per node (``NodePlan``):

- the ``vxlan.calico`` device: VNI 4096, UDP 4789, the node address as local VTEP address,
  learning off, MTU 50 below the underlay's, the tunnel address as /32, a MAC of its own;
- per remote node with a VTEP: a permanent ARP entry (its tunnel IP -> its VTEP MAC) and a
  permanent FDB entry (that MAC -> its node address), so nothing is ever flooded;
- per remote block (and /32 per address borrowed onto a remote node) inside a VXLAN pool:
  `<block> via <remote tunnel IP> dev vxlan.calico onlink proto 80`; in CrossSubnet mode a
  remote node on the same subnet is reached natively instead, `<block> via <node IP> dev eth0
  proto 80` (Felix's no-encap route), as Calico does.

Felix owns every VXLAN-pool route (`proto 80`); the node's BGP agent leaves those prefixes
alone (bgp.rib.desired_routes ``unprogrammed``), as Calico's BIRD kernel filter does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from encap.ipip import IPIP_OVERHEAD

DEVICE = "vxlan.calico"
VNI = 4096
PORT = 4789
VXLAN_OVERHEAD = 50     # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
RTPROT_FELIX = 80       # Felix's DefaultRouteProto
ALWAYS, CROSS_SUBNET, NEVER = "Always", "CrossSubnet", "Never"


@dataclass(frozen=True)
class NodeFacts:
    name: str
    ip: str
    subnet: str                     # the node's underlay subnet (its rack's, when routed)
    tunnel_ip: str | None = None    # vxlan-tunnel-addr-<node>; None = no VTEP (yet)
    tunnel_mac: str | None = None
    intf: str = "eth0"
    mtu: int = 1500                 # of the underlay interface
    ipip_tunnel_ip: str | None = None   # ipip-tunnel-addr-<node> (tunl0's address)


@dataclass(frozen=True)
class PoolFacts:
    cidr: str
    vxlan_mode: str = NEVER
    disabled: bool = False
    ipip_mode: str = NEVER


@dataclass(frozen=True)
class Route:
    prefix: str
    via: str
    dev: str
    onlink: bool = False


@dataclass(frozen=True)
class Device:
    name: str
    vni: int
    port: int
    local: str
    mtu: int
    address: str           # tunnel IP (/32)
    mac: str
    parent: str


@dataclass(frozen=True)
class NodePlan:
    device: Device | None = None
    routes: tuple = ()              # Route, sorted by prefix
    neighbors: tuple = ()           # (tunnel ip, mac), sorted
    fdb: tuple = ()                 # (mac, node ip), sorted


def tunnel_mac(node_ip: str) -> str:
    """A VTEP MAC per node, derived from its address (Felix picks a random one and stores it
    on the Node; deriving it keeps it stable across restarts without a write)."""
    return "66:ca:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(node_ip).packed)


def device_mtu(underlay_mtu: int) -> int:
    return underlay_mtu - VXLAN_OVERHEAD


def vxlan_pools(pools) -> list[PoolFacts]:
    return [p for p in pools if p.vxlan_mode in (ALWAYS, CROSS_SUBNET) and not p.disabled]


def ipip_pools(pools) -> list[PoolFacts]:
    return [p for p in pools if p.ipip_mode in (ALWAYS, CROSS_SUBNET) and not p.disabled]


def _pool_of(prefix: str, pools) -> PoolFacts | None:
    net = ipaddress.IPv4Network(prefix)
    for p in pools:
        if net.subnet_of(ipaddress.IPv4Network(p.cidr)):
            return p
    return None


def _sort_key(prefix: str):
    net = ipaddress.IPv4Network(prefix)
    return int(net.network_address), net.prefixlen


def plan(local: str, nodes, pools, blocks, borrowed=()) -> NodePlan:
    """The VXLAN state of node ``local``.

    ``nodes``: NodeFacts; ``pools``: PoolFacts; ``blocks``: {block CIDR: affine node};
    ``borrowed``: (ip, node the pod runs on) for addresses outside that node's blocks.
    """
    by_name = {n.name: n for n in nodes}
    me = by_name[local]
    vx = vxlan_pools(pools)
    if not vx or me.tunnel_ip is None:
        return NodePlan()
    device = Device(DEVICE, VNI, PORT, me.ip, device_mtu(me.mtu), me.tunnel_ip,
                    me.tunnel_mac or tunnel_mac(me.ip), me.intf)
    my_net = ipaddress.IPv4Network(me.subnet)
    routes: dict[str, Route] = {}
    vteps: dict[str, NodeFacts] = {}

    def route_to(prefix: str, owner: str) -> None:
        pool = _pool_of(prefix, vx)
        other = by_name.get(owner)
        if pool is None or other is None or owner == local:
            return
        if pool.vxlan_mode == CROSS_SUBNET and ipaddress.IPv4Address(other.ip) in my_net:
            routes[prefix] = Route(prefix, other.ip, me.intf)
        elif other.tunnel_ip is not None:
            routes[prefix] = Route(prefix, other.tunnel_ip, DEVICE, onlink=True)
            vteps[other.name] = other

    # IPv4 only: VXLAN pools are IPv4 (IPv6 ones are refused), a dual-stack node's IPv6
    # blocks are BGP's.
    for prefix, owner in blocks.items():
        if ":" not in prefix:
            route_to(str(ipaddress.IPv4Network(prefix)), owner)
    for ip, owner in borrowed:
        if ":" not in ip:
            route_to(f"{ip.split('/')[0]}/32", owner)
    # Every remote VTEP gets its ARP/FDB entries (Felix programs them for all VTEPs, routes or
    # not), so a first packet never waits on resolution.
    for n in nodes:
        if n.name != local and n.tunnel_ip is not None:
            vteps[n.name] = n
    neighbors = sorted((v.tunnel_ip, v.tunnel_mac or tunnel_mac(v.ip)) for v in vteps.values())
    fdb = sorted((v.tunnel_mac or tunnel_mac(v.ip), v.ip) for v in vteps.values())
    return NodePlan(device, tuple(sorted(routes.values(), key=lambda r: _sort_key(r.prefix))),
                    tuple(neighbors), tuple(fdb))


def unprogrammed(pools) -> list[str]:
    """Pool CIDRs whose routes Felix (here: the VXLAN plan) owns, not the BGP agent."""
    return sorted(p.cidr for p in vxlan_pools(pools))


def pod_mtu(underlay_mtu: int, pools) -> int:
    """Calico's MTU auto-detection: the underlay's, less the largest encapsulation on."""
    if vxlan_pools(pools):
        return underlay_mtu - VXLAN_OVERHEAD
    if ipip_pools(pools):
        return underlay_mtu - IPIP_OVERHEAD
    return underlay_mtu
