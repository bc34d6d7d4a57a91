"""A rolling update keeps a ClusterIP Service answering: no failed request during the rollout.

A Deployment of 3 nginx (maxSurge 1, maxUnavailable 0) behind a ClusterIP Service; a loop in
the client pod's netns (a socket made there, http.client, a new connection per request,
~20 req/s) runs while the template changes. Every request must succeed and the rollout must
complete with 3 pods of the new template, answering.
"""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path

import pytest

from orchestrator.controllers.deployment import rollout_status
from orchestrator.host import netns
from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.root, pytest.mark.mininet]

MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {name: ro}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ro}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: web, version: "VERSION"}}
    spec:
      containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ro}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: ro}
spec:
  containers: [{name: c, image: agnhost}]
"""


@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    t = Testbed(str(REPO / "topologies" / "examples" / "three-node.yaml"),
                state_dir=str(tmp_path_factory.mktemp("rollout")), keep_state=False)
    t.start()
    try:
        t.apply(MANIFEST.replace("VERSION", "1"))
        t.wait_ready(timeout=90)
        yield t
    finally:
        t.stop()


class Loop:
    """GET / through the Service from inside the client's netns until stopped."""

    def __init__(self, tb, rate: float = 20.0):
        self.tb = tb
        self.ip = tb.service_ip("ro/web")
        self.exe = netns.NetnsExecutor(tb.pod_netns("ro/client"))
        self.period = 1.0 / rate
        self.ok = 0
        self.failures: list[tuple[float, str]] = []
        self.served_by: set[str] = set()
        self.slow: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _one(self) -> str:
        sock = self.exe.socket()
        try:
            sock.settimeout(2.0)
            sock.connect((self.ip, 80))
            conn = http.client.HTTPConnection(self.ip, 80, timeout=2.0)
            conn.sock = sock
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            if resp.status != 200:
                raise OSError(f"HTTP {resp.status}")
            return body.split("Served by pod ", 1)[-1].split(".", 1)[0]
        finally:
            sock.close()

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                self.served_by.add(self._one())
                self.ok += 1
                if time.monotonic() - start > 0.5:    # a SYN retransmitted: shown, not failed
                    self.slow.append((round(start - t0, 2), self._snapshot()))
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append((round(start - t0, 2), f"{type(exc).__name__}: {exc}",
                                      self._snapshot()))
            self._stop.wait(max(0.0, self.period - (time.monotonic() - start)))

    def _snapshot(self) -> list:
        """Pods (node, IP, ready, deleting) and ready endpoints when a request failed."""
        from orchestrator.controllers.common import is_deleting, pod_ready
        pods = [(p["metadata"]["name"], p["spec"].get("nodeName"),
                 (p.get("status") or {}).get("podIP"), pod_ready(p), is_deleting(p))
                for p in self.tb.list("Pod", "ro")]
        eps = [e["addresses"][0] for sl in self.tb.list("EndpointSlice", "ro")
               for e in sl["endpoints"] if e["conditions"]["ready"]]
        return [pods, eps]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
        self.exe.shutdown()


def _pods(tb):
    return {p["metadata"]["name"]: p for p in tb.list("Pod", "ro")
            if p["metadata"]["name"].startswith("web-")}


# Refused connections (old pods killed while still endpoints) are prevented by the kubelet's
# drain (orchestrator/node/kubelet.py DRAIN_SECONDS); SYNs DNAT'ed to a draining pod just before
# kube-proxy dropped it are delivered because its policy endpoint stays until CNI DEL
# (PolicyAgent.sandboxes_draining), as Calico keeps a WorkloadEndpoint until then.
def test_rolling_update_drops_no_request(tb):
    before = set(_pods(tb))
    with Loop(tb) as loop:
        time.sleep(1.0)
        tb.apply(MANIFEST.split("---")[1].replace("VERSION", "2"))
        deadline = time.monotonic() + 120
        while True:
            done, msg = rollout_status(tb.get("Deployment", "ro/web"))
            pods = _pods(tb)
            if done and len(pods) == 3 and not (set(pods) & before):
                break
            assert time.monotonic() < deadline, msg
            time.sleep(0.1)
        tb.wait_ready(timeout=60)
        time.sleep(2.0)     # requests keep succeeding after the last old pod went
    after = set(_pods(tb))
    assert all(p["metadata"]["labels"]["version"] == "2" for p in _pods(tb).values())
    assert loop.failures == [], (loop.failures, loop.ok)
    assert loop.ok >= 30, loop.ok
    # The loop saw old and new pods answer: it ran across the whole rollout.
    assert loop.served_by & before and loop.served_by & after, (loop.served_by, before, after)
    print(f"rollout: {loop.ok} requests, none failed; slow: {loop.slow}")
