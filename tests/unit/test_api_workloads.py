"""Deployment and ReplicaSet defaulting and validation."""

import copy

import pytest

from orchestrator.api import normalize, resolve_int_or_percent
from orchestrator.errors import ValidationError

NOW = "2026-01-02T03:04:05Z"


def deployment(kind="Deployment", **spec):
    base = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}},
    }
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web"}, "spec": base}


TEMPLATE_SPEC = {
    "containers": [{"name": "nginx", "image": "nginx:1.25", "resources": {},
                    "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File"}],
    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
    "terminationGracePeriodSeconds": 30, "securityContext": {},
}


def test_deployment_defaults_golden():
    out = normalize(deployment(), now=NOW)
    assert out == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": NOW,
                     "generation": 1},
        "spec": {
            "replicas": 1, "minReadySeconds": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": TEMPLATE_SPEC},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
        },
    }


def test_replicaset_defaults_golden():
    out = normalize(deployment("ReplicaSet"), now=NOW)
    assert out == {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": NOW,
                     "generation": 1},
        "spec": {
            "replicas": 1, "minReadySeconds": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": TEMPLATE_SPEC},
        },
    }


def test_status_dropped_on_create():
    obj = deployment()
    obj["status"] = {"replicas": 3}
    assert "status" not in normalize(obj, now=NOW)
    assert normalize(obj, now=NOW, keep_status=True)["status"] == {"replicas": 3}


def test_explicit_values_kept():
    obj = deployment(replicas=0, minReadySeconds=5, revisionHistoryLimit=0,
                     strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    out = normalize(obj, now=NOW)["spec"]
    assert (out["replicas"], out["minReadySeconds"], out["revisionHistoryLimit"]) == (0, 5, 0)
    assert out["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "25%"}
    recreate = normalize(deployment(strategy={"type": "Recreate"}), now=NOW)["spec"]
    assert recreate["strategy"] == {"type": "Recreate"}


def test_match_expressions_selector():
    obj = deployment(selector={"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["web", "api"]},
        {"key": "legacy", "operator": "DoesNotExist"}]})
    assert normalize(obj, now=NOW)["spec"]["selector"]["matchExpressions"][0]["values"] == \
        ["web", "api"]


def _without_template_labels():
    obj = deployment()
    obj["spec"]["template"]["metadata"] = {}
    return obj


T = "spec.template.spec"


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
@pytest.mark.parametrize("spec,field,fragment", [
    ({"replicas": -1}, "spec.replicas", "greater than or equal to 0"),
    ({"replicas": "3"}, "spec.replicas", "integer"),
    ({"replicas": True}, "spec.replicas", "integer"),
    ({"selector": None}, "spec.selector", "Required"),
    ({"selector": {}}, "spec.selector", "empty selector"),
    ({"selector": {"matchLabels": {"app": "db"}}}, "spec.template.metadata.labels",
     "selector does not match template labels"),
    ({"selector": {"matchExpressions": [{"key": "app", "operator": "NotIn",
                                         "values": ["web"]}]}},
     "spec.template.metadata.labels", "selector does not match template labels"),
    ({"selector": {"matchExpressions": [{"key": "app", "operator": "Exists",
                                         "values": ["web"]}]}},
     "spec.selector.matchExpressions[0].values", "may not be specified"),
    ({"template": None}, "spec.template", "Required"),
    ({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
        {"name": "c", "image": "x", "ports": [{"containerPort": 0}]}]}}},
     f"{T}.containers[0].ports[0].containerPort", "greater than or equal to 1"),
    ({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}},
     f"{T}.containers", "at least one"),
    ({"template": {"metadata": {"labels": {"app": "web"}},
                   "spec": {"restartPolicy": "OnFailure",
                            "containers": [{"name": "c", "image": "x"}]}}},
     f"{T}.restartPolicy", 'supported values: "Always"'),
    ({"template": {"metadata": {"labels": {"app": "web", "bad": "a b"}},
                   "spec": {"containers": [{"name": "c", "image": "x"}]}}},
     "spec.template.metadata.labels[bad]", "valid label"),
    ({"template": {"metadata": {"labels": {"app": "web"}}, "spce": {}}},
     "spec.template.spce", "unknown field"),
    ({"replica": 3}, "spec.replica", "unknown field"),
])
def test_workload_errors(kind, spec, field, fragment):
    obj = deployment(kind, **spec)
    with pytest.raises(ValidationError) as exc:
        normalize(obj, now=NOW, source="w.yaml", index=1)
    err = exc.value
    assert err.field == field, str(err)
    assert fragment in err.message, str(err)
    assert (err.source, err.index, err.obj) == ("w.yaml", 1, f"{kind} default/web")


def test_template_without_labels_does_not_match():
    with pytest.raises(ValidationError) as exc:
        normalize(_without_template_labels(), now=NOW)
    assert exc.value.field == "spec.template.metadata.labels"


@pytest.mark.parametrize("strategy,field,fragment", [
    ({"type": "BlueGreen"}, "spec.strategy.type", "Unsupported value"),
    ({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}, "spec.strategy.rollingUpdate",
     "Recreate"),
    ({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}},
     "spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when `maxSurge` is 0"),
    ({"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": 0}},
     "spec.strategy.rollingUpdate.maxUnavailable", "may not be 0"),
    ({"rollingUpdate": {"maxUnavailable": "110%"}},
     "spec.strategy.rollingUpdate.maxUnavailable", "100%"),
    ({"rollingUpdate": {"maxSurge": "ten"}}, "spec.strategy.rollingUpdate.maxSurge",
     "percent"),
    ({"rollingUpdate": {"maxSurge": -1}}, "spec.strategy.rollingUpdate.maxSurge",
     "greater than or equal to 0"),
    ({"rollingUpdate": {"maxsurge": 1}}, "spec.strategy.rollingUpdate.maxsurge",
     "unknown field"),
])
def test_strategy_errors(strategy, field, fragment):
    with pytest.raises(ValidationError) as exc:
        normalize(deployment(strategy=strategy), now=NOW)
    assert exc.value.field == field and fragment in exc.value.message, str(exc.value)


def test_deployment_only_fields():
    with pytest.raises(ValidationError) as exc:
        normalize(deployment("ReplicaSet", strategy={"type": "Recreate"}), now=NOW)
    assert exc.value.field == "spec.strategy"
    with pytest.raises(ValidationError) as exc:
        normalize(deployment(progressDeadlineSeconds=5, minReadySeconds=10), now=NOW)
    assert exc.value.field == "spec.progressDeadlineSeconds"


def test_input_not_modified():
    obj = deployment()
    before = copy.deepcopy(obj)
    normalize(obj, now=NOW)
    assert obj == before


@pytest.mark.parametrize("value,total,up,expected", [
    ("25%", 3, True, 1), ("25%", 3, False, 0), ("25%", 4, False, 1), (2, 10, True, 2),
    ("100%", 7, False, 7), ("0%", 9, True, 0), ("34%", 10, True, 4),
])
def test_resolve_int_or_percent(value, total, up, expected):
    assert resolve_int_or_percent(value, total, round_up=up) == expected
