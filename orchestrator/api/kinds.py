"""Registry of the API kinds calinet serves, and the CLI words that name them.

Pure. Short names follow kubectl (po, deploy, rs, ns, no) and calicoctl (ippool, ipp, pool).
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
    info.kind: info
    for info in (
        KindInfo("Namespace", ("v1",), False, "namespaces", "namespace", ("ns",)),
        KindInfo("Node", ("v1",), False, "nodes", "node", ("no",)),
        KindInfo("Pod", ("v1",), True, "pods", "pod", ("po",)),
        KindInfo("Deployment", ("apps/v1",), True, "deployments", "deployment", ("deploy",)),
        KindInfo("ReplicaSet", ("apps/v1",), True, "replicasets", "replicaset", ("rs",)),
        KindInfo("IPPool", ("projectcalico.org/v3",), False, "ippools", "ippool",
                 ("ipp", "ipps", "pool", "pools")),
        KindInfo("BGPConfiguration", ("projectcalico.org/v3",), False, "bgpconfigurations",
                 "bgpconfiguration", ("bgpconfig", "bgpconfigs")),
        KindInfo("BGPPeer", ("projectcalico.org/v3",), False, "bgppeers", "bgppeer",
                 ("bgpp", "bgpps")),
    )
}


def known_kinds_text() -> str:
    return ", ".join(
        f"{k} ({', '.join((i.plural, *i.short_names))})" for k, i in sorted(KINDS.items())
    )


def resolve_kind(name: str) -> KindInfo:
    """Kind for a CLI word: "po", "pods", "Pod", "deploy", "deployments.apps", "ippools.projectcalico.org"."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"resource type must be a non-empty string, got {name!r}; "
                              f"known kinds: {known_kinds_text()}")
    word = name.strip()
    if word in KINDS:
        return KINDS[word]
    lowered = word.lower()
    base, _, group = lowered.partition(".")
    for info in KINDS.values():
        if base in info.names() and (not group or group == info.group.lower()):
            return info
    raise ValidationError(f"unknown resource type {name!r}; known kinds: {known_kinds_text()}")
