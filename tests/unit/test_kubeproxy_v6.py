"""kube-proxy's IPv6 proxier: service ports per family from dual-stack Services and slices,
the ip6tables nat layout (/128, "[ip]:port" DNAT targets and KUBE-SEP hashes), golden."""

from __future__ import annotations

import os
from pathlib import Path

from kubeproxy import compile_nat, endpoint_chain, render_full, service_ports
from kubeproxy.model import Endpoint, cluster_ip_of

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "kubeproxy" / "dual_web_v6.txt"


def svc(name, **spec):
    spec.setdefault("ports", [{"name": "http", "port": 80, "protocol": "TCP"}])
    return {"metadata": {"namespace": "default", "name": name}, "spec": spec}


def eps_slice(svc_name, family, addresses, port=8080):
    return {"metadata": {"namespace": "default", "name": f"{svc_name}-{family}",
                         "labels": {"kubernetes.io/service-name": svc_name}},
            "addressType": f"IPv{family}",
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


SERVICES = [
    svc("web", clusterIP="10.96.0.50", clusterIPs=["10.96.0.50", "fd00:10:96::32"],
        ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="RequireDualStack"),
    svc("six", clusterIP="fd00:10:96::99", clusterIPs=["fd00:10:96::99"], ipFamilies=["IPv6"],
        type="NodePort", ports=[{"name": "http", "port": 80, "protocol": "TCP",
                                 "nodePort": 30099}]),
    svc("four", clusterIP="10.96.0.51", clusterIPs=["10.96.0.51"], ipFamilies=["IPv4"]),
]
SLICES = [
    eps_slice("web", 4, ["10.244.1.2", "10.244.2.2"]),
    eps_slice("web", 6, ["fd00:10:244::42", "fd00:10:244::82"]),
    eps_slice("six", 6, ["fd00:10:244::43"]),
    eps_slice("four", 4, ["10.244.1.3"]),
]


def test_endpoint_string_is_join_host_port():
    assert str(Endpoint("fd00:10:244::42", 8080)) == "[fd00:10:244::42]:8080"
    assert str(Endpoint("10.244.1.2", 8080)) == "10.244.1.2:8080"


def test_cluster_ip_of_each_family():
    web, six, four = (s["spec"] for s in SERVICES)
    assert cluster_ip_of(web, 4) == "10.96.0.50" and cluster_ip_of(web, 6) == "fd00:10:96::32"
    assert cluster_ip_of(six, 4) is None and cluster_ip_of(four, 6) is None
    assert cluster_ip_of({"clusterIP": "None", "clusterIPs": ["None"]}, 6) is None


def test_each_family_sees_its_own_addresses_only():
    v4 = service_ports(SERVICES, SLICES, 4)
    v6 = service_ports(SERVICES, SLICES, 6)
    assert [(p.name, p.cluster_ip) for p in v4] == [("four", "10.96.0.51"),
                                                    ("web", "10.96.0.50")]
    assert [(p.name, p.cluster_ip) for p in v6] == [("six", "fd00:10:96::99"),
                                                    ("web", "fd00:10:96::32")]
    assert {e.ip for p in v4 for e in p.endpoints} == {"10.244.1.2", "10.244.2.2", "10.244.1.3"}
    assert all(":" in e.ip for p in v6 for e in p.endpoints)


def test_ipv6_nat_table_golden():
    table = compile_nat(service_ports(SERVICES, SLICES, 6), "fd00:10:244::/56", family=6)
    text = render_full(table)
    sep = endpoint_chain("default/web:http", "tcp", "[fd00:10:244::42]:8080")
    assert f":{sep} - [0:0]" in text
    assert "-d fd00:10:96::32/128 --dport 80" in text
    assert "-s fd00:10:244::42/128 -j KUBE-MARK-MASQ" in text
    assert "DNAT --to-destination [fd00:10:244::42]:8080" in text
    assert "! -s fd00:10:244::/56 -j KUBE-MARK-MASQ" in text and "--dport 30099" in text
    assert "10.96." not in text and "/32" not in text
    if os.environ.get("CALINET_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_ipv4_table_unchanged_by_ipv6_services():
    only4 = [s for s in SERVICES if s["metadata"]["name"] != "six"]
    assert render_full(compile_nat(service_ports(SERVICES, SLICES, 4), "10.244.0.0/16")) == \
        render_full(compile_nat(service_ports(only4, SLICES, 4), "10.244.0.0/16"))
