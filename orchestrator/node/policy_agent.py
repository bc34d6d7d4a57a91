"""Felix for every node: policies and pods from the store -> compiled -> applied per node.

Side effects: through orchestrator.node.firewall, `cali-` chains and `cali40` ipsets in each node's
network namespace (with IPv6 pods, also ip6tables chains and `cali60` ipsets, compiled from the
same policies for the pods' IPv6 addresses, as Felix's second dataplane). Called by the controller manager on every pass (poll()); cheap when nothing
relevant changed (a digest of the endpoints, namespace labels and policy objects). A pod is an
endpoint once it has a sandbox address (status.podIP) on a node, as Calico's CNI plugin creates
the WorkloadEndpoint when it wires the pod. Until its node's rules are written its traffic hits
"Unknown interface" in the dispatch chains, as with a real Felix; Testbed.wait_ready waits for
in_sync().

A policy object the model cannot convert is skipped and reported (``errors``), never blocking
the others; a node whose apply fails keeps its previous rules and is retried on the next pass.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from orchestrator.control.nodes import VXLAN_ADDR_ANNOTATION
from orchestrator.errors import ApplyError, CalinetError
from orchestrator.host import naming
from orchestrator.node.firewall import Firewall
from orchestrator.node.restore_session import ARGV6, RestoreSession
from policy.compile_cache import CompileCache
from policy.compiler import Endpoint, compile_node, endpoint
from policy.hostencap import HOST_SETS, encap_parts, encap_pool_specs, with_host_encap
from policy.ir import Dataplane
from policy.model import Policy, from_object
from policy.natoutgoing import POOL_SETS, nat_parts, pool_specs, with_nat_outgoing

log = logging.getLogger(__name__)
POLICY_KINDS = ("NetworkPolicy", "NetworkPolicy.projectcalico.org", "GlobalNetworkPolicy")
RETRY = 1.0


def pod_endpoint(pod: dict, wired: dict | None = None) -> Endpoint | None:
    """The pod as an endpoint once it has an address: status.podIPs, or the addresses its
    kubelet reported right after wiring the sandbox (``wired``: uid -> IP or IPs)."""
    meta, spec, st = pod["metadata"], pod["spec"], pod.get("status") or {}
    ips = [a.get("ip") for a in st.get("podIPs") or [] if a.get("ip")] or (
        [st["podIP"]] if st.get("podIP") else [])
    if not ips:
        got = (wired or {}).get(meta.get("uid"))
        ips = [got] if isinstance(got, str) else list(got or ())
    if not spec.get("nodeName") or not ips:
        return None
    ports = [(p["name"], str(p.get("protocol", "TCP")).lower(), int(p["containerPort"]))
             for c in spec.get("containers", []) for p in c.get("ports") or [] if p.get("name")]
    return endpoint(meta["namespace"], meta["name"], spec["nodeName"],
                    naming.veth_name(meta["namespace"], meta["name"]), ips[0],
                    meta.get("labels") or {}, ports, ips[1] if len(ips) > 1 else "")


class PolicyAgent:
    def __init__(self, store, nodes: dict[str, int], runner, *, workers: int = 4,
                 keep_restore: bool = False, on_spawn=None, fresh: bool = False,
                 families=(4,)):
        """``families``: the pods' IP families; with 6 every node also gets an ip6tables
        dataplane."""
        self.store = store
        self.ipv6 = 6 in tuple(families)
        # keep_restore: one long-lived iptables-restore per node (restore_session: a forked
        # one spends ~16 ms closing its nf_tables socket, more than the rest of a new pod's
        # write); its pids go to on_spawn.
        self.sessions = {name: RestoreSession(runner, pid=pid, on_spawn=on_spawn)
                         for name, pid in nodes.items()} if keep_restore else {}
        self.sessions6 = {name: RestoreSession(runner, pid=pid, on_spawn=on_spawn, argv=ARGV6)
                          for name, pid in nodes.items()} if keep_restore and self.ipv6 else {}
        # fresh: the nodes' netns were made just now, with no rules or sets (Firewall).
        self.firewalls = {name: Firewall(name, pid, runner, session=self.sessions.get(name),
                                         fresh=fresh, session6=self.sessions6.get(name))
                          for name, pid in nodes.items()}
        self.applied: dict[str, Dataplane] = {}        # node -> last written
        self.applied6: dict[str, Dataplane | None] = {}   # node -> last written (ip6tables)
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
        # IPPool versions and node addresses the NAT-outgoing and host encapsulation parts
        # are of.
        self._nat_key: tuple | None = None
        self._nat = nat_parts([])
        self._nat6 = nat_parts([], family=6)
        self._encap = encap_parts([], [])
        self._pool_versions: tuple = ()
        self._digest: tuple | None = None
        self._tried: tuple | None = None      # digest of the last pass (failed or not)
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._inputs_lock = threading.Lock()
        self._enforced_cv = threading.Condition()
        self._enforced_uids: dict[str, set] = {}   # node -> uids of the pods it enforces
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
        self._cache6 = CompileCache()
        # kind -> (highest rv seen, {(namespace, name): object}): objects decoded once per
        # write of them (Store.list_since), not every pass.
        self._objects: dict[str, tuple[int, dict]] = {}
        # The endpoints, kept up to date from what changed (pods written or deleted since
        # the last pass, sandboxes just wired, drains), not rebuilt from every pod each
        # pass: at 500 pods a bring-up's ~90 passes spent most of their time walking,
        # hashing and digesting the 490 pods that had not changed.
        self._pod_eps: dict[tuple[str, str], tuple[str, Endpoint | None]] = {}  # -> (uid, ep)
        self._key_of_uid: dict[str, tuple[str, str]] = {}
        self._buckets: dict[str, dict[str, Endpoint]] = {}   # node -> {uid: its endpoint}
        self._dirty: set[str] = set()          # nodes whose bucket changed since viewed
        self._views: dict[str, tuple] = {}     # node -> (endpoints, keys, uids) of its bucket
        self._eps_gen = 0                      # bumped by every endpoint change
        self._eps_list: tuple[int, tuple] | None = None
        self._wired_new: set[str] = set()      # uids wired since the last pass read them
        self._draining_gen = 0
        self._draining_seen = -1
        self._namespaces: dict = {}
        self._ns_gen = 0
        self._gen = 0            # bumped by every sandbox notice (not a store write)
        self._seen_rv: int | None = None
        self._seen_gen = -1
        self._again = False      # a poll() found a pass running: it goes round once more
        self._kick = threading.Event()
        self._stopping = threading.Event()
        self._kicker = threading.Thread(target=self._kick_loop, name="calinet-felix-kick",
                                        daemon=True)
        self._kicker.start()

    def sandboxes_wired(self, pods: list[tuple[str, object]]) -> None:
        """(uid, IP or IPs) of sandboxes just wired by a kubelet: program them without waiting for
        the pods' status (a pass runs in the background)."""
        with self._wired_lock:
            self._wired.update(pods)
            self._wired_new.update(uid for uid, _ip in pods)
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
                self._draining_gen += 1
                self._gen += 1
            self._kick.set()

    def sandboxes_removed(self, uids) -> None:
        """Sandboxes torn down (CNI DEL): their endpoints go."""
        with self._wired_lock:
            gone = [u for u in uids if self._draining.pop(u, None) is not None]
            if gone:
                self._draining_gen += 1
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

    def _changed(self, kind: str) -> tuple[dict, set]:
        """(every object of ``kind`` by (namespace, name), the keys of those written or
        deleted since the last call), decoding only what was written. The objects are
        shared between passes: read, never modified."""
        top, known = self._objects.get(kind, (0, {}))
        since = getattr(self.store, "list_since", None)
        if since is None:       # a store without versions: everything may have changed
            now = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
                   for o in self.store.list(kind)}
            self._objects[kind] = (0, now)
            return now, set(now) | set(known)
        rows = since(kind, top, shared=True)
        if any(obj is None and (ns, name) not in known for ns, name, _rv, obj in rows):
            rows = since(kind, -1, shared=True)   # cannot happen (rvs commit in order)
        fresh = {(ns, name): obj if obj is not None else known[(ns, name)]
                 for ns, name, _rv, obj in rows}
        changed = {(ns, name) for ns, name, _rv, obj in rows if obj is not None}
        if len(fresh) != len(known) or changed:
            changed.update(known.keys() - fresh.keys())      # deleted
        self._objects[kind] = (max((row[2] for row in rows), default=top), fresh)
        return fresh, changed

    def _list(self, kind: str) -> list[dict]:
        return list(self._changed(kind)[0].values())

    def inputs(self) -> tuple[tuple[Endpoint, ...], dict[str, dict], list[Policy], list[dict]]:
        # Reading changes the kept state (what was seen since the last read): one reader at
        # a time, the pass, in_sync() or a caller's own look (bench/netpolicy.py).
        with self._inputs_lock:
            return self._inputs()

    def _inputs(self) -> tuple[tuple[Endpoint, ...], dict[str, dict], list[Policy], list[dict]]:
        self._update_endpoints()
        endpoints = self._endpoint_list()
        namespaces = {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {})
                      for n in self._list("Namespace")}
        if namespaces != self._namespaces:
            self._namespaces, self._ns_gen = namespaces, self._ns_gen + 1
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
        pools = self._list("IPPool")
        self._pool_versions = tuple((o["metadata"]["name"], o["metadata"].get("resourceVersion")
                                     or json.dumps(o.get("spec"), sort_keys=True))
                                    for o in pools)
        hosts = _hosts(self._list("Node"))
        if (self._pool_versions, hosts) != self._nat_key:
            self._nat_key = (self._pool_versions, hosts)
            self._nat = nat_parts(pool_specs(pools))
            self._nat6 = nat_parts(pool_specs(pools), family=6)
            self._encap = encap_parts(encap_pool_specs(pools), hosts)
        return endpoints, namespaces, policies, objs

    def _update_endpoints(self) -> None:
        """Bring the endpoint buckets up to date with the pods written or deleted since the
        last call and the sandboxes wired or drained since."""
        pods, changed = self._changed("Pod")
        with self._wired_lock:
            wired = dict(self._wired)
            for uid in self._wired_new:
                if (key := self._key_of_uid.get(uid)) is not None:
                    changed.add(key)
            self._wired_new = set()
            draining_gen = self._draining_gen
        settled = []    # uids whose address the status now has, or whose pod is gone
        for key in changed:
            pod = pods.get(key)
            old = self._pod_eps.get(key)
            if pod is None:
                if old is not None:
                    del self._pod_eps[key]
                    self._key_of_uid.pop(old[0], None)
                    self._set_bucket(old[0], old[1], None)
                    settled.append(old[0])
                continue
            uid = pod["metadata"].get("uid")
            ep = pod_endpoint(pod, wired)
            if old is not None and old[0] != uid:    # the name now holds another pod
                self._key_of_uid.pop(old[0], None)
                self._set_bucket(old[0], old[1], None)
                settled.append(old[0])
                old = None
            if old is not None and old[1] == ep:
                ep = old[1]       # a status write: the same endpoint, the same object
            self._pod_eps[key] = (uid, ep)
            self._key_of_uid[uid] = key
            self._set_bucket(uid, old[1] if old is not None else None, ep)
            if (pod.get("status") or {}).get("podIP"):
                settled.append(uid)
        with self._wired_lock:
            for uid in settled:
                self._wired.pop(uid, None)
            if len(self._wired) > len(pods) + 64:     # wired, then deleted unseen
                self._wired = {u: ip for u, ip in self._wired.items() if u in self._key_of_uid}
        if draining_gen != self._draining_seen:
            # Rare (deleted Service endpoints): every node's view is made again.
            self._draining_seen = draining_gen
            self._dirty.update(self._buckets)
            self._dirty.update(ep.node for _uid, ep in self._draining_now())
            self._eps_gen += 1

    def _set_bucket(self, uid: str, old: Endpoint | None, new: Endpoint | None) -> None:
        if old is new:
            return
        self._eps_gen += 1
        if old is not None:
            self._buckets.get(old.node, {}).pop(uid, None)
            self._dirty.add(old.node)
        if new is not None:
            self._buckets.setdefault(new.node, {})[uid] = new
            self._dirty.add(new.node)

    def _draining_now(self) -> list[tuple[str, Endpoint]]:
        with self._wired_lock:
            return sorted(self._draining.items())

    def _view(self, node: str) -> tuple[tuple[Endpoint, ...], set[str], set]:
        """(endpoints, their keys, their pods' uids) of ``node``: its pods', plus the
        draining sandboxes whose name no pod of the node has again. A pod of the same name
        may already exist again (a StatefulSet's): on the same node the store's wins (same
        veth name); on another node both are endpoints until the old sandbox is gone."""
        if node in self._views and node not in self._dirty:
            return self._views[node]
        bucket = self._buckets.get(node, {})
        eps = list(bucket.values())
        keys = {ep.key for ep in eps}
        uids = set(bucket)
        for uid, ep in self._draining_now():
            if ep.node == node and ep.key not in keys:
                eps.append(ep)
                keys.add(ep.key)
                uids.add(uid)
        view = self._views[node] = (tuple(eps), keys, uids)
        self._dirty.discard(node)
        return view

    def _endpoint_list(self) -> tuple[Endpoint, ...]:
        if self._eps_list is None or self._eps_list[0] != self._eps_gen:
            nodes = set(self._buckets) | {ep.node for _u, ep in self._draining_now()}
            # A tuple, the same object until an endpoint changes: the compile cache knows
            # it by identity (CompileCache.begin).
            self._eps_list = (self._eps_gen,
                              tuple(ep for n in sorted(nodes) for ep in self._view(n)[0]))
        return self._eps_list[1]

    def _digest_now(self, objs) -> tuple:
        # What the last inputs() read, as versions: the endpoints' (bumped by every change of
        # one, _update_endpoints), the namespace labels' and each policy object's
        # resourceVersion (its spec when a store has none). Equal versions, equal inputs; a
        # change undone costs one pass that compiles what is already applied, writing nothing.
        return (self._eps_gen, self._ns_gen, self._nat_key,
                tuple((o["kind"], o.get("apiVersion"), o["metadata"].get("namespace", ""),
                       o["metadata"]["name"],
                       o["metadata"].get("resourceVersion")
                       or json.dumps(o.get("spec"), sort_keys=True, default=str))
                      for o in objs))

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
        digest = self._digest_now(objs)
        t2 = time.perf_counter()
        self._seen_rv, self._seen_gen = rv, gen
        if digest == self._digest:
            return []
        if digest == self._tried and time.monotonic() < self._retry_at:
            return []      # the same input failed just now: retried after RETRY
        # Each node's endpoints as kept between passes (_view): only the nodes whose pods
        # changed are looked at again.
        with self._inputs_lock:    # views are kept state, as what inputs() reads
            views = {n: self._view(n) for n in self.firewalls}
        by_node = {n: v[0] for n, v in views.items()}
        local = {n: v[1] for n, v in views.items()}
        local_uids = {n: v[2] for n, v in views.items()}
        # What a node's rules are compiled from, besides the members of the ipsets they use:
        # its own endpoints, the ordered policies and the namespace labels. A node whose
        # last rules use no ipset and whose inputs are those it was compiled from has the
        # same rules: not compiled again (during a bring-up without policies, each pass
        # compiled every node for the one or two that gained pods).
        pols = tuple(policies)
        nat, nat6, encap = self._nat, self._nat6, self._encap
        basis = {n: (eps, pols, namespaces, self._nat_key) for n, eps in by_node.items()}

        def same(n: str) -> bool:
            # NAT-outgoing's pool sets depend on the pools alone, which the basis holds.
            dp, dp6 = self.applied.get(n), self.applied6.get(n)
            return (dp is not None and not (dp.ipsets.keys() - POOL_SETS - HOST_SETS)
                    and (dp6 is None or not (dp6.ipsets.keys() - POOL_SETS))
                    and n not in self.errors and self._basis.get(n) == basis[n])

        def compile_pair(n: str) -> tuple[Dataplane, Dataplane | None]:
            dp = with_host_encap(with_nat_outgoing(
                compile_node(n, endpoints, namespaces, policies, memo=memo, cache=self._cache),
                nat), encap)
            dp6 = with_nat_outgoing(compile_node(
                n, endpoints, namespaces, policies, memo=memo, cache=self._cache6, family=6),
                nat6) if self.ipv6 else None
            return dp, dp6
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
            desired = {n: compile_pair(n) for n in group if not same(n)}
            t3 = time.perf_counter()
            # A node whose last apply failed is written again even if what it should have
            # is what it last had (the failure may have left it anywhere).
            write = [n for n, (dp, dp6) in desired.items()
                     if self.applied.get(n) != dp or self.applied6.get(n) != dp6
                     or n in self.errors]
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

    def _apply(self, node: str, pair: tuple[Dataplane, Dataplane | None]) -> bool:
        t0 = time.monotonic()
        dp, dp6 = pair
        try:
            written = self.firewalls[node].apply(dp, dp6)
        except ApplyError as exc:
            log.error("policy on %s: %s\ninput:\n%s", node, exc, exc.rendered_input)
            self.errors[node] = str(exc)
            return False
        self.errors.pop(node, None)
        self.applied[node] = dp
        self.applied6[node] = dp6
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
            *_rest, objs = self.inputs()
            current = self._digest_now(objs)
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
        for session in [*self.sessions.values(), *self.sessions6.values()]:
            session.close()


def _hosts(nodes) -> tuple[tuple[str, bool], ...]:
    """(InternalIP, has a VTEP) of every Node: the members of Felix's all-hosts-net and
    all-vxlan-net sets."""
    out = []
    for n in nodes:
        ip = next((a["address"] for a in (n.get("status") or {}).get("addresses") or []
                   if a.get("type") == "InternalIP"), None)
        if ip:
            notes = n["metadata"].get("annotations") or {}
            out.append((ip, bool(notes.get(VXLAN_ADDR_ANNOTATION))))
    return tuple(sorted(out))
