"""Controller manager: the one loop that runs every controller and every kubelet.

Side effects: a supervisor thread (the only sleeping code in the control plane). It wakes on
any store change (in this process at once, from other processes within 50 ms) and at least
every `tick` seconds so container exits and restarts are noticed, then runs each reconciler in
a fixed order until nothing more is written. One failing object or controller is logged and
retried on the next pass; it never stops the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from orchestrator.control.store import now_rfc3339
from orchestrator.controllers import (
    cronjob,
    daemonset,
    deployment,
    endpoints,
    garbage,
    job,
    nodelifecycle,
    replicaset,
    scheduling,
    statefulset,
)

log = logging.getLogger(__name__)


class ControllerManager:
    def __init__(self, store, kubelets: dict, runtime, *, tick: float = 0.2, clock=now_rfc3339,
                 pollers=(), node_grace: float = nodelifecycle.DEFAULT_GRACE,
                 eviction_delay: float = nodelifecycle.DEFAULT_EVICTION_DELAY):
        self.store = store
        self.kubelets = kubelets  # node name -> Kubelet
        self.runtime = runtime
        self.pollers = list(pollers)  # other supervisors' poll() (BGP speakers' restarts)
        self.tick = tick
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one pass at a time (loop thread or sync_once)
        self.errors: list[str] = []
        self.passes = 0
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="calinet-kubelet")
        self.nodelifecycle = nodelifecycle.NodeLifecycleController(
            store, mark_deleted=self.mark_deleted, grace=node_grace,
            eviction_delay=eviction_delay)

    # Pods on a node go through their kubelet (which tears the sandbox down first); pods
    # never scheduled, or on a node whose kubelet is gone, are removed at once.
    def mark_deleted(self, pod: dict) -> None:
        node = pod["spec"].get("nodeName")
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if node and node in self.kubelets:
            stamp = self.clock()
            self.store.patch("Pod", name, ns,
                             lambda o: o["metadata"].setdefault("deletionTimestamp", stamp))
        else:
            self.store.delete("Pod", name, ns)

    def sync_once(self, max_rounds: int = 20) -> None:
        """Run every reconciler until a round writes nothing (bounded)."""
        with self._lock:
            for _ in range(max_rounds):
                now = self.clock()
                self.runtime.poll(time.monotonic())
                for poll in self.pollers:
                    try:
                        poll()
                    except Exception as exc:  # noqa: BLE001 - a supervisor must not stop the loop
                        log.exception("poller failed")
                        self.errors.append(f"poller: {type(exc).__name__}: {exc}")
                wrote = False
                for name, fn in self._steps():
                    try:
                        wrote |= bool(fn(now))
                    except Exception as exc:  # noqa: BLE001 - one bad object must not stop the loop
                        msg = f"{name}: {type(exc).__name__}: {exc}"
                        log.exception("controller %s failed", name)
                        self.errors.append(msg)
                        del self.errors[:-50]
                self.passes += 1
                if not wrote:
                    return

    def _steps(self):
        yield "nodelifecycle", self.nodelifecycle.reconcile
        yield "garbage-collector", lambda now: garbage.reconcile(
            self.store, now, mark_deleted=self.mark_deleted)
        yield "deployment", lambda now: deployment.reconcile(self.store, now)
        yield "replicaset", lambda now: replicaset.reconcile(
            self.store, now, mark_deleted=self.mark_deleted)
        yield "statefulset", lambda now: statefulset.reconcile(
            self.store, now, mark_deleted=self.mark_deleted)
        yield "daemonset", lambda now: daemonset.reconcile(
            self.store, now, mark_deleted=self.mark_deleted)
        yield "cronjob", lambda now: cronjob.reconcile(self.store, now)
        yield "job", lambda now: job.reconcile(self.store, now, mark_deleted=self.mark_deleted)
        yield "scheduler", lambda now: scheduling.reconcile(self.store, now)
        yield "kubelets", self._kubelets
        yield "endpoints", lambda now: endpoints.reconcile(self.store, now)

    def _kubelets(self, now: str) -> bool:
        by_node: dict[str, list] = {n: [] for n in self.kubelets}
        for pod in self.store.list("Pod", shared=True):
            node = pod["spec"].get("nodeName")
            if node in by_node:
                by_node[node].append(pod)
        def one(node: str) -> bool:
            try:
                return self.kubelets[node].sync(by_node[node], now)
            except Exception as exc:  # noqa: BLE001 - one node's failure must not stop others
                log.exception("kubelet %s failed", node)
                self.errors.append(f"kubelet {node}: {type(exc).__name__}: {exc}")
                return False
        # Kubelets are independent, as on real nodes: their forks (ip, sysctl, containers)
        # overlap on the cores while store writes serialise on the store's lock.
        if self._stop.is_set():
            return False  # stopping: the pool may already be shut down
        return any(list(self._pool.map(one, list(self.kubelets))))

    # -- thread --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="calinet-controllers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            # Every wake (a change, or the tick for container exits and restarts) runs a
            # pass; passes that find nothing to do write nothing and cost a few reads. The
            # version is read before the pass: a change landing during it (an apply) wakes
            # the next pass at once instead of after a tick (the pass's own writes cost one
            # more pass that finds nothing to do).
            rv = self.store.current_rv()
            self.sync_once()
            self.store.wait_for_change(rv, self.tick)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
            self._thread = None
        self._pool.shutdown(wait=True)
