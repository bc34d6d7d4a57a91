"""Applier of one node's policy dataplane: `cali-` chains and `cali40`/`cali60` ipsets in its netns.

Side effects: runs `iptables-save`, `ipset save`, `ipset restore` and `iptables-restore
--noflush` inside the node's network namespace (Runner with the node's pid), the last through
a long-lived process when given one (restore_session); with an IPv6 dataplane also
`ip6tables-save` and `ip6tables-restore` (its own session), the ipsets of both families going
in the one `ipset restore`. Reads the kernel
once, then trusts what it wrote (Felix re-reads on a timer; here: after any failure, or when
``refresh()`` is called), so a steady-state change costs one or two forks.

Order of a write, so no rule ever references a missing set: ipsets created and updated, then
the iptables restore (atomic per table: it applies whole or not at all), then unused ipsets
destroyed. When the iptables half fails, the ipset member changes are undone and ApplyError
carries the restore input; the old rules stay in place.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from orchestrator.errors import ApplyError, CommandError
from orchestrator.host.runner import DEFAULT, Runner
from orchestrator.node.restore_session import ARGV as RESTORE_ARGV
from orchestrator.node.restore_session import ARGV6 as RESTORE_ARGV6
from policy.ir import Dataplane
from policy.render import (
    SetState,
    TableState,
    hook_hash,
    inverse_member_changes,
    norm_member,
    parse_ipset_save,
    parse_save,
    render_ipsets,
    render_iptables,
    rule_hashes,
)

log = logging.getLogger(__name__)
TABLES = ("filter", "raw", "nat")   # nat: NAT-outgoing (policy.natoutgoing)
SAVE = {4: ["iptables-save"], 6: ["ip6tables-save"]}
RESTORE = {4: RESTORE_ARGV, 6: RESTORE_ARGV6}


@dataclass
class Written:
    """What one apply wrote (all "" when the node was already right)."""
    ipset_pre: str = ""
    iptables: str = ""
    ipset_post: str = ""
    ip6tables: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.ipset_pre or self.iptables or self.ipset_post or self.ip6tables)


class Firewall:
    def __init__(self, node: str, pid: int | None, runner: Runner = DEFAULT, *,
                 netns: str | None = None, session=None, fresh: bool = False,
                 session6=None):
        """``pid``: a process in the node's netns (a Mininet host); or ``netns``: a named one.
        ``session``: a restore_session.RestoreSession in that netns, which the iptables half
        of each write goes through instead of forking iptables-restore (the Felix of a
        testbed keeps one per node). ``fresh``: the caller made the netns just now, so it
        holds no rules and no sets and the first apply reads nothing (two forks fewer per
        node; after a failure or refresh() the kernel is read as always). ``session6``: the
        same for ip6tables-restore."""
        self.node, self.pid, self.runner, self.netns = node, pid, runner, netns
        self.sessions = {4: session, 6: session6}
        self.fresh = fresh
        self._tables: dict[str, TableState] | None = {} if fresh else None
        # The ip6tables tables, read when an IPv6 dataplane is first applied.
        self._tables6: dict[str, TableState] | None = {} if fresh else None
        self._sets: dict[str, SetState] | None = {} if fresh else None
        self.applies = 0
        # Seconds of each fork of the last apply that wrote something (bench/netpolicy.py).
        self.last_write_s: dict[str, float] = {}
        self.committed_at = 0.0   # monotonic time the last write's rules were in the kernel

    def _where(self) -> dict:
        return {"netns": self.netns} if self.netns else {"pid": self.pid}

    @property
    def session(self):
        return self.sessions[4]

    def refresh(self) -> None:
        """Forget what we believe is there: the next apply reads the kernel again."""
        self._tables = self._sets = self._tables6 = None

    def read(self) -> tuple[dict[str, TableState], dict[str, SetState]]:
        # Every table in one fork (a table that does not exist yet is not printed, and
        # reads as empty): one `iptables-save` instead of one per table, 50 forks fewer in
        # a 50-node testbed's first pass.
        tables = self._read_tables(4)
        try:
            sets = self.runner.run(["ipset", "save"], **self._where()).stdout
        except CommandError as exc:
            raise ApplyError(f"node {self.node}: reading ipsets: {exc}") from exc
        return tables, parse_ipset_save(sets)

    def _read_tables(self, family: int) -> dict[str, TableState]:
        try:
            save = self.runner.run(SAVE[family], **self._where()).stdout
        except CommandError as exc:
            raise ApplyError(f"node {self.node}: reading {SAVE[family][0]}: {exc}") from exc
        return {t: st for t, st in parse_save(save).items() if t in TABLES}

    def apply(self, dp: Dataplane, dp6: Dataplane | None = None) -> Written:
        """Make the node's rules ``dp`` (iptables) and ``dp6`` (ip6tables; None: the node
        has no IPv6 dataplane, and its ip6tables are not touched)."""
        if self._tables is None or self._sets is None:
            self._tables, self._sets = self.read()
        if dp6 is not None and self._tables6 is None:
            self._tables6 = self._read_tables(6)
        sets = dict(dp.ipsets)
        if dp6 is not None:
            sets.update(dp6.ipsets)
        else:   # without an IPv6 dataplane its sets are neither wanted nor destroyed
            sets.update({n: s for n, s in self._ipv6_sets().items() if n not in sets})
        pre, post = render_ipsets(sets, self._sets)
        text = render_iptables(dp, self._tables)
        text6 = render_iptables(dp6, self._tables6) if dp6 is not None else ""
        written = Written(pre, text, post, text6)
        if not written.changed:
            return written
        t0 = time.perf_counter()
        try:
            if pre:
                self._restore_ipsets(pre)
        except ApplyError:
            self.refresh()
            raise
        t1 = time.perf_counter()
        for family, body in ((4, text), (6, text6)):
            try:
                # Not when sets are destroyed after: nf_tables frees a removed rule's
                # reference to its ipset in deferred work, which only a process closing its
                # socket waits for; through a session the destroy would find the set still
                # "in use". (A session that cannot work here forks by itself.)
                session = self.sessions[family]
                if body and session is not None and not post:
                    session.write(body)
                elif body:
                    self.runner.run(RESTORE[family], **self._where(), input=body)
            except CommandError as exc:
                # When IPv6's fail the IPv4 rules are in already: only the IPv6 sets'
                # changes are undone (the IPv4 rules use the others), and all is re-read.
                undo = inverse_member_changes(pre)
                if family == 6:
                    undo = "".join(ln + "\n" for ln in undo.splitlines()
                                   if ln.split()[1].startswith("cali60"))
                try:
                    if undo:
                        self._restore_ipsets(undo)
                except ApplyError as again:
                    log.error("node %s: could not undo ipset changes: %s", self.node, again)
                self.refresh()
                raise ApplyError(f"node {self.node}: {RESTORE[family][0]} failed, previous "
                                 f"rules kept: {exc.stderr.strip() or exc}", body) from exc
        t2 = time.perf_counter()
        # The rules are in the kernel from here on (what follows only tidies up).
        self.committed_at = time.monotonic()
        try:
            if post:
                self._restore_ipsets(post)
        except ApplyError as exc:
            # Only leftovers: the rules are in place. Say so and re-read next time.
            log.warning("node %s: %s", self.node, exc)
            self.refresh()
        else:
            self._remember(dp, dp6)
        t3 = time.perf_counter()
        self.last_write_s = {"ipset_pre": t1 - t0, "iptables": t2 - t1, "after": t3 - t2}
        self.applies += 1
        return written

    def _restore_ipsets(self, text: str) -> None:
        try:
            self.runner.run(["ipset", "restore", "-exist"], **self._where(), input=text)
        except CommandError as exc:
            raise ApplyError(f"node {self.node}: ipset restore failed: "
                             f"{exc.stderr.strip() or exc}", text) from exc

    def _ipv6_sets(self) -> dict[str, SetState]:
        return {n: s for n, s in (self._sets or {}).items() if s.family == 6}

    def _remember(self, dp: Dataplane, dp6: Dataplane | None) -> None:
        kept6 = self._ipv6_sets() if dp6 is None else {}
        self._tables = _tables_of(dp)
        if dp6 is not None:
            self._tables6 = _tables_of(dp6)
        sets = {**dp.ipsets, **(dp6.ipsets if dp6 is not None else {})}
        self._sets = {name: SetState(s.type, {norm_member(m) for m in s.members}, s.family)
                      for name, s in sets.items()}
        self._sets.update(kept6)


def _tables_of(dp: Dataplane) -> dict[str, TableState]:
    tables: dict[str, TableState] = {}
    for table, chains in dp.chains.items():
        st = tables.setdefault(table, TableState())
        st.chains = {name: list(rule_hashes(c)) for name, c in chains.items()}
    for (table, builtin), rules in dp.hooks.items():
        st = tables.setdefault(table, TableState())
        st.builtin_hashes.setdefault(builtin, set()).update(
            hook_hash(table, builtin, r) for r in rules)
    return tables
