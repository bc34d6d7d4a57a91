"""projectcalico.org/v3 BGPConfiguration and BGPPeer specs: defaulting and validation.

Pure. The rules are bgp.model's (the ones the speakers are rendered from), so what the API
accepts is exactly what routing can run: AS numbers 1..4294967295 (plain or dotted), Calico
selectors, peerIP an IPv4 or IPv6 address, keepalive = hold/3. Checks that need the cluster
(the node a BGPPeer names exists, its peerIP is inside the underlay) are in
check_peer_against_cluster, which the Client calls at apply time with the store's nodes and
the underlay.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict
from typing import Any, Iterable

from bgp.model import configuration_from_manifest, peer_from_manifest
from orchestrator.api.fields import as_map, check_known, fail, guard

BGPCONFIG_SPEC_FIELDS = frozenset({
    "asNumber", "nodeToNodeMeshEnabled", "listenPort", "logSeverityScreen", "holdTime",
    "keepaliveTime", "nodeMeshMaxRestartTime", "serviceClusterIPs", "serviceExternalIPs",
})
BGPPEER_SPEC_FIELDS = frozenset({"peerIP", "asNumber", "node", "nodeSelector", "peerSelector"})
# Calico also serves per-node configurations named "node.<name>"; calinet has only the
# cluster-wide one, which Calico calls "default".
CLUSTER_CONFIG_NAME = "default"
# Used while normalizing, before the cluster is known: every address is "inside".
_ANY = (ipaddress.IPv4Network("0.0.0.0/0"), ipaddress.IPv6Network("::/0"))


def normalize_bgpconfiguration_spec(spec: Any, name: str) -> dict:
    """The spec with every default filled in (asNumber 64512, mesh on, port 179, ...)."""
    spec = as_map(spec, "spec") or {}
    check_known(spec, BGPCONFIG_SPEC_FIELDS, "spec")
    with guard():  # the name and the spec are checked independently
        if name and name != CLUSTER_CONFIG_NAME:
            fail("metadata.name", f"Invalid value: {name!r}: only the cluster-wide "
                                  f"BGPConfiguration {CLUSTER_CONFIG_NAME!r} is supported")
    doc = {"kind": "BGPConfiguration", "metadata": {"name": CLUSTER_CONFIG_NAME},
           "spec": spec}
    out = asdict(configuration_from_manifest(doc))
    for key in ("serviceClusterIPs", "serviceExternalIPs"):   # Calico's [{cidr}] form
        if out[key]:
            out[key] = [{"cidr": c} for c in out[key]]
        else:
            del out[key]
    return out


def normalize_bgppeer_spec(spec: Any, name: str) -> dict:
    """The spec, validated on its own (node existence and the underlay come later)."""
    spec = as_map(spec, "spec", required=True)
    check_known(spec, BGPPEER_SPEC_FIELDS, "spec")
    node = spec.get("node")
    if node is not None and not isinstance(node, str):
        with guard():
            fail("spec.node", f"Invalid value: {node!r}: must be a node name")
        node = None  # the rest of the peer is still checked
    spec = {k: v for k, v in spec.items() if k != "node" or node is not None}
    peer = peer_from_manifest({"kind": "BGPPeer", "metadata": {"name": name or "x"},
                               "spec": spec},
                              node_names=[node] if node else [], underlay=_ANY)
    out = {k: v for k, v in asdict(peer).items() if k != "name" and v is not None}
    return out


def check_peer_against_cluster(peer: dict, node_names: Iterable[str],
                               underlay_cidr: str | ipaddress.IPv4Network) -> None:
    """A normalized BGPPeer against the running cluster: `spec.node` must name a node,
    `spec.peerIP` must be inside the underlay (the only network node speakers reach).
    Raises ValidationError naming the field."""
    peer_from_manifest(peer, node_names=list(node_names), underlay=underlay_cidr)
