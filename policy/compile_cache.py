"""What the compiler keeps between compilations, so a pass after one pod came redoes little.

Pure state; compiler.compile_node reads and fills it. Three kinds of entries:
- policy chains, by (policy, direction): a policy chain names its ipsets by what selects their
  members, never by the members, so it is the same on every node and after every pod change
  (Felix, too, renders a policy's chain once and programs it wherever it is active);
- endpoint chains, by (endpoint, direction), with the policies that apply to the endpoint:
  valid while the ordered policy list and the namespace labels are the ones they were
  compiled against (any change to those clears them all);
- ipset members, by the set's recipe, kept per endpoint that contributes: when the endpoint
  list changes, a set used in the previous compilation gets only the added and removed
  endpoints evaluated, instead of every selector against every endpoint.
Only the latest endpoint change is kept: a set not used since the one before is dropped and
rebuilt when it is used again, so nothing stale survives a gap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

Contribution = Callable[[tuple, object], tuple]   # (recipe, endpoint) -> members


@dataclass
class _Members:
    epoch: int
    by_endpoint: dict          # endpoint -> its members (only endpoints with some)
    ipset: object              # policy.ir.IPSet built from them


@dataclass
class CompileCache:
    policy_chains: dict = field(default_factory=dict)    # (policy, direction) -> (Chain, sets)
    endpoint_chains: dict = field(default_factory=dict)  # (endpoint, direction) -> (pols, Chain)
    members: dict = field(default_factory=dict)          # recipe -> _Members
    policies: tuple | None = None
    namespaces: dict | None = None
    epoch: int = 0
    endpoints: frozenset = frozenset()
    added: tuple = ()
    removed: frozenset = frozenset()
    source: tuple | None = None       # the endpoints tuple ``endpoints`` was made from
    stats: dict = field(default_factory=lambda: {"set_builds": 0, "set_updates": 0,
                                                 "endpoint_chains": 0})

    def begin(self, endpoints: Sequence, namespaces: Mapping[str, Mapping[str, str]],
              ordered_policies: Sequence) -> None:
        """Called by every compilation: forget what its inputs made invalid."""
        pols = tuple(ordered_policies)
        if pols != self.policies:    # element identity first: cheap for the agent's objects
            self.endpoint_chains.clear()
            live = set(pols)
            self.policy_chains = {k: v for k, v in self.policy_chains.items() if k[0] in live}
            self.policies = pols
        if namespaces != self.namespaces:
            self.endpoint_chains.clear()
            self.members.clear()
            self.namespaces = {ns: dict(labels) for ns, labels in namespaces.items()}
        # The same tuple as last time (the compilations of one pass share one): the same
        # endpoints, without hashing them all again for every node compiled.
        if isinstance(endpoints, tuple) and endpoints is self.source:
            return
        current = frozenset(endpoints)
        self.source = endpoints if isinstance(endpoints, tuple) else None
        if current == self.endpoints:
            return
        self.added = tuple(ep for ep in endpoints if ep not in self.endpoints)
        self.removed = self.endpoints - current
        self.endpoints = current
        self.epoch += 1
        for ep in self.removed:
            for direction in ("Ingress", "Egress"):
                self.endpoint_chains.pop((ep, direction), None)
        # Sets not used since the previous change cannot be brought up to date from this one.
        self.members = {r: m for r, m in self.members.items() if m.epoch == self.epoch - 1}

    def ipset(self, recipe: tuple, endpoints: Sequence, contribution: Contribution,
              make: Callable[[frozenset], object]):
        """The set built from ``recipe`` for the current endpoints."""
        entry = self.members.get(recipe)
        if entry is not None and entry.epoch == self.epoch:
            return entry.ipset
        if entry is None:
            by_ep = {}
            for ep in endpoints:
                if got := contribution(recipe, ep):
                    by_ep[ep] = got
            self.stats["set_builds"] += 1
            changed = True
        else:
            # A copy: if a contribution raised halfway, the entry would otherwise be left
            # half-patched and its set stale.
            by_ep, changed = dict(entry.by_endpoint), False
            for ep in self.removed:
                changed |= by_ep.pop(ep, None) is not None
            for ep in self.added:
                if got := contribution(recipe, ep):
                    by_ep[ep] = got
                    changed = True
            self.stats["set_updates"] += 1
        ipset = make(frozenset(m for ms in by_ep.values() for m in ms)) if changed \
            else entry.ipset
        self.members[recipe] = _Members(self.epoch, by_ep, ipset)
        return ipset
