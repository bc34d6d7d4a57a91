"""Job controller against a real store (no root); the test plays the kubelet by setting pod
phases the way container exit codes would."""

from __future__ import annotations

import pytest

from orchestrator.api.normalize import normalize
from orchestrator.control.store import Store
from orchestrator.controllers import garbage, job
from orchestrator.controllers.common import controller_uid
from orchestrator.errors import ValidationError

NOW = "2026-01-01T00:00:00Z"


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    yield s
    s.close()


def make_job(name="pi", **spec):
    obj = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 0"]}]}},
                    **spec}}
    return normalize(obj, now=NOW)


def run(store, now=NOW, rounds=5):
    def mark(pod):
        store.delete("Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])
    for _ in range(rounds):
        wrote = garbage.reconcile(store, now, mark_deleted=mark)
        wrote |= job.reconcile(store, now, mark_deleted=mark)
        if not wrote:
            break


def pods(store, phase=None):
    return [p for p in store.list("Pod")
            if phase is None or (p.get("status") or {}).get("phase") == phase]


def live(store):
    return [p for p in pods(store)
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


def finish(store, pod, phase):
    store.update_status("Pod", pod["metadata"]["name"], "default", {"phase": phase})


def status(store, name="pi"):
    return store.get("Job", name, "default")["status"]


def test_defaults_follow_batch_v1():
    spec = make_job()["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed" and spec["suspend"] is False


def test_restart_policy_always_is_rejected_naming_the_field():
    obj = make_job()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(ValidationError) as exc:
        normalize(obj, now=NOW)
    assert exc.value.field == "spec.template.spec.restartPolicy"
    assert '"OnFailure", "Never"' in str(exc.value)


def test_completions_three_runs_one_at_a_time_then_complete(store):
    j = store.create(make_job(completions=3))
    for i in range(3):
        run(store)
        active = live(store)
        assert len(active) == 1, f"round {i}"
        p = active[0]
        assert p["metadata"]["name"].startswith("pi-") and len(p["metadata"]["name"]) == 8
        assert p["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "pi"
        assert p["metadata"]["labels"]["job-name"] == "pi"
        assert controller_uid(p) == j["metadata"]["uid"]
        assert status(store)["active"] == 1 and status(store)["succeeded"] == i
        finish(store, p, "Succeeded")
    run(store)
    st = status(store)
    assert st["succeeded"] == 3 and st["failed"] == 0 and "active" not in st
    assert [c["type"] for c in st["conditions"]] == ["Complete"]
    assert st["completionTime"] == NOW and st["startTime"] == NOW
    assert len(pods(store)) == 3  # finished pods are kept, as in Kubernetes
    run(store)
    assert len(pods(store)) == 3  # and no new ones once Complete


def test_parallelism_caps_active_pods_by_remaining_completions(store):
    store.create(make_job(completions=3, parallelism=2))
    run(store)
    assert len(live(store)) == 2
    for p in live(store):
        finish(store, p, "Succeeded")
    run(store)
    assert len(live(store)) == 1  # only one completion missing


def test_failures_past_backoff_limit_fail_the_job(store):
    store.create(make_job(backoffLimit=1))
    run(store)
    finish(store, live(store)[0], "Failed")
    run(store)
    assert status(store)["failed"] == 1 and len(live(store)) == 1  # retried
    finish(store, live(store)[0], "Failed")
    run(store)
    st = status(store)
    assert st["failed"] == 2
    assert st["conditions"][0]["type"] == "Failed"
    assert st["conditions"][0]["reason"] == "BackoffLimitExceeded"
    assert live(store) == []
    run(store)
    assert live(store) == [] and len(pods(store, "Failed")) == 2


def test_on_failure_restarts_count_toward_backoff_limit(store):
    obj = make_job(backoffLimit=2)
    obj["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    store.create(obj)
    run(store)
    p = live(store)[0]
    store.update_status("Pod", p["metadata"]["name"], "default", {
        "phase": "Running", "containerStatuses": [{"name": "c", "restartCount": 3}]})
    run(store)
    st = status(store)
    assert st["conditions"][0]["reason"] == "BackoffLimitExceeded"
    assert pods(store) == []  # the crash-looping pod was deleted
    assert st["failed"] == 3  # and the count stays


def test_active_deadline_fails_the_job(store):
    store.create(make_job(activeDeadlineSeconds=30))
    run(store)
    run(store, now="2026-01-01T00:00:31Z")
    st = status(store)
    assert st["conditions"][0]["reason"] == "DeadlineExceeded" and live(store) == []


def test_suspended_job_runs_nothing(store):
    store.create(make_job(suspend=True))
    run(store)
    assert pods(store) == [] and "startTime" not in status(store)


def test_deleting_the_job_collects_its_pods(store):
    store.create(make_job(completions=2))
    run(store)
    finish(store, live(store)[0], "Succeeded")
    run(store)
    assert len(pods(store)) == 2
    store.delete("Job", "pi", "default")
    run(store)
    assert pods(store) == []
