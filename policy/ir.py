"""The compiler's output: a node's desired iptables chains and ipsets, as plain data.

Pure. A Rule is iptables match and target words (no chain, no hash: the renderer adds those);
hooks are the rules calinet puts into the kernel's own chains (FORWARD, INPUT, OUTPUT,
raw PREROUTING), always a jump to a `cali-` chain, inserted first as Felix does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FILTER, RAW = "filter", "raw"
HASH_NET, HASH_IP_PORT = "hash:net", "hash:ip,port"


@dataclass(frozen=True)
class Rule:
    match: tuple[str, ...] = ()
    target: tuple[str, ...] = ()
    comment: str | None = None       # human comment, as Felix writes them ("Policy x/y ingress")

    def text(self) -> str:
        """The rule's words (without chain and hash); what the hash covers."""
        words = list(self.match)
        if self.comment:
            words += ["-m", "comment", "--comment", _quote(self.comment)]
        return " ".join(words + list(self.target))


@dataclass(frozen=True)
class Chain:
    name: str
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class IPSet:
    name: str
    type: str                         # hash:net (selectors, CIDRs) or hash:ip,port (named ports)
    members: frozenset[str] = frozenset()
    comment: str = ""                 # what it holds (for `calinet policy compile` output)
    family: int = 4                   # 4: `family inet` (cali40...), 6: `family inet6` (cali60...)


@dataclass
class Dataplane:
    """One node's desired policy state in one IP family (iptables or ip6tables)."""
    chains: dict[str, dict[str, Chain]] = field(default_factory=lambda: {FILTER: {}, RAW: {}})
    hooks: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)
    ipsets: dict[str, IPSet] = field(default_factory=dict)

    def add_chain(self, table: str, chain: Chain) -> None:
        self.chains.setdefault(table, {})[chain.name] = chain

    def rule_count(self) -> int:
        return sum(len(c.rules) for t in self.chains.values() for c in t.values())


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'
