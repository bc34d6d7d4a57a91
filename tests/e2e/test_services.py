"""Services through kube-proxy's iptables rules on a real 3-node cluster with BGP: a ClusterIP
spreads over every backend, NodePort from another node, headless has no ClusterIP, policy
applies after DNAT, scaling moves the endpoints within a second, Services matching nothing
block no other, and deleting a namespace removes all it held from the store and the nodes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostname_fetch import FETCH, backends, fetch

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


BAD_SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: nomatch, namespace: svc}
spec:
  selector: {app: nothing-has-this}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: badport, namespace: svc}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: no-such-port}]
"""

LATE_SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: late, namespace: svc}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8081, targetPort: http-alt}]
"""


def test_services_that_match_nothing_block_no_other_service(tb):
    # Kubernetes' behaviour: a selector that matches no pod, or a targetPort name no pod
    # serves, gives a Service without endpoints (no error); the controllers carry on with
    # every other Service, including one created after them.
    tb.apply(BAD_SERVICES)
    try:
        _wait(lambda: tb.kubeproxy.in_sync() == [], 10)
        assert ready_endpoints(tb, "nomatch") == []
        # As the EndpointSlice controller: the pods match, but serve no port of that name,
        # so their slice carries no port and kube-proxy has no endpoint for "http".
        slices = [s for s in tb.list("EndpointSlice", "svc")
                  if s["metadata"]["labels"]["kubernetes.io/service-name"] == "badport"]
        assert slices and all(not s["ports"] for s in slices), slices
        save = tb.node_exec(tb.nodes()[0], ["iptables-save", "-t", "nat"]).stdout
        assert "svc/nomatch" not in save and "svc/badport" not in save
        # no DNAT, so nothing answers (kube-proxy's REJECT in the filter table is not written)
        assert not tb.probe("svc/client", tb.service_ip("svc/nomatch"), 80, "TCP", timeout=0.5)
        assert not tb.probe("svc/client", tb.service_ip("svc/badport"), 80, "TCP", timeout=0.5)
        tb.apply(LATE_SERVICE)
        _wait(lambda: len(ready_endpoints(tb, "late")) == 3, 10)
        tb.wait_ready(timeout=30)
        assert set(fetch(tb, "svc/client", tb.service_ip("svc/late"), 8081, 30)) == backends(tb)
        assert "-" not in fetch(tb, "svc/client", tb.service_ip("svc/web"), 80, 6)
    finally:
        for name in ("nomatch", "badport", "late"):
            if tb.store.get("Service", name, "svc") is not None:
                tb.delete("Service", f"svc/{name}")


GONE = """
apiVersion: v1
kind: Namespace
metadata: {name: gone}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: gone}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: agnhost, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: gone}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: gone}
spec: {podSelector: {}}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: calico-deny, namespace: gone}
spec: {selector: all(), types: [Ingress]}
"""


def _policy_chains(tb) -> dict[str, set[str]]:
    return {n: {line.split()[0] for line in tb.node_exec(n, ["iptables-save", "-t", "filter"])
                .stdout.splitlines() if line.startswith((":cali-pi-", ":cali-po-"))}
            for n in tb.nodes()}


def test_deleting_a_namespace_removes_everything_in_it_from_the_cluster(tb):
    from orchestrator.api.kinds import KINDS
    chains_before = _policy_chains(tb)
    tb.apply(GONE)
    tb.wait_ready(timeout=60)
    assert _policy_chains(tb) != chains_before
    netns = {tb.pod_netns(f"gone/{p['metadata']['name']}") for p in tb.list("Pod", "gone")}
    assert len(netns) == 2
    ip = tb.service_ip("gone/web")
    tb.delete("Namespace", "gone")
    _wait(lambda: tb.store.get("Namespace", "gone") is None, 30)
    left = {k: tb.store.list(k, "gone") for k, info in KINDS.items() if info.namespaced}
    assert not any(left.values()), left
    tb.wait_ready(timeout=30)
    listed = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                check=True).stdout.split())
    assert not (netns & listed)
    for node in tb.nodes():
        assert "gone/web" not in tb.node_exec(node, ["iptables-save", "-t", "nat"]).stdout
    assert _policy_chains(tb) == chains_before    # the namespace's policies are gone too
    # The ClusterIP is free again: a new Service may ask for exactly that address.
    tb.apply(f"""
apiVersion: v1
kind: Service
metadata: {{name: reuse, namespace: svc}}
spec:
  clusterIP: {ip}
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
""")
    try:
        assert tb.service_ip("svc/reuse") == ip
    finally:
        tb.delete("Service", "svc/reuse")
