"""The cluster.local zone in IPv6: AAAA for dual-stack and IPv6 Services, headless endpoints
and pods (with dashes for colons), and the server's dual-stack socket."""

from __future__ import annotations

import socket
import threading

import dns.message
import dns.query
import pytest

from orchestrator.dns.records import canonical_pod_name, pod_label, zone
from orchestrator.dns.resolvconf import kube_dns_ip
from orchestrator.dns.server import answer, serve, sockets

SVCS = [
    {"metadata": {"name": "web", "namespace": "demo"},
     "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20", "fd00:10:96::14"],
              "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}},
    {"metadata": {"name": "six", "namespace": "demo"},
     "spec": {"clusterIP": "fd00:10:96::15", "clusterIPs": ["fd00:10:96::15"]}},
    {"metadata": {"name": "db", "namespace": "demo"},
     "spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"}}},
]


def pod(name, labels, *ips, **spec):
    return {"metadata": {"name": name, "namespace": "demo", "labels": labels},
            "spec": spec, "status": {"podIP": ips[0], "podIPs": [{"ip": i} for i in ips],
                                     "conditions": [{"type": "Ready", "status": "True"}]}}


PODS = [pod("db-0", {"app": "db"}, "10.244.1.5", "fd00:10:244::5", hostname="db-0",
            subdomain="db"),
        pod("only6", {"app": "x"}, "fd00:10:244::9")]


def test_records_of_both_families():
    z = zone(SVCS, PODS)
    assert z[("web.demo.svc.cluster.local", "A")] == ["10.96.0.20"]
    assert z[("web.demo.svc.cluster.local", "AAAA")] == ["fd00:10:96::14"]
    assert z[("six.demo.svc.cluster.local", "AAAA")] == ["fd00:10:96::15"]
    assert ("six.demo.svc.cluster.local", "A") not in z
    assert z[("db.demo.svc.cluster.local", "AAAA")] == ["fd00:10:244::5"]
    assert z[("db.demo.svc.cluster.local", "A")] == ["10.244.1.5"]
    assert z[("db-0.db.demo.svc.cluster.local", "AAAA")] == ["fd00:10:244::5"]
    assert z[("fd00-10-244--9.demo.pod.cluster.local", "AAAA")] == ["fd00:10:244::9"]
    assert z[("10-244-1-5.demo.pod.cluster.local", "A")] == ["10.244.1.5"]


def test_headless_from_slices_per_address_type():
    slices = [{"metadata": {"namespace": "demo",
                            "labels": {"kubernetes.io/service-name": "db"}},
               "addressType": t, "endpoints": [{"addresses": [a]}]}
              for t, a in (("IPv4", "10.244.1.5"), ("IPv6", "fd00:10:244::5"))]
    z = zone(SVCS, PODS, slices)
    assert z[("db.demo.svc.cluster.local", "AAAA")] == ["fd00:10:244::5"]
    assert z[("db.demo.svc.cluster.local", "A")] == ["10.244.1.5"]


def test_pod_names_in_any_spelling_of_the_address():
    assert pod_label("fd00:10:244::9") == "fd00-10-244--9"
    exploded = "fd00-0010-0244-0000-0000-0000-0000-0009.demo.pod.cluster.local"
    assert canonical_pod_name(exploded) == "fd00-10-244--9.demo.pod.cluster.local"
    assert canonical_pod_name("10-244-1-5.demo.pod.cluster.local") == \
        "10-244-1-5.demo.pod.cluster.local"
    assert canonical_pod_name("a--b.demo.svc.cluster.local") == "a--b.demo.svc.cluster.local"
    wire = answer(dns.message.make_query(exploded, "AAAA").to_wire(), zone(SVCS, PODS))
    assert dns.message.from_wire(wire).answer[0][0].to_text() == "fd00:10:244::9"


def test_kube_dns_address_in_the_primary_family():
    assert kube_dns_ip(4) == "10.96.0.10" and kube_dns_ip(6) == "fd00:10:96::a"


@pytest.mark.timeout(20)
def test_server_socket_answers_both_families():
    udp, tcp = sockets(0)
    assert udp.family == socket.AF_INET6
    port = udp.getsockname()[1]
    stop = threading.Event()
    records = zone(SVCS, PODS)
    th = threading.Thread(target=serve, args=(udp, tcp, lambda: records), kwargs={"stop": stop},
                          daemon=True)
    th.start()
    try:
        for server in ("127.0.0.1", "::1"):
            r = dns.query.udp(dns.message.make_query("web.demo.svc.cluster.local", "AAAA"),
                              server, port=port, timeout=2)
            assert r.answer[0][0].to_text() == "fd00:10:96::14"
    finally:
        stop.set()
        th.join(2)
        udp.close()
        tcp.close()
