"""Cluster DNS on a real cluster: Service names resolve to ClusterIPs, headless names to pod
addresses, StatefulSet-style stable names, unknown names to nothing; commands in pods resolve
through their resolv.conf (curl by Service name through kube-proxy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.root, pytest.mark.mininet]

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: nginx, image: nginx, ports: [{name: http, containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: demo, labels: {app: db}}
spec:
  hostname: db-0
  subdomain: db
  containers: [{name: c, image: agnhost, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo}
spec:
  containers: [{name: c, image: agnhost}]
"""


@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    with Testbed(str(REPO / "topologies" / "examples" / "three-node.yaml"), dns=True,
                 state_dir=str(tmp_path_factory.mktemp("dns")), keep_state=False) as t:
        t.apply(APP)
        t.wait_ready(timeout=90)
        yield t


def test_service_names_resolve(tb):
    ip = tb.service_ip("demo/web")
    assert tb.resolve("demo/client", "web") == [ip]
    assert tb.resolve("demo/client", "web.demo") == [ip]
    assert tb.resolve("demo/client", "web.demo.svc.cluster.local.") == [ip]
    assert tb.resolve("demo/client", "kube-dns.kube-system") == ["10.96.0.10"]
    srv = tb.resolve("demo/client", "_http._tcp.web", "SRV")
    assert srv == ["0 100 80 web.demo.svc.cluster.local."]
    assert tb.resolve("demo/client", "nope") == []


def test_headless_and_stable_pod_names(tb):
    db0 = tb.pod_ip("demo/db-0")
    assert tb.resolve("demo/client", "db") == [db0]
    assert tb.resolve("demo/client", "db-0.db") == [db0]
    dashed = tb.pod_ip("demo/client").replace(".", "-")
    assert tb.resolve("demo/db-0", f"{dashed}.demo.pod.cluster.local") == [
        tb.pod_ip("demo/client")]


def test_commands_in_pods_resolve_through_resolv_conf(tb):
    r = tb.exec("demo/client", ["cat", "/etc/resolv.conf"])
    assert "nameserver 10.96.0.10" in r.stdout and "search demo.svc.cluster.local" in r.stdout
    r = tb.exec("demo/client", ["getent", "hosts", "web"])
    assert r.returncode == 0 and tb.service_ip("demo/web") in r.stdout, r.stderr
    r = tb.exec("demo/client", ["curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}",
                                "http://web/"])
    assert r.stdout == "200", (r.stdout, r.stderr)
    with open("/etc/resolv.conf") as f:
        assert "10.96.0.10" not in f.read()      # the machine's own file is untouched
