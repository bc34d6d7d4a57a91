"""PodSpec validation and defaulting (containers, ports, resources, tolerations), QoS class.

Pure. Mirrors the API server: SetDefaults_Pod/Container (restartPolicy, dnsPolicy,
imagePullPolicy, requests defaulted from limits...) then ValidatePodSpec. Real k8s fields
calinet does not act on (volumes, probes, affinity...) pass through unchanged; unknown ones
are rejected like `kubectl apply` does.
"""

from __future__ import annotations

from typing import Any

from orchestrator.api.fields import (
    as_bool,
    as_int,
    as_list,
    as_map,
    as_str,
    as_str_list,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_known,
    check_label_value,
    check_labels,
    check_port_name,
    check_qualified_name,
    child,
    fail,
    item,
    one_of,
)
from orchestrator.api.quantity import parse_quantity

POD_SPEC_FIELDS = frozenset({
    "activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers",
    "dnsConfig", "dnsPolicy", "enableServiceLinks", "ephemeralContainers", "hostAliases",
    "hostIPC", "hostNetwork", "hostPID", "hostUsers", "hostname", "imagePullSecrets",
    "initContainers", "nodeName", "nodeSelector", "os", "overhead", "preemptionPolicy",
    "priority", "priorityClassName", "readinessGates", "resourceClaims", "resources",
    "restartPolicy", "runtimeClassName", "schedulerName", "schedulingGates", "securityContext",
    "serviceAccount", "serviceAccountName", "setHostnameAsFQDN", "shareProcessNamespace",
    "subdomain", "terminationGracePeriodSeconds", "tolerations", "topologySpreadConstraints",
    "volumes",
})
CONTAINER_FIELDS = frozenset({
    "args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle",
    "livenessProbe", "name", "ports", "readinessProbe", "resizePolicy", "resources",
    "restartPolicy", "securityContext", "startupProbe", "stdin", "stdinOnce",
    "terminationMessagePath", "terminationMessagePolicy", "tty", "volumeDevices",
    "volumeMounts", "workingDir",
})
_PORT_FIELDS = frozenset({"containerPort", "hostIP", "hostPort", "name", "protocol"})
_RESOURCES_FIELDS = frozenset({"claims", "limits", "requests"})
_TOLERATION_FIELDS = frozenset({"effect", "key", "operator", "tolerationSeconds", "value"})
_ENV_FIELDS = frozenset({"name", "value", "valueFrom"})

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PROTOCOLS = ("TCP", "UDP", "SCTP")
PULL_POLICIES = ("Always", "Never", "IfNotPresent")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("Equal", "Exists")
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_QOS_RESOURCES = ("cpu", "memory")


def normalize_pod_spec(spec: Any, path: str) -> dict:
    """Defaulted, validated copy of a PodSpec found at ``path`` ("spec", "spec.template.spec")."""
    spec = as_map(spec, path, required=True)
    check_known(spec, POD_SPEC_FIELDS, path)
    out = dict(spec)

    names: set[str] = set()
    init_path = child(path, "initContainers")
    if "initContainers" in spec:
        out["initContainers"] = [
            _container(c, item(init_path, i), names, init=True)
            for i, c in enumerate(as_list(spec["initContainers"], init_path))
        ]
    cpath = child(path, "containers")
    containers = as_list(spec.get("containers"), cpath, required=True)
    if not containers:
        fail(cpath, "Required value: at least one container is required")
    out["containers"] = [_container(c, item(cpath, i), names, init=False)
                         for i, c in enumerate(containers)]

    out["restartPolicy"] = one_of(spec.get("restartPolicy", "Always"),
                                  child(path, "restartPolicy"), RESTART_POLICIES)
    out["dnsPolicy"] = one_of(spec.get("dnsPolicy", "ClusterFirst"), child(path, "dnsPolicy"),
                              DNS_POLICIES)
    if out["dnsPolicy"] == "None" and not spec.get("dnsConfig"):
        fail(child(path, "dnsConfig"),
             "Required value: must provide `dnsConfig` when `dnsPolicy` is None")
    out["schedulerName"] = as_str(spec.get("schedulerName"),
                                  child(path, "schedulerName")) or "default-scheduler"
    grace = spec.get("terminationGracePeriodSeconds", 30)
    out["terminationGracePeriodSeconds"] = as_int(
        grace, child(path, "terminationGracePeriodSeconds"), minimum=0)
    if "nodeSelector" in spec:
        out["nodeSelector"] = check_labels(spec["nodeSelector"], child(path, "nodeSelector"))
    node = as_str(spec.get("nodeName"), child(path, "nodeName"))
    if node:
        check_dns1123_subdomain(node, child(path, "nodeName"))
    if "tolerations" in spec:
        tpath = child(path, "tolerations")
        out["tolerations"] = [_toleration(t, item(tpath, i))
                              for i, t in enumerate(as_list(spec["tolerations"], tpath))]
    for key in ("hostNetwork", "hostPID", "hostIPC", "enableServiceLinks",
                "automountServiceAccountToken", "shareProcessNamespace"):
        as_bool(spec.get(key), child(path, key))
    if spec.get("hostname"):
        check_dns1123_label(as_str(spec["hostname"], child(path, "hostname")),
                            child(path, "hostname"))
    as_int(spec.get("activeDeadlineSeconds"), child(path, "activeDeadlineSeconds"), minimum=1)
    out["securityContext"] = as_map(spec.get("securityContext"), child(path, "securityContext"))
    return out


def _container(c: Any, path: str, names: set[str], *, init: bool) -> dict:
    c = as_map(c, path, required=True)
    check_known(c, CONTAINER_FIELDS, path)
    out = dict(c)
    name = as_str(c.get("name"), child(path, "name"), required=True)
    check_dns1123_label(name, child(path, "name"))
    if name in names:
        fail(child(path, "name"), f"Duplicate value: {name!r}")
    names.add(name)
    image = as_str(c.get("image"), child(path, "image"), required=True)
    if image != image.strip():
        fail(child(path, "image"), f"Invalid value: {image!r}: must not have leading or "
                                   "trailing whitespace")
    for key in ("command", "args"):
        if key in c:
            out[key] = as_str_list(c[key], child(path, key))
    as_str(c.get("workingDir"), child(path, "workingDir"))
    if "env" in c:
        out["env"] = _env(c["env"], child(path, "env"))
    if "ports" in c:
        ppath = child(path, "ports")
        port_names: set[str] = set()
        out["ports"] = [_port(p, item(ppath, i), port_names)
                        for i, p in enumerate(as_list(c["ports"], ppath))]
    out["resources"] = _resources(c.get("resources"), child(path, "resources"))
    out["imagePullPolicy"] = one_of(c.get("imagePullPolicy", default_pull_policy(image)),
                                    child(path, "imagePullPolicy"), PULL_POLICIES)
    out["terminationMessagePath"] = as_str(
        c.get("terminationMessagePath"), child(path, "terminationMessagePath")
    ) or "/dev/termination-log"
    out["terminationMessagePolicy"] = one_of(
        c.get("terminationMessagePolicy", "File"), child(path, "terminationMessagePolicy"),
        ("File", "FallbackToLogsOnError"))
    if "restartPolicy" in c:
        if not init:
            fail(child(path, "restartPolicy"), "Forbidden: may not be set for non-init containers")
        one_of(c["restartPolicy"], child(path, "restartPolicy"), ("Always",))
    return out


def default_pull_policy(image: str) -> str:
    """Always for ":latest" or untagged images, IfNotPresent otherwise (SetDefaults_Container)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2] or "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _env(value: Any, path: str) -> list[dict]:
    out = []
    for i, e in enumerate(as_list(value, path)):
        p = item(path, i)
        e = as_map(e, p, required=True)
        check_known(e, _ENV_FIELDS, p)
        name = as_str(e.get("name"), child(p, "name"), required=True)
        if "=" in name:
            fail(child(p, "name"), f"Invalid value: {name!r}: must not contain '='")
        as_str(e.get("value"), child(p, "value"))
        if "value" in e and "valueFrom" in e and e["value"]:
            fail(child(p, "valueFrom"), "Invalid value: may not be specified when `value` "
                                        "is not empty")
        out.append(dict(e))
    return out


def _port(p: Any, path: str, names: set[str]) -> dict:
    p = as_map(p, path, required=True)
    check_known(p, _PORT_FIELDS, path)
    out = dict(p)
    if p.get("containerPort") is None:
        fail(child(path, "containerPort"), "Required value")
    as_int(p["containerPort"], child(path, "containerPort"), minimum=1, maximum=65535)
    # hostPort 0 means "not set" in the API.
    as_int(p.get("hostPort"), child(path, "hostPort"), minimum=0, maximum=65535)
    as_str(p.get("hostIP"), child(path, "hostIP"))
    out["protocol"] = one_of(p.get("protocol", "TCP"), child(path, "protocol"), PROTOCOLS)
    if p.get("name") is not None:
        name = as_str(p["name"], child(path, "name"))
        check_port_name(name, child(path, "name"))
        if name in names:
            fail(child(path, "name"), f"Duplicate value: {name!r}")
        names.add(name)
    return out


def _resources(value: Any, path: str) -> dict:
    res = as_map(value, path)
    check_known(res, _RESOURCES_FIELDS, path)
    out = dict(res)
    parsed: dict[str, dict] = {}
    for kind in ("limits", "requests"):
        if kind not in res:
            continue
        kpath = child(path, kind)
        amounts = as_map(res[kind], kpath)
        parsed[kind] = {}
        for rname, qty in amounts.items():
            rpath = item(kpath, rname)
            _check_resource_name(rname, rpath)
            value = parse_quantity(qty, rpath)
            if value < 0:
                fail(rpath, f"Invalid value: {qty!r}: must be greater than or equal to 0")
            parsed[kind][rname] = value
        # Keep what the user wrote; YAML numbers become the strings the API would echo.
        out[kind] = {k: v if isinstance(v, str) else str(v) for k, v in amounts.items()}
    # SetDefaults: a limit without a request defaults the request to the limit.
    limits = out.get("limits") or {}
    if limits:
        requests = dict(out.get("requests") or {})
        for rname, qty in limits.items():
            if rname not in requests:
                requests[rname] = qty
                parsed.setdefault("requests", {})[rname] = parsed["limits"][rname]
        out["requests"] = requests
    for rname, req in parsed.get("requests", {}).items():
        lim = parsed.get("limits", {}).get(rname)
        if lim is not None and req > lim:
            fail(item(child(path, "requests"), rname),
                 f"Invalid value: {out['requests'][rname]!r}: must be less than or equal to "
                 f"{rname} limit of {limits[rname]}")
    return out


def _check_resource_name(name: Any, path: str) -> None:
    if not isinstance(name, str):
        fail(path, f"resource name must be a string, got {name!r}")
    if name in STANDARD_RESOURCES or name.startswith("hugepages-"):
        return
    if "/" not in name:
        fail(path, f"Invalid value: {name!r}: must be a standard resource type "
                   f"({', '.join(STANDARD_RESOURCES)}, hugepages-<size>) or fully qualified")
    check_qualified_name(name, path)


def _toleration(t: Any, path: str) -> dict:
    t = as_map(t, path, required=True)
    check_known(t, _TOLERATION_FIELDS, path)
    out = dict(t)
    key = as_str(t.get("key"), child(path, "key")) or ""
    if key:
        check_qualified_name(key, child(path, "key"))
    op = one_of(t.get("operator") or "Equal", child(path, "operator"), TOLERATION_OPERATORS)
    out["operator"] = op
    value = as_str(t.get("value"), child(path, "value")) or ""
    if not key and op != "Exists":
        fail(child(path, "operator"), f"Invalid value: {op!r}: operator must be Exists when "
                                      "`key` is empty, which means \"match all values and all keys\"")
    if op == "Exists" and value:
        fail(child(path, "operator"), "Invalid value: value must be empty when `operator` is "
                                      "'Exists'")
    if op == "Equal" and value:
        check_label_value(value, child(path, "value"))
    effect = as_str(t.get("effect"), child(path, "effect")) or ""
    if effect:
        one_of(effect, child(path, "effect"), TAINT_EFFECTS)
    if t.get("tolerationSeconds") is not None:
        as_int(t["tolerationSeconds"], child(path, "tolerationSeconds"))
        if effect != "NoExecute":
            fail(child(path, "effect"), f"Invalid value: {effect!r}: effect must be "
                                        "'NoExecute' when `tolerationSeconds` is set")
    return out


def qos_class(spec: dict) -> str:
    """Guaranteed / Burstable / BestEffort from a normalized spec (qos.GetPodQOS)."""
    requested = limited = False
    guaranteed = True
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        res = c.get("resources") or {}
        req = {k: parse_quantity(v) for k, v in (res.get("requests") or {}).items()
               if k in _QOS_RESOURCES}
        lim = {k: parse_quantity(v) for k, v in (res.get("limits") or {}).items()
               if k in _QOS_RESOURCES}
        requested |= any(v != 0 for v in req.values())
        limited |= any(v != 0 for v in lim.values())
        if set(lim) != set(_QOS_RESOURCES) or any(req.get(k) != lim[k] for k in lim):
            guaranteed = False
    if not requested and not limited:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
