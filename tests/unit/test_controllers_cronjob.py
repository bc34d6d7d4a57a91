"""CronJob controller against a real store on a hand-driven clock (no root)."""

from __future__ import annotations

import pytest

from orchestrator.api.normalize import normalize
from orchestrator.control.store import Store
from orchestrator.controllers import cronjob, garbage
from orchestrator.controllers.common import controller_uid
from orchestrator.errors import ValidationError

CREATED = "2026-01-01T00:00:00Z"
# 2026-01-01T00:00:00Z is 1767225600 s = 29453760 min after the epoch (20454 days).
EPOCH_MIN = 29453760


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"), clock=lambda: CREATED)
    yield s
    s.close()


def make_cj(schedule="*/5 * * * *", **spec):
    obj = {"apiVersion": "batch/v1", "kind": "CronJob",
           "metadata": {"name": "tick", "namespace": "default"},
           "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
               "restartPolicy": "Never",
               "containers": [{"name": "c", "image": "busybox",
                               "command": ["sh", "-c", "exit 0"]}]}}}}, **spec}}
    return normalize(obj, now=CREATED)


def at(minute: int, second: int = 0) -> str:
    return f"2026-01-01T00:{minute:02d}:{second:02d}Z"


def run(store, now):
    def mark(pod):
        store.delete("Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])
    for _ in range(5):
        wrote = garbage.reconcile(store, now, mark_deleted=mark)
        wrote |= cronjob.reconcile(store, now)
        if not wrote:
            break


def jobs(store):
    return sorted(j["metadata"]["name"] for j in store.list("Job"))


def end_job(store, name, ctype):
    store.update_status("Job", name, "default", {
        "conditions": [{"type": ctype, "status": "True"}],
        **({"completionTime": "2026-01-01T00:59:00Z"} if ctype == "Complete" else {})})


def test_invalid_schedule_is_a_clear_error_on_spec_schedule():
    with pytest.raises(ValidationError) as exc:
        make_cj("*/5 * * *")
    assert exc.value.field == "spec.schedule" and "expected exactly 5 fields" in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        make_cj("0 0 * * *", timeZone="Mars/Olympus")
    assert exc.value.field == "spec.timeZone"


def test_defaults():
    spec = make_cj()["spec"]
    assert spec["concurrencyPolicy"] == "Allow" and spec["suspend"] is False
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 6


def test_creates_a_job_when_the_schedule_fires(store):
    cj = store.create(make_cj())
    run(store, at(4, 59))
    assert jobs(store) == []
    run(store, at(5))
    assert jobs(store) == [f"tick-{EPOCH_MIN + 5}"]
    job = store.list("Job")[0]
    assert controller_uid(job) == cj["metadata"]["uid"]
    assert job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] \
        == at(5)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["sh", "-c", "exit 0"]
    st = store.get("CronJob", "tick", "default")["status"]
    assert st["lastScheduleTime"] == at(5)
    assert [a["name"] for a in st["active"]] == [f"tick-{EPOCH_MIN + 5}"]
    run(store, at(7))
    assert len(jobs(store)) == 1  # idempotent until the next fire time


def test_only_the_most_recent_missed_run_starts(store):
    store.create(make_cj())
    run(store, at(17))
    assert jobs(store) == [f"tick-{EPOCH_MIN + 15}"]


def test_starting_deadline_skips_late_runs(store):
    store.create(make_cj(startingDeadlineSeconds=30))
    run(store, at(5, 31))
    assert jobs(store) == []
    run(store, at(10, 10))
    assert jobs(store) == [f"tick-{EPOCH_MIN + 10}"]


def test_forbid_skips_while_a_job_is_active(store):
    store.create(make_cj(concurrencyPolicy="Forbid"))
    run(store, at(5))
    run(store, at(10))
    assert jobs(store) == [f"tick-{EPOCH_MIN + 5}"]
    end_job(store, f"tick-{EPOCH_MIN + 5}", "Complete")
    run(store, at(11))  # the skipped 00:10 run happens once the first one ended
    assert jobs(store) == [f"tick-{EPOCH_MIN + 5}", f"tick-{EPOCH_MIN + 10}"]
    st = store.get("CronJob", "tick", "default")["status"]
    assert st["lastSuccessfulTime"] == "2026-01-01T00:59:00Z"


def test_replace_deletes_the_active_job(store):
    store.create(make_cj(concurrencyPolicy="Replace"))
    run(store, at(5))
    run(store, at(10))
    assert jobs(store) == [f"tick-{EPOCH_MIN + 10}"]


def test_allow_runs_side_by_side(store):
    store.create(make_cj())
    run(store, at(5))
    run(store, at(10))
    assert len(jobs(store)) == 2


def test_history_limits_keep_newest_finished_jobs(store):
    store.create(make_cj(successfulJobsHistoryLimit=2, failedJobsHistoryLimit=1))
    for m in (5, 10, 15, 20, 25):
        run(store, at(m))
        end_job(store, f"tick-{EPOCH_MIN + m}", "Failed" if m in (5, 10) else "Complete")
    run(store, at(26))
    assert jobs(store) == [f"tick-{EPOCH_MIN + m}" for m in (10, 20, 25)]


def test_suspend_stops_new_runs(store):
    store.create(make_cj(suspend=True))
    run(store, at(30))
    assert jobs(store) == []


def test_deleting_the_cronjob_collects_its_jobs(store):
    store.create(make_cj())
    run(store, at(5))
    store.delete("CronJob", "tick", "default")
    run(store, at(6))
    assert jobs(store) == []
