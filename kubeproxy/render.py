"""`iptables-restore --noflush -t nat` text for a NatTable: whole, or the difference.

Pure. kube-proxy's partial sync: only chains whose rules changed are written (a `:chain` line
in --noflush mode flushes just that chain before its rules are added), KUBE- chains no longer
wanted are flushed and then deleted, the jumps from PREROUTING/OUTPUT/POSTROUTING are
inserted first when missing. Nothing else in the table is touched. What the kernel holds is
known by chain name only after a read (NatState.chains value None): iptables-save prints rules
in its own canonical form, so such chains are rewritten once, as kube-proxy does on start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubeproxy.rules import CHAIN_PREFIX, NatTable


@dataclass
class NatState:
    """KUBE- chains present (name -> rules, or None when only the name is known) and the
    hook rules found in the kernel's chains as (builtin chain, target chain)."""
    chains: dict[str, list[str] | None] = field(default_factory=dict)
    hooks: set[tuple[str, str]] = field(default_factory=set)


def _target(rule: str) -> str:
    words = rule.split()
    return words[words.index("-j") + 1] if "-j" in words else ""


def parse_nat_save(text: str) -> NatState:
    st = NatState()
    in_nat = False
    for line in text.splitlines():
        if line.startswith("*"):
            in_nat = line[1:].strip() == "nat"
        elif not in_nat:
            continue
        elif line.startswith(":"):
            name = line[1:].split()[0]
            if name.startswith(CHAIN_PREFIX):
                st.chains[name] = None
        elif line.startswith("-A "):
            chain = line.split()[1]
            target = _target(line)
            if not chain.startswith(CHAIN_PREFIX) and target.startswith(CHAIN_PREFIX):
                st.hooks.add((chain, target))
    return st


def render_nat(want: NatTable, have: NatState) -> str:
    """Restore text taking ``have`` to ``want`` ("" when nothing differs)."""
    decl, body = [], []
    for name, rules in want.chains.items():
        if have.chains.get(name) != rules or name not in have.chains:
            decl.append(f":{name} - [0:0]")
            body += [f"-A {name} {r}" for r in rules]
    stale = sorted(n for n in have.chains if n not in want.chains)
    decl += [f":{n} - [0:0]" for n in stale]
    for builtin, rule in reversed(want.hooks):
        if (builtin, _target(rule)) not in have.hooks:
            body.append(f"-I {builtin} 1 {rule}")
    body += [f"-X {n}" for n in stale]
    if not decl and not body:
        return ""
    return "\n".join(["*nat", *decl, *body, "COMMIT"]) + "\n"


def render_full(want: NatTable) -> str:
    """Everything, as written to a node without any KUBE- chain."""
    return render_nat(want, NatState())


def state_of(want: NatTable) -> NatState:
    """What the kernel holds after ``want`` was applied (the applier's memory)."""
    return NatState({n: list(r) for n, r in want.chains.items()},
                    {(b, _target(r)) for b, r in want.hooks})
