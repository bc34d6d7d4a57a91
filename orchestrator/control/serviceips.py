"""ClusterIP and NodePort allocation for Services, done inside an apply's store transaction.

Side effects: reads Services from the store (the caller's transaction makes the read and the
write of the Service one step, so two applies never get the same address). The Service
object is the allocation record, as with Kubernetes' bitmap allocator (an address is in use
while a Service holds it): deleting the Service releases it, and a restart sees what is held.

As the API server: a requested address must be inside the service CIDR (10.96.0.0/12 by
default) and free; dynamic allocation picks at random from the upper part of the range,
leaving the lower "static" band (min(max(16, size/16), 256) addresses) to requested ones
(KEP-3070), so a later `clusterIP: 10.96.0.10` rarely collides. NodePorts likewise from
30000-32767 (static band min(max(16, size/32), 128) ports). Both are immutable once set: an
update that omits them keeps them.
"""

from __future__ import annotations

import ipaddress
import random

from orchestrator.api.service import HEADLESS
from orchestrator.errors import ValidationError

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORTS = (30000, 32767)


def _band(size: int, divisor: int, cap: int) -> int:
    """Size of the static band at the bottom of a range (KEP-3070 / KEP-3668)."""
    return min(max(16, size // divisor), cap)


class ServiceIPAllocator:
    """The apply hook for Services (Client(allocators=[...]))."""

    KINDS = ("Service",)

    def __init__(self, cidr: str = DEFAULT_SERVICE_CIDR,
                 node_ports: tuple[int, int] = DEFAULT_NODE_PORTS, rng: random.Random | None = None):
        self.net = ipaddress.IPv4Network(cidr)
        self.node_ports = node_ports
        self.rng = rng or random.Random()

    # -- hook ------------------------------------------------------------------------------

    def allocate(self, store, obj: dict, old: dict | None) -> None:
        """Fill spec.clusterIP(s) and nodePorts of ``obj`` (in place) before it is written."""
        if obj.get("kind") != "Service":
            return
        spec = obj["spec"]
        others = [s for s in store.list("Service")
                  if (s["metadata"].get("namespace"), s["metadata"]["name"])
                  != (obj["metadata"].get("namespace"), obj["metadata"]["name"])]
        old_spec = (old or {}).get("spec") or {}
        self._cluster_ip(spec, old_spec, others)
        self._node_ports(spec, old_spec, others)

    def release(self, store, obj: dict) -> None:
        """Nothing to free beyond the object itself (it is the record); kept as the hook's
        other half so a separate allocation store could be plugged in."""

    # -- ClusterIP -------------------------------------------------------------------------

    def _cluster_ip(self, spec: dict, old_spec: dict, others: list[dict]) -> None:
        want, had = spec.get("clusterIP", ""), old_spec.get("clusterIP", "")
        if had:
            if want and want != had:
                raise ValidationError(f"Invalid value: {want!r}: field is immutable (was "
                                      f"{had!r})", field="spec.clusterIP")
            spec["clusterIP"], spec["clusterIPs"] = had, [had]
            return
        if want == HEADLESS:
            return
        used = {s["spec"].get("clusterIP") for s in others}
        if want:
            ip = ipaddress.IPv4Address(want)
            if ip not in self.net or ip in (self.net.network_address,
                                            self.net.broadcast_address):
                raise ValidationError(
                    f"Invalid value: {want!r}: failed to allocate IP {want}: the provided IP "
                    f"({want}) is not in the valid range. The range of valid IPs is "
                    f"{self.net}", field="spec.clusterIP")
            if want in used:
                owner = next(s for s in others if s["spec"].get("clusterIP") == want)
                raise ValidationError(
                    f"Invalid value: {want!r}: failed to allocate IP {want}: provided IP is "
                    f"already allocated (to Service {owner['metadata'].get('namespace')}/"
                    f"{owner['metadata']['name']})", field="spec.clusterIP")
            ip_text = want
        else:
            size = self.net.num_addresses - 2            # no network, no broadcast address
            static = _band(size, 16, 256)
            offset = self._pick(size, static, {int(ipaddress.IPv4Address(u)) -
                                               int(self.net.network_address) - 1
                                               for u in used if u and u != HEADLESS})
            if offset is None:
                raise ValidationError(f"Internal error: failed to allocate a serviceIP: "
                                      f"range {self.net} is full", field="spec.clusterIP")
            ip_text = str(self.net.network_address + 1 + offset)
        spec["clusterIP"], spec["clusterIPs"] = ip_text, [ip_text]

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
