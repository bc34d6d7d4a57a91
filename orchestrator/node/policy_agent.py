"""Felix for every node: policies and pods from the store -> compiled -> applied per node.

Side effects: through orchestrator.node.firewall, `cali-` chains and `cali40` ipsets in each node's
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

from orchestrator.errors import ApplyError, CalinetError
from orchestrator.host import naming
from orchestrator.node.firewall import Firewall
from orchestrator.node.restore_session import RestoreSession
from policy.compile_cache import CompileCache
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
    def __init__(self, store, nodes: dict[str, int], runner, *, workers: int = 4,
                 keep_restore: bool = False, on_spawn=None):
        self.store = store
        # keep_restore: one long-lived iptables-restore per node (restore_session: a forked
        # one spends ~16 ms closing its nf_tables socket, more than the rest of a new pod's
        # write); its pids go to on_spawn.
        self.sessions = {name: RestoreSession(runner, pid=pid, on_spawn=on_spawn)
                         for name, pid in nodes.items()} if keep_restore else {}
        self.firewalls = {name: Firewall(name, pid, runner, session=self.sessions.get(name))
                          for name, pid in nodes.items()}
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
        self._basis: dict[str, tuple] = {}   # node -> inputs its applied rules come from
        self._digest_memo: tuple | None = None   # (endpoints, namespaces, objects, digest)
        self._digest: str | None = None
        self._tried: str | None = None      # digest of the last pass (failed or not)
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._enforced_cv = threading.Condition()
        self._enforced_uids: dict[str, set] = {}   # node -> uids of the pods it enforces
        self._ep_uids: dict = {}
        self._passes_started = self._passes_ended = 0   # passes begun / over (wait_enforced)
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
        # Converted policies by (kind, namespace, name, resourceVersion), and what the
        # compiler keeps between passes (policy and endpoint chains, set members per
        # endpoint): a pass after one pod came re-does none of it for the others, which with
        # 200 policies was most of its time (conversion ~25 ms, chains ~80 ms, the selectors
        # of every policy against every endpoint ~20 ms per node).
        self._converted: dict[tuple, Policy | str] = {}
        self._cache = CompileCache()
        self._endpoints: dict[str, tuple] = {}   # pod uid -> (its key, Endpoint | None)
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
        if len(self._endpoints) > 2 * len(pods) + 64:     # forget deleted pods now and then
            live = {p["metadata"].get("uid") for p in pods}
            self._endpoints = {u: v for u, v in self._endpoints.items() if u in live}
        with self._wired_lock:
            if self._wired:   # forget what the status now says, or what is gone
                live = {p["metadata"]["uid"] for p in pods
                        if not (p.get("status") or {}).get("podIP")}
                self._wired = {u: ip for u, ip in self._wired.items() if u in live}
            wired = dict(self._wired)
            draining = dict(self._draining)
        endpoints, uids = [], {}
        for p in pods:
            if (ep := self._endpoint(p, wired)) is not None:
                endpoints.append(ep)
                uids.setdefault(ep, p["metadata"].get("uid"))
        # A pod of the same name may already exist again (a StatefulSet's): on the same node
        # the store's wins (same veth name); on another node both are endpoints until the old
        # sandbox is gone.
        have = {(ep.key, ep.node) for ep in endpoints}
        for uid, ep in sorted(draining.items()):
            if (ep.key, ep.node) not in have:
                endpoints.append(ep)
                uids.setdefault(ep, uid)
        self._ep_uids = uids     # which pod each endpoint is (wait_enforced goes by uid)
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

    def _endpoint(self, pod: dict, wired: dict) -> Endpoint | None:
        # By (uid, resourceVersion, wired address): a pass converts only the pods written
        # since the last one (the objects are shared, never modified: _list).
        meta = pod["metadata"]
        key = (meta.get("uid"), meta.get("resourceVersion"), wired.get(meta.get("uid")))
        if key[1] is None:
            return pod_endpoint(pod, wired)
        hit = self._endpoints.get(key[0])
        if hit is None or hit[0] != key:
            ep = pod_endpoint(pod, wired)
            if hit is not None and hit[1] == ep:
                ep = hit[1]      # a status write: the same endpoint, the same object
            hit = self._endpoints[key[0]] = (key, ep)
        return hit[1]

    def _digest_now(self, endpoints, namespaces, objs) -> str:
        # The digest of the last pass's inputs when these equal them (the endpoints are the
        # same objects then: _endpoint), without serialising every endpoint again: most
        # passes of a bring-up only see pods' status writes.
        objkey = [(o["kind"], o.get("apiVersion"), o["metadata"].get("namespace", ""),
                   o["metadata"]["name"], o["metadata"].get("resourceVersion")) for o in objs]
        memo = self._digest_memo
        if (memo is not None and all(k[4] is not None for k in objkey)
                and memo[2] == objkey and memo[1] == namespaces and memo[0] == endpoints):
            return memo[3]
        digest = self._digest_of(endpoints, namespaces, objs)
        self._digest_memo = (endpoints, namespaces, objkey, digest)
        return digest

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
                self._passes_started += 1
                written += self._pass()
            except BaseException:
                self._seen_rv = None    # an unexpected failure: read everything next time
                raise
            finally:
                self._passes_ended = self._passes_started
                self._lock.release()
                with self._enforced_cv:     # a failed pass, too, ends a wait_enforced()
                    self._enforced_cv.notify_all()
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
        digest = self._digest_now(endpoints, namespaces, objs)
        t2 = time.perf_counter()
        self._seen_rv, self._seen_gen = rv, gen
        if digest == self._digest:
            return []
        if digest == self._tried and time.monotonic() < self._retry_at:
            return []      # the same input failed just now: retried after RETRY
        # One walk over the endpoints (not one per node: 50 nodes x 500 pods per pass was
        # a good part of a bring-up's passes).
        by_node: dict[str, list[Endpoint]] = {n: [] for n in self.firewalls}
        for ep in endpoints:
            if ep.node in by_node:
                by_node[ep.node].append(ep)
        local = {n: {ep.key for ep in eps} for n, eps in by_node.items()}
        local_uids = {n: {self._ep_uids.get(ep) for ep in eps} for n, eps in by_node.items()}
        # What a node's rules are compiled from, besides the members of the ipsets they use:
        # its own endpoints, the ordered policies and the namespace labels. A node whose
        # last rules use no ipset and whose inputs are those it was compiled from has the
        # same rules: not compiled again (during a bring-up without policies, each pass
        # compiled every node for the one or two that gained pods).
        pols = tuple(policies)
        basis = {n: (tuple(eps), pols, namespaces) for n, eps in by_node.items()}

        def same(n: str) -> bool:
            dp = self.applied.get(n)
            return (dp is not None and not dp.ipsets and n not in self.errors
                    and self._basis.get(n) == basis[n])
        # Nodes that gained a pod are compiled and written first, on their own: the new pod
        # is enforced (its dispatch entry and chains) without waiting for the other nodes'
        # compiles and forks on the same cores; the others only add its address to their
        # selector ipsets.
        first = [n for n in self.firewalls if local[n] - self.endpoints_applied[n]]
        rest = [n for n in self.firewalls if n not in first]
        memo: dict = {}
        todo: list[str] = []
        ok: dict[str, bool] = {}
        phases = {"inputs": t1 - t0, "digest": t2 - t1, "compile": 0.0, "apply": 0.0}
        for group in (first, rest):
            t = time.perf_counter()
            desired = {n: compile_node(n, endpoints, namespaces, policies, memo=memo,
                                       cache=self._cache) for n in group if not same(n)}
            t3 = time.perf_counter()
            # A node whose last apply failed is written again even if what it should have
            # is what it last had (the failure may have left it anywhere).
            write = [n for n, dp in desired.items()
                     if self.applied.get(n) != dp or n in self.errors]
            ok.update(zip(write, self._pool.map(lambda n, d=desired: self._apply(n, d[n]), write)))
            for n in desired:       # what self.applied[n] now is compiled from
                if n in self.errors:
                    self._basis.pop(n, None)
                else:
                    self._basis[n] = basis[n]
            todo += write
            phases["compile"] += t3 - t
            phases["apply"] += time.perf_counter() - t3
            if group is first:
                self._enforced(first, local, local_uids, write)   # their kubelets wait
            if group is first and first:
                phases["first_node"] = time.perf_counter() - t0
                for k, v in self.firewalls[first[0]].last_write_s.items():
                    phases[f"first_node_{k}"] = v if first[0] in write else 0.0
        results = [ok[n] for n in todo]
        self.last_pass_s = phases
        self._enforced(rest, local, local_uids, todo)
        self._digest = digest if not self.errors else None
        self._tried = digest
        if self.errors:
            self._retry_at = time.monotonic() + RETRY
        return [n for n, ok in zip(todo, results) if ok]

    def _enforced(self, nodes, local: dict[str, set[str]], local_uids: dict[str, set],
                  written) -> None:
        # Records when the rules of each node's new endpoints were committed, and wakes the
        # kubelets waiting for them (wait_enforced).
        now = time.monotonic()
        for node in nodes:
            if node in self.errors:
                continue
            at = self._applied_at[node] if node in written else now
            for key in local[node] - self.endpoints_applied[node]:
                self.enforced_at[key] = at
            for key in self.endpoints_applied[node] - local[node]:
                self.enforced_at.pop(key, None)
            self.endpoints_applied[node] = local[node]
            self._enforced_uids[node] = local_uids[node]
        with self._enforced_cv:
            self._enforced_cv.notify_all()

    def wait_enforced(self, node: str, uids, timeout: float) -> bool:
        """Wait until ``node`` enforces the endpoints of the pods ``uids``, or a pass that
        started after this call failed on that node, or ``timeout`` passed; returns whether
        they are enforced. What Calico's CNI plugin does with policy_setup_timeout_seconds
        (v3.28): CNI ADD returns once Felix reports the endpoint programmed, so a pod's
        containers never run before its policy. By uid, not name: a pod of the same name
        may still drain on another node (a StatefulSet's), or have just left this one."""
        deadline = time.monotonic() + timeout
        begun = self._passes_started
        with self._enforced_cv:
            while True:
                if all(u in self._enforced_uids.get(node, ()) for u in uids):
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or (node in self.errors and self._passes_ended > begun):
                    return False
                self._enforced_cv.wait(left)

    def _store_rv(self) -> int | None:
        current = getattr(self.store, "current_rv", None)
        return current() if current is not None else None

    def _apply(self, node: str, dp: Dataplane) -> bool:
        t0 = time.monotonic()
        try:
            written = self.firewalls[node].apply(dp)
        except ApplyError as exc:
            log.error("policy on %s: %s\ninput:\n%s", node, exc, exc.rendered_input)
            self.errors[node] = str(exc)
            return False
        self.errors.pop(node, None)
        self.applied[node] = dp
        # When the rules were committed, not when the applier finished its bookkeeping.
        self._applied_at[node] = (self.firewalls[node].committed_at if written.changed
                                  else time.monotonic())
        self.last_apply_s[node] = time.monotonic() - t0
        return True

    # -- reading -----------------------------------------------------------------------

    def in_sync(self) -> list[str]:
        """Problems between now and 'every node enforces the store's policies for every
        endpoint it has'."""
        # Under the lock: a pass that is writing rules read the store before the caller's
        # last change, and its digest is not recorded yet (a stale "in sync" otherwise).
        with self._lock:
            rv = self._store_rv()
            if rv is not None and not self.errors:
                # Without reading anything: the last pass (over, since we hold the lock)
                # read this very store and notices, and wrote them; or the store moved on
                # since, and a pass that reads it is asked for (the kicker's, not on the
                # caller's thread: Testbed.wait_ready asks every 50 ms, and reading 500 pods
                # and digesting them there took a good part of a bring-up's interpreter).
                if (rv == self._seen_rv and self._gen == self._seen_gen
                        and self._digest is not None):
                    return []
                self._kick.set()
                return ["policy dataplane not yet updated"]
            endpoints, namespaces, _policies, objs = self.inputs()
            current = self._digest_now(endpoints, namespaces, objs)
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
        for session in self.sessions.values():
            session.close()
