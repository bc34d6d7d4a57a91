"""ClusterIP / NodePort allocation through the Client: inside the apply, never colliding."""

from __future__ import annotations

import ipaddress
import random

import pytest

from orchestrator.control.client import Client
from orchestrator.control.serviceips import ServiceIPAllocator
from orchestrator.control.store import Store
from orchestrator.errors import ValidationError


def svc(name, **spec):
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


@pytest.fixture
def store(tmp_path):
    from orchestrator.control.nodes import system_namespaces
    s = Store(str(tmp_path / "s.db"))
    for ns in system_namespaces():
        s.create(ns)
    yield s
    s.close()


def client(store, **kw):
    return Client(store, clock=lambda: "2026-01-01T00:00:00Z",
                  allocators=[ServiceIPAllocator(rng=random.Random(1), **kw)])


def cip(store, name):
    return store.get("Service", name, "default")["spec"]["clusterIP"]


def test_dynamic_ips_are_in_the_cidr_above_the_static_band_and_distinct(store):
    c = client(store)
    c.apply([svc(f"s{i}") for i in range(50)])
    ips = [cip(store, f"s{i}") for i in range(50)]
    assert len(set(ips)) == 50
    net = ipaddress.ip_network("10.96.0.0/12")
    for ip in ips:
        a = ipaddress.ip_address(ip)
        assert a in net
        # /12: the first 256 addresses after the network address are the static band.
        assert int(a) - int(net.network_address) > 256
    assert store.get("Service", "s0", "default")["spec"]["clusterIPs"] == [ips[0]]


def test_requested_ip_taken_or_outside_is_refused_and_nothing_applied(store):
    c = client(store)
    c.apply(svc("dns", clusterIP="10.96.0.10"))
    assert cip(store, "dns") == "10.96.0.10"
    with pytest.raises(ValidationError) as exc:
        c.apply([svc("ok"), svc("other", clusterIP="10.96.0.10")])
    assert exc.value.field == "spec.clusterIP"
    assert "already allocated" in str(exc.value) and "default/dns" in str(exc.value)
    assert store.get("Service", "ok", "default") is None        # all or nothing
    with pytest.raises(ValidationError) as exc:
        c.apply(svc("far", clusterIP="192.168.1.1"))
    assert "not in the valid range" in str(exc.value) and "10.96.0.0/12" in str(exc.value)
    with pytest.raises(ValidationError):
        c.apply(svc("bcast", clusterIP="10.111.255.255"))


def test_update_keeps_ip_and_refuses_change_delete_releases(store):
    c = client(store)
    c.apply(svc("web", selector={"app": "web"}))
    ip = cip(store, "web")
    assert c.apply(svc("web", selector={"app": "web2"})) == ["service/web configured"]
    assert c.apply(svc("web", selector={"app": "web2"})) == ["service/web unchanged"]
    assert cip(store, "web") == ip
    with pytest.raises(ValidationError) as exc:
        c.apply(svc("web", clusterIP="10.96.0.99"))
    assert "immutable" in str(exc.value) and exc.value.field == "spec.clusterIP"
    c.delete("Service", "default/web")
    c.apply(svc("again", clusterIP=ip))          # released with the Service
    assert cip(store, "again") == ip


def test_headless_gets_no_ip(store):
    client(store).apply(svc("h", clusterIP="None", ports=None))
    assert cip(store, "h") == "None"


def test_node_ports(store):
    c = client(store)
    c.apply(svc("np", type="NodePort", ports=[{"name": "a", "port": 80},
                                              {"name": "b", "port": 81, "nodePort": 30080}]))
    ports = store.get("Service", "np", "default")["spec"]["ports"]
    assert ports[1]["nodePort"] == 30080
    # 2768 ports: the static band is the first min(max(16, 2768/32), 128) = 86.
    assert 30086 <= ports[0]["nodePort"] <= 32767
    with pytest.raises(ValidationError) as exc:
        c.apply(svc("np2", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    assert "already allocated" in str(exc.value)
    assert exc.value.field == "spec.ports[0].nodePort"
    with pytest.raises(ValidationError) as exc:
        c.apply(svc("np3", type="NodePort", ports=[{"port": 80, "nodePort": 40000}]))
    assert "30000-32767" in str(exc.value)
    # An update without nodePorts keeps them.
    c.apply(svc("np", type="NodePort", ports=[{"name": "a", "port": 80},
                                              {"name": "b", "port": 81}]))
    assert store.get("Service", "np", "default")["spec"]["ports"] == ports


def test_small_ranges_fill_up(store):
    c = client(store, cidr="10.96.0.0/28", node_ports=(30000, 30001))
    c.apply([svc(f"s{i}") for i in range(14)])
    assert len({cip(store, f"s{i}") for i in range(14)}) == 14
    with pytest.raises(ValidationError) as exc:
        c.apply(svc("one-more"))
    assert "full" in str(exc.value)
