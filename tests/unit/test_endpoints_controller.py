"""Endpoints / EndpointSlice controller against a real store (no root)."""

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


def pod(name, ip, ready=True, labels=None, port=8080, node="node-1", **meta):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default",
                         "labels": labels if labels is not None else {"app": "web"}, **meta},
            "spec": {"nodeName": node, "containers": [
                {"name": "c", "image": "agnhost",
                 "ports": [{"name": "web", "containerPort": port, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


def service(name="web", target="web", selector=None, **spec):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.50",
                     "selector": selector or {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                "targetPort": target}], **spec}}


def slices(store):
    return sorted(store.list("EndpointSlice", "default"), key=lambda s: s["metadata"]["name"])


def test_ready_pods_named_port_resolved_and_idempotent(store):
    svc = store.create(service())
    store.create(pod("a", "10.244.1.2"))
    store.create(pod("b", "10.244.1.3", ready=False))
    store.create(pod("other", "10.244.1.4", labels={"app": "db"}))
    store.create(pod("noip", ""))
    assert endpoints.reconcile(store, NOW) is True
    [sl] = slices(store)
    assert sl["metadata"]["name"].startswith("web-") and len(sl["metadata"]["name"]) == 9
    assert sl["metadata"]["labels"] == {
        "kubernetes.io/service-name": "web",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert sl["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
    assert sl["addressType"] == "IPv4"
    assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    got = {e["addresses"][0]: e["conditions"]["ready"] for e in sl["endpoints"]}
    assert got == {"10.244.1.2": True, "10.244.1.3": False}
    assert sl["endpoints"][0]["targetRef"]["name"] == "a"
    assert sl["endpoints"][0]["nodeName"] == "node-1"
    ep = store.get("Endpoints", "web", "default")
    assert ep["subsets"] == [{
        "addresses": [{"ip": "10.244.1.2", "nodeName": "node-1", "targetRef": {
            "kind": "Pod", "namespace": "default", "name": "a",
            "uid": store.get("Pod", "a", "default")["metadata"]["uid"]}}],
        "notReadyAddresses": [{"ip": "10.244.1.3", "nodeName": "node-1", "targetRef": {
            "kind": "Pod", "namespace": "default", "name": "b",
            "uid": store.get("Pod", "b", "default")["metadata"]["uid"]}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]
    rv = store.current_rv()
    assert endpoints.reconcile(store, NOW) is False
    assert store.current_rv() == rv                       # nothing written


def test_follows_readiness_scale_and_deletion(store):
    store.create(service())
    store.create(pod("a", "10.244.1.2", ready=False))
    endpoints.reconcile(store, NOW)
    store.patch("Pod", "a", "default", lambda p: p["status"]["conditions"][0].update(
        status="True"))
    store.create(pod("b", "10.244.1.3"))
    assert endpoints.reconcile(store, NOW)
    [sl] = slices(store)
    assert all(e["conditions"]["ready"] for e in sl["endpoints"]) and len(sl["endpoints"]) == 2
    store.patch("Pod", "b", "default",
                lambda p: p["metadata"].update(deletionTimestamp=NOW))
    endpoints.reconcile(store, NOW)
    [sl] = slices(store)
    b = next(e for e in sl["endpoints"] if e["targetRef"]["name"] == "b")
    assert b["conditions"] == {"ready": False, "serving": True, "terminating": True}
    store.delete("Service", "web", "default")
    assert endpoints.reconcile(store, NOW)
    assert slices(store) == [] and store.get("Endpoints", "web", "default") is None


def test_pods_resolving_the_port_differently_get_separate_slices(store):
    store.create(service())
    store.create(pod("a", "10.244.1.2", port=8080))
    store.create(pod("b", "10.244.1.3", port=9090))
    endpoints.reconcile(store, NOW)
    got = {s["ports"][0]["port"]: [e["addresses"][0] for e in s["endpoints"]]
           for s in slices(store)}
    assert got == {8080: ["10.244.1.2"], 9090: ["10.244.1.3"]}
    assert len(store.get("Endpoints", "web", "default")["subsets"]) == 2


def test_port_name_no_pod_serves_and_numeric_target(store):
    store.create(service(target="nope"))
    store.create(service(name="num", target=8080))
    store.create(pod("a", "10.244.1.2"))
    endpoints.reconcile(store, NOW)
    by_svc = {s["metadata"]["labels"]["kubernetes.io/service-name"]: s for s in slices(store)}
    assert by_svc["web"]["ports"] == []              # endpoint listed, no port to reach it on
    assert by_svc["num"]["ports"][0]["port"] == 8080


def test_headless_publish_not_ready_and_selectorless(store):
    store.create(service(clusterIP="None", publishNotReadyAddresses=True))
    sel_less = service(name="manual")
    del sel_less["spec"]["selector"]
    store.create(sel_less)
    store.create({"apiVersion": "v1", "kind": "Endpoints",
                  "metadata": {"name": "manual", "namespace": "default"},
                  "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 1}]}]})
    store.create(pod("a", "10.244.1.2", ready=False))
    endpoints.reconcile(store, NOW)
    [sl] = slices(store)
    assert sl["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    assert sl["endpoints"][0]["conditions"]["ready"] is True
    assert store.get("Endpoints", "manual", "default")["subsets"][0]["addresses"] == [
        {"ip": "192.0.2.1"}]                         # the user's, untouched
