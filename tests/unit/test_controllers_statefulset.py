"""StatefulSet controller against a real store (no root); the test plays the kubelet by
marking pods Running and Ready."""

from __future__ import annotations

import pytest

from orchestrator.api.normalize import normalize
from orchestrator.control.store import Store
from orchestrator.controllers import garbage, statefulset
from orchestrator.controllers.common import controller_uid
from orchestrator.errors import ValidationError

NOW = "2026-01-01T00:00:00Z"


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    yield s
    s.close()


def make_sts(replicas=3, **spec):
    obj = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"replicas": replicas, "serviceName": "nginx",
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "agnhost"}]}},
                    **spec}}
    return normalize(obj, now=NOW)


class Cluster:
    """Deletes are deferred one pass (like a kubelet tearing the sandbox down), so ordered
    deletion is observable."""

    def __init__(self, store):
        self.store = store
        self.deleting: list[dict] = []

    def mark(self, pod):
        self.store.patch("Pod", pod["metadata"]["name"], pod["metadata"]["namespace"],
                         lambda o: o["metadata"].__setitem__("deletionTimestamp", NOW))
        self.deleting.append(pod)

    def step(self):
        """One controller pass, then the 'kubelet' removes pods marked before it."""
        gone, self.deleting = self.deleting, []
        for p in gone:
            self.store.delete("Pod", p["metadata"]["name"], "default")
        garbage.reconcile(self.store, NOW, mark_deleted=self.mark)
        statefulset.reconcile(self.store, NOW, mark_deleted=self.mark)

    def ready(self, *names):
        for p in self.store.list("Pod"):
            if not names or p["metadata"]["name"] in names:
                self.store.update_status("Pod", p["metadata"]["name"], "default", {
                    "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})

    def names(self, deleting=False):
        return sorted(p["metadata"]["name"] for p in self.store.list("Pod")
                      if deleting or not p["metadata"].get("deletionTimestamp"))


def test_service_name_is_required():
    obj = make_sts()
    del obj["spec"]["serviceName"]
    with pytest.raises(ValidationError) as exc:
        normalize(obj, now=NOW)
    assert exc.value.field == "spec.serviceName" and "Required value" in str(exc.value)


def test_defaults():
    spec = make_sts()["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate",
                                      "rollingUpdate": {"partition": 0}}


def test_ordered_start_with_stable_names(store):
    sts = store.create(make_sts(3))
    c = Cluster(store)
    c.step()
    c.step()
    assert c.names() == ["web-0"]  # web-1 waits for web-0 to be Ready
    c.ready("web-0")
    c.step()
    c.step()
    assert c.names() == ["web-0", "web-1"]
    c.ready()
    c.step()
    c.ready()
    c.step()
    assert c.names() == ["web-0", "web-1", "web-2"]
    p = store.get("Pod", "web-2", "default")
    assert p["spec"]["hostname"] == "web-2" and p["spec"]["subdomain"] == "nginx"
    labels = p["metadata"]["labels"]
    assert labels["app"] == "web"
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-2"
    assert labels["apps.kubernetes.io/pod-index"] == "2"
    assert labels["controller-revision-hash"].startswith("web-")
    assert controller_uid(p) == sts["metadata"]["uid"]
    st = store.get("StatefulSet", "web", "default")["status"]
    assert (st["replicas"], st["readyReplicas"], st["updatedReplicas"]) == (3, 3, 3)
    assert st["currentRevision"] == st["updateRevision"]


def test_failed_pod_is_recreated_under_the_same_name(store):
    store.create(make_sts(1))
    c = Cluster(store)
    c.step()
    uid = store.get("Pod", "web-0", "default")["metadata"]["uid"]
    store.update_status("Pod", "web-0", "default", {"phase": "Failed"})
    for _ in range(3):
        c.step()
    p = store.get("Pod", "web-0", "default")
    assert p["metadata"]["uid"] != uid


def grow(c, n):
    for _ in range(2 * n + 2):
        c.ready()
        c.step()


def test_scale_down_deletes_highest_ordinal_first_one_at_a_time(store):
    store.create(make_sts(3))
    c = Cluster(store)
    grow(c, 3)
    assert c.names() == ["web-0", "web-1", "web-2"]
    store.patch("StatefulSet", "web", "default", lambda o: o["spec"].__setitem__("replicas", 1))
    c.step()
    assert c.names() == ["web-0", "web-1"]  # web-2 terminating
    assert c.names(deleting=True) == ["web-0", "web-1", "web-2"]
    c.step()  # web-2 is gone now; only then web-1 goes
    assert c.names() == ["web-0"]
    c.step()
    c.step()
    assert c.names(deleting=True) == ["web-0"]


def test_parallel_policy_creates_all_at_once(store):
    store.create(make_sts(3, podManagementPolicy="Parallel"))
    c = Cluster(store)
    c.step()
    assert c.names() == ["web-0", "web-1", "web-2"]


def test_rolling_update_replaces_from_the_highest_ordinal(store):
    store.create(make_sts(3))
    c = Cluster(store)
    grow(c, 3)
    old_rev = store.get("Pod", "web-0", "default")["metadata"]["labels"][
        "controller-revision-hash"]

    def new_image(o):
        o["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx"
    store.patch("StatefulSet", "web", "default", new_image)
    c.step()
    assert c.names() == ["web-0", "web-1"]  # web-2 replaced first
    order = []
    for _ in range(12):
        c.ready()
        c.step()
        for p in store.list("Pod"):
            rev = p["metadata"]["labels"]["controller-revision-hash"]
            if rev != old_rev and p["metadata"]["name"] not in order:
                order.append(p["metadata"]["name"])
    assert order == ["web-2", "web-1", "web-0"]
    assert {p["spec"]["containers"][0]["image"] for p in store.list("Pod")} == {"nginx"}
    st = store.get("StatefulSet", "web", "default")["status"]
    assert st["currentRevision"] == st["updateRevision"] != old_rev


def test_deleting_the_set_collects_its_pods(store):
    store.create(make_sts(2, podManagementPolicy="Parallel"))
    c = Cluster(store)
    c.step()
    store.delete("StatefulSet", "web", "default")
    c.step()
    c.step()
    assert c.names(deleting=True) == []


def test_volume_claim_templates_are_a_clear_error():
    obj = make_sts()
    obj["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}}]
    with pytest.raises(ValidationError) as exc:
        normalize(obj, now=NOW)
    assert exc.value.field == "spec.volumeClaimTemplates"
