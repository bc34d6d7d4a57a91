"""Workload controllers on a real three-node cluster: StatefulSet order and names, DaemonSet
placement, Jobs that succeed or fail by exit code, a paced rolling update and its undo."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from orchestrator.cli import workloads_cmd
from orchestrator.controllers import deployment, job
from orchestrator.controllers.common import is_deleting, pod_ready

pytestmark = [pytest.mark.root, pytest.mark.mininet]


def until(fn, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def pods(tb, ns):
    return {p["metadata"]["name"]: p for p in tb.store.list("Pod", ns)}


STS = """
apiVersion: v1
kind: Namespace
metadata: {name: wl-sts}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: wl-sts}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: agnhost, ports: [{containerPort: 80}]}]
"""


def test_statefulset_starts_in_order_with_stable_names_and_scales_down_in_reverse(three_node):
    tb = three_node
    tb.apply(STS)

    def all_ready():
        ps = pods(tb, "wl-sts")
        return len(ps) == 3 and all(pod_ready(p) for p in ps.values()) and ps
    ps = until(all_ready, what="3 ready StatefulSet pods")
    assert sorted(ps) == ["db-0", "db-1", "db-2"]
    for i in (1, 2):
        prev = next(c for c in ps[f"db-{i - 1}"]["status"]["conditions"] if c["type"] == "Ready")
        # Pod N+1 is created only once pod N is Ready (RFC 3339 seconds compare as text).
        assert ps[f"db-{i}"]["metadata"]["creationTimestamp"] >= prev["lastTransitionTime"]
    assert ps["db-1"]["spec"]["hostname"] == "db-1" and ps["db-1"]["spec"]["subdomain"] == "db"

    rv = tb.store.current_rv()
    tb.store.patch("StatefulSet", "db", "wl-sts", lambda o: o["spec"].__setitem__("replicas", 1))
    until(lambda: sorted(pods(tb, "wl-sts")) == ["db-0"], what="scale down to db-0")
    events = [e for e in tb.store.events(rv) if e.kind == "Pod"]
    gone2 = next(e.rv for e in events if e.name == "db-2" and e.type == "DELETED")
    marked1 = next(e.rv for e in events if e.name == "db-1" and is_deleting(e.obj))
    assert gone2 < marked1  # db-1 is only touched once db-2 is gone
    tb.delete("Namespace", "wl-sts")


DS = """
apiVersion: v1
kind: Namespace
metadata: {name: wl-ds}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: wl-ds}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: agnhost}]
"""


def test_daemonset_runs_one_pod_per_schedulable_node(three_node):
    tb = three_node
    tb.apply(DS)
    schedulable = sorted(n["metadata"]["name"] for n in tb.store.list("Node")
                         if not n["spec"].get("unschedulable"))
    ps = until(lambda: (lambda ps: len(ps) == len(schedulable)
                        and all(pod_ready(p) for p in ps) and ps)(
        list(pods(tb, "wl-ds").values())), what="one ready pod per node")
    assert sorted(p["spec"]["nodeName"] for p in ps) == schedulable
    st = until(lambda: (lambda st: st.get("numberReady") == len(schedulable) and st)(
        tb.get("DaemonSet", "wl-ds/agent").get("status") or {}), what="DaemonSet status")
    assert st["desiredNumberScheduled"] == len(schedulable)
    tb.delete("Namespace", "wl-ds")


JOBS = """
apiVersion: v1
kind: Namespace
metadata: {name: wl-job}
---
apiVersion: batch/v1
kind: Job
metadata: {name: ok, namespace: wl-job}
spec:
  completions: 3
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["sh", "-c", "exit 0"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: bad, namespace: wl-job}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["sh", "-c", "exit 1"]}]
"""


def test_jobs_complete_or_fail_by_exit_code(three_node):
    tb = three_node
    tb.apply(JOBS)
    ok = until(lambda: (lambda j: job.finished(j) and j)(tb.get("Job", "wl-job/ok")),
               what="Job ok to finish")
    assert job.finished(ok) == "Complete" and ok["status"]["succeeded"] == 3
    bad = until(lambda: (lambda j: job.finished(j) and j)(tb.get("Job", "wl-job/bad")),
                what="Job bad to finish")
    assert job.finished(bad) == "Failed"
    assert bad["status"]["conditions"][0]["reason"] == "BackoffLimitExceeded"
    assert bad["status"]["failed"] == 2  # the first try and one retry
    phases = sorted(p["status"]["phase"] for p in pods(tb, "wl-job").values()
                    if p["metadata"]["labels"]["job-name"] == "bad")
    assert phases == ["Failed", "Failed"]
    tb.delete("Namespace", "wl-job")


CRON = """
apiVersion: v1
kind: Namespace
metadata: {name: wl-cron}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick, namespace: wl-cron}
spec:
  schedule: "* * * * *"
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox, command: ["sh", "-c", "exit 0"]}]
"""


@pytest.mark.slow
def test_cronjob_fires_on_the_testbed_clock_and_its_job_completes(three_node):
    from orchestrator.controllers import cronjob
    tb = three_node
    tb.apply(CRON)
    try:
        # The next minute boundary after creation: at most ~60 s away.
        done = until(lambda: [j for j in tb.store.list("Job", "wl-cron")
                              if job.finished(j) == "Complete"], timeout=80,
                     what="the CronJob's first Job to complete")
        j = done[0]
        cj = tb.get("CronJob", "wl-cron/tick")
        assert j["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]
        scheduled = j["metadata"]["annotations"][cronjob.SCHEDULED_ANNOTATION]
        assert scheduled.endswith(":00Z")                    # on a minute boundary
        assert j["metadata"]["name"].startswith("tick-")
        ps = [p for p in pods(tb, "wl-cron").values()
              if p["metadata"]["labels"].get("job-name") == j["metadata"]["name"]]
        assert ps and all(p["status"]["phase"] == "Succeeded" for p in ps)
        st = until(lambda: (lambda c: c.get("status", {}).get("lastSuccessfulTime") and c)(
            tb.get("CronJob", "wl-cron/tick")), timeout=10, what="CronJob status")["status"]
        assert st["lastScheduleTime"] == scheduled
    finally:
        tb.delete("Namespace", "wl-cron")
    until(lambda: not tb.store.list("Job", "wl-cron") and not tb.store.list("Pod", "wl-cron"),
          timeout=30, what="the namespace's Jobs and pods to go")


DEP = """
apiVersion: v1
kind: Namespace
metadata: {name: wl-dep}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: wl-dep
  annotations: {kubernetes.io/change-cause: v1}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: agnhost
        env: [{name: VERSION, value: v1}]
"""


def _version(pod):
    return pod["spec"]["containers"][0]["env"][0]["value"]


def _roll_and_sample(tb, edit):
    tb.store.patch("Deployment", "web", "wl-dep", edit)
    samples = []

    def done():
        live = [p for p in pods(tb, "wl-dep").values() if not is_deleting(p)]
        samples.append(sum(1 for p in live if pod_ready(p)))
        return deployment.rollout_status(tb.get("Deployment", "wl-dep/web"))[0]
    until(done, what="rollout")
    return samples


def test_rolling_update_keeps_availability_and_undo_restores_the_template(three_node):
    tb = three_node
    tb.apply(DEP)
    until(lambda: deployment.rollout_status(tb.get("Deployment", "wl-dep/web"))[0],
          what="first rollout")

    def v2(o):
        o["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "v2"
        o["metadata"]["annotations"]["kubernetes.io/change-cause"] = "v2"
    samples = _roll_and_sample(tb, v2)
    # 25% of 4: maxUnavailable 1, so at least 3 ready pods at every sample.
    assert min(samples) >= 3, samples
    until(lambda: sorted(map(_version, pods(tb, "wl-dep").values())) == ["v2"] * 4,
          what="old pods to go")
    ctx = SimpleNamespace(store=tb.store, live=True)
    assert workloads_cmd.rollout_history(ctx, "deploy/web", namespace="wl-dep").splitlines()[2:] \
        == ["1         v1", "2         v2"]
    assert workloads_cmd.rollout_undo(ctx, "deploy/web", namespace="wl-dep") == \
        "deployment.apps/web rolled back"
    samples = []

    def back():
        live = [p for p in pods(tb, "wl-dep").values() if not is_deleting(p)]
        samples.append(sum(1 for p in live if pod_ready(p)))
        return sorted(map(_version, pods(tb, "wl-dep").values())) == ["v1"] * 4 and \
            deployment.rollout_status(tb.get("Deployment", "wl-dep/web"))[0]
    until(back, what="undo rollout")
    assert min(samples) >= 3, samples
    assert workloads_cmd.rollout_status(ctx, "deploy/web", namespace="wl-dep",
                                        out=lambda s: None) == 0
    tb.delete("Namespace", "wl-dep")
