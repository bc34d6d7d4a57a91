"""Deployment / ReplicaSet / garbage-collector controllers against a real store (no root)."""

from __future__ import annotations

import pytest

from orchestrator.control.store import Store
from orchestrator.controllers import deployment, garbage, replicaset
from orchestrator.controllers.common import controller_uid

NOW = "2026-01-01T00:00:00Z"


def dep(replicas=3, image="agnhost"):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    yield s
    s.close()


def run(store, rounds=5):
    deleted = []

    def mark(pod):
        deleted.append(pod["metadata"]["name"])
        store.delete("Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])

    for _ in range(rounds):
        wrote = garbage.reconcile(store, NOW, mark_deleted=mark)
        wrote |= deployment.reconcile(store, NOW)
        wrote |= replicaset.reconcile(store, NOW, mark_deleted=mark)
        if not wrote:
            break
    return deleted


def test_deployment_creates_replicaset_and_pods(store):
    d = store.create(dep(3))
    run(store)
    rss = store.list("ReplicaSet")
    assert len(rss) == 1
    rs = rss[0]
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert controller_uid(rs) == d["metadata"]["uid"]
    pods = store.list("Pod")
    assert len(pods) == 3
    for p in pods:
        assert p["metadata"]["name"].startswith(f"web-{h}-")
        assert len(p["metadata"]["name"]) == len(f"web-{h}-") + 5
        assert p["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
        assert controller_uid(p) == rs["metadata"]["uid"]
    assert store.get("Deployment", "web", "default")["status"]["replicas"] == 3


def test_scale_down_removes_surplus_and_scale_up_adds(store):
    store.create(dep(5))
    run(store)
    d = store.get("Deployment", "web", "default")
    d["spec"]["replicas"] = 2
    store.update(d)
    deleted = run(store)
    assert len(deleted) == 3
    assert len(store.list("Pod")) == 2
    d = store.get("Deployment", "web", "default")
    d["spec"]["replicas"] = 4
    store.update(d)
    run(store)
    assert len(store.list("Pod")) == 4


def test_template_change_makes_new_replicaset_and_retires_old(store):
    store.create(dep(2))
    run(store)
    d = store.get("Deployment", "web", "default")
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx"
    store.update(d)
    # A rolling update only retires old pods once new ones are ready: play the kubelet.
    for _ in range(10):
        run(store)
        for p in store.list("Pod"):
            store.update_status("Pod", p["metadata"]["name"], "default", {
                "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})
    run(store)
    rss = sorted(store.list("ReplicaSet"), key=lambda r: r["metadata"]["annotations"]
                 ["deployment.kubernetes.io/revision"])
    assert [r["spec"]["replicas"] for r in rss] == [0, 2]
    assert {p["spec"]["containers"][0]["image"] for p in store.list("Pod")} == {"nginx"}


def test_garbage_collector_follows_owner_deletion(store):
    store.create(dep(2))
    run(store)
    store.delete("Deployment", "web", "default")
    run(store)
    assert store.list("ReplicaSet") == [] and store.list("Pod") == []


def test_namespace_deletion_empties_it_first(store):
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    d = dep(2)
    d["metadata"]["namespace"] = "x"
    store.create(d)
    run(store)
    ns = store.get("Namespace", "x")
    ns["metadata"]["deletionTimestamp"] = NOW
    store.update(ns)
    others = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "x"},
         "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.20",
                  "ports": [{"port": 80}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "deny", "namespace": "x"}, "spec": {"podSelector": {}}},
        {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
         "metadata": {"name": "cdeny", "namespace": "x"}, "spec": {"selector": "all()"}},
    ]
    for o in others:
        store.create(o)
    keep = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web",
                                                                  "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    store.create(keep)
    run(store)
    assert store.get("Namespace", "x") is None
    from orchestrator.api.kinds import KINDS
    left = {k: store.list(k, "x") for k, info in KINDS.items() if info.namespaced}
    assert not any(left.values()), left
    assert store.get("Service", "web", "default") is not None   # other namespaces untouched


class StaleLists:
    """A store whose list() of one kind returns a snapshot taken earlier (a controller that
    read before a user's write landed); everything else is the real store."""

    def __init__(self, store, kind):
        self._store, self._kind = store, kind
        self._snapshot = store.list(kind)

    def list(self, kind, namespace=None):
        if kind == self._kind:
            return [o for o in self._snapshot
                    if namespace is None or o["metadata"].get("namespace") == namespace]
        return self._store.list(kind, namespace)

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_controller_status_write_keeps_a_concurrent_scale(store):
    store.create(dep(3))
    run(store)
    stale = StaleLists(store, "Deployment")
    d = store.get("Deployment", "web", "default")
    d["spec"]["replicas"] = 7
    d["metadata"]["labels"]["touched"] = "yes"
    store.update(d)
    deployment.reconcile(stale, NOW)
    after = store.get("Deployment", "web", "default")
    assert after["spec"]["replicas"] == 7 and after["metadata"]["labels"]["touched"] == "yes"


def test_kubelet_status_write_keeps_a_concurrent_delete(store):
    from orchestrator.node.kubelet import Kubelet, NodeRef
    pod = store.create({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "p", "namespace": "default"},
                        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}})
    kubelet = Kubelet(NodeRef("n1", 1, "172.18.0.2"), "ab12", store=store, ipam=None,
                      cni=None, runtime=None, ledger=None)
    marked = store.get("Pod", "p", "default")
    marked["metadata"]["deletionTimestamp"] = NOW
    store.update(marked)
    assert kubelet._write_statuses([pod], NOW)  # `pod` is the copy read before the delete
    assert not kubelet._write_statuses([store.get("Pod", "p", "default")], NOW)
    after = store.get("Pod", "p", "default")
    assert after["metadata"]["deletionTimestamp"] == NOW
    assert after["status"]["hostIP"] == "172.18.0.2"


class _CountingRuntime:
    """Just enough of ContainerRuntime for a kubelet's status pass: counts statuses() calls."""

    def __init__(self):
        self.calls, self.gen = 0, 0

    def generation(self, _key):
        return self.gen

    def statuses(self, _key):
        self.calls += 1
        return [{"name": "c", "image": "x", "ready": True, "restartCount": 0, "started": True,
                 "state": {"running": {"startedAt": NOW}}}]


def test_kubelet_asks_the_runtime_again_only_when_something_changed(store):
    from orchestrator.node.cni import SandboxSpec
    from orchestrator.node.kubelet import Kubelet, NodeRef
    store.create({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
                  "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}})
    rt = _CountingRuntime()
    kubelet = Kubelet(NodeRef("n1", 1, "172.18.0.2"), "ab12", store=store, ipam=None,
                      cni=None, runtime=rt, ledger=None)
    kubelet.sandboxes["default/p"] = SandboxSpec("default", "p", "10.244.0.5", "ns", "cali0", 1)
    kubelet.uids["default/p"] = store.get("Pod", "p", "default")["metadata"]["uid"]
    pod = lambda: store.get("Pod", "p", "default")          # noqa: E731
    assert kubelet._write_statuses([pod()], NOW)             # Running with its IP: written
    assert not kubelet._write_statuses([pod()], NOW)         # re-read once: current
    assert rt.calls == 2
    for _ in range(3):
        assert not kubelet._write_statuses([pod()], NOW)
    assert rt.calls == 2                                     # nothing changed: not asked
    rt.gen += 1                                              # e.g. the container exited
    assert not kubelet._write_statuses([pod()], NOW)
    assert rt.calls == 3
    assert store.get("Pod", "p", "default")["status"]["phase"] == "Running"


def test_a_fresh_nodes_first_blackhole_sync_forks_nothing_without_blocks():
    # A node the testbed just made has no blackholes: nothing to read back, nothing to write
    # until it gets a block; a node of unknown history is read first.
    from orchestrator.host.runner import RecordingRunner, Result
    from orchestrator.node.kubelet import Kubelet, NodeRef

    class _IPAM:
        def __init__(self):
            self.blocks = []

        def blocks_for_node(self, node):
            return self.blocks

    class _CNI:
        def __init__(self):
            self.runner = RecordingRunner(responses={("ip", "-j"): Result(0, "[]", "")})

    def kubelet(**kw):
        return Kubelet(NodeRef("n1", 1, "172.18.0.2"), "ab12", store=None, ipam=_IPAM(),
                       cni=_CNI(), runtime=None, ledger=None, **kw)

    def forks(k):
        return [c["argv"][:2] for c in k.cni.runner.calls]
    fresh = kubelet(fresh_node=True)
    fresh._sync_blackholes()
    assert forks(fresh) == []
    fresh.ipam.blocks = ["10.244.1.0/26"]
    fresh._sync_blackholes()
    assert forks(fresh) == [["ip", "-batch"]]
    unknown = kubelet()
    unknown._sync_blackholes()
    assert forks(unknown) == [["ip", "-j"]]
