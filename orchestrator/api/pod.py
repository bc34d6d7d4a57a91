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
    each,
    fail,
    guard,
    item,
    one_of,
    put,
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


def pod_ip_of(pod: dict, family: int) -> str | None:
    """The pod's address of ``family`` (4 or 6; status.podIPs, else status.podIP), None
    without one: what a consumer of one family (an EndpointSlice of addressType IPv6, a DNS
    AAAA record) takes, whatever the pod's primary family."""
    st = pod.get("status") or {}
    for ip in [a.get("ip", "") for a in st.get("podIPs") or []] + [st.get("podIP") or ""]:
        if ip and (":" in ip) == (family == 6):
            return ip
    return None


def pod_ipv4(pod: dict) -> str | None:
    """The pod's IPv4 address, None without one."""
    return pod_ip_of(pod, 4)


def normalize_pod_spec(spec: Any, path: str) -> dict:
    """Defaulted, validated copy of a PodSpec found at ``path`` ("spec", "spec.template.spec")."""
    spec = as_map(spec, path, required=True)
    check_known(spec, POD_SPEC_FIELDS, path)
    out = dict(spec)

    names: set[str] = set()
    init_path = child(path, "initContainers")
    with guard():
        if "initContainers" in spec:
            out["initContainers"] = each(
                as_list(spec["initContainers"], init_path), init_path,
                lambda c, at: _container(c, at, names, init=True))
    cpath = child(path, "containers")
    with guard():  # containers that are not a list: none of them to check, the rest is
        containers = as_list(spec.get("containers"), cpath, required=True)
        if not containers:
            fail(cpath, "Required value: at least one container is required")
        out["containers"] = each(containers, cpath,
                                 lambda c, at: _container(c, at, names, init=False))
    _pod_fields(spec, out, path)
    return out


def _pod_fields(spec: dict, out: dict, path: str) -> None:
    """The PodSpec's fields besides its containers, each checked on its own."""
    with guard():
        out["restartPolicy"] = one_of(spec.get("restartPolicy", "Always"),
                                      child(path, "restartPolicy"), RESTART_POLICIES)
    with guard():
        out["dnsPolicy"] = one_of(spec.get("dnsPolicy", "ClusterFirst"),
                                  child(path, "dnsPolicy"), DNS_POLICIES)
        if out["dnsPolicy"] == "None" and not spec.get("dnsConfig"):
            fail(child(path, "dnsConfig"),
                 "Required value: must provide `dnsConfig` when `dnsPolicy` is None")
    with guard():
        out["schedulerName"] = as_str(spec.get("schedulerName"),
                                      child(path, "schedulerName")) or "default-scheduler"
    with guard():
        grace = spec.get("terminationGracePeriodSeconds", 30)
        out["terminationGracePeriodSeconds"] = as_int(
            grace, child(path, "terminationGracePeriodSeconds"), minimum=0)
    put(out, spec, "nodeSelector", path, check_labels)
    with guard():
        node = as_str(spec.get("nodeName"), child(path, "nodeName"))
        if node:
            check_dns1123_subdomain(node, child(path, "nodeName"))
    put(out, spec, "tolerations", path,
        lambda tolerations, at: each(as_list(tolerations, at), at, _toleration))
    for key in ("hostNetwork", "hostPID", "hostIPC", "enableServiceLinks",
                "automountServiceAccountToken", "shareProcessNamespace"):
        with guard():
            as_bool(spec.get(key), child(path, key))
    with guard():
        if spec.get("hostname"):
            check_dns1123_label(as_str(spec["hostname"], child(path, "hostname")),
                                child(path, "hostname"))
    with guard():
        as_int(spec.get("activeDeadlineSeconds"), child(path, "activeDeadlineSeconds"),
               minimum=1)
    with guard():
        out["securityContext"] = as_map(spec.get("securityContext"),
                                        child(path, "securityContext"))


def _container(c: Any, path: str, names: set[str], *, init: bool) -> dict:
    c = as_map(c, path, required=True)
    check_known(c, CONTAINER_FIELDS, path)
    out = dict(c)
    with guard():
        name = as_str(c.get("name"), child(path, "name"), required=True)
        check_dns1123_label(name, child(path, "name"))
        if name in names:
            fail(child(path, "name"), f"Duplicate value: {name!r}")
        names.add(name)
    image = ""
    with guard():
        image = as_str(c.get("image"), child(path, "image"), required=True)
        if image != image.strip():
            fail(child(path, "image"), f"Invalid value: {image!r}: must not have leading or "
                                       "trailing whitespace")
    for key in ("command", "args"):
        put(out, c, key, path, as_str_list)
    with guard():
        as_str(c.get("workingDir"), child(path, "workingDir"))
    put(out, c, "env", path, _env)
    port_names: set[str] = set()
    put(out, c, "ports", path, lambda ports, at: each(
        as_list(ports, at), at, lambda p, pat: _port(p, pat, port_names)))
    with guard():
        out["resources"] = _resources(c.get("resources"), child(path, "resources"))
    with guard():
        out["imagePullPolicy"] = one_of(c.get("imagePullPolicy", default_pull_policy(image)),
                                        child(path, "imagePullPolicy"), PULL_POLICIES)
    with guard():
        out["terminationMessagePath"] = as_str(
            c.get("terminationMessagePath"), child(path, "terminationMessagePath")
        ) or "/dev/termination-log"
    with guard():
        out["terminationMessagePolicy"] = one_of(
            c.get("terminationMessagePolicy", "File"), child(path, "terminationMessagePolicy"),
            ("File", "FallbackToLogsOnError"))
    with guard():
        if "restartPolicy" in c:
            if not init:
                fail(child(path, "restartPolicy"),
                     "Forbidden: may not be set for non-init containers")
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
    return each(as_list(value, path), path, _env_var)


def _env_var(e: Any, p: str) -> dict:
    e = as_map(e, p, required=True)
    check_known(e, _ENV_FIELDS, p)
    with guard():
        name = as_str(e.get("name"), child(p, "name"), required=True)
        if "=" in name:
            fail(child(p, "name"), f"Invalid value: {name!r}: must not contain '='")
    with guard():
        as_str(e.get("value"), child(p, "value"))
        if "value" in e and "valueFrom" in e and e["value"]:
            fail(child(p, "valueFrom"), "Invalid value: may not be specified when `value` "
                                        "is not empty")
    return dict(e)


def _port(p: Any, path: str, names: set[str]) -> dict:
    p = as_map(p, path, required=True)
    check_known(p, _PORT_FIELDS, path)
    out = dict(p)
    with guard():
        if p.get("containerPort") is None:
            fail(child(path, "containerPort"), "Required value")
        as_int(p["containerPort"], child(path, "containerPort"), minimum=1, maximum=65535)
    with guard():
        # hostPort 0 means "not set" in the API.
        as_int(p.get("hostPort"), child(path, "hostPort"), minimum=0, maximum=65535)
    with guard():
        as_str(p.get("hostIP"), child(path, "hostIP"))
    with guard():
        out["protocol"] = one_of(p.get("protocol", "TCP"), child(path, "protocol"), PROTOCOLS)
    with guard():
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
            with guard():
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
                if rname in parsed["limits"]:  # else its error is already recorded
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
