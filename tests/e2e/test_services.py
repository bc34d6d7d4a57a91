"""Services through kube-proxy's iptables rules on a real 3-node cluster with BGP: a ClusterIP
spreads over every backend, NodePort from another node, headless has no ClusterIP, policy
applies after DNAT, and scaling moves the endpoints within a second."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from hostname_fetch import FETCH

from orchestrator.errors import NotFound
from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.root, pytest.mark.mininet]

MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {name: svc}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: svc}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: agnhost, ports: [{name: http-alt, containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: svc}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http-alt}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np, namespace: svc}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless, namespace: svc}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: svc, labels: {role: client}}
spec:
  containers: [{name: c, image: agnhost, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: friend, namespace: svc, labels: {role: friend}}
spec:
  containers: [{name: c, image: agnhost, ports: [{containerPort: 80}]}]
"""

DENY_CLIENT = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-friends, namespace: svc}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {role: friend}}}]}]
"""



@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    t = Testbed(str(REPO / "topologies" / "examples" / "three-node.yaml"),
                state_dir=str(tmp_path_factory.mktemp("services")), keep_state=False)
    t.start()
    try:
        t.apply(MANIFEST)
        t.wait_ready(timeout=90)
        yield t
    finally:
        t.stop()


def fetch(tb, pod, host, port, n):
    r = tb.exec(pod, [sys.executable, "-c", FETCH, host, str(port), str(n)], timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def backends(tb):
    return {p["metadata"]["name"] for p in tb.list("Pod", "svc")
            if p["metadata"]["name"].startswith("web-")}


def ready_endpoints(tb, svc="web"):
    return sorted(e["targetRef"]["name"] for s in tb.list("EndpointSlice", "svc")
                  if s["metadata"]["labels"]["kubernetes.io/service-name"] == svc
                  for e in s["endpoints"] if e["conditions"]["ready"])


def test_cluster_ip_reaches_every_backend(tb):
    ip = tb.service_ip("svc/web")
    assert ip.startswith("10.") and ip == tb.get("Service", "svc/web")["spec"]["clusterIP"]
    assert ready_endpoints(tb) == sorted(backends(tb))
    answers = fetch(tb, "svc/client", ip, 80, 60)
    assert "-" not in answers, answers
    assert set(answers) == backends(tb)
    # Backends spread over the nodes: some answers crossed nodes through BGP routes.
    assert len({tb.pod_node(f"svc/{b}") for b in backends(tb)}) >= 2


def test_node_port_from_another_node(tb):
    nodes = tb.nodes()
    target = tb.node_ip(nodes[0])
    r = tb.node_exec(nodes[1], [sys.executable, "-c", FETCH, target, "30080", "30"], timeout=60)
    answers = r.stdout.split()
    assert len(answers) == 30 and "-" not in answers, (r.stdout, r.stderr)
    assert set(answers) == backends(tb)
    save = tb.node_exec(nodes[0], ["iptables-save", "-t", "nat"]).stdout
    assert "-A KUBE-NODEPORTS" in save and "--dport 30080" in save


def test_headless_has_no_cluster_ip(tb):
    with pytest.raises(NotFound):
        tb.service_ip("svc/web-headless")
    assert tb.get("Service", "svc/web-headless")["spec"]["clusterIP"] == "None"
    assert ready_endpoints(tb, "web-headless") == sorted(backends(tb))
    save = tb.node_exec(tb.nodes()[0], ["iptables-save", "-t", "nat"]).stdout
    assert "svc/web-headless" not in save


def test_policy_applies_after_dnat(tb):
    ip = tb.service_ip("svc/web")
    tb.apply(DENY_CLIENT)
    try:
        tb.wait_ready(timeout=30)
        assert set(fetch(tb, "svc/client", ip, 80, 6)) == {"-"}
        assert "-" not in fetch(tb, "svc/friend", ip, 80, 6)
    finally:
        tb.delete("NetworkPolicy", "svc/only-friends")
        tb.wait_ready(timeout=30)
    assert "-" not in fetch(tb, "svc/client", ip, 80, 6)


def _scale(tb, n):
    doc = MANIFEST.split("---")[1].replace("replicas: 3", f"replicas: {n}")
    tb.apply(doc)


def _wait(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_scaling_updates_endpoints_within_a_second(tb):
    from orchestrator.controllers.common import pod_ready
    _scale(tb, 4)
    try:
        ready_at = _wait(lambda: sum(pod_ready(p) for p in tb.list("Pod", "svc")
                                     if p["metadata"]["name"].startswith("web-")) == 4, 60)
        listed_at = _wait(lambda: len(ready_endpoints(tb)) == 4, 5)
        assert listed_at - ready_at < 1.0
        tb.wait_ready(timeout=30)
        assert set(fetch(tb, "svc/client", tb.service_ip("svc/web"), 80, 60)) == backends(tb)
    finally:
        _scale(tb, 3)
    _wait(lambda: len(ready_endpoints(tb)) == 3, 30)
    tb.wait_ready(timeout=60)
    assert set(fetch(tb, "svc/client", tb.service_ip("svc/web"), 80, 40)) == backends(tb)
