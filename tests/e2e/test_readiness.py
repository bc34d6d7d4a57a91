"""Readiness probes decide which pods receive Service traffic (a live 3-node cluster).

A pod whose exec probe fails (a file in the test's tmp dir is missing: pods share the host's
filesystem) is Running but not Ready, not a ready endpoint of its Service and never answers
through the ClusterIP; once the file exists it joins, once removed it leaves again. An httpGet
probe and a tcpSocket probe on a port nobody serves are checked on the way.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from hostname_fetch import FETCH

from orchestrator.controllers.common import pod_ready
from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.root, pytest.mark.mininet]

BASE = """
apiVersion: v1
kind: Namespace
metadata: {name: rp}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: rp}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-http, namespace: rp, labels: {app: web}}
spec:
  containers:
  - name: web
    image: agnhost
    ports: [{name: http-alt, containerPort: 8080}]
    readinessProbe: {httpGet: {port: http-alt, path: /hostname}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: rp}
spec:
  containers: [{name: c, image: agnhost}]
"""

GATED = """
apiVersion: v1
kind: Pod
metadata: {name: web-gated, namespace: rp, labels: {app: web}}
spec:
  containers:
  - name: web
    image: agnhost
    ports: [{containerPort: 8080}]
    readinessProbe:
      exec: {command: [test, -f, FLAG]}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: web-closed, namespace: rp, labels: {app: web}}
spec:
  containers:
  - name: web
    image: agnhost
    ports: [{containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: 9999}, periodSeconds: 1}
"""



@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    t = Testbed(str(REPO / "topologies" / "examples" / "three-node.yaml"),
                state_dir=str(tmp_path_factory.mktemp("readiness")), keep_state=False)
    t.start()
    try:
        t.apply(BASE)
        t.wait_ready(timeout=90)
        yield t
    finally:
        t.stop()


def fetch(tb, n):
    r = tb.exec("rp/client", [sys.executable, "-c", FETCH, tb.service_ip("rp/web"), "80", str(n)],
                timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def ready_endpoints(tb):
    return sorted(e["targetRef"]["name"] for s in tb.list("EndpointSlice", "rp")
                  if s["metadata"]["labels"]["kubernetes.io/service-name"] == "web"
                  for e in s["endpoints"] if e["conditions"]["ready"])


def wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout}s")


def running(tb, key):
    st = tb.get("Pod", key).get("status") or {}
    return st.get("phase") == "Running" and bool(st.get("podIP"))


def test_http_probe_makes_pod_ready(tb):
    assert pod_ready(tb.get("Pod", "rp/web-http"))
    assert ready_endpoints(tb) == ["web-http"]
    assert set(fetch(tb, 10)) == {"web-http"}


def test_failing_probe_keeps_pod_out_until_it_passes(tb, tmp_path):
    flag = tmp_path / "ready"
    tb.apply(GATED.replace("FLAG", str(flag)))
    wait(lambda: running(tb, "rp/web-gated") and running(tb, "rp/web-closed"), 60, "running")
    time.sleep(3)   # several probe periods: both keep failing
    for key in ("rp/web-gated", "rp/web-closed"):
        pod = tb.get("Pod", key)
        assert not pod_ready(pod)
        assert [c["ready"] for c in pod["status"]["containerStatuses"]] == [False]
    assert ready_endpoints(tb) == ["web-http"]
    assert set(fetch(tb, 30)) == {"web-http"}

    flag.write_text("ok")
    wait(lambda: ready_endpoints(tb) == ["web-gated", "web-http"], 10, "gated pod joins")
    assert pod_ready(tb.get("Pod", "rp/web-gated"))
    time.sleep(0.5)  # kube-proxy programs the new endpoint
    assert set(fetch(tb, 40)) == {"web-gated", "web-http"}

    flag.unlink()
    wait(lambda: ready_endpoints(tb) == ["web-http"], 10, "gated pod leaves")
    time.sleep(0.5)
    assert set(fetch(tb, 30)) == {"web-http"}
    assert not pod_ready(tb.get("Pod", "rp/web-closed"))
