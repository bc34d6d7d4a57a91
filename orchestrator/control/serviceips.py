"""ClusterIP and NodePort allocation for Services, done inside an apply's store transaction.

Side effects: reads Services from the store (the caller's transaction makes the read and the
write of the Service one step, so two applies never get the same address). The Service
object is the allocation record, as with Kubernetes' bitmap allocator (an address is in use
while a Service holds it): deleting the Service releases it, and a restart sees what is held.

As the API server: a requested address must be inside the service CIDR of its family
(10.96.0.0/12 and, on clusters with IPv6 pods, fd00:10:96::/112 as kind configures them) and
free; dynamic allocation picks at random from the upper part of the range, leaving the lower
"static" band (min(max(16, size/16), 256) addresses) to requested ones (KEP-3070), so a later
`clusterIP: 10.96.0.10` rarely collides. NodePorts likewise from 30000-32767 (static band
min(max(16, size/32), 128) ports). Both are immutable once set: an update that omits them
keeps them.

Dual stack as the registry's initIPFamilyFields: the cluster's service families are its
pods' (primary first). ipFamilyPolicy defaults to SingleStack (RequireDualStack for a headless
Service without selector, the policy before for an update); ipFamilies follow the requested
clusterIPs, else the primary family, and gain the other family for PreferDualStack and
RequireDualStack where the cluster has two. RequireDualStack on a single-family cluster and a
family the cluster does not serve are refused naming the field. clusterIPs[0] and
ipFamilies[0] never change; SingleStack on an update releases the secondary address.
"""

from __future__ import annotations

import ipaddress
import random

from orchestrator.api.service import FAMILY_NAMES, HEADLESS
from orchestrator.errors import ValidationError

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
# kind's IPv6 serviceSubnet; /112 is also the largest range the API server's bitmap takes.
DEFAULT_SERVICE_CIDR6 = "fd00:10:96::/112"
DEFAULT_NODE_PORTS = (30000, 32767)
# The registry's allocator keeps a bitmap: IPv6 ranges are cut to their first 65536 addresses.
MAX_V6_RANGE = 65536


def _band(size: int, divisor: int, cap: int) -> int:
    """Size of the static band at the bottom of a range (KEP-3070 / KEP-3668)."""
    return min(max(16, size // divisor), cap)


def _family(ip: str) -> str:
    return FAMILY_NAMES[ipaddress.ip_address(ip).version]


def _invalid(field: str, value, why: str) -> ValidationError:
    return ValidationError(f"Invalid value: {value!r}: {why}", field=field)


class ServiceIPAllocator:
    """The apply hook for Services (Client(allocators=[...])).

    ``families``: the cluster's service IP families, primary first (its pods' families)."""

    KINDS = ("Service",)

    def __init__(self, cidr: str = DEFAULT_SERVICE_CIDR,
                 node_ports: tuple[int, int] = DEFAULT_NODE_PORTS, rng: random.Random | None = None,
                 *, families=(4,), cidr6: str = DEFAULT_SERVICE_CIDR6):
        cidrs = {4: ipaddress.IPv4Network(cidr), 6: ipaddress.IPv6Network(cidr6)}
        self.nets = {FAMILY_NAMES[f]: cidrs[f] for f in families}
        self.default_family = FAMILY_NAMES[tuple(families)[0]]
        self.net = self.nets.get("IPv4") or cidrs[4]
        self.node_ports = node_ports
        self.rng = rng or random.Random()

    # -- hook ------------------------------------------------------------------------------

    def allocate(self, store, obj: dict, old: dict | None) -> None:
        """Fill spec.clusterIP(s), ipFamilies, ipFamilyPolicy and nodePorts of ``obj`` (in
        place) before it is written."""
        if obj.get("kind") != "Service":
            return
        spec = obj["spec"]
        others = [s for s in store.list("Service")
                  if (s["metadata"].get("namespace"), s["metadata"]["name"])
                  != (obj["metadata"].get("namespace"), obj["metadata"]["name"])]
        old_spec = (old or {}).get("spec") or {}
        self._families(spec, old_spec)
        self._cluster_ips(spec, others)
        self._node_ports(spec, old_spec, others)

    def release(self, store, obj: dict) -> None:
        """Nothing to free beyond the object itself (it is the record); kept as the hook's
        other half so a separate allocation store could be plugged in."""

    # -- ipFamilyPolicy, ipFamilies, clusterIPs[] before allocation --------------------------

    def _families(self, spec: dict, old_spec: dict) -> None:
        had = list(old_spec.get("clusterIPs") or
                   ([old_spec["clusterIP"]] if old_spec.get("clusterIP") else []))
        want = list(spec.get("clusterIPs") or [])
        selectorless_headless = (want[:1] or had[:1]) == [HEADLESS] and not spec.get("selector")
        if "ipFamilyPolicy" not in spec:
            spec["ipFamilyPolicy"] = (old_spec.get("ipFamilyPolicy") or
                                      ("RequireDualStack" if selectorless_headless
                                       else "SingleStack"))
        policy = spec["ipFamilyPolicy"]
        single = policy == "SingleStack"
        if had:
            if want and want[0] != had[0]:
                field = "spec.clusterIP" if spec.get("clusterIP") else "spec.clusterIPs[0]"
                raise ValidationError(f"Invalid value: {want[0]!r}: field is immutable (was "
                                      f"{had[0]!r})", field=field)
            if len(want) == 2 and len(had) == 2 and want[1] != had[1]:
                raise _invalid("spec.clusterIPs[1]", want[1], f"may not change once set (was "
                                                              f"{had[1]!r})")
            if len(want) < 2 and len(had) == 2 and not single and want:
                raise _invalid("spec.ipFamilyPolicy", policy,
                               "must be 'SingleStack' to release the secondary cluster IP")
            want = want or (had[:1] if single else had)
            if "ipFamilies" not in spec and old_spec.get("ipFamilies"):
                spec["ipFamilies"] = list(old_spec["ipFamilies"])[:1 if single else 2]
            old_fams = old_spec.get("ipFamilies") or []
            if old_fams and spec.get("ipFamilies") and spec["ipFamilies"][0] != old_fams[0]:
                raise _invalid("spec.ipFamilies[0]", spec["ipFamilies"][0],
                               f"primary ipFamily can not be changed (was {old_fams[0]!r})")
        fams = list(spec.get("ipFamilies") or [])
        if single and len(want) == 2:
            raise _invalid("spec.ipFamilyPolicy", policy, "must be 'RequireDualStack' or "
                           "'PreferDualStack' when multiple cluster IPs are specified")
        if single and len(fams) == 2:
            raise _invalid("spec.ipFamilyPolicy", policy, "must be 'RequireDualStack' or "
                           "'PreferDualStack' when multiple IP families are specified")
        for i, ip in enumerate(want):
            if ip == HEADLESS:
                break
            if i >= len(fams):
                if _family(ip) not in self.nets:
                    raise _invalid(f"spec.clusterIPs[{i}]", ip,
                                   f"{_family(ip)} is not configured on this cluster")
                fams.append(_family(ip))
        spec["clusterIPs"] = want
        if want[:1] == [HEADLESS] and not spec.get("selector"):
            # Headless without selector: allowed any families, even on a single-stack cluster
            # (its Endpoints are the user's).
            fams = fams or [self.default_family]
            if len(fams) < 2 and not single:
                fams.append("IPv6" if fams[0] == "IPv4" else "IPv4")
            spec["ipFamilies"] = fams
            return
        if policy == "RequireDualStack" and len(self.nets) < 2:
            raise _invalid("spec.ipFamilyPolicy", policy,
                           "this cluster is not configured for dual-stack services")
        for i, fam in enumerate(fams):
            if fam not in self.nets:
                raise _invalid(f"spec.ipFamilies[{i}]", fam, "not configured on this cluster "
                               f"(its service families: {', '.join(self.nets)})")
        fams = fams or [self.default_family]
        if not single and len(fams) == 1 and len(self.nets) == 2:
            fams.append("IPv6" if fams[0] == "IPv4" else "IPv4")
        spec["ipFamilies"] = fams

    # -- ClusterIP -------------------------------------------------------------------------

    def _cluster_ips(self, spec: dict, others: list[dict]) -> None:
        ips = list(spec.get("clusterIPs") or [])
        if ips[:1] == [HEADLESS]:
            spec["clusterIP"], spec["clusterIPs"] = HEADLESS, [HEADLESS]
            return
        used: dict[str, dict] = {}
        for s in others:
            for u in s["spec"].get("clusterIPs") or [s["spec"].get("clusterIP")]:
                if u and u != HEADLESS:
                    used[str(ipaddress.ip_address(u))] = s
        while len(ips) < len(spec["ipFamilies"]):
            ips.append("")
        for i, fam in enumerate(spec["ipFamilies"]):
            field = "spec.clusterIP" if i == 0 else f"spec.clusterIPs[{i}]"
            ips[i] = self._one(ips[i], self.nets[fam], used, field)
        spec["clusterIP"], spec["clusterIPs"] = ips[0], ips

    def _one(self, want: str, net, used: dict[str, dict], field: str) -> str:
        """A requested address checked, or a free one picked, in ``net``."""
        base = int(net.network_address) + 1
        # IPv4: no network, no broadcast address; IPv6: no subnet-router anycast address.
        size = (net.num_addresses - 2 if net.version == 4
                else min(net.num_addresses, MAX_V6_RANGE) - 1)
        if want:
            ip = ipaddress.ip_address(want)
            if ip.version != net.version or not 0 <= int(ip) - base < size:
                raise ValidationError(
                    f"Invalid value: {want!r}: failed to allocate IP {want}: the provided IP "
                    f"({want}) is not in the valid range. The range of valid IPs is "
                    f"{net}", field=field)
            if str(ip) in used:
                owner = used[str(ip)]
                raise ValidationError(
                    f"Invalid value: {want!r}: failed to allocate IP {want}: provided IP is "
                    f"already allocated (to Service {owner['metadata'].get('namespace')}/"
                    f"{owner['metadata']['name']})", field=field)
            return want
        offset = self._pick(size, _band(size, 16, 256),
                            {int(ipaddress.ip_address(u)) - base for u in used
                             if ipaddress.ip_address(u).version == net.version})
        if offset is None:
            raise ValidationError(f"Internal error: failed to allocate a serviceIP: "
                                  f"range {net} is full", field=field)
        return str(ipaddress.ip_address(base + offset))

    def _pick(self, size: int, static: int, used: set[int]) -> int | None:
        """A free offset: random tries in the dynamic band, then a scan (dynamic, static)."""
        static = min(static, size)
        if size > static:
            for _ in range(64):
                o = self.rng.randrange(static, size)
                if o not in used:
                    return o
        start = self.rng.randrange(static, size) if size > static else 0
        order = list(range(start, size)) + list(range(static, start)) + list(range(static))
        return next((o for o in order if o not in used), None)

    # -- NodePort --------------------------------------------------------------------------

    def _node_ports(self, spec: dict, old_spec: dict, others: list[dict]) -> None:
        if spec.get("type") != "NodePort":
            return
        lo, hi = self.node_ports
        used = {p.get("nodePort") for s in others for p in s["spec"].get("ports") or []}
        previous = {(p.get("port"), p.get("protocol")): p.get("nodePort")
                    for p in old_spec.get("ports") or [] if p.get("nodePort")}
        mine: set[int] = set()
        for i, port in enumerate(spec.get("ports") or []):
            path = f"spec.ports[{i}].nodePort"
            want = port.get("nodePort")
            if want is None:
                want = previous.get((port["port"], port["protocol"]))
            if want is not None:
                if not lo <= want <= hi:
                    raise ValidationError(
                        f"Invalid value: {want}: provided port is not in the valid range. "
                        f"The range of valid ports is {lo}-{hi}", field=path)
                if want in used:
                    raise ValidationError(f"Invalid value: {want}: provided port is already "
                                          "allocated", field=path)
                port["nodePort"] = want
                mine.add(want)
        for i, port in enumerate(spec.get("ports") or []):
            if port.get("nodePort") is None:
                size = hi - lo + 1
                o = self._pick(size, _band(size, 32, 128), {p - lo for p in used | mine if p})
                if o is None:
                    raise ValidationError(f"Internal error: failed to allocate a nodePort: "
                                          f"range {lo}-{hi} is full",
                                          field=f"spec.ports[{i}].nodePort")
                port["nodePort"] = lo + o
                mine.add(lo + o)
