"""EndpointSlices per family of a dual-stack Service; Endpoints in the primary family."""

from __future__ import annotations

import pytest

from orchestrator.control.store import Store
from orchestrator.controllers import endpoints

NOW = "2026-01-01T00:00:00Z"


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    yield s
    s.close()


def pod(name, *ips):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [
                {"name": "c", "image": "agnhost", "ports": [{"containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ips[0],
                       "podIPs": [{"ip": ip} for ip in ips],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def service(families, name="web"):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "ipFamilies": families,
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                "targetPort": 8080}]}}


def by_type(store, svc="web"):
    return {s["addressType"]: sorted(a for e in s["endpoints"] for a in e["addresses"])
            for s in store.list("EndpointSlice", "default")
            if s["metadata"]["labels"]["kubernetes.io/service-name"] == svc}


def test_slices_per_family_and_endpoints_in_the_primary_one(store):
    store.create(service(["IPv6", "IPv4"]))
    store.create(pod("a", "10.244.1.2", "fd00:10:244::2"))
    store.create(pod("b", "10.244.1.3", "fd00:10:244::3"))
    store.create(pod("v4only", "10.244.1.4"))
    assert endpoints.reconcile(store, NOW) is True
    assert by_type(store) == {"IPv4": ["10.244.1.2", "10.244.1.3", "10.244.1.4"],
                              "IPv6": ["fd00:10:244::2", "fd00:10:244::3"]}
    ep = store.get("Endpoints", "web", "default")
    assert [a["ip"] for s in ep["subsets"] for a in s["addresses"]] == \
        ["fd00:10:244::2", "fd00:10:244::3"]
    names = [s["metadata"]["name"] for s in store.list("EndpointSlice", "default")]
    assert len(set(names)) == 2
    assert endpoints.reconcile(store, NOW) is False          # idempotent


def test_single_stack_service_keeps_one_family_and_ipv4_names(store):
    store.create(service(["IPv4"]))
    store.create(pod("a", "10.244.1.2", "fd00:10:244::2"))
    endpoints.reconcile(store, NOW)
    assert by_type(store) == {"IPv4": ["10.244.1.2"]}
    v4_name = store.list("EndpointSlice", "default")[0]["metadata"]["name"]

    def dual(obj):
        obj["spec"]["ipFamilies"] = ["IPv4", "IPv6"]
    store.patch("Service", "web", "default", dual)
    endpoints.reconcile(store, NOW)
    assert by_type(store) == {"IPv4": ["10.244.1.2"], "IPv6": ["fd00:10:244::2"]}
    # the IPv4 slice is the same object (its name did not move with the upgrade)
    assert v4_name in [s["metadata"]["name"] for s in store.list("EndpointSlice", "default")]

    def single6(obj):
        obj["spec"]["ipFamilies"] = ["IPv6"]
    store.patch("Service", "web", "default", single6)
    endpoints.reconcile(store, NOW)
    assert by_type(store) == {"IPv6": ["fd00:10:244::2"]}
