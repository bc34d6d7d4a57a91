"""Deployment rolling updates, revisions, change-cause and rollback against a real store (no
root). The test plays the kubelet: every pod becomes Ready between controller passes."""

from __future__ import annotations

import pytest

from orchestrator.api.normalize import normalize
from orchestrator.control.store import Store
from orchestrator.controllers import deployment, garbage, replicaset
from orchestrator.errors import ValidationError

NOW = "2026-01-01T00:00:00Z"


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    yield s
    s.close()


def make_dep(replicas=4, strategy=None, cause=None):
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "v1"}]}}}}
    if strategy:
        obj["spec"]["strategy"] = strategy
    if cause:
        obj["metadata"]["annotations"] = {"kubernetes.io/change-cause": cause}
    return normalize(obj, now=NOW)


def mark(store):
    def fn(pod):
        store.delete("Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])
    return fn


def one_pass(store):
    wrote = garbage.reconcile(store, NOW, mark_deleted=mark(store))
    wrote |= deployment.reconcile(store, NOW)
    wrote |= replicaset.reconcile(store, NOW, mark_deleted=mark(store))
    return wrote


def ready_all(store):
    for p in store.list("Pod"):
        if not (p.get("status") or {}).get("conditions"):
            store.update_status("Pod", p["metadata"]["name"], "default", {
                "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})


def settle(store, samples=None, rounds=30):
    for _ in range(rounds):
        wrote = one_pass(store)
        if samples is not None:
            samples.append(snapshot(store))
        ready_all(store)
        if not wrote and not one_pass(store):
            return


def snapshot(store):
    pods = store.list("Pod")
    ready = [p for p in pods if (p.get("status") or {}).get("conditions")]
    return {"pods": len(pods), "ready": len(ready),
            "images": sorted(p["spec"]["containers"][0]["image"] for p in pods)}


def set_image(store, image, cause=None):
    def edit(o):
        o["spec"]["template"]["spec"]["containers"][0]["image"] = image
        if cause:
            o["metadata"].setdefault("annotations", {})["kubernetes.io/change-cause"] = cause
    store.patch("Deployment", "web", "default", edit)


def rs_by_revision(store):
    return {deployment.revision_of(rs): rs for rs in store.list("ReplicaSet")}


def test_surge_and_unavailable_resolve_like_kubernetes():
    # 25% of 4 -> surge 1 (rounded up), unavailable 1 (rounded down); of 10 -> 3 and 2.
    assert deployment.surge_and_unavailable(make_dep(4)) == (1, 1)
    assert deployment.surge_and_unavailable(make_dep(10)) == (3, 2)
    assert deployment.surge_and_unavailable(make_dep(1)) == (1, 0)
    zero = make_dep(3, {"type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    assert deployment.surge_and_unavailable(zero) == (1, 0)


def test_rolling_update_respects_surge_and_unavailability(store):
    store.create(make_dep(4))
    settle(store)
    assert snapshot(store)["ready"] == 4
    set_image(store, "v2")
    samples = []
    settle(store, samples)
    for s in samples:
        assert s["pods"] <= 5, s     # replicas + maxSurge
        assert s["ready"] >= 3, s    # replicas - maxUnavailable
    assert snapshot(store)["images"] == ["v2"] * 4
    assert any("v1" in s["images"] and "v2" in s["images"] for s in samples)  # rolled, mixed
    revs = rs_by_revision(store)
    assert sorted(revs) == [1, 2]
    assert revs[1]["spec"]["replicas"] == 0 and revs[2]["spec"]["replicas"] == 4
    d = store.get("Deployment", "web", "default")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert deployment.rollout_status(d) == (True, 'deployment "web" successfully rolled out')


def test_max_unavailable_zero_never_drops_below_replicas(store):
    store.create(make_dep(3, {"type": "RollingUpdate",
                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
    settle(store)
    set_image(store, "v2")
    samples = []
    settle(store, samples)
    assert all(s["ready"] >= 3 and s["pods"] <= 4 for s in samples), samples
    assert snapshot(store)["images"] == ["v2"] * 3


def test_recreate_removes_old_pods_before_new_ones(store):
    store.create(make_dep(3, {"type": "Recreate"}))
    settle(store)
    set_image(store, "v2")
    samples = []
    settle(store, samples)
    assert all(not ("v1" in s["images"] and "v2" in s["images"]) for s in samples)
    assert snapshot(store)["images"] == ["v2"] * 3


def test_change_cause_history_and_rollback(store):
    store.create(make_dep(2, cause="first"))
    settle(store)
    set_image(store, "v2", cause="second")
    settle(store)
    assert deployment.history(store, "default/web") == [(1, "first"), (2, "second")]
    d = deployment.rollback(store, "default/web", NOW)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "v1"
    assert d["metadata"]["annotations"]["kubernetes.io/change-cause"] == "first"
    settle(store)
    assert snapshot(store)["images"] == ["v1", "v1"]
    revs = rs_by_revision(store)
    # The first ReplicaSet was reused and became revision 3 (revision 1 is gone).
    assert sorted(revs) == [2, 3]
    assert revs[3]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert revs[3]["spec"]["replicas"] == 2 and revs[2]["spec"]["replicas"] == 0
    assert deployment.history(store, "default/web") == [(2, "second"), (3, "first")]
    deployment.rollback(store, "default/web", NOW, to_revision=2)
    settle(store)
    assert snapshot(store)["images"] == ["v2", "v2"]


def test_rollback_errors(store):
    store.create(make_dep(1))
    settle(store)
    with pytest.raises(ValidationError, match='no rollout history found for deployment "web"'):
        deployment.rollback(store, "default/web", NOW)
    with pytest.raises(ValidationError, match="unable to find specified revision 7"):
        deployment.rollback(store, "web", NOW, to_revision=7)


def test_revision_history_limit_deletes_oldest_idle_replicasets(store):
    obj = make_dep(1)
    obj["spec"]["revisionHistoryLimit"] = 1
    store.create(obj)
    settle(store)
    for image in ("v2", "v3", "v4"):
        set_image(store, image)
        settle(store)
    assert sorted(rs_by_revision(store)) == [3, 4]


def test_rollout_status_messages():
    d = make_dep(3)
    d["metadata"]["generation"] = 2
    d["status"] = {"observedGeneration": 1}
    assert deployment.rollout_status(d)[1] == \
        "Waiting for deployment spec update to be observed..."
    d["status"] = {"observedGeneration": 2, "updatedReplicas": 1, "replicas": 3}
    assert deployment.rollout_status(d) == (False, 'Waiting for deployment "web" rollout to '
                                            "finish: 1 out of 3 new replicas have been updated...")
    d["status"] = {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4}
    assert deployment.rollout_status(d)[1].endswith("1 old replicas are pending termination...")
    d["status"] = {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3,
                   "availableReplicas": 2}
    assert deployment.rollout_status(d)[1].endswith("2 of 3 updated replicas are available...")
