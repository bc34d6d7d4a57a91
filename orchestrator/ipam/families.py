"""Which IP families a cluster has, and the apply-time check that keeps pools to them.

An IPv6 IPPool needs nodes with IPv6 addresses (the topology's `underlay.cidr6`) and pods that
get IPv6 addresses; calinet's CNI assigns IPv4 only so far, so every IPv6 pool is refused with
the reason instead of being accepted and never used. Pure apart from the store it is handed.
"""

from __future__ import annotations

import ipaddress

from orchestrator.errors import ValidationError


class IPFamilyAdmission:
    """Client admission hook: an IPPool's family must be one the cluster's pods can use.
    ``families``: the node families, (4,) or (4, 6) (ClusterSpec.families)."""

    KINDS = frozenset({"IPPool"})

    def __init__(self, families=(4,)):
        self.families = tuple(families)

    def __call__(self, store, objs: list[dict]) -> None:
        for o in objs:
            if o["kind"] != "IPPool":
                continue
            cidr = (o.get("spec") or {}).get("cidr", "")
            try:
                version = ipaddress.ip_network(cidr, strict=False).version
            except ValueError:
                continue   # the IPPool's own validation names the field
            if version != 6:
                continue
            where = {"obj": f"IPPool {o['metadata']['name']}", "field": "spec.cidr"}
            if 6 not in self.families:
                raise ValidationError(
                    f"{cidr} is an IPv6 pool, and this cluster is IPv4 only: its nodes have "
                    "no IPv6 addresses (give the topology underlay.cidr6)", **where)
            raise ValidationError(
                f"{cidr}: calinet does not give pods IPv6 addresses yet (the nodes have "
                "them); only IPv4 pools can be used", **where)
