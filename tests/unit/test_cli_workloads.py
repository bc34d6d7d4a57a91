"""`calinet rollout` / `calinet scale` verbs and the sts/ds/job/cronjob tables, against a real
store (no root, no running testbed). Expected text follows kubectl's output."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator.api.normalize import normalize
from orchestrator.cli import workloads_cmd as wl
from orchestrator.cli.main import _parser
from orchestrator.control.store import Store
from orchestrator.controllers import deployment, replicaset
from orchestrator.errors import CalinetError, NotFound
from orchestrator.present import printers

NOW = "2026-01-01T00:00:00Z"


@pytest.fixture
def ctx(tmp_path):
    s = Store(str(tmp_path / "s.db"), clock=lambda: NOW)
    yield SimpleNamespace(store=s, live=False)
    s.close()


def dep(cause):
    return normalize({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": "web", "namespace": "default",
                                   "annotations": {"kubernetes.io/change-cause": cause}},
                      "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                               "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                                   "containers": [{"name": "c", "image": "v1"}]}}}}, now=NOW)


def settle(store):
    for _ in range(6):
        deployment.reconcile(store, NOW)
        replicaset.reconcile(store, NOW, mark_deleted=lambda p: store.delete(
            "Pod", p["metadata"]["name"], "default"))
        for p in store.list("Pod"):
            store.update_status("Pod", p["metadata"]["name"], "default", {
                "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})


def test_parser_accepts_the_new_verbs():
    a = _parser().parse_args(["rollout", "undo", "deploy/web", "--to-revision", "2"])
    assert (a.action, a.target, a.to_revision) == ("undo", "deploy/web", 2)
    a = _parser().parse_args(["scale", "sts", "db", "--replicas", "5", "-n", "x"])
    assert (a.kind, a.name, a.replicas, a.namespace) == ("sts", "db", 5, "x")


def test_history_undo_and_status(ctx):
    ctx.store.create(dep("create v1"))
    settle(ctx.store)

    def v2(o):
        o["spec"]["template"]["spec"]["containers"][0]["image"] = "v2"
        o["metadata"]["annotations"]["kubernetes.io/change-cause"] = "set image v2"
    ctx.store.patch("Deployment", "web", "default", v2)
    settle(ctx.store)
    assert wl.rollout_history(ctx, "deploy/web") == (
        "deployment.apps/web \n"
        "REVISION  CHANGE-CAUSE\n"
        "1         create v1\n"
        "2         set image v2\n")
    lines = []
    assert wl.rollout_status(ctx, "deployment/web", out=lines.append) == 0
    assert lines == ['deployment "web" successfully rolled out']
    assert wl.rollout_undo(ctx, "deploy/web") == "deployment.apps/web rolled back"
    lines = []
    assert wl.rollout_status(ctx, "deploy/web", out=lines.append) == 1  # not live: no wait
    assert lines == ["Waiting for deployment spec update to be observed..."]
    settle(ctx.store)
    img = ctx.store.get("Deployment", "web", "default")["spec"]["template"]["spec"]
    assert img["containers"][0]["image"] == "v1"


def test_rollout_rejects_other_kinds_and_missing_objects(ctx):
    with pytest.raises(CalinetError, match="deployments only"):
        wl.rollout_history(ctx, "sts/db")
    with pytest.raises(NotFound):
        wl.rollout_history(ctx, "deploy/nope")


def test_scale(ctx):
    ctx.store.create(dep("x"))
    assert wl.scale(ctx, "deploy", "web", 3) == "deployment.apps/web scaled"
    assert ctx.store.get("Deployment", "web", "default")["spec"]["replicas"] == 3
    assert wl.scale(ctx, "deployment/web", None, 0) == "deployment.apps/web scaled"
    with pytest.raises(CalinetError, match="cannot scale daemonsets"):
        wl.scale(ctx, "ds", "agent", 1)
    with pytest.raises(NotFound):
        wl.scale(ctx, "sts", "db", 1)


def test_tables():
    sts = {"metadata": {"name": "db", "creationTimestamp": NOW},
           "spec": {"replicas": 3}, "status": {"readyReplicas": 2}}
    assert printers.table("sts", [sts], now="2026-01-01T00:01:00Z") == (
        "NAME   READY   AGE\n"
        "db     2/3     60s\n")
    ds = {"metadata": {"name": "agent", "creationTimestamp": NOW},
          "spec": {"template": {"spec": {"nodeSelector": {"role": "edge"}}}},
          "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                     "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}}
    assert printers.table("ds", [ds], now=NOW) == (
        "NAME    DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR   AGE\n"
        "agent   3         3         2       3            2           role=edge       0s\n")
    job = {"metadata": {"name": "pi", "creationTimestamp": NOW},
           "spec": {"completions": 3, "parallelism": 1},
           "status": {"succeeded": 3, "startTime": NOW, "completionTime": "2026-01-01T00:00:12Z",
                      "conditions": [{"type": "Complete", "status": "True"}]}}
    assert printers.table("job", [job], now="2026-01-01T00:05:00Z") == (
        "NAME   STATUS     COMPLETIONS   DURATION   AGE\n"
        "pi     Complete   3/3           12s        5m\n")
    cj = {"metadata": {"name": "tick", "creationTimestamp": NOW},
          "spec": {"schedule": "*/5 * * * *", "suspend": False},
          "status": {"lastScheduleTime": "2026-01-01T00:05:00Z", "active": [{"name": "x"}]}}
    assert printers.table("cj", [cj], now="2026-01-01T00:06:00Z") == (
        "NAME   SCHEDULE      TIMEZONE   SUSPEND   ACTIVE   LAST SCHEDULE   AGE\n"
        "tick   */5 * * * *   <none>     False     1        60s             6m\n")
