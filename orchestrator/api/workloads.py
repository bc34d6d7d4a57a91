"""apps/v1 Deployment and ReplicaSet specs: defaulting and validation.

Pure. Follows apps/v1 SetDefaults_* (replicas 1, RollingUpdate 25%/25%, revisionHistoryLimit
10, progressDeadlineSeconds 600) and ValidateDeploymentSpec / ValidateReplicaSetSpec: a
non-empty selector that matches the template's labels, a template restartPolicy of Always.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.api.fields import (
    as_bool,
    as_int,
    as_map,
    check_known,
    child,
    fail,
    guard,
    one_of,
)
from orchestrator.api.kinds import KINDS
from orchestrator.api.labels import (
    label_selector_matches,
    selector_is_empty,
    validate_label_selector,
)
from orchestrator.api.meta import normalize_metadata
from orchestrator.api.pod import normalize_pod_spec

DEPLOYMENT_SPEC_FIELDS = frozenset({"minReadySeconds", "paused", "progressDeadlineSeconds",
                                    "replicas", "revisionHistoryLimit", "selector", "strategy",
                                    "template"})
REPLICASET_SPEC_FIELDS = frozenset({"minReadySeconds", "replicas", "selector", "template"})
_TEMPLATE_FIELDS = frozenset({"metadata", "spec"})
_STRATEGY_FIELDS = frozenset({"type", "rollingUpdate"})
_ROLLING_FIELDS = frozenset({"maxSurge", "maxUnavailable"})
_PERCENT_RE = re.compile(r"^[0-9]+%$")
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"


def normalize_deployment_spec(spec: Any, *, now: str) -> dict:
    spec = as_map(spec, "spec", required=True)
    check_known(spec, DEPLOYMENT_SPEC_FIELDS, "spec")
    out = _common(spec, "deployment", now=now)
    with guard():
        out["strategy"] = _strategy(spec.get("strategy"), "spec.strategy")
    _revision_history(spec, out)
    with guard():
        out["progressDeadlineSeconds"] = as_int(spec.get("progressDeadlineSeconds", 600),
                                                "spec.progressDeadlineSeconds", minimum=0)
        ready = out["minReadySeconds"]
        if isinstance(ready, int) and out["progressDeadlineSeconds"] <= ready:
            fail("spec.progressDeadlineSeconds",
                 f"Invalid value: {out['progressDeadlineSeconds']}: must be greater than "
                 "minReadySeconds")
    with guard():
        if "paused" in spec:
            as_bool(spec["paused"], "spec.paused")
    return out


def _revision_history(spec: dict, out: dict) -> None:
    with guard():
        out["revisionHistoryLimit"] = as_int(spec.get("revisionHistoryLimit", 10),
                                             "spec.revisionHistoryLimit", minimum=0)


def normalize_replicaset_spec(spec: Any, *, now: str) -> dict:
    spec = as_map(spec, "spec", required=True)
    check_known(spec, REPLICASET_SPEC_FIELDS, "spec")
    return _common(spec, "replicaset", now=now)


def _common(spec: dict, what: str, *, now: str) -> dict:
    out = dict(spec)
    with guard():
        out["replicas"] = as_int(spec.get("replicas", 1), "spec.replicas", minimum=0)
    with guard():
        out["minReadySeconds"] = as_int(spec.get("minReadySeconds", 0),
                                        "spec.minReadySeconds", minimum=0)
    selector = None  # None when invalid: the template's labels are then not compared
    with guard():
        if spec.get("selector") is None:
            fail("spec.selector", "Required value")
        checked = validate_label_selector(spec["selector"], "spec.selector")
        if selector_is_empty(checked):
            fail("spec.selector", f"Invalid value: {{}}: empty selector is invalid for {what}")
        out["selector"] = selector = checked
    with guard():
        out["template"] = _template(spec.get("template"), selector, now=now)
    return out


def _template(value: Any, selector: dict | None, *, now: str) -> dict:
    template = as_map(value, "spec.template", required=True)
    check_known(template, _TEMPLATE_FIELDS, "spec.template")
    tmeta: dict = {}
    with guard():
        tmeta = normalize_metadata(template.get("metadata") or {}, KINDS["Pod"],
                                   _no_name_check, now=now, path="spec.template.metadata",
                                   require_name=False)
        labels = tmeta.get("labels") or {}
        if selector is not None and not label_selector_matches(selector, labels):
            fail("spec.template.metadata.labels",
                 f"Invalid value: {labels!r}: selector does not match template labels")
    tspec: dict = {}
    with guard():
        tspec = normalize_pod_spec(template.get("spec"), "spec.template.spec")
        if tspec["restartPolicy"] != "Always":
            fail("spec.template.spec.restartPolicy",
                 f"Unsupported value: {tspec['restartPolicy']!r}: supported values: \"Always\"")
    return {"metadata": tmeta, "spec": tspec}


def _no_name_check(name: str, path: str) -> None:
    # Pod template names are ignored by the controllers (pods get generated names).
    return None


def _strategy(value: Any, path: str) -> dict:
    strategy = as_map(value, path)
    check_known(strategy, _STRATEGY_FIELDS, path)
    out = dict(strategy)
    stype = one_of(strategy.get("type") or "RollingUpdate", child(path, "type"),
                   ("Recreate", "RollingUpdate"))
    out["type"] = stype
    rpath = child(path, "rollingUpdate")
    if stype == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            fail(rpath, "Forbidden: may not be specified when strategy `type` is 'Recreate'")
        return out
    rolling = as_map(strategy.get("rollingUpdate"), rpath)
    check_known(rolling, _ROLLING_FIELDS, rpath)
    surge = _int_or_percent(rolling.get("maxSurge", DEFAULT_MAX_SURGE),
                            child(rpath, "maxSurge"))
    unavailable = _int_or_percent(rolling.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE),
                                  child(rpath, "maxUnavailable"))
    if isinstance(unavailable, str) and int(unavailable[:-1]) > 100:
        fail(child(rpath, "maxUnavailable"),
             f"Invalid value: {unavailable!r}: must not be greater than 100%")
    if _is_zero(surge) and _is_zero(unavailable):
        fail(child(rpath, "maxUnavailable"),
             f"Invalid value: {unavailable!r}: may not be 0 when `maxSurge` is 0")
    out["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return out


def _int_or_percent(value: Any, path: str) -> int | str:
    if isinstance(value, str):
        if not _PERCENT_RE.match(value):
            fail(path, f"Invalid value: {value!r}: a valid percent string must be a numeric "
                       "string followed by an ending '%' (e.g. '1%', or '93%')")
        return value
    return as_int(value, path, minimum=0)


def _is_zero(value: int | str) -> bool:
    return value == 0 or (isinstance(value, str) and int(value[:-1]) == 0)


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """Absolute count for maxSurge (round_up=True) / maxUnavailable (round_up=False)."""
    if isinstance(value, int):
        return value
    scaled = int(value[:-1]) * total
    return -(-scaled // 100) if round_up else scaled // 100


# -- StatefulSet / DaemonSet ---------------------------------------------------------------

STATEFULSET_SPEC_FIELDS = frozenset({"minReadySeconds", "ordinals",
                                     "persistentVolumeClaimRetentionPolicy",
                                     "podManagementPolicy", "replicas", "revisionHistoryLimit",
                                     "selector", "serviceName", "template", "updateStrategy",
                                     "volumeClaimTemplates"})
DAEMONSET_SPEC_FIELDS = frozenset({"minReadySeconds", "revisionHistoryLimit", "selector",
                                   "template", "updateStrategy"})
_UPDATE_STRATEGY_FIELDS = frozenset({"type", "rollingUpdate"})


def normalize_statefulset_spec(spec: Any, *, now: str) -> dict:
    """apps/v1 StatefulSet: serviceName is required here (the governing headless Service
    gives the pods their stable DNS names), OrderedReady by default, RollingUpdate."""
    spec = as_map(spec, "spec", required=True)
    check_known(spec, STATEFULSET_SPEC_FIELDS, "spec")
    with guard():
        if not spec.get("serviceName"):
            fail("spec.serviceName", "Required value: a StatefulSet needs the name of its "
                                     "governing (headless) Service")
        if not isinstance(spec["serviceName"], str):
            fail("spec.serviceName", f"must be a string, got {spec['serviceName']!r}")
    for bad in ("volumeClaimTemplates", "ordinals", "persistentVolumeClaimRetentionPolicy"):
        if spec.get(bad):
            with guard():
                fail(f"spec.{bad}", "Unsupported: calinet has no volumes or custom ordinals")
    out = _common(spec, "statefulset", now=now)
    with guard():
        out["podManagementPolicy"] = one_of(spec.get("podManagementPolicy", "OrderedReady"),
                                            "spec.podManagementPolicy",
                                            ("OrderedReady", "Parallel"))
    _revision_history(spec, out)
    with guard():
        out["updateStrategy"] = _statefulset_strategy(spec)
    return out


def _statefulset_strategy(spec: dict) -> dict:
    us = as_map(spec.get("updateStrategy"), "spec.updateStrategy")
    check_known(us, _UPDATE_STRATEGY_FIELDS, "spec.updateStrategy")
    utype = one_of(us.get("type", "RollingUpdate"), "spec.updateStrategy.type",
                   ("RollingUpdate", "OnDelete"))
    strategy: dict = {"type": utype}
    if utype == "RollingUpdate":
        ru = as_map(us.get("rollingUpdate"), "spec.updateStrategy.rollingUpdate")
        check_known(ru, frozenset({"partition", "maxUnavailable"}),
                    "spec.updateStrategy.rollingUpdate")
        strategy["rollingUpdate"] = {"partition": as_int(
            ru.get("partition", 0), "spec.updateStrategy.rollingUpdate.partition", minimum=0)}
    return strategy


def normalize_daemonset_spec(spec: Any, *, now: str) -> dict:
    """apps/v1 DaemonSet: like a ReplicaSet without replicas (one pod per eligible node);
    RollingUpdate with maxUnavailable 1 by default."""
    spec = as_map(spec, "spec", required=True)
    check_known(spec, DAEMONSET_SPEC_FIELDS, "spec")
    out = _common(spec, "daemonset", now=now)
    out.pop("replicas", None)
    _revision_history(spec, out)
    with guard():
        out["updateStrategy"] = _daemonset_strategy(spec)
    return out


def _daemonset_strategy(spec: dict) -> dict:
    us = as_map(spec.get("updateStrategy"), "spec.updateStrategy")
    check_known(us, _UPDATE_STRATEGY_FIELDS, "spec.updateStrategy")
    utype = one_of(us.get("type", "RollingUpdate"), "spec.updateStrategy.type",
                   ("RollingUpdate", "OnDelete"))
    strategy = {"type": utype}
    if utype == "RollingUpdate":
        path = "spec.updateStrategy.rollingUpdate"
        ru = as_map(us.get("rollingUpdate"), path)
        check_known(ru, frozenset({"maxSurge", "maxUnavailable"}), path)
        unavailable = _int_or_percent(ru.get("maxUnavailable", 1), child(path, "maxUnavailable"))
        if _is_zero(unavailable):
            fail(child(path, "maxUnavailable"),
                 "Invalid value: 0: calinet's DaemonSet updates need maxUnavailable >= 1")
        strategy["rollingUpdate"] = {"maxUnavailable": unavailable}
    return strategy
