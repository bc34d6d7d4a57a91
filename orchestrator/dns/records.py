"""The cluster.local zone from API objects, as Kubernetes' DNS specification defines it.

Pure. Records (A for IPv4 addresses, AAAA for IPv6 ones, both for dual-stack objects):
- `<svc>.<ns>.svc.<domain>`: the ClusterIPs; for a headless Service (clusterIP: None) the
  addresses of its ready endpoints (EndpointSlices of each addressType when there are any,
  else the Ready pods its selector matches);
- `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV for each named Service port;
- `<hostname>.<subdomain>.<ns>.svc.<domain>` for a pod with spec.hostname and spec.subdomain
  naming a headless Service (StatefulSet pods: stable names);
- `<a-b-c-d>.<ns>.pod.<domain>` for every pod address; an IPv6 address is spelt with its
  colons as dashes (`fd00-10-244--5`, as CoreDNS' kubernetes plugin reads it).
Names are lower case, without the final dot. Values are text rdata (dnspython's from_text).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from orchestrator.api.labels import label_selector_matches

DOMAIN = "cluster.local"
POD_ZONE = "pod"


def _ready(pod: dict) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def rdtype_of(ip: str) -> str:
    return "AAAA" if ":" in ip else "A"


def pod_label(ip: str) -> str:
    """The first label of a pod's DNS name: its address with dashes."""
    return ip.replace(":", "-") if ":" in ip else ip.replace(".", "-")


def canonical_pod_name(name: str, domain: str = DOMAIN) -> str:
    """``name`` with its address label in the zone's spelling when it is a pod name (an IPv6
    address may be asked for in another form: `fd00-10-244-0-0-0-0-5`), else unchanged."""
    label, _, rest = name.partition(".")
    if not rest.endswith(f".{POD_ZONE}.{domain}") or ("--" not in label
                                                      and label.count("-") != 7):
        return name
    try:
        ip = ipaddress.IPv6Address(label.replace("-", ":"))
    except ValueError:
        return name
    return f"{pod_label(str(ip))}.{rest}"


def _pod_ips(pod: dict) -> list[str]:
    st = pod.get("status") or {}
    ips = [a.get("ip") for a in st.get("podIPs") or [] if a.get("ip")]
    return ips or ([st["podIP"]] if st.get("podIP") else [])


def zone(services: Iterable[dict], pods: Iterable[dict], slices: Iterable[dict] = (),
         domain: str = DOMAIN) -> dict[tuple[str, str], list[str]]:
    pods = [p for p in pods if _pod_ips(p)]
    slices = list(slices)
    out: dict[tuple[str, str], list[str]] = {}

    def add(name: str, value: str, rdtype: str | None = None) -> None:
        vals = out.setdefault((name.lower(), rdtype or rdtype_of(value)), [])
        if value not in vals:
            vals.append(value)

    headless: set[tuple[str, str]] = set()
    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec") or {}
        ns, name = meta.get("namespace", "default"), meta["name"]
        fqdn = f"{name}.{ns}.svc.{domain}"
        cips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]
                if ip and ip != "None"]
        if cips:
            for ip in cips:
                add(fqdn, ip)
        else:
            headless.add((ns, name))
            ips = [ep_ip for s in slices
                   if (s["metadata"].get("namespace"), (s["metadata"].get("labels") or {}).get(
                       "kubernetes.io/service-name")) == (ns, name)
                   for ep in s.get("endpoints") or []
                   if (ep.get("conditions") or {}).get("ready", True)
                   for ep_ip in ep.get("addresses") or []]
            if not slices and spec.get("selector"):
                ips = [ip for p in pods
                       if p["metadata"].get("namespace") == ns and _ready(p)
                       and label_selector_matches({"matchLabels": spec["selector"]},
                                                  p["metadata"].get("labels") or {})
                       for ip in _pod_ips(p)]
            for ip in sorted(ips):
                add(fqdn, ip)
        for port in spec.get("ports") or []:
            if port.get("name"):
                proto = str(port.get("protocol", "TCP")).lower()
                add(f"_{port['name']}._{proto}.{fqdn}", f"0 100 {port['port']} {fqdn}.", "SRV")
    for pod in pods:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        ns = meta.get("namespace", "default")
        named = spec.get("hostname") and spec.get("subdomain") and \
            (ns, spec["subdomain"]) in headless
        for ip in _pod_ips(pod):
            add(f"{pod_label(ip)}.{ns}.{POD_ZONE}.{domain}", ip)
            if named:
                add(f"{spec['hostname']}.{spec['subdomain']}.{ns}.svc.{domain}", ip)
    return out


def search_list(namespace: str, domain: str = DOMAIN) -> list[str]:
    """A pod's resolv.conf search domains, in order."""
    return [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]


def candidates(name: str, namespace: str, domain: str = DOMAIN, ndots: int = 5) -> list[str]:
    """The names a pod's resolver tries for ``name`` (ndots:5, as kubelet configures it)."""
    if name.endswith(".") or name.count(".") >= ndots:   # absolute, or dotted enough
        return [name.rstrip(".")]
    return [f"{name}.{d}" for d in search_list(namespace, domain)] + [name]
