"""Underlay addressing: which IP each node gets, in IPv4 or IPv6.

Pure and deterministic. Like a docker network: .0 is the network, .1 the (absent) gateway,
so nodes without an explicit ``ip`` get .2, .3, ... in node order (::2, ::3, ... in IPv6),
skipping addresses other nodes asked for explicitly. Explicit addresses must be host
addresses of the underlay.
"""

from __future__ import annotations

import ipaddress

from orchestrator.errors import ValidationError

FIRST_HOST_OFFSET = 2


def assign_node_ips(requests, cidr: str, *, field: str = "underlay.cidr") -> dict[str, str]:
    """``requests``: (node name, explicit ip or None, field path) in node order -> name: ip.
    The family is the network's; ``field`` names it in a "no free address" error."""
    net = ipaddress.ip_network(cidr)
    addr = type(net.network_address)    # from an int: IPv4Address or IPv6Address, never guessed
    taken: dict = {}
    out: dict[str, str] = {}
    for name, want, fld in requests:
        if want is None:
            continue
        try:
            ip = ipaddress.ip_address(str(want))
            if ip.version != net.version:
                raise ValueError
        except ValueError:
            raise ValidationError(f"{want!r} is not an IPv{net.version} address",
                                  field=fld) from None
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
        while candidate <= last and addr(candidate) in taken:
            candidate += 1
        if candidate > last:
            raise ValidationError(f"underlay {net} has no free address for node {name!r}",
                                  field=field)
        ip = addr(candidate)
        taken[ip] = name
        out[name] = str(ip)
        candidate += 1
    return out
