"""Which IP families a cluster's pods have, and the apply-time check that keeps pools to them.

A cluster's pods get one address per family of the topology's ``ipFamilies`` (primary first);
an IPPool of a family the pods do not have would be accepted and never used, so it is refused
with the reason. IPv6 pools are routed natively (BGP): VXLAN over IPv6 is not built, and is
refused rather than silently left unencapsulated. Pure apart from the store it is handed.
"""

from __future__ import annotations

import ipaddress

from orchestrator.errors import ValidationError

FAMILY_NAME = {4: "IPv4", 6: "IPv6"}


class IPFamilyAdmission:
    """Client admission hook: an IPPool's family must be one the cluster's pods use.
    ``families``: the pods' families, primary first (ClusterSpec.families)."""

    KINDS = frozenset({"IPPool"})

    def __init__(self, families=(4,)):
        self.families = tuple(families)

    def __call__(self, store, objs: list[dict]) -> None:
        for o in objs:
            if o["kind"] != "IPPool":
                continue
            spec = o.get("spec") or {}
            cidr = spec.get("cidr", "")
            try:
                version = ipaddress.ip_network(cidr, strict=False).version
            except ValueError:
                continue   # the IPPool's own validation names the field
            where = {"obj": f"IPPool {o['metadata']['name']}"}
            if version not in self.families:
                have = " and ".join(FAMILY_NAME[f] for f in self.families)
                hint = (" (give the topology underlay.cidr6 and IPv6 in ipFamilies)"
                        if version == 6 else " (add IPv4 to the topology's ipFamilies)")
                raise ValidationError(
                    f"{cidr} is an {FAMILY_NAME[version]} pool, and this cluster's pods are "
                    f"{have} only{hint}", field="spec.cidr", **where)
            if version == 6 and spec.get("vxlanMode", "Never") not in ("Never", None, ""):
                raise ValidationError(
                    f"vxlanMode {spec['vxlanMode']}: calinet routes IPv6 pools natively over "
                    "BGP; VXLAN over IPv6 is not built (use Never)", field="spec.vxlanMode",
                    **where)
