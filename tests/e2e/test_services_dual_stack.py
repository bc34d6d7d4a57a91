"""Dual-stack Services and DNS on a real 3-node cluster: kube-proxy's ip6tables rules, the
EndpointSlices per family, AAAA records; and an IPv6-only cluster whose kube-dns is IPv6.

RequireDualStack gets a ClusterIP of each family and answers on both from every backend;
a SingleStack IPv6 Service has only an IPv6 address (and only ip6tables rules); a NodePort
answers on another node's IPv6 address; policy applies after the IPv6 DNAT; the DNS server
answers A and AAAA for Services, headless endpoints and pods."""

from __future__ import annotations

import ipaddress
import sys

import pytest
from hostname_fetch import FETCH, backends, fetch

from orchestrator.errors import NotFound, ValidationError
from orchestrator.testbed import Testbed

pytestmark = [pytest.mark.root, pytest.mark.mininet]
TOPO = """
name: dualsvc
underlay: {cidr: 172.18.0.0/16, cidr6: "fd00:172:18::/64"}
nodes:
  - {name: node-1, role: control-plane, schedulable: true}
  - {name: node-2}
  - {name: node-3}
"""
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
  ipFamilyPolicy: RequireDualStack
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http-alt}]
---
apiVersion: v1
kind: Service
metadata: {name: web6, namespace: svc}
spec:
  ipFamilies: [IPv6]
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np, namespace: svc}
spec:
  type: NodePort
  ipFamilyPolicy: PreferDualStack
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30081}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless, namespace: svc}
spec:
  clusterIP: None
  ipFamilyPolicy: RequireDualStack
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
    with Testbed(TOPO, state_dir=str(tmp_path_factory.mktemp("dualsvc")),
                 keep_state=False) as t:
        t.apply(MANIFEST)
        t.wait_ready(timeout=90)
        yield t




def slices(tb, svc):
    return {s["addressType"]: s for s in tb.list("EndpointSlice", "svc")
            if s["metadata"]["labels"]["kubernetes.io/service-name"] == svc}


def test_require_dual_stack_answers_on_both_cluster_ips(tb):
    spec = tb.get("Service", "svc/web")["spec"]
    assert spec["ipFamilies"] == ["IPv4", "IPv6"] and len(spec["clusterIPs"]) == 2
    v4, v6 = tb.service_ip("svc/web", 4), tb.service_ip("svc/web", 6)
    assert spec["clusterIPs"] == [v4, v6] and spec["clusterIP"] == v4
    assert ipaddress.ip_address(v6) in ipaddress.ip_network("fd00:10:96::/112")
    by_type = slices(tb, "web")
    assert sorted(by_type) == ["IPv4", "IPv6"]
    for fam, sl in by_type.items():
        assert all((":" in a) == (fam == "IPv6") for e in sl["endpoints"] for a in e["addresses"])
        assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    for ip in (v4, v6):
        answers = fetch(tb, "svc/client", ip, 80, 45)
        assert "-" not in answers and set(answers) == backends(tb), (ip, answers)
    nat6 = tb.node_exec("node-2", ["ip6tables-save", "-t", "nat"]).stdout
    assert f"-d {v6}/128" in nat6 and "DNAT --to-destination [fd00:10:244:" in nat6
    assert v4 not in nat6
    nat4 = tb.node_exec("node-2", ["iptables-save", "-t", "nat"]).stdout
    assert f"-d {v4}/32" in nat4 and "fd00:" not in nat4


def test_single_stack_ipv6_service_has_no_ipv4(tb):
    spec = tb.get("Service", "svc/web6")["spec"]
    assert spec["ipFamilies"] == ["IPv6"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert list(slices(tb, "web6")) == ["IPv6"]
    with pytest.raises(NotFound, match="no IPv4 ClusterIP"):
        tb.service_ip("svc/web6", 4)
    answers = fetch(tb, "svc/friend", tb.service_ip("svc/web6"), 80, 30)
    assert set(answers) == backends(tb)


def test_a_bad_family_is_refused_naming_it(tb):
    for call in (lambda: tb.service_ip("svc/web", 5), lambda: tb.pod_ip("svc/client", 5),
                 lambda: tb.node_ip("node-1", "6")):
        with pytest.raises(ValidationError) as ei:
            call()
        assert ei.value.field == "family" and "use 4 or 6" in str(ei.value)


def test_an_ipv6_pool_inside_the_ipv6_underlay_is_refused(tb):
    pool = """
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: shadow6}
spec: {cidr: "fd00:172:18::/112", blockSize: 122}
"""
    with pytest.raises(ValidationError) as ei:
        tb.apply(pool)
    assert ei.value.field == "spec.cidr" and "IPv6 underlay fd00:172:18::/64" in str(ei.value)
    assert tb.store.get("IPPool", "shadow6") is None


def test_node_port_on_another_nodes_ipv6_address(tb):
    target = tb.node_ip("node-1", 6)
    r = tb.node_exec("node-2", [sys.executable, "-c", FETCH, target, "30081", "30"], timeout=60)
    answers = r.stdout.split()
    assert len(answers) == 30 and set(answers) == backends(tb), (r.stdout, r.stderr)


def test_policy_applies_after_ipv6_dnat(tb):
    v6 = tb.service_ip("svc/web", 6)
    tb.apply(DENY_CLIENT)
    try:
        tb.wait_ready(timeout=30)
        assert set(fetch(tb, "svc/client", v6, 80, 5)) == {"-"}
        assert "-" not in fetch(tb, "svc/friend", v6, 80, 5)
    finally:
        tb.delete("NetworkPolicy", "svc/only-friends")
        tb.wait_ready(timeout=30)
    assert "-" not in fetch(tb, "svc/client", v6, 80, 5)


def test_dns_answers_a_and_aaaa(tb):
    v4, v6 = tb.get("Service", "svc/web")["spec"]["clusterIPs"]
    assert tb.resolve("svc/client", "web") == [v4]
    assert tb.resolve("svc/client", "web", "AAAA") == [v6]
    assert tb.resolve("svc/client", "web6", "A") == []
    assert tb.resolve("svc/client", "web6.svc.svc.cluster.local", "AAAA") == \
        [tb.service_ip("svc/web6")]
    pods6 = sorted(tb.pod_ip(f"svc/{b}", 6) for b in backends(tb))
    assert sorted(tb.resolve("svc/client", "web-headless", "AAAA")) == pods6
    assert len(tb.resolve("svc/client", "web-headless", "A")) == 3
    ip6 = tb.pod_ip("svc/friend", 6)
    name = ip6.replace(":", "-") + ".svc.pod.cluster.local"
    assert tb.resolve("svc/client", name, "AAAA") == [ip6]
    # Another spelling of the same address finds the same pod (CoreDNS parses the label).
    full = ipaddress.IPv6Address(ip6).exploded.replace(":", "-")
    assert tb.resolve("svc/client", full + ".svc.pod.cluster.local", "AAAA") == [ip6]


def test_ipv6_only_cluster_serves_services_and_dns_in_ipv6(tmp_path):
    topo = TOPO.replace("name: dualsvc", "name: only6svc") + "ipFamilies: [IPv6]\n"
    manifest = MANIFEST.split("---\napiVersion: v1\nkind: Service")[0] + """---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: svc}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: svc}
spec:
  containers: [{name: c, image: agnhost, ports: [{containerPort: 80}]}]
"""
    with Testbed(topo, state_dir=str(tmp_path / "s"), keep_state=False) as t:
        t.apply(manifest)
        t.wait_ready(timeout=90)
        assert t.service_ip("kube-system/kube-dns") == "fd00:10:96::a"
        ip = t.service_ip("svc/web")
        assert ":" in ip and t.get("Service", "svc/web")["spec"]["ipFamilies"] == ["IPv6"]
        assert t.resolve("svc/client", "web", "AAAA") == [ip]
        answers = fetch(t, "svc/client", "web.svc.svc.cluster.local", 80, 20)
        assert set(answers) == backends(t), answers
        with pytest.raises(Exception, match="IPv4"):
            t.apply("""
apiVersion: v1
kind: Service
metadata: {name: v4, namespace: svc}
spec: {ipFamilies: [IPv4], ports: [{port: 80}]}
""")
