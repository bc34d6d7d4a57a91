"""The outside world of a topology: one host standing in for the internet. Pure.

``external:`` puts a Mininet host on a documentation network (RFC 5737: 203.0.113.0/24 by
default), inside the testbed only: nothing connects it to the machine's interfaces. On a
routed fabric it hangs off a router (the first spine by default), which announces its
network into the fabric (BIRD `protocol direct`); on an L2 underlay it sits on the underlay
switch (the spine switch with racks) and reaches the nodes on-link. Pods reach it through
their node's default route; with natOutgoing the node's address arrives, without it the
pod's own (which it can answer only where the fabric routes pod blocks, i.e. nodes peering
with their ToRs).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from topologies.fabric import FabricSpec, Interface, _router_name
from topologies.fields import err, mapping

EXTERNAL_KEYS = {"name", "cidr", "attach", "bandwidth"}
DEFAULT_NAME = "internet"
DEFAULT_CIDR = "203.0.113.0/24"     # TEST-NET-3, documentation only
HOST_OFFSET = 10                    # the host is .10; the attaching router .1
INTF = "eth0"


@dataclass(frozen=True)
class ExternalSpec:
    name: str
    cidr: str
    ip: str                      # the external host's address
    prefixlen: int
    gateway: str | None = None   # fabric: the attaching router's address on this network
    attach: str | None = None    # fabric: router name; L2: None (the underlay switch)
    attach_intf: str | None = None
    bandwidth: float | None = None


def parse(raw, underlay_cidr: str, fabric: FabricSpec | None, node_names) -> tuple:
    """(ExternalSpec, fabric with the attaching router's new interface)."""
    raw = mapping(raw if raw is not None else {}, "external", EXTERNAL_KEYS)
    name = _router_name(raw.get("name", DEFAULT_NAME), "external.name")
    if name in set(node_names) or (fabric and name in fabric.router_names):
        raise err(f"external host name {name!r} is already a node or router name",
                  "external.name")
    try:
        net = ipaddress.IPv4Network(str(raw.get("cidr", DEFAULT_CIDR)), strict=True)
    except ValueError as exc:
        raise err(f"{raw.get('cidr')!r} is not an IPv4 network: {exc}", "external.cidr") from None
    if net.prefixlen > 29:
        raise err(f"{net} is too small (at most /29)", "external.cidr")
    for what, cidr in (("underlay", underlay_cidr), ("default IP pool", "10.244.0.0/16"),
                       ("Service range", "10.96.0.0/12")):
        if net.overlaps(ipaddress.IPv4Network(cidr)):
            raise err(f"{net} overlaps the {what} {cidr}: the outside world must be outside "
                      "the cluster", "external.cidr")
    bw = raw.get("bandwidth")
    if bw is not None and (isinstance(bw, bool) or not isinstance(bw, (int, float))
                           or not 0 < bw <= 1000):
        raise err(f"bandwidth must be a number of Mbit/s in 0 < bw <= 1000, got {bw!r}",
                  "external.bandwidth")
    ip = str(net.network_address + HOST_OFFSET)
    if fabric is None:
        if "attach" in raw:
            raise err("attach names a fabric router; this topology has no `fabric:`",
                      "external.attach")
        return ExternalSpec(name, str(net), ip, net.prefixlen,
                            bandwidth=float(bw) if bw is not None else None), None
    attach = raw.get("attach", fabric.spines()[0].name if fabric.spines() else None)
    if attach not in fabric.router_names:
        raise err(f"unknown router {attach!r} (routers: {', '.join(fabric.router_names)})",
                  "external.attach")
    router = fabric.router(attach)
    used = {int(i.name[3:]) for i in router.interfaces if i.name[3:].isdigit()}
    intf = f"eth{max(used | {0}) + 1}"
    gateway = str(net.network_address + 1)
    new = replace(router, interfaces=(*router.interfaces,
                                      Interface(intf, gateway, net.prefixlen, f"external {name}")))
    fabric = replace(fabric, routers=tuple(new if r.name == attach else r
                                           for r in fabric.routers))
    return (ExternalSpec(name, str(net), ip, net.prefixlen, gateway, attach, intf,
                         float(bw) if bw is not None else None), fabric)


def render_batch(ext: ExternalSpec, underlay_cidr: str, mac) -> str:
    """`ip -batch` of the external host (pure; ``mac`` maps an address to its MAC)."""
    lines = ["link set dev lo up",
             f"link set dev {INTF} address {mac(ext.ip)}",
             f"addr add {ext.ip}/{ext.prefixlen} dev {INTF}",
             f"link set dev {INTF} up"]
    if ext.gateway:
        lines += [f"route add default via {ext.gateway} dev {INTF}",
                  f"neigh replace {ext.gateway} lladdr {mac(ext.gateway)} dev {INTF} "
                  "nud permanent"]
    else:
        # On the underlay's L2: the nodes are on-link (their default route is too).
        lines.append(f"route add {underlay_cidr} dev {INTF}")
    return "\n".join(lines) + "\n"
