"""Endpoints and EndpointSlice controllers: each Service's backends, from the pods it selects.

Touches only the store. Level-triggered and idempotent: every pass computes, for every
Service with a selector, the EndpointSlices (discovery.k8s.io/v1) and the v1 Endpoints its
matching pods make, and writes only what differs (a pass over an unchanged cluster writes
nothing). A pod is an endpoint once it has an address; conditions.ready is its Ready
condition (or true for publishNotReadyAddresses) and false while it terminates, so
kube-proxy sends traffic to ready pods only. A named targetPort is resolved per pod from its
container ports; pods that resolve the Service's ports to different numbers land in
different slices, as with Kubernetes' EndpointSlice controller, and a port a pod does not
serve is left out for that pod. Services without a selector are left alone (their
Endpoints and slices are the user's). Slices and Endpoints are owned by their Service
(ownerReferences) and go when it goes.

Dual stack as upstream: one set of slices per family of the Service's spec.ipFamilies
(addressType IPv4 / IPv6, each endpoint the pod's address of that family; a pod without one
is no endpoint there); the v1 Endpoints object carries the primary family only.
"""

from __future__ import annotations

import logging

from orchestrator.api.labels import label_selector_matches
from orchestrator.api.pod import pod_ip_of
from orchestrator.controllers.common import is_deleting, owner_ref, pod_ready, safe_encode

log = logging.getLogger(__name__)

SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"


def resolve_port(pod: dict, target, protocol: str) -> int | None:
    """A Service port's targetPort on this pod: a number as is, a name from the pod's
    container ports of that protocol (None when no container port has that name)."""
    if isinstance(target, int):
        return target
    for c in pod["spec"].get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and p.get("protocol", "TCP") == protocol:
                return int(p["containerPort"])
    return None


def service_families(spec: dict) -> list[int]:
    """The families a Service's slices are of (spec.ipFamilies; IPv4 for one written before
    the allocator set them)."""
    return [6 if f == "IPv6" else 4 for f in spec.get("ipFamilies") or ["IPv4"]]


def _pods_for(svc: dict, pods: list[dict], family: int) -> list[dict]:
    ns, sel = svc["metadata"]["namespace"], svc["spec"]["selector"]
    out = [p for p in pods if p["metadata"]["namespace"] == ns
           and pod_ip_of(p, family)
           and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
           and label_selector_matches({"matchLabels": sel}, p["metadata"].get("labels") or {})]
    return sorted(out, key=lambda p: p["metadata"]["name"])


def desired(svc: dict, pods: list[dict]) -> tuple[list[dict], dict]:
    """The EndpointSlices and the Endpoints object ``svc`` should have (pods: all pods)."""
    meta, spec = svc["metadata"], svc["spec"]
    ns, name = meta["namespace"], meta["name"]
    groups: dict[tuple, list[tuple[dict, bool]]] = {}
    families = service_families(spec)
    for family, pod in ((f, p) for f in families for p in _pods_for(svc, pods, f)):
        ports = []
        for sp in spec.get("ports") or []:
            num = resolve_port(pod, sp.get("targetPort", sp["port"]), sp["protocol"])
            if num is not None:
                ports.append((sp.get("name", ""), num, sp["protocol"]))
        ready = (pod_ready(pod) or bool(spec.get("publishNotReadyAddresses"))) \
            and not is_deleting(pod)
        groups.setdefault((family, tuple(ports)), []).append((pod, ready))
    labels = {**(meta.get("labels") or {}), SERVICE_NAME: name, MANAGED_BY: CONTROLLER}
    if spec.get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    slices, subsets = [], []
    for (family, ports), members in sorted(groups.items(), key=lambda g: (
            families.index(g[0][0]), g[0][1])):
        endpoints, ready_addrs, not_ready = [], [], []
        for pod, ready in members:
            pm, ip = pod["metadata"], pod_ip_of(pod, family)
            ref = {"kind": "Pod", "namespace": ns, "name": pm["name"], "uid": pm["uid"]}
            ep = {"addresses": [ip],
                  "conditions": {"ready": ready, "serving": pod_ready(pod),
                                 "terminating": is_deleting(pod)},
                  "nodeName": pod["spec"].get("nodeName"), "targetRef": ref}
            if pod["spec"].get("hostname") and pod["spec"].get("subdomain") == name:
                ep["hostname"] = pod["spec"]["hostname"]
            endpoints.append(ep)
            addr = {"ip": ip, "nodeName": pod["spec"].get("nodeName"), "targetRef": ref}
            (ready_addrs if ready else not_ready).append(addr)
        slice_ports = [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]
        # IPv4 slices keep the names they had before dual stack.
        key = f"{meta['uid']}/{ports}" if family == 4 else f"{meta['uid']}/IPv6/{ports}"
        suffix = safe_encode(key.encode(), 5)
        slices.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-{suffix}", "namespace": ns,
                         "generateName": f"{name}-", "labels": labels,
                         "ownerReferences": [owner_ref(svc)]},
            "addressType": f"IPv{family}", "endpoints": endpoints, "ports": slice_ports})
        if family != families[0]:
            continue
        subset: dict = {}
        if ready_addrs:
            subset["addresses"] = ready_addrs
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        # Endpoints ports carry the Service port's name, or none for a single unnamed port.
        subset["ports"] = [{**({"name": n} if n else {}), "port": p, "protocol": proto}
                           for n, p, proto in ports]
        subsets.append(subset)
    endpoints_obj = {"apiVersion": "v1", "kind": "Endpoints",
                     "metadata": {"name": name, "namespace": ns,
                                  "labels": dict(meta.get("labels") or {}),
                                  "ownerReferences": [owner_ref(svc)]},
                     "subsets": subsets}
    return slices, endpoints_obj


_BODY = ("addressType", "endpoints", "ports", "subsets")


def _same(have: dict, want: dict) -> bool:
    hm, wm = have["metadata"], want["metadata"]
    return (all(have.get(k) == want.get(k) for k in _BODY)
            and (hm.get("labels") or {}) == wm.get("labels")
            and hm.get("ownerReferences") == wm.get("ownerReferences"))


def _write(store, want: dict, have: dict | None) -> bool:
    if have is None:
        store.create(want)
        return True
    if _same(have, want):
        return False

    def fix(obj):
        for k in _BODY:
            if k in want:
                obj[k] = want[k]
        obj["metadata"]["labels"] = want["metadata"]["labels"]
        obj["metadata"]["ownerReferences"] = want["metadata"]["ownerReferences"]
    store.patch(want["kind"], want["metadata"]["name"], want["metadata"]["namespace"], fix)
    return True


def _owned_by(obj: dict, uids: dict[str, dict]) -> str | None:
    """The uid of the Service owning ``obj`` (live or not), None if no Service owns it."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Service" and ref.get("controller"):
            return ref.get("uid")
    return None


def reconcile(store, now: str) -> bool:
    wrote = False
    pods = store.list("Pod", shared=True)
    services = {s["metadata"]["uid"]: s for s in store.list("Service")
                if s["spec"].get("selector")}
    slices = store.list("EndpointSlice")
    endpoints = {(e["metadata"]["namespace"], e["metadata"]["name"]): e
                 for e in store.list("Endpoints")}
    existing: dict[str, list[dict]] = {}
    for s in slices:
        if (s["metadata"].get("labels") or {}).get(MANAGED_BY) == CONTROLLER:
            existing.setdefault(_owned_by(s, services) or "", []).append(s)
    for uid, svc in services.items():
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        try:
            want_slices, want_ep = desired(svc, pods)
            have = {s["metadata"]["name"]: s for s in existing.get(uid, [])}
            for s in want_slices:
                wrote |= _write(store, s, have.pop(s["metadata"]["name"], None))
            for stale in have:
                store.delete("EndpointSlice", stale, ns)
                wrote = True
            wrote |= _write(store, want_ep, endpoints.get((ns, name)))
        except Exception:  # noqa: BLE001 - one bad Service must not block the others
            log.exception("endpoints of Service %s/%s", ns, name)
    # Slices and Endpoints of Services that are gone (or lost their selector).
    for uid, group in existing.items():
        if uid not in services:
            for s in group:
                store.delete("EndpointSlice", s["metadata"]["name"], s["metadata"]["namespace"])
                wrote = True
    live = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in services.values()}
    for key, ep in endpoints.items():
        uid = _owned_by(ep, services)
        if uid and uid not in services and key not in live:
            store.delete("Endpoints", key[1], key[0])
            wrote = True
    return wrote
