"""The cluster.local zone from API objects, as Kubernetes' DNS specification defines it.

Pure. Records:
- `<svc>.<ns>.svc.<domain>` A: the ClusterIP; for a headless Service (clusterIP: None) the
  addresses of its ready endpoints (EndpointSlices when there are any, else the Ready pods its
  selector matches);
- `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV for each named Service port;
- `<hostname>.<subdomain>.<ns>.svc.<domain>` A for a pod with spec.hostname and
  spec.subdomain naming a headless Service (StatefulSet pods: stable names);
- `<a-b-c-d>.<ns>.pod.<domain>` A for every pod address.
Names are lower case, without the final dot. Values are text rdata (dnspython's from_text).
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.api.labels import label_selector_matches
from orchestrator.api.pod import pod_ipv4

DOMAIN = "cluster.local"


def _ready(pod: dict) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def zone(services: Iterable[dict], pods: Iterable[dict], slices: Iterable[dict] = (),
         domain: str = DOMAIN) -> dict[tuple[str, str], list[str]]:
    # A records only (AAAA is not served yet): pods with an IPv4 address.
    pods = [p for p in pods if pod_ipv4(p)]
    slices = list(slices)
    out: dict[tuple[str, str], list[str]] = {}

    def add(name: str, rdtype: str, value: str) -> None:
        vals = out.setdefault((name.lower(), rdtype), [])
        if value not in vals:
            vals.append(value)

    headless: set[tuple[str, str]] = set()
    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec") or {}
        ns, name = meta.get("namespace", "default"), meta["name"]
        fqdn = f"{name}.{ns}.svc.{domain}"
        cip = spec.get("clusterIP")
        if cip and cip != "None":
            add(fqdn, "A", cip)
        else:
            headless.add((ns, name))
            ips = [ep_ip for s in slices
                   if (s["metadata"].get("namespace"), (s["metadata"].get("labels") or {}).get(
                       "kubernetes.io/service-name")) == (ns, name)
                   for ep in s.get("endpoints") or []
                   if (ep.get("conditions") or {}).get("ready", True)
                   for ep_ip in ep.get("addresses") or []]
            if not slices and spec.get("selector"):
                ips = [pod_ipv4(p) for p in pods
                       if p["metadata"].get("namespace") == ns and _ready(p)
                       and label_selector_matches({"matchLabels": spec["selector"]},
                                                  p["metadata"].get("labels") or {})]
            for ip in sorted(ips):
                add(fqdn, "A", ip)
        for port in spec.get("ports") or []:
            if port.get("name"):
                proto = str(port.get("protocol", "TCP")).lower()
                add(f"_{port['name']}._{proto}.{fqdn}", "SRV",
                    f"0 100 {port['port']} {fqdn}.")
    for pod in pods:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        ns, ip = meta.get("namespace", "default"), pod_ipv4(pod)
        add(f"{ip.replace('.', '-')}.{ns}.pod.{domain}", "A", ip)
        if spec.get("hostname") and spec.get("subdomain") and (ns, spec["subdomain"]) in headless:
            add(f"{spec['hostname']}.{spec['subdomain']}.{ns}.svc.{domain}", "A", ip)
    return out


def search_list(namespace: str, domain: str = DOMAIN) -> list[str]:
    """A pod's resolv.conf search domains, in order."""
    return [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]


def candidates(name: str, namespace: str, domain: str = DOMAIN, ndots: int = 5) -> list[str]:
    """The names a pod's resolver tries for ``name`` (ndots:5, as kubelet configures it)."""
    if name.endswith(".") or name.count(".") >= ndots:   # absolute, or dotted enough
        return [name.rstrip(".")]
    return [f"{name}.{d}" for d in search_list(namespace, domain)] + [name]
