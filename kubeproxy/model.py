"""Service ports and their endpoints, read from v1 Services and discovery.k8s.io EndpointSlices.

Pure. What kube-proxy's service and endpoint-slice caches hold: one ServicePort per port of a
Service that has a ClusterIP (headless Services and Services of type ExternalName get no
rules), with the endpoints of the slices labelled with the Service's name whose port of the
same name and protocol they serve. Only ready endpoints receive traffic (conditions.ready
absent counts as ready, as the EndpointSlice API documents).

One family at a time, as kube-proxy runs one proxier per family (the iptables and the
ip6tables one): the Service's ClusterIP of that family (spec.clusterIPs) and the slices of that
addressType; a Service without an address of the family has no ports there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Kubernetes' default for sessionAffinityConfig.clientIP.timeoutSeconds (3 hours).
DEFAULT_AFFINITY_SECONDS = 10800


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        # net.JoinHostPort, as kube-proxy prints an endpoint (and hashes it into KUBE-SEP-).
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str            # "" for an unnamed (single) port
    protocol: str             # TCP / UDP / SCTP
    cluster_ip: str
    port: int
    node_port: int | None = None
    affinity_seconds: int | None = None     # sessionAffinity ClientIP timeout, None = none
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def svc_port_name(self) -> str:
        """proxy.ServicePortName.String(): "ns/name:port", or "ns/name" for an unnamed port."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base


def cluster_ip_of(spec: dict, family: int = 4) -> str | None:
    """The Service's ClusterIP of ``family``, None for none (headless, ExternalName, or a
    single-stack Service of the other family)."""
    if spec.get("type") == "ExternalName":
        return None
    for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
        if ip and ip != "None" and (":" in ip) == (family == 6):
            return ip
    return None


def service_ports(services: Iterable[dict], slices: Iterable[dict],
                  family: int = 4) -> list[ServicePort]:
    """Every port of every Service with a ClusterIP of ``family``, in a stable order."""
    by_service: dict[tuple[str, str], list[dict]] = {}
    for s in slices:
        meta = s.get("metadata") or {}
        svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if svc and s.get("addressType", "IPv4") == f"IPv{family}":
            by_service.setdefault((meta.get("namespace", ""), svc), []).append(s)
    out: list[ServicePort] = []
    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec") or {}
        cluster_ip = cluster_ip_of(spec, family)
        if cluster_ip is None:
            continue
        ns, name = meta.get("namespace", "default"), meta["name"]
        affinity = None
        if spec.get("sessionAffinity") == "ClientIP":
            cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
            affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
        for port in spec.get("ports") or []:
            pname, proto = port.get("name") or "", port.get("protocol") or "TCP"
            eps: set[Endpoint] = set()
            for sl in by_service.get((ns, name), []):
                target = next((p.get("port") for p in sl.get("ports") or []
                               if (p.get("name") or "") == pname
                               and (p.get("protocol") or "TCP") == proto), None)
                if target is None:
                    continue
                for ep in sl.get("endpoints") or []:
                    if (ep.get("conditions") or {}).get("ready") is False:
                        continue
                    eps.update(Endpoint(ip, int(target)) for ip in ep.get("addresses") or [])
            out.append(ServicePort(ns, name, pname, proto, cluster_ip, int(port["port"]),
                                   port.get("nodePort") if spec.get("type") in
                                   ("NodePort", "LoadBalancer") else None,
                                   affinity, tuple(sorted(eps, key=str))))
    out.sort(key=lambda p: (p.svc_port_name, p.protocol))
    return out
