"""Node lifecycle controller, kubelet heartbeat, cordon/uncordon/drain against a real store."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator.cli import nodes_cmd
from orchestrator.control import scheduler
from orchestrator.control.store import Store
from orchestrator.controllers import nodelifecycle as nlc
from orchestrator.present.printers import node_status_text

NOW = "2026-01-01T00:00:00Z"


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    yield s
    s.close()


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def node(name):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"taints": [], "unschedulable": False},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady"}]}}


def pod(name, node_name, tolerations=None, owner=None):
    meta = {"name": name, "namespace": "default"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": "o",
                                    "uid": "u-" + owner, "controller": True}]
    spec = {"nodeName": node_name, "containers": [{"name": "c", "image": "x"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
            "status": {"phase": "Running"}}


def beat(store, name, stamp):
    store.put(nlc.lease_object(name, stamp))


@pytest.fixture
def cluster(store):
    for n in ("n1", "n2"):
        store.create(node(n))
    clock = Clock()
    deleted = []

    def mark(p):
        deleted.append(p["metadata"]["name"])
        store.patch("Pod", p["metadata"]["name"], p["metadata"]["namespace"],
                    lambda o: o["metadata"].setdefault("deletionTimestamp", NOW))

    ctl = nlc.NodeLifecycleController(store, mark_deleted=mark, grace=4.0,
                                      eviction_delay=2.0, monotonic=clock)
    return SimpleNamespace(store=store, clock=clock, deleted=deleted, ctl=ctl)


def ready(store, name):
    return nlc.ready_condition(store.get("Node", name))


def test_node_goes_unknown_after_grace_and_gets_unreachable_taint(cluster):
    s, c = cluster.store, cluster
    beat(s, "n1", "t0")
    beat(s, "n2", "t0")
    assert not c.ctl.reconcile(NOW)        # first sighting: a full grace period starts
    c.clock.t += 3.0
    beat(s, "n1", "t1")                    # n1 renews, n2 stays silent
    assert not c.ctl.reconcile(NOW)
    c.clock.t += 1.5                       # n2 silent 4.5 s > 4 s; n1 only 1.5 s
    assert c.ctl.reconcile(NOW)
    assert ready(s, "n1")["status"] == "True"
    cond = ready(s, "n2")
    assert cond["status"] == "Unknown"
    assert cond["reason"] == "NodeStatusUnknown"
    taints = s.get("Node", "n2")["spec"]["taints"]
    assert [(t["key"], t["effect"]) for t in taints] == [
        ("node.kubernetes.io/unreachable", "NoExecute")]
    assert node_status_text(s.get("Node", "n2")) == "NotReady"
    assert not c.ctl.reconcile(NOW)        # idempotent: nothing more to write


def test_exactly_grace_is_still_healthy(cluster):
    beat(cluster.store, "n1", "t0")
    cluster.ctl.reconcile(NOW)
    cluster.clock.t += 4.0
    cluster.ctl.reconcile(NOW)
    assert ready(cluster.store, "n1")["status"] == "True"


def test_heartbeat_back_makes_node_ready_and_untainted(cluster):
    s, c = cluster.store, cluster
    beat(s, "n1", "t0")
    c.ctl.reconcile(NOW)
    c.clock.t += 5
    c.ctl.reconcile(NOW)
    assert ready(s, "n1")["status"] == "Unknown"
    beat(s, "n1", "t9")
    assert c.ctl.reconcile(NOW)
    n1 = s.get("Node", "n1")
    assert nlc.ready_condition(n1)["status"] == "True"
    assert n1["spec"]["taints"] == []


def test_eviction_after_toleration_period(cluster):
    s, c = cluster.store, cluster
    s.create(pod("plain", "n2"))
    s.create(pod("tolerates-forever", "n2", [{"key": "node.kubernetes.io/unreachable",
                                              "operator": "Exists", "effect": "NoExecute"}]))
    s.create(pod("tolerates-5s", "n2", [{"key": "node.kubernetes.io/unreachable",
                                         "operator": "Exists", "effect": "NoExecute",
                                         "tolerationSeconds": 5}]))
    s.create(pod("ds", "n2", owner="DaemonSet"))
    s.create(pod("elsewhere", "n1"))
    c.ctl.reconcile(NOW)
    c.clock.t += 4.5
    c.ctl.reconcile(NOW)                   # n1 and n2 NotReady now (no lease at all)
    assert c.deleted == []
    c.clock.t += 1.9
    c.ctl.reconcile(NOW)
    assert c.deleted == []                 # 1.9 s < 2 s
    c.clock.t += 0.2
    c.ctl.reconcile(NOW)
    assert sorted(c.deleted) == ["elsewhere", "plain"]
    c.clock.t += 3.0                       # 5.1 s since tainted
    c.ctl.reconcile(NOW)
    assert sorted(c.deleted) == ["elsewhere", "plain", "tolerates-5s"]
    c.clock.t += 100
    c.ctl.reconcile(NOW)
    assert sorted(c.deleted) == ["elsewhere", "plain", "tolerates-5s"]


def test_no_eviction_from_a_healthy_node(cluster):
    s, c = cluster.store, cluster
    s.create(pod("p", "n1"))
    for i in range(10):
        beat(s, "n1", f"t{i}")
        c.ctl.reconcile(NOW)
        c.clock.t += 1.0
    assert c.deleted == []


def test_toleration_seconds():
    taint = {"key": "node.kubernetes.io/unreachable", "value": "", "effect": "NoExecute"}
    assert nlc.toleration_seconds(pod("p", "n"), taint, 2.0) == 2.0
    other = [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
              "effect": "NoExecute", "tolerationSeconds": 1}]
    assert nlc.toleration_seconds(pod("p", "n", other), taint, 2.0) == 2.0
    everything = [{"operator": "Exists"}]
    assert nlc.toleration_seconds(pod("p", "n", everything), taint, 2.0) is None
    assert nlc.toleration_seconds(pod("p", "n", owner="DaemonSet"), taint, 2.0) is None
    assert nlc.toleration_seconds(pod("p", "n", owner="ReplicaSet"), taint, 2.0) == 2.0


def test_scheduler_skips_an_unreachable_node(cluster):
    s, c = cluster.store, cluster
    beat(s, "n1", "t0")
    c.ctl.reconcile(NOW)
    c.clock.t += 5
    beat(s, "n1", "t1")
    c.ctl.reconcile(NOW)                   # n2 lost, n1 fine
    new = pod("new", None)
    new["spec"].pop("nodeName")
    infos = scheduler.node_infos(s.list("Node"), [])
    assert [d.node for d in scheduler.schedule_many([new], infos)] == ["n1"]


def test_kubelet_heartbeat_only_while_reachable(store, monkeypatch):
    from orchestrator.node import kubelet as kl
    t = [50.0]
    monkeypatch.setattr(kl.time, "monotonic", lambda: t[0])
    k = kl.Kubelet(kl.NodeRef("n1", 1, "172.18.0.2"), "ab12", store=store, ipam=None,
                   cni=None, runtime=None, ledger=None)
    assert k.heartbeat()
    lease = store.get("Lease", "n1", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == "n1"
    rv = store.current_rv()
    t[0] += 0.5
    assert not k.heartbeat()               # at most one write per second
    t[0] += 0.6
    assert k.heartbeat()
    assert store.current_rv() == rv + 1
    k.reachable = False
    t[0] += 5
    assert not k.heartbeat()
    assert store.current_rv() == rv + 1


def test_cordon_uncordon(store):
    store.create(node("n1"))
    ctx = SimpleNamespace(store=store, live=False)
    assert nodes_cmd.cordon(ctx, "n1") == "node/n1 cordoned"
    assert nodes_cmd.cordon(ctx, "n1") == "node/n1 already cordoned"
    assert node_status_text(store.get("Node", "n1")) == "Ready,SchedulingDisabled"
    infos = scheduler.node_infos(store.list("Node"), [])
    new = pod("new", None)
    new["spec"].pop("nodeName")
    assert scheduler.schedule_many([new], infos)[0].node is None
    assert nodes_cmd.uncordon(ctx, "n1") == "node/n1 uncordoned"
    assert node_status_text(store.get("Node", "n1")) == "Ready"
    with pytest.raises(Exception, match="not found"):
        nodes_cmd.cordon(ctx, "nope")


def test_drain_targets_skip_daemonset_pods():
    pods = [pod("a", "n1"), pod("b", "n1", owner="DaemonSet"), pod("c", "n2"),
            pod("d", "n1", owner="ReplicaSet")]
    assert [p["metadata"]["name"] for p in nodes_cmd.drain_targets(pods, "n1")] == ["a", "d"]


def test_drain_marks_pods_and_waits(store):
    store.create(node("n1"))
    store.create(pod("a", "n1"))
    store.create(pod("ds", "n1", owner="DaemonSet"))
    lines = []

    class Ctx:
        live = True

    ctx = Ctx()
    ctx.store = store
    # Stand in for the kubelet: remove a pod once it is marked for deletion.
    real_wait = store.wait_for_change

    def wait(rv, timeout):
        for p in store.list("Pod"):
            if p["metadata"].get("deletionTimestamp"):
                store.delete("Pod", p["metadata"]["name"], "default")
        return real_wait(rv, 0)

    store.wait_for_change = wait
    assert nodes_cmd.drain(ctx, "n1", timeout=5, out=lines.append) == 0
    assert store.get("Node", "n1")["spec"]["unschedulable"] is True
    assert store.get("Pod", "ds", "default") is not None
    assert store.get("Pod", "a", "default") is None
    assert lines[0] == "node/n1 cordoned"
    assert lines[-1] == "node/n1 drained"
