"""Kubelet of one node: pod sandboxes (IPAM + CNI) and containers for the pods bound to it.

Side effects: through its collaborators only: IPAM writes to the store, CNI plumbs netns and
veths, the container runtime starts processes, the ledger records them first. Pods of one sync
are plumbed as a batch (a constant number of forks per node, see cni.py), which is what keeps
bring-up of hundreds of pods within seconds.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

from orchestrator import images
from orchestrator.controllers import nodelifecycle
from orchestrator.controllers.common import is_deleting, pod_ready
from orchestrator.errors import CalinetError
from orchestrator.host import naming
from orchestrator.node import blackholes
from orchestrator.node.cni import SandboxSpec
from orchestrator.node.probes import Prober

log = logging.getLogger(__name__)

# A pod whose sandbox failed (no address, CNI error) is retried this often, not every pass.
RETRY_SECONDS = 2.0
# A deleted pod that was Ready leaves the store at once, as before, but its sandbox keeps
# running this long (at most its grace period) before its containers get SIGTERM: the
# endpoints controller and every node's kube-proxy drop it first, so no new connection is
# DNAT'ed to a pod that is going (refused, or a SYN into a removed veth), and connections
# DNAT'ed just before still get an answer. What a preStop `sleep` does on a Kubernetes node;
# a rolling update then loses no request (tests/e2e/test_rollout_service.py).
DRAIN_SECONDS = 1.0
# How long a new sandbox's containers wait for the node to enforce its policy (Calico's CNI
# option policy_setup_timeout_seconds; a pass takes tens of ms, a failing node retries each s).
POLICY_SETUP_TIMEOUT = 1.0
HEARTBEAT_SECONDS = 1.0  # kubelet's nodeLeaseRenewInterval is 10 s; the testbed's grace is 10 s


@dataclass
class NodeRef:
    name: str
    pid: int
    ip: str
    ip6: str | None = None   # the node's IPv6 address (underlay.cidr6), if it has one


def pod_key(pod: dict) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


class Kubelet:
    def __init__(self, node: NodeRef, testbed_id: str, *, store, ipam, cni, runtime, ledger,
                 fresh_node: bool = False):
        self.node = node
        self.testbed_id = testbed_id
        self.store = store
        self.ipam = ipam
        self.cni = cni
        self.runtime = runtime
        self.ledger = ledger
        self.sandboxes: dict[str, SandboxSpec] = {}
        self.uids: dict[str, str] = {}
        self.failures: dict[str, tuple[str, str]] = {}  # key -> (reason, message)
        self._current: dict[str, tuple] = {}   # key -> inputs of its last current status
        # The blackholes last made; None: unknown (read before the first sync). A node the
        # testbed just made has none, and its first sync forks nothing when it has no block.
        self._blackholes: frozenset | None = frozenset() if fresh_node else None
        self.routing = None  # orchestrator.node.routing.Routing when BGP runs
        self.pod_mtu = 1500  # of new pods' veths (set from the pools' encapsulation)
        self.families = (4,)  # the pods' IP families, primary first (topology ipFamilies)
        self.policy = None   # orchestrator.node.policy_agent.PolicyAgent: told of wired sandboxes
        self._blocks_dirty = True
        self.grace: dict[str, float] = {}  # key -> terminationGracePeriodSeconds
        self.retry_at: dict[str, float] = {}  # key -> monotonic time of the next sandbox try
        # Heartbeat: the node's Lease is renewed only while the node can reach the control
        # plane (Testbed.link_down / fail_node clear this); see controllers/nodelifecycle.py.
        self.reachable = True
        self._beat_at: float | None = None
        self.prober = Prober(runtime)  # readinessProbe results, run off the sync thread
        self.draining: dict[str, float] = {}  # key -> monotonic end of its drain

    # -- sync ----------------------------------------------------------------------------

    def sync(self, pods: list[dict], now: str) -> bool:
        """Converge this node to the pods bound to it; returns True if anything was written."""
        self.heartbeat()
        wrote = False
        by_key = {pod_key(p): p for p in pods}
        self._start_drains(by_key)
        mono = time.monotonic()
        gone = [k for k in self.sandboxes if self.draining.get(k, 0) <= mono and (
                k not in by_key or is_deleting(by_key[k])
                or by_key[k]["metadata"]["uid"] != self.uids.get(k))]
        if gone:
            self._teardown(gone)
            wrote = True
        deleting = [by_key.pop(k) for k in [k for k, p in by_key.items() if is_deleting(p)]]
        if deleting:
            # No sandbox of ours (never made, failed, or from before a restart): whatever
            # IPAM still holds for the pod goes, idempotently, before the object does. A
            # draining sandbox keeps its address until its teardown releases it.
            self.ipam.release_many([naming.ipam_handle(p["metadata"]["uid"]) for p in deleting
                                    if not (pod_key(p) in self.draining and
                                            p["metadata"]["uid"] == self.uids.get(pod_key(p)))])
            self._blocks_dirty = True
            if self.policy is not None:
                self.policy.sandboxes_draining([
                    p for p in deleting if pod_key(p) in self.draining
                    and p["metadata"]["uid"] == self.uids.get(pod_key(p))])
            for p in deleting:
                self.failures.pop(pod_key(p), None)
                self.retry_at.pop(pod_key(p), None)
                self.store.delete("Pod", p["metadata"]["name"], p["metadata"]["namespace"])
            wrote = True
        mono = time.monotonic()
        new = [p for k, p in by_key.items() if k not in self.sandboxes
               and self.retry_at.get(k, 0) <= mono
               and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        if new:
            self._create(new, now)
        if self._blocks_dirty:
            self._sync_blackholes()
        return self._write_statuses(list(by_key.values()), now) or wrote

    def _write_statuses(self, pods: list[dict], now: str) -> bool:
        """Write the statuses that changed, in one transaction; True if any was written.

        They are worked out before taking the store's write lock, which every kubelet's
        writes share: computed under it, at 500 pods, they held it ~20 ms per node and pass
        while the other kubelets waited."""
        changed = [(p, st) for p in pods if (st := self._changed_status(p, now)) is not None]
        if not changed:
            return False
        with self.store.transaction():
            for p, st in changed:
                self.store.update_status("Pod", p["metadata"]["name"],
                                         p["metadata"]["namespace"], st)
        return True

    def heartbeat(self) -> bool:
        """Renew the node's Lease (one small write per HEARTBEAT_SECONDS) if reachable."""
        mono = time.monotonic()
        if not self.reachable or (self._beat_at is not None
                                  and mono - self._beat_at < HEARTBEAT_SECONDS):
            return False
        self._beat_at = mono
        self.store.put(nodelifecycle.lease_object(self.node.name, nodelifecycle.micro_time()))
        return True

    def _start_drains(self, by_key: dict[str, dict]) -> None:
        """Deleted pods that were ready endpoints of a Service: their sandbox drains before
        its teardown (pods no Service sends traffic to go at once, as before)."""
        found = [(k, p) for k, p in by_key.items()
                 if k in self.sandboxes and k not in self.draining and is_deleting(p)
                 and pod_ready(p) and p["metadata"]["uid"] == self.uids.get(k)]
        if not found:
            return
        serving = {f"{s['metadata']['namespace']}/{(e.get('targetRef') or {}).get('name')}"
                   for ns in {p["metadata"]["namespace"] for _, p in found}
                   for s in self.store.list("EndpointSlice", ns)
                   for e in s.get("endpoints") or []
                   if (e.get("conditions") or {}).get("ready")}
        mono = time.monotonic()
        for k, _ in found:
            if k in serving:
                self.draining[k] = mono + min(DRAIN_SECONDS, self.grace.get(k, 30.0))

    def _sync_blackholes(self) -> None:
        """Blackholes follow this node's affine blocks; only after IPAM changed here.

        With BGP routing, the node's agent owns every `proto bird` route (blackholes of its
        blocks included): it is told what the node originates instead."""
        blocks = frozenset(self.ipam.blocks_for_node(self.node.name))
        if self.routing is not None:
            borrowed = [r["ip"] for r in self.ipam.borrowed()
                        if r["borrowing_node"] == self.node.name]
            self.routing.announce(self.node.name, blocks, borrowed)
        elif blocks != self._blackholes:
            blackholes.sync(self.cni.runner, self.node.pid, blocks, known=self._blackholes)
            self._blackholes = blocks
        self._blocks_dirty = False

    def _create(self, pods: list[dict], now: str) -> None:
        specs, ready_pods = [], []
        requests = [(naming.ipam_handle(p["metadata"]["uid"]),
                     {"namespace": p["metadata"]["namespace"], "pod": p["metadata"]["name"],
                      "node": self.node.name}) for p in pods]
        # One IPAM transaction for the whole batch; a failure is the pod's own, not the batch's.
        # A dual-stack pod gets both families or neither (as Calico's CNI).
        for p, ips in zip(pods, self.ipam.auto_assign_families(self.node.name, requests,
                                                               self.families)):
            if isinstance(ips, Exception):
                self.failures[pod_key(p)] = ("FailedCreatePodSandBox", f"IPAM: {ips}")
                self.retry_at[pod_key(p)] = time.monotonic() + RETRY_SECONDS
                continue
            ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
            specs.append(SandboxSpec(
                namespace=ns, pod=name, ip=ips[0], netns=naming.pod_netns(self.testbed_id, ns, name),
                veth=naming.veth_name(ns, name), node_pid=self.node.pid, mtu=self.pod_mtu,
                extra_ips=tuple(ips[1:])))
            ready_pods.append(p)
        if specs:
            self._blocks_dirty = True
        if not specs:
            return
        self.ledger.netns([s.netns for s in specs])
        try:
            self.cni.add_many(specs)
            done = list(zip(specs, ready_pods))
        except CalinetError as exc:
            log.warning("node %s: batch CNI ADD failed (%s); retrying pod by pod", self.node.name, exc)
            done = []
            for s, p in zip(specs, ready_pods):
                try:
                    self.cni.add(s)
                    done.append((s, p))
                except CalinetError as one:
                    self.failures[pod_key(p)] = ("FailedCreatePodSandBox", f"CNI: {one}")
                    self.retry_at[pod_key(p)] = time.monotonic() + RETRY_SECONDS
                    # As Calico's CNI does on a failed ADD: give the address back.
                    self.ipam.release_many([naming.ipam_handle(p["metadata"]["uid"])])
        if self.policy is not None and done:
            self.policy.sandboxes_wired([(p["metadata"]["uid"], s.ips) for s, p in done])
            # The node's blackholes (a fork) or its announcement while the agent's pass
            # writes the new pods' rules, not after the wait below.
            if self._blocks_dirty:
                self._sync_blackholes()
            # As Calico's CNI with policy_setup_timeout_seconds: the containers start once
            # the node enforces the pods' policy (their first packet is policed, not dropped
            # as "Unknown interface"), or after the timeout (logged) if that takes too long.
            uids = [p["metadata"]["uid"] for _s, p in done]
            if not self.policy.wait_enforced(self.node.name, uids, POLICY_SETUP_TIMEOUT):
                log.warning("node %s: starting %s before their policy is in place (not "
                            "enforced within %.1f s)", self.node.name,
                            ", ".join(pod_key(p) for _s, p in done), POLICY_SETUP_TIMEOUT)
        specs_to_start = []
        for s, p in done:
            k = pod_key(p)
            self.sandboxes[k] = s
            self.uids[k] = p["metadata"]["uid"]
            self.grace[k] = float(p["spec"].get("terminationGracePeriodSeconds", 30))
            self.failures.pop(k, None)
            specs_to_start += self._container_specs(p, s)
        if specs_to_start:
            try:
                # All forks of the batch are requested before any is awaited.
                self.runtime.start_many(specs_to_start)
            except CalinetError as exc:
                log.warning("node %s: batch container start failed (%s); one by one",
                            self.node.name, exc)
                for spec in specs_to_start:
                    try:
                        self.runtime.start_many([spec])
                    except CalinetError as one:
                        self.runtime.fail(spec[0], spec[2], spec[5], "CreateContainerError", str(one))

    def _container_specs(self, pod: dict, sandbox: SandboxSpec) -> list[tuple]:
        k = pod_key(pod)
        policy = pod["spec"].get("restartPolicy", "Always")
        # The downward API (env from status.podIP) needs the sandbox address already.
        pod = copy.deepcopy(pod)
        pod.setdefault("status", {}).update(podIP=sandbox.ip, hostIP=self.node.ip)
        out = []
        for c in pod["spec"]["containers"]:
            try:
                program = images.resolve(c, pod)
            except CalinetError as exc:
                self.runtime.fail(k, c["name"], c.get("image", ""),
                                  getattr(exc, "reason", "ErrImagePull"), str(exc))
                continue
            # Every spawned pid (restarts too) reaches the ledger through on_spawn.
            out.append((k, sandbox.netns, c["name"], program, policy, c.get("image", "")))
        return out

    def _teardown(self, keys: list[str]) -> None:
        # One grace period for the whole batch (the longest asked for), not one per pod.
        grace = max((self.grace.get(k, 30) for k in keys), default=30)
        self.runtime.stop_pods(keys, grace=grace)
        specs = [self.sandboxes[k] for k in keys]
        handles = [naming.ipam_handle(self.uids[k]) for k in keys if k in self.uids]
        self.cni.delete_many(specs)
        if self.policy is not None:
            self.policy.sandboxes_removed([self.uids[k] for k in keys if k in self.uids])
        self.ipam.release_many(handles)
        # Forgotten only once removed: a failure above is retried on the next pass.
        for k in keys:
            self.sandboxes.pop(k, None)
            self.uids.pop(k, None)
            self._current.pop(k, None)
            self.grace.pop(k, None)
            self.prober.forget(k)
            self.draining.pop(k, None)
        self._blocks_dirty = True

    def teardown_all(self) -> None:
        if self.sandboxes:
            self._teardown(list(self.sandboxes))

    # -- status --------------------------------------------------------------------------

    def _changed_status(self, pod: dict, now: str) -> dict | None:
        """The pod's status as this node sees it, or None if the stored one says the same.

        A pod whose stored object, sandbox, failure and containers (the runtime's generation)
        are those of the last time its status was found current is not looked at again: at
        500 pods every pass recomputed every pod's status, and each asked the container
        runtime, whose lock all kubelets share. Pods with a readinessProbe are always
        recomputed (the prober's results change on their own)."""
        k = pod_key(pod)
        probed = any(c.get("readinessProbe") for c in pod["spec"].get("containers") or [])
        seen = None if probed or self.runtime is None else (
            pod["metadata"]["uid"], pod["metadata"].get("resourceVersion"),
            self.runtime.generation(k), id(self.sandboxes.get(k)), self.failures.get(k))
        if seen is not None and self._current.get(k) == seen:
            return None
        status = self._status(pod, k, now)
        if _comparable(pod.get("status") or {}) == _comparable(status):
            if seen is not None:
                self._current[k] = seen
            return None
        return status

    def _status(self, pod: dict, k: str, now: str) -> dict:
        old = pod.get("status") or {}
        st: dict = {"phase": "Pending", "hostIP": self.node.ip,
                    "hostIPs": [{"ip": ip} for ip in (self.node.ip, self.node.ip6) if ip]}
        sched = next((c for c in old.get("conditions", []) if c["type"] == "PodScheduled"),
                     {"type": "PodScheduled", "status": "True", "lastTransitionTime": now})
        # Not a draining sandbox of an earlier pod of the same name.
        sandbox = self.sandboxes.get(k) if self.uids.get(k) == pod["metadata"]["uid"] else None
        if sandbox is None:
            reason, message = self.failures.get(k, ("ContainerCreating", ""))
            if old.get("phase") in ("Succeeded", "Failed"):
                return old
            st["containerStatuses"] = [
                {"name": c["name"], "image": c.get("image", ""), "ready": False,
                 "restartCount": 0, "started": False,
                 "state": {"waiting": {"reason": reason, "message": message}
                           if message else {"reason": reason}}}
                for c in pod["spec"]["containers"]]
            st["conditions"] = [sched] + _conds(False, False, now, old)
            return st
        statuses = self.runtime.statuses(k)
        # With a readinessProbe, the probe alone decides the container's readiness.
        probed = self.prober.readiness(k, pod, sandbox.netns, sandbox.ip, statuses)
        for s in statuses:
            if s["name"] in probed:
                s["ready"] = probed[s["name"]]
        st["podIP"] = sandbox.ip
        st["podIPs"] = [{"ip": ip} for ip in sandbox.ips]
        st["startTime"] = old.get("startTime") or now
        st["containerStatuses"] = statuses
        st["phase"] = _phase(pod, statuses)
        ready = st["phase"] == "Running" and all(s.get("ready") for s in statuses)
        st["conditions"] = [sched] + _conds(True, ready, now, old)
        return st


def _phase(pod: dict, statuses: list[dict]) -> str:
    policy = pod["spec"].get("restartPolicy", "Always")
    states = [s.get("state", {}) for s in statuses]
    if any("running" in s for s in states):
        return "Running"
    if states and all("terminated" in s for s in states):
        codes = [s["terminated"].get("exitCode", 1) for s in states]
        if policy == "Never":
            return "Succeeded" if all(c == 0 for c in codes) else "Failed"
        if policy == "OnFailure" and all(c == 0 for c in codes):
            return "Succeeded"
    if any(s.get("restartCount", 0) > 0 for s in statuses):
        return "Running"  # Kubernetes keeps a crash-looping pod Running
    return "Pending"


def _conds(initialized: bool, ready: bool, now: str, old: dict) -> list[dict]:
    prev = {c["type"]: c for c in old.get("conditions", [])}
    out = []
    for t, v in (("Initialized", initialized), ("ContainersReady", ready), ("Ready", ready)):
        s = "True" if v else "False"
        p = prev.get(t)
        ts = p["lastTransitionTime"] if p and p.get("status") == s else now
        out.append({"type": t, "status": s, "lastTransitionTime": ts})
    return out


def _comparable(st: dict) -> dict:
    """The status without its timestamps (a shallow rebuild: nothing is changed in place)."""
    out = {k: v for k, v in st.items() if k != "startTime"}
    if out.get("conditions"):
        out["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                             for c in out["conditions"]]
    return out
