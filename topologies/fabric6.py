"""The IPv6 half of a routed fabric's address plan (topology ``underlay.cidr6``). Pure.

With ``underlay.cidr6`` every routed rack is dual stack. The IPv4 plan (topologies.fabric)
comes first and is left as it is; this adds an IPv6 address beside each of its addresses:

- rack i (1-based, in rack order) gets the i-th /64 of cidr6, whatever its IPv4 subnet; the
  first /64 (index 0) stays free, as the IPv4 plan's first /24 does. /64 is the size of
  every IPv6 LAN (RFC 7421), so a rack subnet never runs out of node addresses. Its ToR is
  the subnet's ::1 (the nodes' IPv6 default gateway); the nodes get ::2, ::3, ... in node
  order (topologies.addressing), an explicit node ``ip6`` must be inside its rack's /64;
- every router link (ToR uplinks, then WAN links, in the IPv4 plan's order) gets a /127
  (RFC 6164) from the last /64 of cidr6, link k (0-based) the k-th /127: ToR (or first
  spine) side the even address, the other side the odd one.

With cidr6 fd00:172:18::/56 that is rack-a fd00:172:18:1::/64 (ToR fd00:172:18:1::1),
rack-b fd00:172:18:2::/64, the links fd00:172:18:ff::/127, fd00:172:18:ff::2/127, ... (the
IPv4 default plan's 172.18.<i>.0/24 and 172.18.255.0/31 in IPv6). cidr6 must therefore hold
racks + 2 /64s: a /56 holds 254 racks, a /62 two; a shorter one is an error naming
``underlay.cidr6``. Everything is inside cidr6, so IP pools kept off the underlay are kept
off the whole fabric. The external host (``external:``) and its router interface stay IPv4.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from topologies.fabric import FabricSpec, RackNet
from topologies.fields import err as _err

RACK_PREFIXLEN6 = 64
LINK_PREFIXLEN6 = 127       # RFC 6164 point-to-point links
GATEWAY_OFFSET6 = 1         # the ToR is the rack subnet's ::1


def _too_small(net: ipaddress.IPv6Network, racks: int) -> str | None:
    need = racks + 2
    if net.prefixlen <= RACK_PREFIXLEN6 and 2 ** (RACK_PREFIXLEN6 - net.prefixlen) >= need:
        return None
    longest = RACK_PREFIXLEN6 - (need - 1).bit_length()
    return (f"{net} is too small for a fabric of {racks} rack(s): every rack gets a /64 of "
            f"it (rack i the i-th, the first stays free) and the last /64 holds the router "
            f"links, so it needs {need} /64s: a /{longest} or shorter (a /56 holds 254 racks)")


def plan6(fabric: FabricSpec, rack_nets: dict[str, RackNet], rack_names: list[str],
          cidr6: str) -> tuple[FabricSpec, dict[str, RackNet]]:
    """The fabric and rack nets of the IPv4 plan with their IPv6 addresses added."""
    net = ipaddress.IPv6Network(cidr6)
    why = _too_small(net, len(rack_names))
    if why:
        raise _err(why, "underlay.cidr6")
    base, step = int(net.network_address), 1 << (128 - RACK_PREFIXLEN6)
    nets = {}
    for i, rack in enumerate(rack_names, start=1):
        subnet = ipaddress.IPv6Network((base + i * step, RACK_PREFIXLEN6))
        nets[rack] = replace(rack_nets[rack], subnet6=str(subnet),
                             gateway6=str(subnet.network_address + GATEWAY_OFFSET6))
    link_base = int(net.broadcast_address) + 1 - step     # the last /64
    ends: dict[tuple[str, str], str] = {}                  # (router, interface) -> address
    links = []
    for k, link in enumerate(fabric.links):
        a = str(ipaddress.IPv6Address(link_base + 2 * k))
        b = str(ipaddress.IPv6Address(link_base + 2 * k + 1))
        ends[(link.a, link.a_intf)], ends[(link.b, link.b_intf)] = a, b
        links.append(replace(link, a_ip6=a, b_ip6=b))
    routers = []
    for router in fabric.routers:
        ifs = []
        for intf in router.interfaces:
            if router.role == "tor" and intf.peer == f"rack {router.rack}":
                intf = replace(intf, ip6=nets[router.rack].gateway6,
                               prefixlen6=RACK_PREFIXLEN6)
            elif (router.name, intf.name) in ends:
                intf = replace(intf, ip6=ends[(router.name, intf.name)],
                               prefixlen6=LINK_PREFIXLEN6)
            ifs.append(intf)
        routers.append(replace(router, interfaces=tuple(ifs)))
    link_net = ipaddress.IPv6Network((link_base, RACK_PREFIXLEN6))
    return (replace(fabric, routers=tuple(routers), links=tuple(links),
                    link_cidr6=str(link_net)), nets)
