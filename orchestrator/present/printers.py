"""kubectl-like text output: `get` tables (plain, wide, all namespaces), -o yaml / -o json.

Pure text: objects are manifest dicts, ``now`` is passed in. Column layout reproduces
kubectl's tabwriter (min width 6, padding 3) and its pod STATUS / AGE / RESTARTS logic, so
output reads like a real cluster's. `kubectl describe` text: orchestrator.present.describe,
which is built on this module's helpers (so this module never imports it).
"""

from __future__ import annotations

import datetime as dt
import json

import yaml

from orchestrator.api.labels import format_label_selector
from orchestrator.errors import ValidationError

# kubectl's printers.GetNewTabWriter: minwidth 6, padding 3, pad with spaces.
GET_MINWIDTH, GET_PADDING = 6, 3
KIND_ALIASES = {
    "Pod": ("pod", "pods", "po"),
    "Deployment": ("deployment", "deployments", "deploy"),
    "ReplicaSet": ("replicaset", "replicasets", "rs"),
    "StatefulSet": ("statefulset", "statefulsets", "sts"),
    "DaemonSet": ("daemonset", "daemonsets", "ds"),
    "Job": ("job", "jobs"),
    "CronJob": ("cronjob", "cronjobs", "cj"),
    "Namespace": ("namespace", "namespaces", "ns"),
    "Node": ("node", "nodes", "no"),
    "IPPool": ("ippool", "ippools", "ipp"),
    "Service": ("service", "services", "svc"),
    "Endpoints": ("endpoints", "ep"),
    "EndpointSlice": ("endpointslice", "endpointslices"),
    "NetworkPolicy": ("networkpolicy", "networkpolicies", "netpol"),
}
CLUSTER_SCOPED = frozenset({"Namespace", "Node", "IPPool", "GlobalNetworkPolicy",
                            "BGPConfiguration", "BGPPeer"})
_UTC = dt.timezone.utc


def canonical_kind(name: str) -> str:
    """"pods" / "po" / "Pod" -> "Pod"; unknown names come back unchanged."""
    for kind, aliases in KIND_ALIASES.items():
        if name == kind or name.lower() in aliases:
            return kind
    return name


# ---------------------------------------------------------------------------- tabwriter

def tabwrite(text: str, minwidth: int = 0, padding: int = 2) -> str:
    """Go's text/tabwriter (padchar ' ', no flags): tab-terminated cells in consecutive lines
    form a column, padded to its widest cell + padding; a line's last cell is not aligned."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []

    def write(lo: int, hi: int, widths: list[int]) -> None:
        for cells in lines[lo:hi]:
            parts = []
            for j, cell in enumerate(cells):
                parts.append(cell.ljust(widths[j]) if j < len(widths) else cell)
            out.append("".join(parts))

    def fmt(lo: int, hi: int, widths: list[int]) -> None:
        column = len(widths)
        this = lo
        while this < hi:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(lo, this, widths)
            lo = this
            width = minwidth
            while this < hi and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            fmt(lo, this, widths + [width])
            lo = this
        write(lo, hi, widths)

    fmt(0, len(lines), [])
    return "\n".join(out)


# ---------------------------------------------------------------------------- time

def parse_time(value) -> dt.datetime | None:
    """A manifest timestamp (RFC 3339 text, datetime, or epoch seconds) as aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, _UTC)
    if isinstance(value, str):
        try:
            return parse_time(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            pass
    raise ValidationError(f"not a timestamp: {value!r}")


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery duration.HumanDuration: "5s", "3m2s", "12m", "5h3m", "2d"."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp, now) -> str:
    """kubectl's translateTimestampSince: "<unknown>" without a timestamp."""
    when, ref = parse_time(timestamp), parse_time(now)
    if when is None or ref is None:
        return "<unknown>"
    return human_duration((ref - when).total_seconds())


# ---------------------------------------------------------------------------- pods

def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def pod_status(pod: dict) -> tuple[str, int, int, int, dt.datetime | None]:
    """kubectl printPod: (STATUS, ready containers, total containers, restarts, last restart)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    total = len(spec.get("containers") or [])
    reason = status.get("reason") or status.get("phase") or ""
    restarts, ready, last = 0, 0, None
    initializing = False
    inits = spec.get("initContainers") or []
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term is not None and int(term.get("exitCode") or 0) == 0:
            continue
        if term is not None:
            reason = "Init:" + (term.get("reason") or (f"Signal:{term['signal']}"
                                if term.get("signal") else f"ExitCode:{term.get('exitCode')}"))
        elif wait is not None and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(inits)}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and str(c.get("status")) == "True"
                      for c in status.get("conditions") or [])
    if not initializing or initialized:
        restarts, has_running = 0, False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            finished = parse_time(((cs.get("lastState") or {}).get("terminated") or {})
                                  .get("finishedAt"))
            if finished is not None and (last is None or finished > last):
                last = finished
            state = cs.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if wait is not None and wait.get("reason"):
                reason = wait["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                reason = (f"Signal:{term['signal']}" if term.get("signal")
                          else f"ExitCode:{term.get('exitCode', 0)}")
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            has_ready = any(c.get("type") == "Ready" for c in status.get("conditions") or [])
            reason = "Running" if has_ready else "NotReady"
    if _meta(pod).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason, ready, total, restarts, last


def _pod_row(pod: dict, wide: bool, now) -> list[str]:
    reason, ready, total, restarts, last = pod_status(pod)
    restarts_text = str(restarts)
    if restarts and last is not None:
        restarts_text = f"{restarts} ({age(last, now)} ago)"
    row = [_meta(pod).get("name", ""), f"{ready}/{total}", reason, restarts_text,
           age(_meta(pod).get("creationTimestamp"), now)]
    if wide:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        ips = status.get("podIPs") or []
        ip = ips[0].get("ip") if ips else status.get("podIP")
        gates = spec.get("readinessGates") or []
        gates_text = "<none>"
        if gates:
            conds = {c.get("type"): str(c.get("status")) for c in status.get("conditions") or []}
            true = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
            gates_text = f"{true}/{len(gates)}"
        row += [ip or "<none>", spec.get("nodeName") or "<none>",
                status.get("nominatedNodeName") or "<none>", gates_text]
    return row


# ---------------------------------------------------------------------------- other kinds

def format_selector(selector: dict | None) -> str:
    """metav1.FormatLabelSelector: "app=web,tier in (a,b),!gpu"; "<none>" when empty."""
    return format_label_selector(selector)


def _containers_wide(obj: dict) -> list[str]:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}) \
        .get("containers") or []
    return [",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers),
            format_selector((obj.get("spec") or {}).get("selector"))]


def _deployment_row(obj: dict, wide: bool, now) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    row = [_meta(obj).get("name", ""),
           f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
           str(status.get("updatedReplicas", 0)), str(status.get("availableReplicas", 0)),
           age(_meta(obj).get("creationTimestamp"), now)]
    return row + _containers_wide(obj) if wide else row


def _replicaset_row(obj: dict, wide: bool, now) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    row = [_meta(obj).get("name", ""), str(spec.get("replicas", 1)),
           str(status.get("replicas", 0)), str(status.get("readyReplicas", 0)),
           age(_meta(obj).get("creationTimestamp"), now)]
    return row + _containers_wide(obj) if wide else row


def _statefulset_row(obj: dict, wide: bool, now) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    row = [_meta(obj).get("name", ""),
           f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
           age(_meta(obj).get("creationTimestamp"), now)]
    return row + _containers_wide(obj)[:2] if wide else row


def _daemonset_row(obj: dict, wide: bool, now) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    sel = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    row = [_meta(obj).get("name", ""), str(status.get("desiredNumberScheduled", 0)),
           str(status.get("currentNumberScheduled", 0)), str(status.get("numberReady", 0)),
           str(status.get("updatedNumberScheduled", 0)), str(status.get("numberAvailable", 0)),
           ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>",
           age(_meta(obj).get("creationTimestamp"), now)]
    return row + _containers_wide(obj) if wide else row


def job_status_text(obj: dict) -> str:
    """kubectl's Job STATUS column: Complete, Failed, Suspended or Running."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed", "Suspended"):
            return c["type"]
    return "Suspended" if spec.get("suspend") else "Running"


def _job_row(obj: dict, wide: bool, now) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    succeeded = status.get("succeeded", 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif spec.get("parallelism", 1) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = ""
    if start is not None:
        stop = end or parse_time(now) or dt.datetime.now(_UTC)
        duration = human_duration((stop - start).total_seconds())
    row = [_meta(obj).get("name", ""), job_status_text(obj), completions, duration,
           age(_meta(obj).get("creationTimestamp"), now)]
    if wide:
        row += _containers_wide(obj)[:2] + [format_selector(spec.get("selector"))]
    return row


def _cronjob_row(obj: dict, wide: bool, now) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    last = status.get("lastScheduleTime")
    row = [_meta(obj).get("name", ""), spec.get("schedule", ""),
           spec.get("timeZone") or "<none>", "True" if spec.get("suspend") else "False",
           str(len(status.get("active") or [])), age(last, now) if last else "<none>",
           age(_meta(obj).get("creationTimestamp"), now)]
    if wide:
        row += _containers_wide({"spec": (spec.get("jobTemplate") or {}).get("spec") or {}})
    return row


def _namespace_row(obj: dict, wide: bool, now) -> list[str]:
    return [_meta(obj).get("name", ""), (obj.get("status") or {}).get("phase") or "Active",
            age(_meta(obj).get("creationTimestamp"), now)]


def node_roles(node: dict) -> list[str]:
    roles = set()
    for key, value in (_meta(node).get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/"):
            roles.add(key[len("node-role.kubernetes.io/"):])
        elif key == "kubernetes.io/role":
            roles.add(value)
    return sorted(r for r in roles if r)


def node_status_text(node: dict) -> str:
    status = []
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            status = ["Ready" if str(cond.get("status")) == "True" else "NotReady"]
    status = status or ["Unknown"]
    if (node.get("spec") or {}).get("unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_address(node: dict, kind: str) -> str:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == kind:
            return addr.get("address") or "<none>"
    return "<none>"


def _node_row(obj: dict, wide: bool, now) -> list[str]:
    info = (obj.get("status") or {}).get("nodeInfo") or {}
    row = [_meta(obj).get("name", ""), node_status_text(obj), ",".join(node_roles(obj)) or
           "<none>", age(_meta(obj).get("creationTimestamp"), now),
           info.get("kubeletVersion", "")]
    if wide:
        row += [node_address(obj, "InternalIP"), node_address(obj, "ExternalIP"),
                info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
                info.get("containerRuntimeVersion") or "<unknown>"]
    return row


def _ippool_row(obj: dict, wide: bool, now) -> list[str]:
    spec = obj.get("spec") or {}
    selector = spec.get("nodeSelector") or "all()"
    if not wide:
        return [_meta(obj).get("name", ""), spec.get("cidr", ""), selector]
    return [_meta(obj).get("name", ""), spec.get("cidr", ""),
            str(bool(spec.get("natOutgoing", False))).lower(), spec.get("ipipMode") or "Never",
            spec.get("vxlanMode") or "Never", str(bool(spec.get("disabled", False))).lower(),
            str(bool(spec.get("disableBGPExport", False))).lower(), selector]


def service_ports_text(spec: dict) -> str:
    """kubectl's PORT(S): "80/TCP", "80:30080/TCP" for a NodePort, comma-separated."""
    out = [f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/"
           f"{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []]
    return ",".join(out) or "<none>"


def _service_row(obj: dict, wide: bool, now) -> list[str]:
    spec = obj.get("spec") or {}
    row = [_meta(obj).get("name", ""), spec.get("type", "ClusterIP"),
           spec.get("clusterIP") or "<none>", "<none>", service_ports_text(spec),
           age(_meta(obj).get("creationTimestamp"), now)]
    if wide:
        sel = spec.get("selector")
        row.append(",".join(f"{k}={v}" for k, v in sorted(sel.items())) if sel else "<none>")
    return row


def more_list(items: list[str], limit: int = 3) -> str:
    """kubectl's endpoint lists: at most three, then "+ N more..."."""
    text = ",".join(items[:limit])
    return text + (f" + {len(items) - limit} more..." if len(items) > limit else "")


def _endpoints_row(obj: dict, wide: bool, now) -> list[str]:
    eps = [f"{a['ip']}:{p['port']}" if p else a["ip"] for sub in obj.get("subsets") or []
           for p in sub.get("ports") or [None] for a in sub.get("addresses") or []]
    return [_meta(obj).get("name", ""), more_list(eps) or "<none>",
            age(_meta(obj).get("creationTimestamp"), now)]


def _endpointslice_row(obj: dict, wide: bool, now) -> list[str]:
    ports = [str(p.get("port")) for p in obj.get("ports") or []]
    addrs = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return [_meta(obj).get("name", ""), obj.get("addressType", "IPv4"),
            more_list(ports) or "<unset>", more_list(addrs) or "<unset>",
            age(_meta(obj).get("creationTimestamp"), now)]


def _netpol_row(obj: dict, wide: bool, now) -> list[str]:
    sel = (obj.get("spec") or {}).get("podSelector")
    return [_meta(obj).get("name", ""), format_selector(sel) if sel else "<none>",
            age(_meta(obj).get("creationTimestamp"), now)]


def _generic_row(obj: dict, wide: bool, now) -> list[str]:
    return [_meta(obj).get("name", ""), age(_meta(obj).get("creationTimestamp"), now)]


_COLUMNS = {
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"], _pod_row),
    "Deployment": (["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
                   ["CONTAINERS", "IMAGES", "SELECTOR"], _deployment_row),
    "ReplicaSet": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
                   ["CONTAINERS", "IMAGES", "SELECTOR"], _replicaset_row),
    "StatefulSet": (["NAME", "READY", "AGE"], ["CONTAINERS", "IMAGES"], _statefulset_row),
    "DaemonSet": (["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                   "NODE SELECTOR", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"],
                  _daemonset_row),
    "Job": (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
            ["CONTAINERS", "IMAGES", "SELECTOR"], _job_row),
    "CronJob": (["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
                ["CONTAINERS", "IMAGES", "SELECTOR"], _cronjob_row),
    "Namespace": (["NAME", "STATUS", "AGE"], [], _namespace_row),
    "Service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], ["SELECTOR"],
                _service_row),
    "Endpoints": (["NAME", "ENDPOINTS", "AGE"], [], _endpoints_row),
    "EndpointSlice": (["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], [],
                      _endpointslice_row),
    "NetworkPolicy": (["NAME", "POD-SELECTOR", "AGE"], [], _netpol_row),
    "Node": (["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
             ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"],
             _node_row),
}
# calicoctl's own column sets (no AGE; wide replaces the list).
_IPPOOL = (["NAME", "CIDR", "SELECTOR"], ["NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE",
                                         "DISABLED", "DISABLEBGPEXPORT", "SELECTOR"])


def table(kind: str, objects: list[dict], wide: bool = False, now=None, *,
          all_namespaces: bool = False, namespace: str = "default") -> str:
    """`kubectl get <kind> [-o wide] [-A]` text (ends with a newline). Rows are sorted by
    namespace then name, as the API server lists them. Empty: kubectl's "No resources found"
    line (IPPool: calicoctl's bare header)."""
    kind = canonical_kind(kind)
    if kind == "NetworkPolicy" and any(str(o.get("apiVersion", "")).startswith(
            "projectcalico.org") for o in objects):
        kind = "NetworkPolicy.projectcalico.org"    # Calico's: no podSelector column
    objs = sorted(objects, key=lambda o: (_meta(o).get("namespace") or "",
                                          _meta(o).get("name") or ""))
    if kind == "IPPool":
        header = _IPPOOL[1] if wide else _IPPOOL[0]
        rows = [_ippool_row(o, wide, now) for o in objs]
        return tabwrite("\n".join("\t".join(r) for r in [header] + rows),
                        minwidth=5, padding=3) + "\n"
    if not objs:
        if all_namespaces or kind in CLUSTER_SCOPED:
            return "No resources found\n"
        return f"No resources found in {namespace} namespace.\n"
    base, extra, row_fn = _COLUMNS.get(kind, (["NAME", "AGE"], [], _generic_row))
    header = base + (extra if wide else [])
    rows = [row_fn(o, wide, now) for o in objs]
    if all_namespaces and kind not in CLUSTER_SCOPED:
        header = ["NAMESPACE"] + header
        rows = [[_meta(o).get("namespace") or "default"] + r for o, r in zip(objs, rows)]
    lines = ["\t".join(r) for r in [header] + rows]
    return tabwrite("\n".join(lines), minwidth=GET_MINWIDTH, padding=GET_PADDING) + "\n"


# ---------------------------------------------------------------------------- yaml / json

def plain(value):
    """Timestamps to RFC 3339 text, the way the API server serializes them."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return parse_time(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _document(objs, as_list: bool | None):
    if isinstance(objs, dict):
        objs, single = [objs], as_list is not True
    else:
        objs = list(objs)
        single = len(objs) == 1 if as_list is None else not as_list
    if single:
        return plain(objs[0])
    return {"apiVersion": "v1", "items": [plain(o) for o in objs], "kind": "List",
            "metadata": {"resourceVersion": ""}}


def to_yaml(objs, as_list: bool | None = None) -> str:
    """-o yaml: one object as itself, several as a v1 List; keys sorted like kubectl.
    ``as_list`` forces either form (kubectl prints a List for `get pods` even of one)."""
    return yaml.safe_dump(_document(objs, as_list), default_flow_style=False, sort_keys=True)


def to_json(objs, as_list: bool | None = None) -> str:
    """-o json: 4-space indent, keys in manifest order, as kubectl prints."""
    return json.dumps(_document(objs, as_list), indent=4) + "\n"

