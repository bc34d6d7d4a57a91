"""`kubectl describe` text for Pod, Deployment, ReplicaSet, Namespace, Node (Service and the
other workload kinds: orchestrator.present.describe_workloads), and a generic form (IPPool and anything else) that prints spec/status the way kubectl does for custom
resources.

Pure text: objects and events are manifest dicts, ``now`` is passed in.
"""

from __future__ import annotations

from orchestrator.api.quantity import format_cpu, format_memory, parse_cpu, parse_memory
from orchestrator.present.describe_base import (
    Out,
    conditions,
    containers,
    controller,
    events_table,
    head,
    labels_annotations,
    map_lines,
    meta,
    owned_by,
    pod_template,
    pods_status,
    qos_class,
    rfc1123z,
    tolerations,
    unstructured,
    volumes,
)
from orchestrator.present.printers import (
    age,
    canonical_kind,
    format_selector,
    node_roles,
    plain,
)


def describe_pod(pod: dict, events, now) -> str:
    out, spec, status = Out(), pod.get("spec") or {}, pod.get("status") or {}
    head(out, pod)
    out.w(0, f"Priority:\t{spec.get('priority', 0)}\n")
    out.w(0, f"Service Account:\t{spec.get('serviceAccountName') or 'default'}\n")
    node = spec.get("nodeName")
    out.w(0, f"Node:\t{node}/{status.get('hostIP', '')}\n" if node else "Node:\t<none>\n")
    if status.get("startTime"):
        out.w(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    labels_annotations(out, pod)
    if meta(pod).get("deletionTimestamp"):
        out.w(0, f"Status:\tTerminating (lasts {age(meta(pod)['deletionTimestamp'], now)})\n")
    else:
        out.w(0, f"Status:\t{status.get('phase', 'Pending')}\n")
    for title in ("reason", "message"):
        if status.get(title):
            out.w(0, f"{title.capitalize()}:\t{status[title]}\n")
    out.w(0, f"IP:\t{status.get('podIP', '')}\n")
    ips = status.get("podIPs") or []
    out.w(0, "IPs:\n" if ips else "IPs:\t<none>\n")
    for ip in ips:
        out.w(1, f"IP:\t{ip.get('ip', '')}\n")
    if controller(pod):
        out.w(0, f"Controlled By:\t{controller(pod)}\n")
    if spec.get("initContainers"):
        containers(out, "Init Containers", spec["initContainers"],
                   status.get("initContainerStatuses") or [], "")
    containers(out, "Containers", spec.get("containers") or [],
               status.get("containerStatuses") or [], "")
    if status.get("conditions"):
        out.w(0, "Conditions:\n  Type\tStatus\n")
        for c in status["conditions"]:
            out.w(1, f"{c.get('type')} \t{c.get('status')} \n")
    volumes(out, spec.get("volumes"), "")
    out.w(0, f"QoS Class:\t{qos_class(pod)}\n")
    map_lines(out, "", "Node-Selectors", spec.get("nodeSelector"), "=")
    tolerations(out, "", spec.get("tolerations"))
    events_table(out, events, now)
    return out.text()


def describe_deployment(obj: dict, events, now, related) -> str:
    out, spec, status = Out(), obj.get("spec") or {}, obj.get("status") or {}
    head(out, obj)
    out.w(0, f"CreationTimestamp:\t{rfc1123z(meta(obj).get('creationTimestamp'))}\n")
    labels_annotations(out, obj)
    out.w(0, f"Selector:\t{format_selector(spec.get('selector'))}\n")
    out.w(0, f"Replicas:\t{spec.get('replicas', 1)} desired | "
             f"{status.get('updatedReplicas', 0)} updated | {status.get('replicas', 0)} total | "
             f"{status.get('availableReplicas', 0)} available | "
             f"{status.get('unavailableReplicas', 0)} unavailable\n")
    strategy = spec.get("strategy") or {}
    out.w(0, f"StrategyType:\t{strategy.get('type', 'RollingUpdate')}\n")
    out.w(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}\n")
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        ru = strategy.get("rollingUpdate") or {}
        out.w(0, f"RollingUpdateStrategy:\t{ru.get('maxUnavailable', '25%')} max unavailable, "
                 f"{ru.get('maxSurge', '25%')} max surge\n")
    pod_template(out, spec.get("template") or {})
    conditions(out, status.get("conditions"))
    if related is not None:
        _replica_sets(out, obj, related)
    events_table(out, events, now)
    return out.text()


def _replica_sets(out: Out, deployment: dict, related: list) -> None:
    """OldReplicaSets / NewReplicaSet as deploymentutil.GetAllReplicaSets finds them: the new
    one runs the Deployment's pod template (newest if several); old ones still have replicas."""
    template_spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec")
    owned = sorted(owned_by(related, deployment, "ReplicaSet"),
                   key=lambda r: str(meta(r).get("creationTimestamp") or ""))
    current = [r for r in owned
               if (((r.get("spec") or {}).get("template") or {}).get("spec")) == template_spec]
    new = current[-1] if current else None
    old = [r for r in owned if r is not new and (r.get("spec") or {}).get("replicas", 1)]

    def show(rs: dict) -> str:
        return (f"{meta(rs).get('name')} ({(rs.get('status') or {}).get('replicas', 0)}/"
                f"{(rs.get('spec') or {}).get('replicas', 1)} replicas created)")

    out.w(0, f"OldReplicaSets:\t{', '.join(show(r) for r in old) or '<none>'}\n")
    out.w(0, f"NewReplicaSet:\t{show(new) if new else '<none>'}\n")


def describe_replicaset(obj: dict, events, now, related) -> str:
    out, spec, status = Out(), obj.get("spec") or {}, obj.get("status") or {}
    head(out, obj)
    out.w(0, f"Selector:\t{format_selector(spec.get('selector'))}\n")
    labels_annotations(out, obj)
    if controller(obj):
        out.w(0, f"Controlled By:\t{controller(obj)}\n")
    out.w(0, f"Replicas:\t{status.get('replicas', 0)} current / {spec.get('replicas', 1)} "
             "desired\n")
    pods_status(out, owned_by(related or [], obj, "Pod"))
    pod_template(out, spec.get("template") or {})
    conditions(out, status.get("conditions"))
    events_table(out, events, now)
    return out.text()


def describe_node(obj: dict, events, now, related) -> str:
    out, spec, status = Out(), obj.get("spec") or {}, obj.get("status") or {}
    head(out, obj, namespaced=False)
    out.w(0, f"Roles:\t{','.join(node_roles(obj)) or '<none>'}\n")
    labels_annotations(out, obj)
    out.w(0, f"CreationTimestamp:\t{rfc1123z(meta(obj).get('creationTimestamp'))}\n")
    taints = [f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
              for t in spec.get("taints") or []]
    for i, taint in enumerate(taints or ["<none>"]):
        out.w(0, f"{'Taints:' if i == 0 else ''}\t{taint}\n")
    out.w(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}\n")
    if status.get("conditions"):
        out.w(0, "Conditions:\n  Type\tStatus\tReason\tMessage\n")
        out.w(1, "----\t------\t------\t-------\n")
        for c in status["conditions"]:
            out.w(1, f"{c.get('type')} \t{c.get('status')} \t{c.get('reason', '')}\t"
                     f"{c.get('message', '')}\n")
    out.w(0, "Addresses:\n")
    for a in status.get("addresses") or []:
        out.w(1, f"{a.get('type')}:\t{a.get('address')}\n")
    for title in ("capacity", "allocatable"):
        if status.get(title):
            out.w(0, f"{title.capitalize()}:\n")
            for name in sorted(status[title]):
                out.w(1, f"{name}:\t{status[title][name]}\n")
    if spec.get("podCIDR"):
        out.w(0, f"PodCIDR:\t{spec['podCIDR']}\n")
    if related is not None:
        _node_pods(out, obj, related, now)
    events_table(out, events, now)
    return out.text()


def _node_pods(out: Out, node: dict, pods: list, now) -> None:
    """The Non-terminated Pods table with requests/limits as a share of allocatable."""
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    cap = {"cpu": parse_cpu(alloc.get("cpu", 0)), "memory": parse_memory(alloc.get("memory", 0))}
    mine = sorted((p for p in pods if (p.get("spec") or {}).get("nodeName") ==
                   meta(node).get("name") and (p.get("status") or {}).get("phase")
                   not in ("Succeeded", "Failed")),
                  key=lambda p: (meta(p).get("namespace") or "", meta(p).get("name")))
    out.w(0, f"Non-terminated Pods:\t({len(mine)} in total)\n")
    out.w(1, "Namespace\tName\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\t"
             "Age\n")
    out.w(1, "---------\t----\t------------\t----------\t---------------\t-------------\t---\n")
    for p in mine:
        cells = [meta(p).get("namespace") or "default", meta(p).get("name", "")]
        for res, parse, show in (("cpu", parse_cpu, format_cpu),
                                 ("memory", parse_memory, format_memory)):
            for section in ("requests", "limits"):
                total = 0
                for c in (p.get("spec") or {}).get("containers") or []:
                    res_spec = c.get("resources") or {}
                    # the API server defaults a missing request to the limit
                    value = ((res_spec.get(section) or {}).get(res) or
                             (res_spec.get("limits") or {}).get(res, 0))
                    total += parse(value)
                share = total * 100 // cap[res] if cap[res] else 0
                cells.append(f"{show(total)} ({share}%)")
        cells.append(age(meta(p).get("creationTimestamp"), now))
        out.w(1, "\t".join(cells) + "\n")


def describe_namespace(obj: dict, events, now, related) -> str:
    out = Out()
    head(out, obj, namespaced=False)
    labels_annotations(out, obj)
    out.w(0, f"Status:\t{(obj.get('status') or {}).get('phase') or 'Active'}\n")
    out.w(0, "\nNo resource quota.\n\nNo LimitRange resource.\n")
    return out.text()


def describe_generic(obj: dict, events, now) -> str:
    """kubectl's generic describer (custom resources: IPPool, ...)."""
    out = Out()
    out.w(0, f"Name:\t{meta(obj).get('name', '')}\n")
    out.w(0, f"Namespace:\t{meta(obj).get('namespace', '')}\n")
    labels_annotations(out, obj)
    skip = {".metadata.managedFields", ".metadata.name", ".metadata.namespace",
            ".metadata.labels", ".metadata.annotations"}
    unstructured(out, 0, plain(obj), "", skip)
    events_table(out, events if events is not None else [], now)
    return out.text()


def describe(kind: str, obj: dict, events=None, *, now=None, related=None) -> str:
    """`kubectl describe <kind>` text. ``events`` are v1 Event dicts (None: no Events
    section, [] : "Events: <none>"); ``related`` are the objects some kinds summarise
    (a Deployment's ReplicaSets, a ReplicaSet's or Node's Pods)."""
    kind = canonical_kind(kind)
    if kind == "Pod":
        return describe_pod(obj, events, now)
    if kind == "Deployment":
        return describe_deployment(obj, events, now, related)
    if kind == "ReplicaSet":
        return describe_replicaset(obj, events, now, related)
    if kind == "Node":
        return describe_node(obj, events, now, related)
    if kind == "Namespace":
        return describe_namespace(obj, events, now, related)
    from orchestrator.present.describe_workloads import DESCRIBERS
    if kind in DESCRIBERS:
        return DESCRIBERS[kind](obj, events, now, related)
    return describe_generic(obj, events, now)
