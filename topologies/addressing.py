"""Underlay addressing: which IP each node gets.

Pure and deterministic. Like a docker network: .0 is the network, .1 the (absent) gateway,
so nodes without an explicit ``ip`` get .2, .3, ... in node order, skipping addresses other
nodes asked for explicitly. Explicit addresses must be host addresses of the underlay.
"""

from __future__ import annotations

import ipaddress

from orchestrator.errors import ValidationError

FIRST_HOST_OFFSET = 2


def assign_node_ips(requests, cidr: str) -> dict[str, str]:
    """``requests``: (node name, explicit ip or None, field path) in node order -> name: ip."""
    net = ipaddress.IPv4Network(cidr)
    taken: dict[ipaddress.IPv4Address, str] = {}
    out: dict[str, str] = {}
    for name, want, fld in requests:
        if want is None:
            continue
        try:
            ip = ipaddress.IPv4Address(str(want))
        except ValueError:
            raise ValidationError(f"{want!r} is not an IPv4 address", field=fld) from None
        if ip not in net or ip in (net.network_address, net.broadcast_address):
            raise ValidationError(f"{ip} is not a host address of the underlay {net}", field=fld)
        if ip in taken:
            raise ValidationError(f"{ip} is already the IP of node {taken[ip]!r}", field=fld)
        taken[ip] = name
        out[name] = str(ip)
    candidate = int(net.network_address) + FIRST_HOST_OFFSET
    last = int(net.broadcast_address) - 1
    for name, _want, _fld in requests:
        if name in out:
            continue
        while candidate <= last and ipaddress.IPv4Address(candidate) in taken:
            candidate += 1
        if candidate > last:
            raise ValidationError(f"underlay {net} has no free address for node {name!r}",
                                  field="underlay.cidr")
        ip = ipaddress.IPv4Address(candidate)
        taken[ip] = name
        out[name] = str(ip)
        candidate += 1
    return out
