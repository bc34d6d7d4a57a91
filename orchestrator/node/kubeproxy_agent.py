"""kube-proxy for every node: Services and EndpointSlices from the store -> nat rules per node.

Side effects: through NatApplier, `iptables-save -t nat` and `iptables-restore --noflush -t nat`
inside each node's network namespace; only KUBE- chains are written, plus the three jumps
into them from nat PREROUTING, OUTPUT and POSTROUTING. Like orchestrator.node.firewall: the
kernel is read once, then what was written is trusted (re-read after a failure or
``refresh()``), so a steady-state change is one fork per node and only the chains that
changed. Called by the controller manager on every pass (poll()); cheap when nothing relevant
changed (a digest of the Services, EndpointSlices and pool CIDRs).

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


class NatApplier:
    """One node's KUBE- nat chains."""

    def __init__(self, node: str, pid: int | None, runner: Runner = DEFAULT, *,
                 netns: str | None = None, session=None, fresh: bool = False):
        self.node, self.pid, self.runner, self.netns = node, pid, runner, netns
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
            out = self.runner.run(["iptables-save", "-t", "nat"], **self._where()).stdout
        except CommandError as exc:
            raise ApplyError(f"node {self.node}: reading the nat table: {exc}") from exc
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
                self.runner.run(["iptables-restore", "--noflush", "-w", "-T", "nat"],
                                **self._where(), input=text)
        except CommandError as exc:
            self.refresh()
            raise ApplyError(f"node {self.node}: iptables-restore (nat) failed, previous "
                             f"rules kept: {exc.stderr.strip() or exc}", text) from exc
        self._state = state_of(table)
        self.applies += 1
        return text


class KubeProxyAgent:
    def __init__(self, store, nodes: dict[str, int], runner: Runner = DEFAULT, *,
                 workers: int = 4, sessions: dict | None = None, fresh: bool = False):
        self.store = store
        # sessions: node -> RestoreSession to write through (shared with the policy agent,
        # which owns and closes them); without one a node's writes fork iptables-restore.
        # fresh: the nodes' netns were made just now (NatApplier).
        self.appliers = {n: NatApplier(n, pid, runner, session=(sessions or {}).get(n),
                                       fresh=fresh)
                         for n, pid in nodes.items()}
        self.applied: dict[str, NatTable] = {}
        self.errors: dict[str, str] = {}
        self.last_apply_s: dict[str, float] = {}
        self._digest: str | None = None
        self._tried: str | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="calinet-kproxy")

    def inputs(self) -> tuple[list[dict], list[dict], str | None]:
        services = self.store.list("Service")
        slices = self.store.list("EndpointSlice")
        pools = [p["spec"]["cidr"] for p in self.store.list("IPPool")
                 if not p["spec"].get("disabled")]
        # kube-proxy's --cluster-cidr is one network; with several pools, no
        # "from outside the cluster" masquerade rule (as without a local detector).
        return services, slices, pools[0] if len(pools) == 1 else None

    @staticmethod
    def _digest_of(services, slices, cidr) -> str:
        data = [sorted((s["metadata"].get("namespace"), s["metadata"]["name"], s.get("spec"))
                       for s in services),
                sorted((s["metadata"].get("namespace"), s["metadata"]["name"],
                        s["metadata"].get("labels"), s.get("endpoints"), s.get("ports"))
                       for s in slices), cidr]
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    def desired(self) -> tuple[NatTable, str]:
        services, slices, cidr = self.inputs()
        return (compile_nat(service_ports(services, slices), cidr),
                self._digest_of(services, slices, cidr))

    def poll(self) -> list[str]:
        """Compile and apply where needed; returns the nodes written to."""
        with self._lock:
            services, slices, cidr = self.inputs()
            digest = self._digest_of(services, slices, cidr)
            if digest == self._digest:
                return []
            if digest == self._tried and time.monotonic() < self._retry_at:
                return []
            table = compile_nat(service_ports(services, slices), cidr)
            todo = [n for n in self.appliers
                    if self.applied.get(n) != table or n in self.errors]
            results = list(self._pool.map(lambda n: self._apply(n, table), todo))
            self._digest = digest if not self.errors else None
            self._tried = digest
            if self.errors:
                self._retry_at = time.monotonic() + RETRY
            return [n for n, ok in zip(todo, results) if ok]

    def _apply(self, node: str, table: NatTable) -> bool:
        t0 = time.monotonic()
        try:
            self.appliers[node].apply(table)
        except ApplyError as exc:
            log.error("kube-proxy on %s: %s\ninput:\n%s", node, exc, exc.rendered_input)
            self.errors[node] = str(exc)
            return False
        self.errors.pop(node, None)
        self.applied[node] = table
        self.last_apply_s[node] = time.monotonic() - t0
        return True

    def in_sync(self) -> list[str]:
        """Problems between now and 'every node has the store's Services'."""
        with self._lock:
            current = self._digest_of(*self.inputs())
        if current != self._digest:
            problems = [f"node {n}: {e}" for n, e in sorted(self.errors.items())]
            return problems or ["service rules not yet updated"]
        return []

    def stop(self) -> None:
        self._pool.shutdown(wait=True)
