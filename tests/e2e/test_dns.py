"""Cluster DNS on a real cluster, on without being asked for (as in kubeadm/kind): Service names resolve to ClusterIPs, headless names to pod
addresses, StatefulSet-style stable names, unknown names to nothing; commands in pods resolve
through their resolv.conf (curl by Service name through kube-proxy); dns=False leaves it out."""

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
    # No dns option: cluster DNS is the default.
    with Testbed(str(REPO / "topologies" / "examples" / "three-node.yaml"),
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


DEFAULT_WEB = """
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: default, labels: {app: web}}
spec: {containers: [{name: nginx, image: nginx, ports: [{name: http, containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec: {containers: [{name: c, image: agnhost}]}
"""


def test_default_namespace_names_resolve_with_no_dns_option(tb):
    assert tb.dns and tb.get("Service", "kube-system/kube-dns")["spec"]["clusterIP"] == "10.96.0.10"
    tb.apply(DEFAULT_WEB)
    tb.wait_ready(timeout=60)
    ip = tb.service_ip("default/web")
    assert tb.resolve("default/client", "web.default.svc.cluster.local") == [ip]
    assert tb.resolve("default/client", "web") == [ip]          # the search list
    r = tb.exec("default/client", ["getent", "hosts", "web"])
    assert r.returncode == 0 and ip in r.stdout, (r.stdout, r.stderr)
    r = tb.exec("default/client", ["getent", "hosts", "web.default.svc.cluster.local"])
    assert r.returncode == 0 and ip in r.stdout, (r.stdout, r.stderr)


def test_dns_false_starts_no_dns_add_on(tmp_path):
    with Testbed(str(REPO / "topologies" / "examples" / "three-node.yaml"), dns=False,
                 bgp=False, state_dir=str(tmp_path / "state"), keep_state=False) as t:
        assert t.cluster_dns is None
        assert t.pods("kube-system") == [] and t.list("Service", "kube-system") == []
        with pytest.raises(Exception, match="dns=False"):
            t.resolve("default/x", "web")
