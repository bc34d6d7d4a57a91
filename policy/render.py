"""Render a Dataplane as `iptables-restore --noflush` and `ipset restore` text, as a difference.

Pure. Every rule carries a `cali:<hash>` comment: a hash chained over the chain name and the
rules before it (as Felix does), so reading back `iptables-save` tells which chains are
already right without parsing their rules. A chain whose hashes differ is rewritten whole (a
`:chain` line in --noflush mode flushes just that chain); chains we own (`cali-` prefix) that
are no longer wanted are flushed and deleted; hooks into the kernel's chains are inserted
first in the chain, once. One restore per table carries everything, so it applies atomically.

ipsets are diffed member by member: a pod added to a selector is one `add` line, not a rewrite.
A set whose type changed is built under a temporary name and swapped in. Sets no longer used
are destroyed only after the iptables rules that referenced them are gone (``post`` text).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from dataclasses import dataclass, field
from functools import lru_cache

from policy.ir import Chain, Dataplane, IPSet, Rule

CHAIN_PREFIX = "cali-"
SET_PREFIX = "cali40"
SET_PREFIXES = ("cali40", "cali60")   # Felix's IPv4 and IPv6 sets
TEMP_SET = "cali4t"
HASH_RE = re.compile(r'--comment "?cali:([A-Za-z0-9_-]{16})"?')
MAXELEM = 1048576            # Felix's MaxIpsetSize


def _b64(d: bytes) -> str:
    return base64.urlsafe_b64encode(d).decode().rstrip("=")


def rule_hashes(chain: Chain) -> list[str]:
    return list(_chain_hashes(chain))


@lru_cache(maxsize=16384)
def _chain_hashes(chain: Chain) -> tuple[str, ...]:
    # Memoised: every apply diffs and remembers every chain of the node, and most chains
    # (policy chains above all) are the very same from one pass to the next.
    h = hashlib.sha224(chain.name.encode()).digest()
    out = []
    for rule in chain.rules:
        h = hashlib.sha224(h + rule.text().encode()).digest()
        out.append(_b64(h)[:16])
    return tuple(out)


def hook_hash(table: str, builtin: str, rule: Rule) -> str:
    return _b64(hashlib.sha224(f"hook:{table}:{builtin}:{rule.text()}".encode()).digest())[:16]


def rule_line(op: str, chain: str, rule: Rule, h: str) -> str:
    return f'{op} {chain} -m comment --comment "cali:{h}" {rule.text()}'.rstrip()


@dataclass
class TableState:
    """What `iptables-save` shows of one table: our chains' rule hashes (None for a rule
    without one) and the hashes found in the kernel's own chains."""
    chains: dict[str, list[str | None]] = field(default_factory=dict)
    builtin_hashes: dict[str, set[str]] = field(default_factory=dict)


def parse_save(text: str) -> dict[str, TableState]:
    tables: dict[str, TableState] = {}
    cur: TableState | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            cur = tables.setdefault(line[1:].strip(), TableState())
        elif cur is None:
            continue
        elif line.startswith(":"):
            name = line[1:].split()[0]
            if name.startswith(CHAIN_PREFIX):
                cur.chains.setdefault(name, [])
        elif line.startswith("-A "):
            chain = line.split()[1]
            m = HASH_RE.search(line)
            if chain.startswith(CHAIN_PREFIX):
                cur.chains.setdefault(chain, []).append(m.group(1) if m else None)
            elif m:
                cur.builtin_hashes.setdefault(chain, set()).add(m.group(1))
    return tables


def render_iptables(dp: Dataplane, current: dict[str, TableState]) -> str:
    """The restore text taking the kernel from ``current`` to ``dp`` ("" when equal)."""
    out: list[str] = []
    tables = sorted(set(dp.chains) | {t for t, _ in dp.hooks} |
                    {t for t, s in current.items() if s.chains})
    for table in tables:
        want = dp.chains.get(table, {})
        have = current.get(table, TableState())
        body: list[str] = []
        decl: list[str] = []
        changed = [c for name, c in sorted(want.items())
                   if have.chains.get(name) != rule_hashes(c)]
        stale = sorted(n for n in have.chains if n not in want)
        for c in changed:
            decl.append(f":{c.name} - [0:0]")
            body += [rule_line("-A", c.name, r, h) for r, h in zip(c.rules, rule_hashes(c))]
        for name in stale:
            decl.append(f":{name} - [0:0]")     # flush first: it may reference other chains
        for (t, builtin), rules in sorted(dp.hooks.items()):
            if t != table:
                continue
            present = have.builtin_hashes.get(builtin, set())
            for i, rule in reversed(list(enumerate(rules, start=1))):
                h = hook_hash(t, builtin, rule)
                if h not in present:
                    body.append(rule_line("-I", builtin, rule, h).replace(
                        f"-I {builtin} ", f"-I {builtin} {i} ", 1))
        body += [f"-X {name}" for name in stale]
        if decl or body:
            out += [f"*{table}", *decl, *body, "COMMIT"]
    return "\n".join(out) + ("\n" if out else "")


def render_full(dp: Dataplane) -> str:
    """Everything, as `iptables-save` would show it after applying to an empty node
    (`calinet policy compile`)."""
    return render_iptables(dp, {})


# -- ipsets ------------------------------------------------------------------------------

def norm_member(member: str) -> str:
    # `ipset save` prints a host entry without its full-length prefix.
    if member.endswith("/32") and ":" not in member:
        return member[:-3]
    return member[:-4] if member.endswith("/128") and ":" in member else member


@dataclass
class SetState:
    type: str
    members: set[str]
    family: int = 4


def parse_ipset_save(text: str) -> dict[str, SetState]:
    """Our sets (cali40 and cali60 prefixes) from `ipset save`."""
    sets: dict[str, SetState] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "create" and words[1].startswith(SET_PREFIXES):
            family = 6 if "inet6" in words[3:] else 4
            sets[words[1]] = SetState(words[2], set(), family)
        elif len(words) >= 3 and words[0] == "add" and words[1] in sets:
            sets[words[1]].members.add(norm_member(words[2]))
    return sets


def _create(name: str, s: IPSet) -> str:
    family = "inet6" if s.family == 6 else "inet"
    return f"create {name} {s.type} family {family} maxelem {MAXELEM}"


def render_ipsets(desired: dict[str, IPSet], current: dict[str, SetState]
                  ) -> tuple[str, str]:
    """(pre, post): pre creates and updates sets (before iptables), post destroys the ones
    no rule needs any more (after iptables)."""
    pre: list[str] = []
    temp = 0
    for name, s in sorted(desired.items()):
        want = {norm_member(m) for m in s.members}
        have = current.get(name)
        if have is None:
            pre.append(_create(name, s))
            pre += [f"add {name} {m}" for m in sorted(want)]
        elif have.type != s.type or have.family != s.family:
            tmp = f"{TEMP_SET}{temp}"
            temp += 1
            pre.append(_create(tmp, s))
            pre += [f"add {tmp} {m}" for m in sorted(want)]
            pre += [f"swap {tmp} {name}", f"destroy {tmp}"]
        else:
            pre += [f"del {name} {m}" for m in sorted(have.members - want)]
            pre += [f"add {name} {m}" for m in sorted(want - have.members)]
    post = [f"destroy {name}" for name in sorted(current) if name not in desired]
    return ("\n".join(pre) + "\n" if pre else "", "\n".join(post) + "\n" if post else "")


def inverse_member_changes(pre: str) -> str:
    """The `ipset restore` lines undoing the add/del lines of ``pre`` (for a rollback when
    the iptables half of an apply fails; created sets are left, unused, for the next try)."""
    undo = []
    for line in reversed(pre.splitlines()):
        words = line.split()
        if len(words) == 3 and words[0] in ("add", "del") and not words[1].startswith(TEMP_SET):
            undo.append(f"{'del' if words[0] == 'add' else 'add'} {words[1]} {words[2]}")
    return "\n".join(undo) + ("\n" if undo else "")


def render_ipsets_full(desired: dict[str, IPSet]) -> str:
    """`ipset save`-like text of every set, with what it holds as a comment line."""
    out = []
    for name, s in sorted(desired.items()):
        out.append(f"# {s.comment}" if s.comment else f"# {name}")
        out.append(_create(name, s))
        out += [f"add {name} {norm_member(m)}" for m in sorted(s.members)]
    return "\n".join(out) + ("\n" if out else "")


def quote_words(words) -> str:
    return " ".join(shlex.quote(w) for w in words)
