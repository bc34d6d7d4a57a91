"""What a calinet user writes: a test module that brings up a cluster, deploys two pods and
checks a NetworkPolicy with connection probes and with crafted packets (scapy).

Run (root: the testbed creates namespaces, veths, iptables rules):
    sudo .venv/bin/pytest examples/

The `testbed` fixture (calinet's pytest plugin) starts the cluster below once for this module,
applies the manifests of the calinet_manifests marker, waits until the pods are ready, and
stops everything after the module's last test, pass or fail.
"""

import random

import pytest
from scapy.layers.inet import IP, TCP

# Two pods on different nodes: the packets cross the underlay on a BGP-learned route.
PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {role: client}}
spec:
  nodeName: node-1
  containers: [{name: agnhost, image: agnhost}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {role: web}}
spec:
  nodeName: node-2
  containers:
    - name: agnhost
      image: agnhost          # calinet's built-in agnhost serves the container ports
      ports:
        - {name: http, containerPort: 80, protocol: TCP}
        - {name: admin, containerPort: 8080, protocol: TCP}
"""

# Ingress to web: only clients, only on port 80 (8080 becomes unreachable).
WEB_POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-http-from-clients, namespace: shop}
spec:
  podSelector: {matchLabels: {role: web}}
  policyTypes: [Ingress]
  ingress:
    - from: [{podSelector: {matchLabels: {role: client}}}]
      ports: [{port: http, protocol: TCP}]
"""

pytestmark = [
    # Relative to this file (or give the YAML text itself).
    pytest.mark.calinet_topology("../topologies/examples/three-node.yaml"),
    pytest.mark.calinet_manifests(PODS),
]

CLIENT, WEB = "shop/client", "shop/web"


def syn(tb, port):
    """A TCP SYN from the client to web's port: the SYN-ACK that answers it, or None."""
    pkt = IP(dst=tb.pod_ip(WEB)) / TCP(sport=random.randint(20000, 60000), dport=port,
                                      flags="S", seq=random.randint(0, 2**32 - 1))
    return tb.sr1(CLIENT, pkt, timeout=1.0)    # IP src: the client's pod IP


def is_syn_ack(reply):
    return reply is not None and reply.haslayer(TCP) and reply[TCP].flags == "SA"


def test_without_a_policy_every_port_answers(testbed):
    assert testbed.pod_node(CLIENT) != testbed.pod_node(WEB)
    assert testbed.probe(CLIENT, WEB, 80, "TCP")
    assert testbed.probe(CLIENT, WEB, 8080, "TCP")
    assert is_syn_ack(syn(testbed, 80))
    assert is_syn_ack(syn(testbed, 8080))


def test_policy_allows_http_only(testbed, testbed_apply):
    testbed_apply(WEB_POLICY)          # in force on every node; deleted again after the test
    assert testbed.probe(CLIENT, WEB, 80, "TCP")
    assert not testbed.probe(CLIENT, WEB, 8080, "TCP")
    assert is_syn_ack(syn(testbed, 80))
    assert syn(testbed, 8080) is None  # dropped: no SYN-ACK, and no RST either


def test_web_sees_the_client_address(testbed):
    """Calico routes pod to pod without NAT: the SYN arrives from the client's own IP."""
    from orchestrator.traffic.packets import sniffing

    port = random.randint(20000, 60000)
    with sniffing(testbed.pod_netns(WEB)) as web:     # capturing before anything is sent
        testbed.send(CLIENT, IP(dst=testbed.pod_ip(WEB)) / TCP(sport=port, dport=80, flags="S"))
        got = web.capture(2.0, count=1,
                          match=lambda p: p.haslayer(TCP) and p[TCP].sport == port)
    assert [p[IP].src for p in got] == [testbed.pod_ip(CLIENT)]
