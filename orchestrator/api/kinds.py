"""Registry of the API kinds calinet serves, and the CLI words that name them.

Pure. Short names follow kubectl (po, deploy, rs, ns, no, netpol), calicoctl (ippool, ipp,
pool, gnp) and Calico's API server (cnp). Two kinds share the name NetworkPolicy
(networking.k8s.io and projectcalico.org), as on a real cluster; the apiserver keeps them
apart by group, calinet by ``KindInfo.key``: the kind itself, or "<Kind>.<group>" for the
one registered second. The store is keyed by that key (``kind_key``).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.errors import ValidationError


@dataclass(frozen=True)
class KindInfo:
    kind: str                       # "Pod"
    api_versions: tuple[str, ...]   # accepted apiVersion values; the first is canonical
    namespaced: bool
    plural: str                     # "pods"
    singular: str                   # "pod"
    short_names: tuple[str, ...]    # ("po",)
    # KINDS / store key; "" means the kind itself. Only a kind whose name another group
    # already uses needs one ("NetworkPolicy.projectcalico.org").
    key: str = ""

    def __post_init__(self):
        if not self.key:
            object.__setattr__(self, "key", self.kind)

    @property
    def api_version(self) -> str:
        return self.api_versions[0]

    @property
    def group(self) -> str:
        """API group ("" for the core group), as in "deployments.apps"."""
        return self.api_version.rpartition("/")[0]

    def names(self) -> tuple[str, ...]:
        return (self.kind.lower(), self.plural, self.singular, *self.short_names)


KINDS: dict[str, KindInfo] = {
    info.key: info
    for info in (
        KindInfo("Namespace", ("v1",), False, "namespaces", "namespace", ("ns",)),
        KindInfo("Node", ("v1",), False, "nodes", "node", ("no",)),
        KindInfo("Pod", ("v1",), True, "pods", "pod", ("po",)),
        KindInfo("Deployment", ("apps/v1",), True, "deployments", "deployment", ("deploy",)),
        KindInfo("ReplicaSet", ("apps/v1",), True, "replicasets", "replicaset", ("rs",)),
        KindInfo("StatefulSet", ("apps/v1",), True, "statefulsets", "statefulset", ("sts",)),
        KindInfo("DaemonSet", ("apps/v1",), True, "daemonsets", "daemonset", ("ds",)),
        KindInfo("Job", ("batch/v1",), True, "jobs", "job", ()),
        KindInfo("CronJob", ("batch/v1",), True, "cronjobs", "cronjob", ("cj",)),
        KindInfo("Service", ("v1",), True, "services", "service", ("svc",)),
        KindInfo("Endpoints", ("v1",), True, "endpoints", "endpoints", ("ep",)),
        KindInfo("EndpointSlice", ("discovery.k8s.io/v1",), True, "endpointslices",
                 "endpointslice", ()),
        KindInfo("IPPool", ("projectcalico.org/v3",), False, "ippools", "ippool",
                 ("ipp", "ipps", "pool", "pools")),
        KindInfo("BGPConfiguration", ("projectcalico.org/v3",), False, "bgpconfigurations",
                 "bgpconfiguration", ("bgpconfig", "bgpconfigs")),
        KindInfo("BGPPeer", ("projectcalico.org/v3",), False, "bgppeers", "bgppeer",
                 ("bgpp", "bgpps")),
        KindInfo("NetworkPolicy", ("networking.k8s.io/v1",), True, "networkpolicies",
                 "networkpolicy", ("netpol",)),
        KindInfo("NetworkPolicy", ("projectcalico.org/v3",), True, "networkpolicies",
                 "networkpolicy", ("cnp", "caliconetworkpolicy", "caliconetworkpolicies"),
                 key="NetworkPolicy.projectcalico.org"),
        KindInfo("GlobalNetworkPolicy", ("projectcalico.org/v3",), False,
                 "globalnetworkpolicies", "globalnetworkpolicy",
                 ("gnp", "gnps", "cgnp", "calicoglobalnetworkpolicies")),
    )
}


def kind_key(obj: dict) -> str:
    """Store/KINDS key of a manifest: its kind, or "<Kind>.<group>" for a kind whose name
    another group also serves (a projectcalico.org/v3 NetworkPolicy). Kinds calinet does
    not serve (IPAMBlock, ...) are keyed by their kind."""
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    if not isinstance(kind, str):
        return kind
    for info in KINDS.values():
        if info.key != info.kind and info.kind == kind and api_version in info.api_versions:
            return info.key
    return kind


def known_kinds_text() -> str:
    return ", ".join(
        f"{k} ({', '.join((i.plural, *i.short_names))})" for k, i in sorted(KINDS.items())
    )


def resolve_kind(name: str) -> KindInfo:
    """Kind for a CLI word: "po", "pods", "Pod", "deploy", "deployments.apps",
    "ippools.projectcalico.org", "netpol" (Kubernetes), "networkpolicies.projectcalico.org"
    or "cnp" (Calico)."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"resource type must be a non-empty string, got {name!r}; "
                              f"known kinds: {known_kinds_text()}")
    word = name.strip()
    if word in KINDS:
        return KINDS[word]
    lowered = word.lower()
    base, _, group = lowered.partition(".")
    found = [info for info in KINDS.values()
             if base in info.names() and (not group or group == info.group.lower())]
    if found:
        # A bare "networkpolicies" means the Kubernetes kind, as with kubectl: the kind
        # registered under its own name wins over the group-qualified one.
        return next((i for i in found if i.key == i.kind), found[0])
    raise ValidationError(f"unknown resource type {name!r}; known kinds: {known_kinds_text()}")
