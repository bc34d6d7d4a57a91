"""kube-proxy for every node: Services and EndpointSlices from the store -> nat rules per node.

Side effects: through NatApplier, `iptables-save -t nat` and `iptables-restore --noflush -t nat`
inside each node's network namespace; only KUBE- chains are written, plus the three jumps
into them from nat PREROUTING, OUTPUT and POSTROUTING. Like orchestrator.node.firewall: the
kernel is read once, then what was written is trusted (re-read after a failure or
``refresh()``), so a steady-state change is one fork per node and only the chains that
changed. Called by the controller manager on every pass (poll()); cheap when nothing relevant
changed (a digest of the Services, EndpointSlices and pool CIDRs).

Dual stack: with IPv6 pods every node also gets the ip6tables nat table, compiled from the
Services' IPv6 ClusterIPs and the IPv6 slices (kube-proxy's second proxier), written through
the node's ip6tables-restore session. The families are applied independently: a failure in one
keeps that family's previous rules and retries, the other's are in.

Policy still sees the pods' own addresses: the DNAT happens in nat PREROUTING (or OUTPUT),
before the filter FORWARD chains where Calico's policy runs, as on a Kubernetes node.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kubeproxy import NatState, NatTable, compile_nat, parse_nat_save, render_nat, service_ports
from kubeproxy.render import state_of
from orchestrator.errors import ApplyError, CommandError
from orchestrator.host.runner import DEFAULT, Runner

log = logging.getLogger(__name__)
RETRY = 1.0


TOOLS = {4: ("iptables-save", "iptables-restore"), 6: ("ip6tables-save", "ip6tables-restore")}


class NatApplier:
    """One node's KUBE- nat chains of one family (``family`` 6: the ip6tables nat table)."""

    def __init__(self, node: str, pid: int | None, runner: Runner = DEFAULT, *,
                 netns: str | None = None, session=None, fresh: bool = False,
                 family: int = 4):
        self.node, self.pid, self.runner, self.netns = node, pid, runner, netns
        self.family = family
        self.save_cmd, self.restore_cmd = TOOLS[family]
        # "node-1" or "node-1 (IPv6)": how errors name what failed.
        self.label = node if family == 4 else f"{node} (IPv6)"
        # The node's long-lived iptables-restore (restore_session.RestoreSession, the policy
        # agent's): a forked restore spends ~16 ms closing its nf_tables socket, and a
        # Service's endpoint change is one write on every node (50 forks took 0.2 s).
        self.session = session
        # fresh: a netns the caller just made has no nat rules (what reading it would say),
        # so the first apply forks no iptables-save; a failure or refresh() reads again.
        self._state: NatState | None = parse_nat_save("") if fresh else None
        self.applies = 0

    def _where(self) -> dict:
        return {"netns": self.netns} if self.netns else {"pid": self.pid}

    def refresh(self) -> None:
        self._state = None

    def read(self) -> NatState:
        try:
            out = self.runner.run([self.save_cmd, "-t", "nat"], **self._where()).stdout
        except CommandError as exc:
            raise ApplyError(f"node {self.label}: reading the nat table: {exc}") from exc
        return parse_nat_save(out)

    def apply(self, table: NatTable) -> str:
        """Write what differs; returns the restore text ("" when the node was right)."""
        if self._state is None:
            self._state = self.read()
        text = render_nat(table, self._state)
        if not text:
            return ""
        try:
            if self.session is not None:
                self.session.write(text)       # the text is one *nat block
            else:
                self.runner.run([self.restore_cmd, "--noflush", "-w", "-T", "nat"],
                                **self._where(), input=text)
        except CommandError as exc:
            self.refresh()
            raise ApplyError(f"node {self.label}: {self.restore_cmd} (nat) failed, previous "
                             f"rules kept: {exc.stderr.strip() or exc}", text) from exc
        self._state = state_of(table)
        self.applies += 1
        return text


class KubeProxyAgent:
    def __init__(self, store, nodes: dict[str, int], runner: Runner = DEFAULT, *,
                 workers: int = 4, sessions: dict | None = None, fresh: bool = False,
                 families=(4,), sessions6: dict | None = None):
        self.store = store
        # sessions / sessions6: node -> RestoreSession to write through (shared with the
        # policy agent, which owns and closes them); without one a node's writes fork
        # iptables-restore. fresh: the nodes' netns were made just now (NatApplier).
        # families: the pods' families; IPv6 gets its own appliers (ip6tables).
        self.families = tuple(sorted(set(families)))
        by_family = {4: sessions or {}, 6: sessions6 or {}}
        self.appliers = {(n, f): NatApplier(n, pid, runner, session=by_family[f].get(n),
                                            fresh=fresh, family=f)
                         for n, pid in nodes.items() for f in self.families}
        self.applied: dict[tuple[str, int], NatTable] = {}
        self.errors: dict[tuple[str, int], str] = {}
        self.last_apply_s: dict[tuple[str, int], float] = {}
        self._digest: str | None = None
        self._tried: str | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="calinet-kproxy")

    def inputs(self) -> tuple[list[dict], list[dict], dict[int, str | None]]:
        services = self.store.list("Service")
        slices = self.store.list("EndpointSlice")
        enabled = [p["spec"]["cidr"] for p in self.store.list("IPPool")
                   if not p["spec"].get("disabled")]
        cidrs: dict[int, str | None] = {}
        for family in self.families:
            pools = [c for c in enabled if (":" in c) == (family == 6)]
            # kube-proxy's --cluster-cidr is one network per family; with several pools,
            # no "from outside the cluster" masquerade rule (as without a local detector).
            cidrs[family] = pools[0] if len(pools) == 1 else None
        return services, slices, cidrs

    @staticmethod
    def _digest_of(services, slices, cidrs) -> str:
        data = [sorted((s["metadata"].get("namespace"), s["metadata"]["name"], s.get("spec"))
                       for s in services),
                sorted((s["metadata"].get("namespace"), s["metadata"]["name"],
                        s["metadata"].get("labels"), s.get("addressType"), s.get("endpoints"),
                        s.get("ports"))
                       for s in slices), sorted(cidrs.items())]
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    @staticmethod
    def compile(services, slices, cidrs) -> dict[int, NatTable]:
        return {f: compile_nat(service_ports(services, slices, f), cidr, f)
                for f, cidr in cidrs.items()}

    def desired(self) -> tuple[dict[int, NatTable], str]:
        services, slices, cidrs = self.inputs()
        return self.compile(services, slices, cidrs), self._digest_of(services, slices, cidrs)

    def poll(self) -> list[str]:
        """Compile and apply where needed; returns the nodes written to."""
        with self._lock:
            services, slices, cidrs = self.inputs()
            digest = self._digest_of(services, slices, cidrs)
            if digest == self._digest:
                return []
            if digest == self._tried and time.monotonic() < self._retry_at:
                return []
            tables = self.compile(services, slices, cidrs)
            todo = [k for k in self.appliers
                    if self.applied.get(k) != tables[k[1]] or k in self.errors]
            results = list(self._pool.map(lambda k: self._apply(k, tables[k[1]]), todo))
            self._digest = digest if not self.errors else None
            self._tried = digest
            if self.errors:
                self._retry_at = time.monotonic() + RETRY
            return sorted({k[0] for k, ok in zip(todo, results) if ok})

    def _apply(self, key: tuple[str, int], table: NatTable) -> bool:
        t0 = time.monotonic()
        try:
            self.appliers[key].apply(table)
        except ApplyError as exc:
            log.error("kube-proxy on %s: %s\ninput:\n%s", self.appliers[key].label, exc,
                      exc.rendered_input)
            self.errors[key] = str(exc)
            return False
        self.errors.pop(key, None)
        self.applied[key] = table
        self.last_apply_s[key] = time.monotonic() - t0
        return True

    def in_sync(self) -> list[str]:
        """Problems between now and 'every node has the store's Services'."""
        with self._lock:
            current = self._digest_of(*self.inputs())
        if current != self._digest:
            problems = [e for _, e in sorted(self.errors.items())]
            return problems or ["service rules not yet updated"]
        return []

    def stop(self) -> None:
        self._pool.shutdown(wait=True)
