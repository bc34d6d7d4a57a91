"""DaemonSet controller against a real store (no root): placement by nodeSelector and taints,
following nodes, the pods' scheduling constraints, rolling update."""

from __future__ import annotations

import pytest

from orchestrator.api.normalize import normalize
from orchestrator.control import scheduler
from orchestrator.control.nodeinfo import node_infos
from orchestrator.control.store import Store
from orchestrator.controllers import daemonset, garbage
from orchestrator.controllers.common import controller_uid

NOW = "2026-01-01T00:00:00Z"


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    yield s
    s.close()


def node(name, labels=None, taints=None, unschedulable=False):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  **(labels or {})}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "capacity": {"cpu": "4", "memory": "4Gi", "pods": "110"},
                       "allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"}}}


def make_ds(**pod_spec):
    obj = {"apiVersion": "apps/v1", "kind": "DaemonSet",
           "metadata": {"name": "agent", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"app": "agent"}},
                    "template": {"metadata": {"labels": {"app": "agent"}},
                                 "spec": {"containers": [{"name": "c", "image": "agnhost"}],
                                          **pod_spec}}}}
    return normalize(obj, now=NOW)


def run(store, rounds=5):
    def mark(pod):
        store.delete("Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])
    for _ in range(rounds):
        wrote = garbage.reconcile(store, NOW, mark_deleted=mark)
        wrote |= daemonset.reconcile(store, NOW, mark_deleted=mark)
        if not wrote:
            break


def placement(store):
    return sorted(daemonset.target_node(p) for p in store.list("Pod"))


NO_SCHEDULE = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}


def test_one_pod_per_eligible_node(store):
    store.create(node("n1", {"role": "edge"}))
    store.create(node("n2", {"role": "edge"}, taints=[NO_SCHEDULE]))
    store.create(node("n3", {"role": "core"}))
    store.create(node("n4", {"role": "edge"}, unschedulable=True))  # cordoned: still runs
    ds = store.create(make_ds(nodeSelector={"role": "edge"}))
    run(store)
    assert placement(store) == ["n1", "n4"]
    st = store.get("DaemonSet", "agent", "default")["status"]
    assert st["desiredNumberScheduled"] == 2 and st["numberReady"] == 0
    for p in store.list("Pod"):
        assert controller_uid(p) == ds["metadata"]["uid"]
        assert p["metadata"]["name"].startswith("agent-")
        keys = {(t["key"], t["effect"]) for t in p["spec"]["tolerations"]}
        assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
        assert ("node.kubernetes.io/not-ready", "NoExecute") in keys


def test_pods_are_pinned_through_node_affinity_so_the_scheduler_binds_them(store):
    for n in ("n1", "n2", "n3"):
        store.create(node(n))
    store.create(make_ds())
    run(store)
    infos = node_infos(store.list("Node"), [])
    for p in store.list("Pod"):
        assert scheduler.schedule(p, infos).node == daemonset.target_node(p)


def test_toleration_in_template_allows_tainted_node(store):
    store.create(node("n1"))
    store.create(node("n2", taints=[NO_SCHEDULE]))
    store.create(make_ds(tolerations=[{"key": "dedicated", "operator": "Exists"}]))
    run(store)
    assert placement(store) == ["n1", "n2"]


def test_follows_nodes_added_removed_and_relabelled(store):
    store.create(node("n1"))
    store.create(make_ds())
    run(store)
    assert placement(store) == ["n1"]
    store.create(node("n2"))
    run(store)
    assert placement(store) == ["n1", "n2"]
    store.delete("Node", "n1")
    run(store)
    assert placement(store) == ["n2"]
    store.patch("Node", "n2", "", lambda o: o["spec"].__setitem__("taints", [NO_SCHEDULE]))
    run(store)
    assert placement(store) == []


def test_failed_and_surplus_pods_are_replaced(store):
    store.create(node("n1"))
    store.create(make_ds())
    run(store)
    [p] = store.list("Pod")
    store.update_status("Pod", p["metadata"]["name"], "default", {"phase": "Failed"})
    run(store)
    [q] = store.list("Pod")
    assert q["metadata"]["name"] != p["metadata"]["name"]


def test_rolling_update_keeps_at_most_max_unavailable_down(store):
    for n in ("n1", "n2", "n3"):
        store.create(node(n))
    store.create(make_ds())
    run(store)

    def ready_all():
        for p in store.list("Pod"):
            store.update_status("Pod", p["metadata"]["name"], "default", {
                "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})
    ready_all()
    store.patch("DaemonSet", "agent", "default", lambda o: o["spec"]["template"]["spec"][
        "containers"][0].__setitem__("image", "nginx"))
    images = []
    for _ in range(6):
        daemonset.reconcile(store, NOW, mark_deleted=lambda p: store.delete(
            "Pod", p["metadata"]["name"], "default"))
        pods = store.list("Pod")
        ready = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
        assert ready >= 2  # maxUnavailable 1 of 3
        images.append(sorted(p["spec"]["containers"][0]["image"] for p in pods))
        ready_all()
    assert images[-1] == ["nginx", "nginx", "nginx"]
    assert placement(store) == ["n1", "n2", "n3"]


def test_daemonset_spec_has_no_replicas_and_defaults_its_update_strategy():
    from orchestrator.errors import ValidationError
    spec = make_ds()["spec"]
    assert "replicas" not in spec
    assert spec["updateStrategy"] == {"type": "RollingUpdate",
                                      "rollingUpdate": {"maxUnavailable": 1}}
    obj = make_ds()
    obj["spec"]["replicas"] = 2
    with pytest.raises(ValidationError) as exc:
        normalize(obj, now=NOW)
    assert exc.value.field == "spec.replicas"
