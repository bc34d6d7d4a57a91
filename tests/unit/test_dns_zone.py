"""Cluster DNS: the zone built from API objects, and the dnspython server answering it."""

from __future__ import annotations

import threading

import dns.message
import dns.query
import dns.rcode
import pytest

from orchestrator.dns.records import candidates, zone
from orchestrator.dns.server import answer, serve, sockets


def svc(name, ns="demo", cip="10.96.0.20", ports=(("http", 80),), selector=None):
    spec = {"clusterIP": cip, "ports": [{"name": n, "port": p, "protocol": "TCP"}
                                       for n, p in ports]}
    if selector:
        spec["selector"] = selector
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def pod(name, ip, ns="demo", labels=None, ready=True, hostname=None, subdomain=None):
    spec = {}
    if hostname:
        spec.update(hostname=hostname, subdomain=subdomain)
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {}}, "spec": spec,
            "status": {"podIP": ip, "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


PODS = [pod("web-0", "10.244.0.5", labels={"app": "db"}, hostname="web-0", subdomain="db"),
        pod("web-1", "10.244.1.5", labels={"app": "db"}, ready=False),
        pod("client", "10.244.2.9")]
SVCS = [svc("web"), svc("db", cip="None", selector={"app": "db"})]


def test_zone_records_as_the_kubernetes_dns_spec():
    z = zone(SVCS, PODS)
    assert z[("web.demo.svc.cluster.local", "A")] == ["10.96.0.20"]
    assert z[("_http._tcp.web.demo.svc.cluster.local", "SRV")] == [
        "0 100 80 web.demo.svc.cluster.local."]
    # headless: the ready pods only; the StatefulSet-style stable name
    assert z[("db.demo.svc.cluster.local", "A")] == ["10.244.0.5"]
    assert z[("web-0.db.demo.svc.cluster.local", "A")] == ["10.244.0.5"]
    assert z[("10-244-2-9.demo.pod.cluster.local", "A")] == ["10.244.2.9"]
    slices = [{"metadata": {"namespace": "demo", "labels": {
        "kubernetes.io/service-name": "db"}}, "endpoints": [
        {"addresses": ["10.244.1.5"], "conditions": {"ready": True}},
        {"addresses": ["10.244.0.5"], "conditions": {"ready": False}}]}]
    assert zone(SVCS, PODS, slices)[("db.demo.svc.cluster.local", "A")] == ["10.244.1.5"]


def test_search_candidates_follow_ndots_5():
    assert candidates("web", "demo") == ["web.demo.svc.cluster.local", "web.svc.cluster.local",
                                         "web.cluster.local", "web"]
    assert candidates("web.demo.svc.cluster.local.", "x") == ["web.demo.svc.cluster.local"]


def ask(name, rdtype="A", records=None):
    wire = answer(dns.message.make_query(name, rdtype).to_wire(), records or zone(SVCS, PODS))
    return dns.message.from_wire(wire)


def test_answers_nxdomain_and_refused():
    r = ask("web.demo.svc.cluster.local")
    assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].to_text() == "10.96.0.20"
    assert ask("nope.demo.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert ask("web.demo.svc.cluster.local", "AAAA").rcode() == dns.rcode.NOERROR
    assert not ask("web.demo.svc.cluster.local", "AAAA").answer
    assert ask("example.com").rcode() == dns.rcode.REFUSED      # never forwarded
    assert answer(b"\x00garbage", {}) is None


@pytest.mark.timeout(20)
def test_server_over_udp_and_tcp():
    udp, tcp = sockets(0, "127.0.0.1")
    port_u, port_t = udp.getsockname()[1], None
    # TCP on the same port as UDP, as DNS wants it
    tcp.close()
    import socket
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", port_u))
    tcp.listen(4)
    port_t = port_u
    stop = threading.Event()
    records = zone(SVCS, PODS)
    th = threading.Thread(target=serve, args=(udp, tcp, lambda: records), kwargs={"stop": stop},
                          daemon=True)
    th.start()
    try:
        q = dns.message.make_query("web.demo.svc.cluster.local", "A")
        r = dns.query.udp(q, "127.0.0.1", port=port_u, timeout=2)
        assert r.answer[0][0].to_text() == "10.96.0.20"
        r = dns.query.tcp(dns.message.make_query("_http._tcp.web.demo.svc.cluster.local", "SRV"),
                          "127.0.0.1", port=port_t, timeout=2)
        assert r.answer[0][0].port == 80
    finally:
        stop.set()
        th.join(2)
        udp.close()
        tcp.close()


def test_coredns_image_runs_our_server():
    from orchestrator.images.programs import ImageError
    from orchestrator.images.resolve import resolve
    c = {"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.11.1",
         "env": [{"name": "CALINET_STORE", "value": "/tmp/x/state.db"}],
         "ports": [{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 53}]}
    pod = {"metadata": {"name": "coredns-1", "namespace": "kube-system"},
           "spec": {"containers": [c]}}
    prog = resolve(c, pod)
    assert prog.argv[1:] == ["-m", "orchestrator.dns.server", "--store", "/tmp/x/state.db",
                             "--port", "53"]
    assert prog.ready_socket == ("UDP", 53) and prog.env["PYTHONPATH"]
    c2 = dict(c, env=[])
    with pytest.raises(ImageError) as err:
        resolve(c2, {"metadata": pod["metadata"], "spec": {"containers": [c2]}})
    assert err.value.reason == "CreateContainerConfigError" and "CALINET_STORE" in str(err.value)


def test_resolv_conf_as_the_kubelet_writes_it(tmp_path):
    from orchestrator.dns import resolvconf
    text = resolvconf.render("demo")
    assert text == ("search demo.svc.cluster.local svc.cluster.local cluster.local\n"
                    "nameserver 10.96.0.10\noptions ndots:5\n")
    path = resolvconf.write(str(tmp_path / "p" / "resolv.conf"), "x", "10.96.0.11")
    assert open(path).read().splitlines()[1] == "nameserver 10.96.0.11"
    argv = resolvconf.wrap(["getent", "hosts", "web"], path)
    assert argv[:3] == ["unshare", "--mount", "--propagation"] and argv[-4:] == [
        path, "getent", "hosts", "web"]
