"""Felix for every node: policies and pods from the store -> compiled -> applied per node.

Side effects: through orchestrator.firewall, `cali-` chains and `cali40` ipsets in each node's
network namespace. Called by the controller manager on every pass (poll()); cheap when nothing
relevant changed (a digest of the endpoints, namespace labels and policy objects). A pod is an
endpoint once it has a sandbox address (status.podIP) on a node, as Calico's CNI plugin creates
the WorkloadEndpoint when it wires the pod. Until its node's rules are written its traffic hits
"Unknown interface" in the dispatch chains, as with a real Felix; Testbed.wait_ready waits for
in_sync().

A policy object the model cannot convert is skipped and reported (``errors``), never blocking
the others; a node whose apply fails keeps its previous rules and is retried on the next pass.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from orchestrator import naming
from orchestrator.errors import ApplyError, CalinetError
from orchestrator.firewall import Firewall
from policy.compiler import Endpoint, compile_node, endpoint
from policy.ir import Dataplane
from policy.model import Policy, from_object

log = logging.getLogger(__name__)
POLICY_KINDS = ("NetworkPolicy", "NetworkPolicy.projectcalico.org", "GlobalNetworkPolicy")
RETRY = 1.0


def pod_endpoint(pod: dict, wired: dict | None = None) -> Endpoint | None:
    """The pod as an endpoint once it has an address: status.podIP, or the address its
    kubelet reported right after wiring the sandbox (``wired``: uid -> IP)."""
    meta, spec, st = pod["metadata"], pod["spec"], pod.get("status") or {}
    ip = st.get("podIP") or (wired or {}).get(meta.get("uid"))
    if not spec.get("nodeName") or not ip:
        return None
    ports = [(p["name"], str(p.get("protocol", "TCP")).lower(), int(p["containerPort"]))
             for c in spec.get("containers", []) for p in c.get("ports") or [] if p.get("name")]
    return endpoint(meta["namespace"], meta["name"], spec["nodeName"],
                    naming.veth_name(meta["namespace"], meta["name"]), ip,
                    meta.get("labels") or {}, ports)


class PolicyAgent:
    def __init__(self, store, nodes: dict[str, int], runner, *, workers: int = 4):
        self.store = store
        self.firewalls = {name: Firewall(name, pid, runner) for name, pid in nodes.items()}
        self.applied: dict[str, Dataplane] = {}        # node -> last written
        self.endpoints_applied: dict[str, set[str]] = {n: set() for n in nodes}
        self.errors: dict[str, str] = {}               # node or policy -> last error
        self.policy_errors: dict[str, str] = {}
        self.last_apply_s: dict[str, float] = {}
        # endpoint key -> monotonic time its node's rules including it were committed
        # (iptables-restore returned): when a new pod became enforced (bench/netpolicy.py).
        self.enforced_at: dict[str, float] = {}
        self._applied_at: dict[str, float] = {}
        # Phases of the last pass that wrote something (seconds): where a new pod's time goes.
        self.last_pass_s: dict[str, float] = {}
        self._digest: str | None = None
        self._tried: str | None = None      # digest of the last pass (failed or not)
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="calinet-felix")
        # Sandboxes wired but not yet in the pod's status (uid -> IP): Calico's CNI plugin
        # writes the WorkloadEndpoint during CNI ADD, so Felix programs the pod while its
        # containers start; the kubelet tells us the same way (sandboxes_wired()).
        self._wired: dict[str, str] = {}
        # Pods gone from the store whose sandbox still drains (uid -> its last Endpoint):
        # Calico removes a WorkloadEndpoint at CNI DEL, not when the Pod object goes, so a
        # connection DNAT'ed to the pod just before kube-proxy dropped it is still delivered
        # (not "Unknown interface" in the dispatch chain) until the sandbox is torn down.
        self._draining: dict[str, Endpoint] = {}
        self._wired_lock = threading.Lock()
        # Converted policies by (kind, namespace, name, resourceVersion), and compiled policy
        # chains (compiler.cached_policy_chain): a pass after one pod came re-does neither,
        # which with 200 policies was most of its time (conversion ~25 ms, chains ~80 ms).
        self._converted: dict[tuple, Policy | str] = {}
        self._chains: dict = {}
        # kind -> (highest rv seen, {(namespace, name): object}): objects decoded once per
        # write of them (Store.list_since), not every pass.
        self._objects: dict[str, tuple[int, dict]] = {}
        self._gen = 0            # bumped by every sandbox notice (not a store write)
        self._seen_rv: int | None = None
        self._seen_gen = -1
        self._again = False      # a poll() found a pass running: it goes round once more
        self._kick = threading.Event()
        self._stopping = threading.Event()
        self._kicker = threading.Thread(target=self._kick_loop, name="calinet-felix-kick",
                                        daemon=True)
        self._kicker.start()

    def sandboxes_wired(self, pods: list[tuple[str, str]]) -> None:
        """(uid, IP) of sandboxes just wired by a kubelet: program them without waiting for
        the pods' status (a pass runs in the background)."""
        with self._wired_lock:
            self._wired.update(pods)
            self._gen += 1
        self._kick.set()

    def sandboxes_draining(self, pods: list[dict]) -> None:
        """Deleted pods whose sandbox keeps running for a while: their endpoints stay (with
        the labels and ports they had) until sandboxes_removed()."""
        eps = {p["metadata"]["uid"]: ep for p in pods
               if (ep := pod_endpoint(p)) is not None}
        if eps:
            with self._wired_lock:
                self._draining.update(eps)
                self._gen += 1
            self._kick.set()

    def sandboxes_removed(self, uids) -> None:
        """Sandboxes torn down (CNI DEL): their endpoints go."""
        with self._wired_lock:
            gone = [u for u in uids if self._draining.pop(u, None) is not None]
            self._gen += 1
        if gone:
            self._kick.set()

    def _kick_loop(self) -> None:
        while not self._stopping.is_set():
            if self._kick.wait(0.5):
                self._kick.clear()
                try:
                    self.poll()
                except Exception:  # noqa: BLE001 - the manager's passes retry
                    log.exception("policy pass (kicked) failed")

    # -- inputs --------------------------------------------------------------------------

    def _list(self, kind: str) -> list[dict]:
        """store.list(kind), decoding only the objects written since the last call. The
        objects are shared between passes: read, never modified."""
        since = getattr(self.store, "list_since", None)
        if since is None:
            return self.store.list(kind)
        top, known = self._objects.get(kind, (0, {}))
        rows = since(kind, top)
        if any(obj is None and (ns, name) not in known for ns, name, _rv, obj in rows):
            rows = since(kind, -1)     # cannot happen with rvs committed in order; be safe
        fresh = {(ns, name): obj if obj is not None else known[(ns, name)]
                 for ns, name, _rv, obj in rows}
        self._objects[kind] = (max((row[2] for row in rows), default=top), fresh)
        return list(fresh.values())

    def inputs(self) -> tuple[list[Endpoint], dict[str, dict], list[Policy], list[dict]]:
        pods = self._list("Pod")
        with self._wired_lock:
            if self._wired:   # forget what the status now says, or what is gone
                live = {p["metadata"]["uid"] for p in pods
                        if not (p.get("status") or {}).get("podIP")}
                self._wired = {u: ip for u, ip in self._wired.items() if u in live}
            wired = dict(self._wired)
            draining = dict(self._draining)
        endpoints = [ep for ep in (pod_endpoint(p, wired) for p in pods) if ep is not None]
        # A pod of the same name may already exist again (a StatefulSet's): on the same node
        # the store's wins (same veth name); on another node both are endpoints until the old
        # sandbox is gone.
        have = {(ep.key, ep.node) for ep in endpoints}
        endpoints += [ep for uid, ep in sorted(draining.items())
                      if (ep.key, ep.node) not in have]
        namespaces = {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {})
                      for n in self._list("Namespace")}
        objs = [o for kind in POLICY_KINDS for o in self._list(kind)]
        policies, errors, converted = [], {}, {}
        for o in objs:
            meta = o["metadata"]
            rv = meta.get("resourceVersion")
            key = (o["kind"], o.get("apiVersion"), meta.get("namespace", ""), meta["name"], rv)
            got = self._converted.get(key) if rv is not None else None
            if got is None:
                try:
                    got = from_object(o)
                except (CalinetError, KeyError, TypeError, ValueError) as exc:
                    got = f"{type(exc).__name__}: {exc}"
            if rv is not None:
                converted[key] = got
            if isinstance(got, str):
                errors[f"{o['kind']} {meta.get('namespace', '')}/{meta['name']}"] = got
            else:
                policies.append(got)
        self._converted = converted
        self.policy_errors = errors
        return endpoints, namespaces, policies, objs

    @staticmethod
    def _digest_of(endpoints, namespaces, objs) -> str:
        data = [sorted((ep.key, ep.node, ep.ip, ep.labels, ep.ports) for ep in endpoints),
                sorted(namespaces.items()),
                # An object's resourceVersion changes with every write of it: no need to
                # serialise 200 policy specs on every pass.
                sorted((o["kind"], o["apiVersion"], o["metadata"].get("namespace", ""),
                        o["metadata"]["name"],
                        o["metadata"].get("resourceVersion") or o.get("spec")) for o in objs)]
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    # -- the pass -------------------------------------------------------------------------

    def poll(self) -> list[str]:
        """Compile and apply where needed; returns the nodes written to.

        Never waits for a pass in progress (the controller loop calls this every round, and
        a pass writing rules takes tens of ms that a new pod's own start must not wait for):
        the caller marks the input as changed, and the running pass goes round once more."""
        written: list[str] = []
        while True:
            # Raised before trying: a holder that clears it has not read its inputs yet, and
            # one about to return sees it after releasing.
            self._again = True
            if not self._lock.acquire(blocking=False):
                return written
            try:
                self._again = False
                written += self._pass()
            except BaseException:
                self._seen_rv = None    # an unexpected failure: read everything next time
                raise
            finally:
                self._lock.release()
            # A notice that lands after this check is picked up by the controller loop's
            # next round (at most a tick away) or the kicker.
            if not self._again:
                return written

    def _pass(self) -> list[str]:
        # Nothing written to the store and no sandbox news since the last pass that
        # succeeded: nothing to read (the inputs cost ms with hundreds of policies).
        rv = self._store_rv()
        if (rv is not None and rv == self._seen_rv and self._gen == self._seen_gen
                and not self.errors and self._digest is not None):
            return []
        gen = self._gen
        t0 = time.perf_counter()
        endpoints, namespaces, policies, objs = self.inputs()
        t1 = time.perf_counter()
        digest = self._digest_of(endpoints, namespaces, objs)
        t2 = time.perf_counter()
        self._seen_rv, self._seen_gen = rv, gen
        if digest == self._digest:
            return []
        if digest == self._tried and time.monotonic() < self._retry_at:
            return []      # the same input failed just now: retried after RETRY
        local = {n: {ep.key for ep in endpoints if ep.node == n} for n in self.firewalls}
        # Nodes that gained a pod are compiled and written first, on their own: the new pod
        # is enforced (its dispatch entry and chains) without waiting for the other nodes'
        # compiles and forks on the same cores; the others only add its address to their
        # selector ipsets.
        first = [n for n in self.firewalls if local[n] - self.endpoints_applied[n]]
        rest = [n for n in self.firewalls if n not in first]
        memo: dict = {}
        active = set(policies)
        # Chains of policies that are gone or changed are dropped (a changed policy is a
        # different key).
        self._chains = {k: v for k, v in self._chains.items() if k[0] in active}
        todo: list[str] = []
        ok: dict[str, bool] = {}
        phases = {"inputs": t1 - t0, "digest": t2 - t1, "compile": 0.0, "apply": 0.0}
        for group in (first, rest):
            t = time.perf_counter()
            desired = {n: compile_node(n, endpoints, namespaces, policies, memo=memo,
                                       chains=self._chains) for n in group}
            t3 = time.perf_counter()
            # A node whose last apply failed is written again even if what it should have
            # is what it last had (the failure may have left it anywhere).
            write = [n for n, dp in desired.items()
                     if self.applied.get(n) != dp or n in self.errors]
            ok.update(zip(write, self._pool.map(lambda n: self._apply(n, desired[n]), write)))
            todo += write
            phases["compile"] += t3 - t
            phases["apply"] += time.perf_counter() - t3
            if group is first and first:
                phases["first_node"] = time.perf_counter() - t0
        results = [ok[n] for n in todo]
        self.last_pass_s = phases
        for node in self.firewalls:
            if node not in self.errors:
                at = self._applied_at[node] if node in todo else time.monotonic()
                for key in local[node] - self.endpoints_applied[node]:
                    self.enforced_at[key] = at
                for key in self.endpoints_applied[node] - local[node]:
                    self.enforced_at.pop(key, None)
                self.endpoints_applied[node] = local[node]
        self._digest = digest if not self.errors else None
        self._tried = digest
        if self.errors:
            self._retry_at = time.monotonic() + RETRY
        return [n for n, ok in zip(todo, results) if ok]

    def _store_rv(self) -> int | None:
        current = getattr(self.store, "current_rv", None)
        return current() if current is not None else None

    def _apply(self, node: str, dp: Dataplane) -> bool:
        t0 = time.monotonic()
        try:
            self.firewalls[node].apply(dp)
        except ApplyError as exc:
            log.error("policy on %s: %s\ninput:\n%s", node, exc, exc.rendered_input)
            self.errors[node] = str(exc)
            return False
        self.errors.pop(node, None)
        self.applied[node] = dp
        self._applied_at[node] = time.monotonic()
        self.last_apply_s[node] = self._applied_at[node] - t0
        return True

    # -- reading -----------------------------------------------------------------------

    def in_sync(self) -> list[str]:
        """Problems between now and 'every node enforces the store's policies for every
        endpoint it has'."""
        # Under the lock: a pass that is writing rules read the store before the caller's
        # last change, and its digest is not recorded yet (a stale "in sync" otherwise).
        with self._lock:
            endpoints, namespaces, _policies, objs = self.inputs()
            current = self._digest_of(endpoints, namespaces, objs)
        if self._again:
            self.poll()     # a poll() that came while we held the lock did nothing
        if current != self._digest:
            problems = [f"node {n}: {e}" for n, e in sorted(self.errors.items())]
            return problems or ["policy dataplane not yet updated"]
        return []

    def stop(self) -> None:
        self._stopping.set()
        self._kick.set()
        self._kicker.join(2)
        self._pool.shutdown(wait=True)
