"""`Testbed`: the Python API. Brings a cluster up from a topology file and wires everything.

Side effects: everything (Mininet, namespaces, processes, the state directory), always
recorded in the ownership ledger before it is created and removed on stop, pass or fail.

    with Testbed("topologies/examples/three-node.yaml") as tb:
        tb.apply("experiments/manifests/web.yaml")
        tb.wait_ready(timeout=60)
        tb.probe("demo/client", "demo/web-xxxxx", 80, "TCP")
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import secrets
import shutil
import tempfile
import time

from kubeproxy.model import cluster_ip_of
from orchestrator.api.pod import pod_ip_of
from orchestrator.control.client import Client, split_key
from orchestrator.control.nodes import host_facts, node_object, system_namespaces
from orchestrator.control.serviceips import ServiceIPAllocator
from orchestrator.control.store import Store
from orchestrator.controllers.common import pod_ready
from orchestrator.controllers.manager import ControllerManager
from orchestrator.dns.cluster import SYSTEM_NAMESPACE, ClusterDNS
from orchestrator.dns.cluster import manifests as dns_manifests
from orchestrator.dns.resolvconf import kube_dns_ip
from orchestrator.errors import CalinetError, NotFound, SupervisorTimeout, ValidationError
from orchestrator.host import naming
from orchestrator.host.cleanup import clean_state_dir, owned_links, owned_netns
from orchestrator.host.ledger import Ledger, registered_testbeds
from orchestrator.host.netns import netns_path
from orchestrator.host.runner import DEFAULT, Result
from orchestrator.ipam.store import IPAM, ensure_default_pool
from orchestrator.node.cni import CNI
from orchestrator.node.containers import ContainerRuntime, exec_argv, exec_environment
from orchestrator.node.encap_agent import EncapAgent, pool_admissions
from orchestrator.node.kubelet import Kubelet, NodeRef
from orchestrator.node.kubeproxy_agent import KubeProxyAgent
from orchestrator.node.nflog import NodeLog
from orchestrator.node.policy_agent import PolicyAgent
from orchestrator.node.routing import NO_PEER, BGPAdmission, FabricASAdmission, Routing
from orchestrator.traffic import probe
from topologies.net import start_cluster
from topologies.spec import load_spec

log = logging.getLogger(__name__)

DEFAULT_STATE_ROOT = "/var/lib/calinet"
# wait_ready's problems that clear without a store write (routes, policy rules): polled.
DATAPLANE_PREFIXES = ("policy:", "BGP", "node ")
# A testbed's own (temporary) state dir goes on this memory filesystem when there is one
# with room (_scratch_dir).
SCRATCH = "/dev/shm"
SCRATCH_MIN = 256 * 2**20


def _scratch_dir() -> str | None:
    """Where a testbed's own temporary state dir goes: a memory filesystem when the machine
    has one (/dev/shm), as a container runtime keeps its runtime state under /run. The dir
    is deleted at stop anyway, and every pod creates files in it (its log, beside the
    store): on a well-used ext4 each new inode costs ~0.5 ms of kernel time
    (ext4's recently_deleted() scan), 0.4 s of CPU over a 500-pod bring-up. None: the
    system's temporary directory."""
    try:
        st = os.statvfs(SCRATCH)
    except OSError:
        return None
    room = st.f_bavail * st.f_frsize
    return SCRATCH if room >= SCRATCH_MIN and os.access(SCRATCH, os.W_OK | os.X_OK) else None


def _new_testbed_id() -> str:
    """A 4-hex id no live or dead-but-registered testbed and no leftover object uses."""
    registered = {e["id"] for e in registered_testbeds()}
    while True:
        tid = secrets.token_hex(2)
        if tid not in registered and not owned_netns(tid) and not owned_links(tid):
            return tid


# How long a state directory's lock, named by a testbed that is gone, is waited for.
LOCK_WAIT = 5.0


def _lock_holders(path: str) -> str:
    """"pid (command)" of every process with ``path`` open, for the error that says who."""
    try:
        ino = os.stat(path).st_ino
    except OSError:
        return ""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.stat(f"/proc/{pid}/fd/{fd}").st_ino == ino for fd in fds):
                with open(f"/proc/{pid}/comm") as f:
                    out.append(f"{pid} ({f.read().strip()})")
        except OSError:
            continue
    return ", ".join(out)


class Testbed:
    """A running emulated cluster. Use as a context manager, or call start()/stop()."""

    encap = None     # set in _start; class defaults keep half-built testbeds stoppable
    fabric = None

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, topology, *, state_dir: str | None = None, progress=None,
                 tick: float = 0.2, keep_state: bool | None = None, fresh: bool = False,
                 bgp: bool = True, manifests=(), dns: bool = True,
                 node_grace: float = 10.0, eviction_delay: float = 5.0):
        self.spec = load_spec(topology)
        # Cluster DNS, on by default as in kubeadm, kind or minikube clusters:
        # kube-system/coredns behind the kube-dns Service (10.96.0.10), and every pod's
        # commands resolve through it (orchestrator.dns). dns=False: no DNS add-on.
        self.dns = dns
        self.cluster_dns: ClusterDNS | None = None
        # Applied once the API is up, before the speakers and controllers start: BGP
        # objects then shape the first configs instead of restarting every speaker. The
        # topology's own `manifests:` come first (one apply), then these.
        self.manifests = [manifests] if isinstance(manifests, (str, dict)) else list(manifests)
        if self.spec.manifests:
            self.manifests.insert(0, list(self.spec.manifests))
        self.applied: list[str] = []   # what applying ``manifests`` said, line by line
        self._own_state_dir = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="calinet-state-",
                                                       dir=_scratch_dir())
        # A temporary state dir goes with the testbed; a named one is kept for restarts.
        self.keep_state = (not self._own_state_dir) if keep_state is None else keep_state
        self.progress = progress or (lambda msg: log.info("%s", msg))
        self.tick = tick
        # Node lifecycle: a node silent this long is NotReady; its pods go after eviction_delay.
        # Kubernetes' defaults are 40 s and 300 s; shorter here so experiments see it happen,
        # long enough that a few seconds of link fault (BGP hold-time tests) evict nothing.
        self.node_grace = node_grace
        self.eviction_delay = eviction_delay
        self._unreachable: dict[str, set] = {}  # node -> {"link", "failed"}
        self.fresh = fresh  # discard a previous run's objects (after cleaning up after it)
        # One ExaBGP speaker per node routing pod blocks between nodes; without it pods
        # reach only pods on their own node (and the nodes).
        self.bgp = bgp
        self.routing = None
        self.fabric = None   # topologies.routers.FabricRouters of a routed topology
        self.encap = None    # orchestrator.node.encap_agent.EncapAgent (VXLAN, IPIP pools)
        self.policy: PolicyAgent | None = None
        self.kubeproxy: KubeProxyAgent | None = None
        self.packet_logs: dict[str, NodeLog] = {}
        self.runner = DEFAULT
        self.id: str | None = None
        self.store: Store | None = None
        self.cluster = None
        self.manager: ControllerManager | None = None
        self.kubelets: dict[str, Kubelet] = {}
        self._lockfile = None

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> "Testbed":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Testbed":
        t0 = time.monotonic()
        os.makedirs(self.state_dir, exist_ok=True)
        self._lock_state_dir()
        try:
            self._start(t0)
        except BaseException:
            self.stop()
            raise
        return self

    def _lock_state_dir(self) -> None:
        path = os.path.join(self.state_dir, "lock")
        self._lockfile = open(path, "a+")
        # The lock names its testbed's pid. A testbed killed with -9 can leave the lock
        # held a moment by a process it was starting (the open file goes with a fork until
        # its exec): with the named testbed dead, that is waited out, not refused.
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                self._lockfile.seek(0)
                owner = self._lockfile.read().strip()
                dead = owner.isdigit() and not os.path.exists(f"/proc/{owner}")
                if dead and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                self._lockfile.close()
                self._lockfile = None
                if dead:
                    raise CalinetError(
                        f"state directory {self.state_dir} is locked by processes of the "
                        f"testbed {owner}, which is gone: {_lock_holders(path) or 'unknown'}; "
                        "`calinet clean` removes what it left") from None
                raise CalinetError(f"state directory {self.state_dir} is in use by a running "
                                   f"testbed (pid {owner or '?'}); stop it first or choose "
                                   "another state directory") from None
        self._lockfile.seek(0)
        self._lockfile.truncate()
        self._lockfile.write(f"{os.getpid()}\n")
        self._lockfile.flush()

    def _start(self, t0: float) -> None:
        ledger = Ledger(self.state_dir)
        leftover = clean_state_dir(self.state_dir, self.runner)
        if leftover.testbed_id and (leftover.processes or leftover.netns or leftover.links):
            self.progress(f"cleaned up after a previous run: {leftover.summary()}")
        if self.fresh:
            for suffix in ("", "-wal", "-shm"):
                path = os.path.join(self.state_dir, "state.db" + suffix)
                if os.path.exists(path):
                    os.remove(path)
        self.id = _new_testbed_id()
        ledger.begin(self.id)
        self.ledger = ledger
        self.store = Store(os.path.join(self.state_dir, "state.db"))
        scope = self.spec.peer_scope()
        reserved = {"underlay": self.spec.underlay.cidr}
        if self.spec.underlay.cidr6:
            reserved["IPv6 underlay"] = self.spec.underlay.cidr6
        if self.spec.external is not None:
            reserved["external network"] = self.spec.external.cidr
        self.client = Client(self.store, reserved=reserved,
                             admission=([BGPAdmission(self.state_dir, scope,
                                                      families=self.spec.families)]
                                        if self.bgp else [])
                             + pool_admissions(bgp=self.bgp, families=self.spec.families)
                             + [FabricASAdmission(self.spec)],
                             allocators=[ServiceIPAllocator(families=self.spec.families)],
                             peer_scope=scope)
        with open(os.path.join(self.state_dir, "testbed.json"), "w") as f:
            import json
            json.dump({"id": self.id, "topology": self.spec.name, "owner": os.getpid(),
                       "underlay": self.spec.underlay.cidr,
                       "underlay6": self.spec.underlay.cidr6,
                       "routers": self.spec.fabric.router_names if self.spec.fabric else [],
                       "peer_scope": scope, "bgp": self.bgp,
                       "families": list(self.spec.families)}, f)
        # The topology's own pools are checked before a node exists: an IPIP pool on a kernel
        # without the module (or without BGP), an IPv6 pool the pods cannot use; refused
        # here, the start costs nothing to undo.
        for doc in (d for d in self.spec.manifests if d.obj.get("kind") == "IPPool"):
            try:
                for check in pool_admissions(bgp=self.bgp, families=self.spec.families):
                    check(self.store, [doc.obj])
            except ValidationError as exc:
                raise ValidationError(exc.message, source=doc.source, index=doc.index,
                                      obj=exc.obj, field=exc.field) from None
        n = len(self.spec.nodes)
        self.progress(f"starting {n} node(s) of cluster {self.spec.name!r} (testbed {self.id})")
        ledger.links([naming.switch_name(self.id, i) for i in range(len(self.spec.racks) + 2)])
        self.cluster = start_cluster(self.spec, self.id)
        for note in self.cluster.unavailable:
            self.progress(f"unavailable here: {note}")
        node_pids = [h.pid for h in self.cluster.nodes.values()]
        ledger.node_pids(node_pids)
        ledger.pids([p for p in self.cluster.pids() if p not in node_pids])
        if self.spec.routed:
            from topologies.routers import FabricRouters
            self.fabric = FabricRouters(self.spec, self.cluster, self.state_dir, self.runner,
                                        on_spawn=lambda pid: ledger.pids([pid]))
            # Started now, waited for at the end: the routers' sessions come up while the
            # control plane starts (the node speakers wait for their ToR sessions anyway).
            self.fabric.start()
            fabric_t0 = time.monotonic()
            self.progress(f"fabric: {len(self.spec.fabric.routers)} BIRD router(s) started")
        self.progress(f"nodes up in {time.monotonic() - t0:.2f}s; starting control plane")
        with self.store.transaction():
            for obj in system_namespaces():
                if self.store.get("Namespace", obj["metadata"]["name"]) is None:
                    self.store.create(obj)
            facts = host_facts()
            for node in self.spec.nodes:
                handle = self.cluster.nodes[node.name]
                self.store.put(node_object(node, handle.ip, self.store.get("Node", node.name),
                                           **facts))
            ensure_default_pool(self.store, self.spec.families)
        self.ipam = IPAM(self.store)
        self._reconcile_previous_state()
        if self.dns:
            dns_ip = kube_dns_ip(self.spec.families[0])
            self.cluster_dns = ClusterDNS(self.state_dir, dns_ip)
            self.applied += self.client.apply(
                dns_manifests(os.path.join(self.state_dir, "state.db"), dns_ip))
        for source in self.manifests:
            self.applied += self.client.apply(source)
        self.runtime = ContainerRuntime(
            self.state_dir, self.runner, on_spawn=lambda pid: ledger.pids([pid]),
            resolv_conf=self.cluster_dns.resolv_path if self.cluster_dns else None)
        cni = CNI(self.runner)
        # fresh=True below: start_cluster made every node's network namespace just now (no
        # routes, rules or sets of ours in any), so the agents' first writes read nothing
        # back: 150 forks fewer at 50 nodes.
        for name, handle in self.cluster.nodes.items():
            self.kubelets[name] = Kubelet(NodeRef(name, handle.pid, handle.ip,
                                                  self.spec.node(name).ip6), self.id,
                                          store=self.store, ipam=self.ipam, cni=cni,
                                          runtime=self.runtime, ledger=ledger,
                                          fresh_node=True)
            self.kubelets[name].families = self.spec.families
        pollers = []
        if self.bgp:
            self.routing = Routing(self.spec, self.cluster, self.state_dir, self.store,
                                   self.runner, on_spawn=lambda pid: ledger.pids([pid]))
            for kubelet in self.kubelets.values():
                kubelet.routing = self.routing
            self.progress(f"starting {len(self.kubelets)} BGP speaker(s)")
            self.routing.start(timeout=60)
            pollers.append(self.routing.poll)
        # Felix: every node enforces network policy (with none, the namespace profiles
        # allow everything, as in Calico).
        self.policy = PolicyAgent(self.store, {n: h.pid for n, h in self.cluster.nodes.items()},
                                  self.runner, keep_restore=True, fresh=True,
                                  on_spawn=lambda pid: ledger.pids([pid]),
                                  families=self.spec.families)
        pollers.insert(0, self.policy.poll)
        # kube-proxy: every node's KUBE- nat chains from the Services and EndpointSlices.
        self.kubeproxy = KubeProxyAgent(self.store,
                                        {n: h.pid for n, h in self.cluster.nodes.items()},
                                        self.runner, sessions=self.policy.sessions,
                                        sessions6=self.policy.sessions6, fresh=True,
                                        families=self.spec.families)
        pollers.insert(1, self.kubeproxy.poll)
        for kubelet in self.kubelets.values():
            kubelet.policy = self.policy
        # Felix's VXLAN and IPIP managers: tunnel addresses, vxlan.calico and tunl0, routes of
        # VXLAN pools (IPIP pools' are the BGP agents', through tunl0). Run
        # once before the first sync so the first pods get the encapsulation's MTU.
        self.encap = EncapAgent(
            self.store, self.ipam,
            {n.name: (self.cluster.nodes[n.name].pid, n.ip,
                      str(ipaddress.ip_network(f"{n.ip}/{n.prefixlen}", strict=False)))
             for n in self.spec.nodes},
            self.runner, fresh=True, routing=self.routing, kubelets=self.kubelets)
        self.encap.poll()
        pollers.insert(2, self.encap.poll)
        self._start_packet_logs()
        self.manager = ControllerManager(self.store, self.kubelets, self.runtime, tick=self.tick,
                                         pollers=pollers, node_grace=self.node_grace,
                                         eviction_delay=self.eviction_delay)
        self.manager.sync_once()
        self.manager.start()
        if self.fabric:
            self.fabric.wait_fabric(timeout=60)
            self.progress(f"fabric sessions Established "
                          f"{time.monotonic() - fabric_t0:.2f}s after the routers started")
        self.progress(f"cluster {self.spec.name!r} ready in {time.monotonic() - t0:.2f}s")

    def _start_packet_logs(self) -> None:
        """The Log action's packets, per node, in <state>/policy/<node>/packets.log."""
        for name, handle in self.cluster.nodes.items():
            nl = NodeLog(name, handle.pid, self.packet_log_path(name))
            try:
                nl.start()
            except OSError as exc:
                self.progress(f"policy Log actions will not be recorded on {name}: NFLOG "
                              f"unavailable ({exc})")
                continue
            self.packet_logs[name] = nl

    def packet_log_path(self, node: str) -> str:
        return os.path.join(self.state_dir, "policy", node, "packets.log")

    def packet_log(self, node: str | None = None) -> str:
        """Lines the policies' Log rules produced (on one node, or all), oldest first."""
        out = []
        for name in ([node] if node else self.nodes()):
            try:
                with open(self.packet_log_path(name)) as f:
                    out += f.read().splitlines()
            except FileNotFoundError:
                pass
        return "\n".join(sorted(out)) + ("\n" if out else "")

    def _reconcile_previous_state(self) -> None:
        """State from an earlier run: nodes the topology no longer has lose their pods and
        block affinities; IPAM handles of pods that no longer exist are released (Calico's
        kube-controllers garbage-collect such leaks the same way)."""
        names = {n.name for n in self.spec.nodes}
        for node in self.store.list("Node"):
            gone = node["metadata"]["name"]
            if gone in names:
                continue
            for pod in self.store.list("Pod"):
                if pod["spec"].get("nodeName") == gone:
                    # Its controller (if any) recreates it on a node that exists.
                    self.store.delete("Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])
            self.store.delete("Node", gone)
            self.ipam.release_node(gone)
            self.progress(f"node {gone} is not in this topology: removed with its pods")
        uids = {p["metadata"]["uid"] for p in self.store.list("Pod")}
        prefix = naming.IPAM_NETWORK + "."
        leaked = [h["metadata"]["name"] for h in self.store.list("IPAMHandle")
                  if h["metadata"]["name"].startswith(prefix)
                  and h["metadata"]["name"][len(prefix):] not in uids]
        if leaked:
            self.ipam.release_many(leaked)
            self.progress(f"released {len(leaked)} IPAM handle(s) of pods that no longer exist")

    def stop(self) -> None:
        """Tear everything down (idempotent, and every step runs even if one before it
        failed). The store is kept only for a named state dir."""
        def step(what, fn):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - the next steps must still run
                log.warning("stop: %s failed: %s", what, exc)
        try:
            if self.manager:
                step("controller manager", self.manager.stop)
                self.manager = None
            # kube-proxy first: it writes through the policy agent's restore sessions,
            # which the agent's stop closes.
            if self.kubeproxy:
                step("kube-proxy", self.kubeproxy.stop)
                self.kubeproxy = None
            if self.policy:
                step("policy agent", self.policy.stop)
                self.policy = None
            if self.encap:
                step("encapsulation agent", self.encap.stop)
                self.encap = None
            for nl in self.packet_logs.values():
                step(f"packet log of {nl.node}", nl.stop)
            self.packet_logs = {}
            if getattr(self, "runtime", None):
                # In parallel, before the sandboxes go node by node.
                step("containers", lambda: self.runtime.stop_all(grace=5))
            for kubelet in self.kubelets.values():
                step(f"node {kubelet.node.name}", kubelet.teardown_all)
            self.kubelets = {}
            if self.routing:
                step("BGP speakers", self.routing.stop)
                self.routing = None
            if self.fabric:
                step("fabric routers", self.fabric.stop)
                self.fabric = None
            if self.cluster:
                step("cluster", self.cluster.stop)
                self.cluster = None
        finally:
            if self.id:
                step("cleanup by ownership", lambda: clean_state_dir(self.state_dir, self.runner))
            if self.store:
                self.store.close()
                self.store = None
            if self._lockfile:
                self._lockfile.close()
                self._lockfile = None
            if not self.keep_state and os.path.isdir(self.state_dir):
                shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- API objects ---------------------------------------------------------------------

    def apply(self, source) -> list[str]:
        """Apply manifests (path, YAML text, dict or list of dicts); all or nothing."""
        return self.client.apply(source)

    def delete(self, kind: str, key: str | None = None) -> list[str]:
        """delete("Pod", "ns/name"), or delete(<manifest source>) for every object in it."""
        if key is None:
            return self.client.delete_source(kind)
        return [self.client.delete(kind, key)]

    def label(self, kind: str, key: str, labels: dict) -> str:
        return self.client.label(kind, key, labels)

    def get(self, kind: str, key: str) -> dict:
        return self.client.get(kind, key)

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        return self.client.list(kind, namespace)

    def pods(self, namespace: str | None = None) -> list[str]:
        return [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                for p in self.store.list("Pod", namespace)]

    def workload_pods(self) -> list[str]:
        """Every pod but kube-system's (the cluster add-ons, e.g. cluster DNS)."""
        return [k for k in self.pods() if not k.startswith(SYSTEM_NAMESPACE + "/")]

    # -- waiting -------------------------------------------------------------------------

    def wait_ready(self, timeout: float = 60.0, on_progress=None) -> None:
        """Wait until every pod is Running and Ready with an IP and every workload is complete.

        on_progress(ready_pods, total_pods) is called whenever the count changes.
        """
        deadline = time.monotonic() + timeout
        last = None
        while True:
            # rv first: a change landing while we check wakes the wait below at once.
            rv = self.store.current_rv()
            # While the dataplane or a workload is behind, the pods are not read (500
            # decoded every 50 ms was a third of a bring-up's interpreter): only to count
            # them, or to say why.
            problems = self._not_ready(pods=on_progress is not None
                                       or time.monotonic() > deadline)
            if on_progress is not None:
                pods = [p for p in self.store.list("Pod")
                        if (p.get("status") or {}).get("phase") != "Succeeded"]
                count = (sum(1 for p in pods if pod_ready(p)), len(pods))
                if count != last:
                    on_progress(*count)
                    last = count
            if not problems:
                return
            if time.monotonic() > deadline:
                # A cause that never clears by waiting (a node without BGP peers) first.
                problems.sort(key=lambda p: NO_PEER not in p)
                raise SupervisorTimeout(f"not ready after {timeout:.0f}s: " + "; ".join(problems[:20]))
            # Checking reads every pod; at most every 50 ms, and only after a change, so a
            # waiting caller does not compete with the control plane for the interpreter.
            # Routes and policy rules converge without writing the store: those are polled.
            time.sleep(0.05)
            if not any(p.startswith(DATAPLANE_PREFIXES) for p in problems):
                self.store.wait_for_change(rv, max(0.0, min(1.0, deadline - time.monotonic())))

    def _dataplane_problems(self) -> list[str]:
        out = list(self.routing.converged()) if self.routing else []
        if self.encap:
            out += self.encap.converged()
        if self.fabric:
            out += self.fabric.problems()
        if self.policy is not None:
            out += [f"policy: {p}" for p in self.policy.in_sync()]
        if self.kubeproxy is not None:
            out += [f"policy: kube-proxy: {p}" for p in self.kubeproxy.in_sync()]
        return out

    def _not_ready(self, pods: bool = True) -> list[str]:
        out = self._dataplane_problems()
        for kind in ("Deployment", "ReplicaSet", "StatefulSet"):
            for o in self.store.list(kind):
                want = o["spec"].get("replicas", 1)
                have = (o.get("status") or {}).get("readyReplicas", 0)
                if have != want or (o.get("status") or {}).get("replicas", 0) != want:
                    out.append(f"{kind} {o['metadata']['namespace']}/{o['metadata']['name']} "
                               f"{have}/{want} ready")
        for o in self.store.list("DaemonSet"):
            st = o.get("status") or {}
            want = st.get("desiredNumberScheduled")
            if want is None or st.get("numberReady", 0) != want:
                out.append(f"DaemonSet {o['metadata']['namespace']}/{o['metadata']['name']} "
                           f"{st.get('numberReady', 0)}/{want if want is not None else '?'} ready")
        if out and not pods:
            return out
        for p in self.store.list("Pod", shared=True):
            st = p.get("status") or {}
            if st.get("phase") == "Succeeded":
                continue
            if st.get("phase") == "Failed" and any(
                    r.get("kind") == "Job" for r in p["metadata"].get("ownerReferences") or []):
                continue   # a Job's failed attempt is an outcome, not something to wait for
            if not (st.get("phase") == "Running" and st.get("podIP") and pod_ready(p)):
                out.append(f"Pod {p['metadata']['namespace']}/{p['metadata']['name']} "
                           f"{_why(p)}")
        return out

    # -- pods ----------------------------------------------------------------------------

    def _pod(self, key: str) -> dict:
        ns, name = split_key(key)
        pod = self.store.get("Pod", name, ns)
        if pod is None:
            raise NotFound(f'pod "{ns}/{name}" not found')
        return pod

    def pod_ip(self, key: str, family: int | None = None) -> str:
        """The pod's address: status.podIP (its primary), or its IPv4 / IPv6 one
        (``family`` 4 or 6, from status.podIPs)."""
        st = self._pod(key).get("status") or {}
        ip = st.get("podIP")
        if not ip:
            raise NotFound(f'pod "{key}" has no IP yet ({_why(self._pod(key))})')
        if family is None:
            return ip
        found = pod_ip_of(self._pod(key), _check_family(family))
        if found:
            return found
        raise NotFound(f'pod "{key}" has no IPv{family} address (its addresses: '
                       f'{", ".join(a.get("ip", "") for a in st.get("podIPs") or [])}; the '
                       f'cluster\'s ipFamilies are {", ".join(f"IPv{f}" for f in self.spec.families)})')

    def service_ip(self, key: str, family: int | None = None) -> str:
        """The ClusterIP of Service "ns/name" (NotFound for a headless Service); ``family`` 4
        or 6: its ClusterIP of that family (spec.clusterIPs), NotFound without one."""
        ns, name = split_key(key)
        svc = self.store.get("Service", name, ns)
        if svc is None:
            raise NotFound(f'service "{ns}/{name}" not found')
        ip = svc["spec"].get("clusterIP")
        if not ip or ip == "None":
            raise NotFound(f'service "{ns}/{name}" is headless: it has no ClusterIP')
        if family is None:
            return ip
        found = cluster_ip_of(svc["spec"], _check_family(family))
        if found:
            return found
        raise NotFound(f'service "{ns}/{name}" has no IPv{family} ClusterIP (ipFamilies '
                       f'{", ".join(svc["spec"].get("ipFamilies") or ["IPv4"])}, '
                       f'ipFamilyPolicy {svc["spec"].get("ipFamilyPolicy", "SingleStack")})')

    def pod_node(self, key: str) -> str:
        node = self._pod(key)["spec"].get("nodeName")
        if not node:
            raise NotFound(f'pod "{key}" is not scheduled ({_why(self._pod(key))})')
        return node

    def pod_netns(self, key: str) -> str:
        ns, name = split_key(key)
        self.pod_ip(key)
        return naming.pod_netns(self.id, ns, name)

    def exec(self, key: str, argv, timeout: float = 30.0, input: str | None = None,
             container: str | None = None) -> Result:
        """Run argv where the pod's container runs -> (returncode, stdout, stderr): its
        network namespace, its environment (HOSTNAME, spec env) and, with cluster DNS on,
        its resolv.conf (names resolve as in the pod), as `kubectl exec`."""
        netns = self.pod_netns(key)
        resolv = self.cluster_dns.resolv_path(key) if self.cluster_dns else None
        # As the container's own processes: its env (HOSTNAME, spec env) and resolv.conf.
        env = exec_environment(self._pod(key), container)
        argv = exec_argv(list(argv), env, resolv)
        return self.runner.run(argv, netns=netns, input=input, timeout=timeout, check=False)

    def resolve(self, pod: str, name: str, rdtype: str = "A") -> list[str]:
        """What ``pod``'s resolver gets for ``name`` from the cluster DNS (search list,
        ndots:5): the addresses, or [] when the name does not exist."""
        if not self.cluster_dns:
            raise CalinetError("no cluster DNS in this testbed: it was started with dns=False "
                               "(calinet up --no-dns, `dns: false` in an experiment)")
        ns = split_key(pod)[0]
        return self.cluster_dns.resolve(netns_path(netns=self.pod_netns(pod)), ns, name,
                                        rdtype)

    def probe(self, src: str, dst: str, port: int, protocol: str = "TCP",
              timeout: float = 1.0, family: int | None = None) -> bool:
        """Can pod src open a connection to dst (a pod key or an IP) on port/protocol?
        ``family`` 4 or 6: to that address of a pod (default: its primary, status.podIP)."""
        dst_ip = dst if _is_ip(dst) else self.pod_ip(dst, family)
        return probe.probe(self.pod_netns(src), dst_ip, int(port), protocol.upper(), timeout).ok

    def matrix(self, port: int = 80, protocol: str = "TCP", pods=None,
               timeout: float = 1.0, family: int | None = None) -> dict:
        """All ordered pairs of running pods (src != dst) probed in parallel: {(src, dst): bool}.
        Without ``pods``: every running pod outside kube-system (the cluster add-ons such as
        coredns serve no workload port). ``family`` 4 or 6: to the pods' addresses of that
        family (default: their primary ones)."""
        keys = list(pods) if pods is not None else [
            k for k in self.workload_pods() if (self._pod(k).get("status") or {}).get("podIP")]
        netns = {k: self.pod_netns(k) for k in keys}
        ips = {k: self.pod_ip(k, family) for k in keys}
        pairs = [(s, d) for s in keys for d in keys if s != d]
        res = probe.matrix([(netns[s], ips[d]) for s, d in pairs], int(port),
                           protocol.upper(), timeout)
        return {(s, d): bool(res[(netns[s], ips[d])]) for s, d in pairs}

    # -- scapy packets from inside pods (orchestrator.traffic.packets; IP source defaults to the
    # pod's address of the packet's family)

    def send(self, pod: str, *pkts) -> None:
        """Send crafted packets (IPv4 or IPv6 layer first, families mixed as you like) out of
        the pod's eth0; one without a source gets the pod's address of its family."""
        from orchestrator.traffic import packets
        packets.send(self.pod_netns(pod), *pkts, src=self._packet_sources(pod, pkts))

    def sr1(self, pod: str, pkt, timeout: float = 1.0):
        """Send one packet from the pod -> the packet answering it, or None after timeout."""
        from orchestrator.traffic import packets
        return packets.sr1(self.pod_netns(pod), pkt, timeout,
                           src=self._packet_sources(pod, [pkt]))

    def sniff(self, pod: str, timeout: float = 1.0, count: int | None = None,
              lfilter=None) -> list:
        """Packets (IPv4 and IPv6) arriving at the pod during the next ``timeout`` s (stops
        at ``count``)."""
        from orchestrator.traffic import packets
        return packets.sniff(self.pod_netns(pod), timeout, count, lfilter)

    def sniffing(self, pod: str):
        """Capture at the pod from the moment the block starts (to catch what a send causes):
        ``with tb.sniffing(b) as s: tb.send(a, ...); got = s.capture(0.5, match=...)``."""
        from orchestrator.traffic import packets
        return packets.sniffing(self.pod_netns(pod))

    def _packet_sources(self, pod: str, pkts) -> dict[int, str]:
        """The pod's address of each family some packet leaves its source unset in. Only
        those are looked up: an IPv4-only pod may still send IPv6 with an explicit source,
        and an IPv6 packet without one from it fails naming the pod's addresses."""
        from orchestrator.traffic import packets
        return {f: self.pod_ip(pod, f) for f in sorted(packets.unsourced_families(pkts))}

    # -- nodes ---------------------------------------------------------------------------

    def nodes(self) -> list[str]:
        return [n.name for n in self.spec.nodes]

    def node_ip(self, node: str, family: int = 4) -> str:
        """The node's underlay address (``family`` 6: its IPv6 one, underlay.cidr6)."""
        handle = self._node(node)
        if _check_family(family) == 4:
            return handle.ip
        ip6 = self.spec.node(node).ip6
        if not ip6:
            raise NotFound(f'node "{node}" has no IPv6 address (the topology has no '
                           "underlay.cidr6)")
        return ip6

    def _node(self, node: str):
        try:
            return self.cluster.nodes[node]
        except KeyError:
            raise NotFound(f'node "{node}" not found; nodes: {", ".join(self.nodes())}') from None

    def node_exec(self, node: str, argv, timeout: float = 30.0) -> Result:
        return self.runner.run(argv, pid=self._node(node).pid, timeout=timeout, check=False)

    # -- fabric routers ------------------------------------------------------------------

    def routers(self) -> list[str]:
        """The fabric's router names (ToRs, then spines); empty on an L2 underlay."""
        return self.spec.fabric.router_names if self.spec.fabric else []

    def router_exec(self, router: str, argv, timeout: float = 30.0) -> Result:
        """Run argv in a fabric router's (or the external host's) namespace."""
        return self.cluster.router_exec(router, argv, timeout=timeout)

    def external_ip(self) -> str:
        """The address of the topology's external host (the stand-in for the internet)."""
        if self.spec.external is None:
            raise CalinetError("this topology has no `external:` host")
        return self.spec.external.ip

    def external_exec(self, argv, timeout: float = 30.0) -> Result:
        """Run argv on the external host (tcpdump, a server, a client of a NodePort)."""
        if self.spec.external is None:
            raise CalinetError("this topology has no `external:` host")
        return self.cluster.router_exec(self.spec.external.name, argv, timeout=timeout)

    def birdc(self, router: str, *command: str) -> str:
        """A BIRD CLI command on a fabric router: tb.birdc("tor-a", "show", "route")."""
        if not self.fabric:
            raise CalinetError("this topology has no fabric routers (no `fabric:` section)")
        return self.fabric.birdc(router, *command)

    def fabric_link_down(self, a: str, b: str) -> None:
        """Cut the cable between two fabric routers (a ToR and a spine)."""
        self.cluster.fabric_link(a, b, "down")

    def fabric_link_up(self, a: str, b: str) -> None:
        self.cluster.fabric_link(a, b, "up")

    # -- faults --------------------------------------------------------------------------

    def link_down(self, node: str) -> None:
        """Cut the node's underlay link (as a pulled cable: eth0 loses carrier)."""
        self._node(node)
        self.cluster.link_down(node)
        self._set_reachable(node, "link", True)

    def link_up(self, node: str) -> None:
        self._node(node)
        self.cluster.link_up(node)
        self._set_reachable(node, "link", False)

    def fail_node(self, node: str) -> None:
        """The node's kubelet stops reaching the control plane (no heartbeat) while its
        link stays up: the node lifecycle controller then sees a lost node."""
        self._node(node)
        self._set_reachable(node, "failed", True)

    def restore_node(self, node: str) -> None:
        self._node(node)
        self._set_reachable(node, "failed", False)

    def _set_reachable(self, node: str, reason: str, cut: bool) -> None:
        # Reachability of the control plane, emulated: the underlay link is up and the node
        # is not failed (either one keeps the kubelet from renewing its Lease).
        reasons = self._unreachable.setdefault(node, set())
        (reasons.add if cut else reasons.discard)(reason)
        kubelet = self.kubelets.get(node)
        if kubelet is not None:
            kubelet.reachable = not reasons

    def kill_speaker(self, node: str) -> int:
        """SIGKILL the node's ExaBGP process (its supervisor restarts it); returns the pid."""
        import signal
        self._node(node)
        if not self.routing:
            raise CalinetError("no BGP speakers run in this testbed (Testbed(bgp=True))")
        proc = self.routing.supervisor.speaker(node).proc
        if proc is None or proc.poll() is not None:
            raise CalinetError(f"the BGP speaker of {node} is not running")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)   # dead when this returns (signals are delivered asynchronously)
        return proc.pid

    def bgp_status(self, node: str) -> str:
        """`calicoctl node status` of a node (needs Testbed(bgp=True))."""
        self._node(node)
        if not self.routing:
            return "Calico process is not running.\n"
        return self.routing.node_status_text(node)

    def routes(self, node: str) -> str:
        """The node's BGP-programmed routes and where each came from; for a fabric router,
        its BIRD tables (`birdc show route` / `show protocols`)."""
        if self.fabric and node in self.fabric.texts:
            from topologies.routers import router_report
            return router_report(self.state_dir, node, self.runner) + "\n"
        self._node(node)
        if not self.routing:
            return ""
        return self.routing.routes_text(node)

    # -- IPAM ----------------------------------------------------------------------------

    def ipam_show(self, **kw) -> str:
        return self.ipam.show(**kw)

    def ipam_check(self) -> tuple[str, int]:
        in_use = {}
        for p in self.store.list("Pod"):
            st = p.get("status") or {}
            for ip in {a.get("ip") for a in st.get("podIPs") or []} | {st.get("podIP")}:
                if ip:
                    in_use[ip] = f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        from orchestrator.node.encap_agent import tunnel_ips
        return self.ipam.check(in_use, tunnel_ips=tunnel_ips(self.store))


def _check_family(family) -> int:
    """``family`` when it is 4 or 6, else the ValidationError naming it."""
    if family not in (4, 6):
        raise ValidationError(f"family {family!r}: use 4 or 6", field="family")
    return family


def _is_ip(text: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _why(pod: dict) -> str:
    st = pod.get("status") or {}
    for c in st.get("conditions", []):
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return f"Pending: {c.get('reason')}: {c.get('message', '')}"
    for cs in st.get("containerStatuses", []):
        w = (cs.get("state") or {}).get("waiting")
        if w:
            return f"{st.get('phase', 'Pending')}: {w.get('reason')} {w.get('message', '')}".strip()
    return st.get("phase", "Pending")
