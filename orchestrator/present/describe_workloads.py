"""`kubectl describe` text for Service, StatefulSet, DaemonSet, Job and CronJob.

Pure text, in the shape of kubectl's describers (pkg/describe/describe.go): objects and the
related objects they summarise (a Service's EndpointSlices, a controller's Pods, a CronJob's
Jobs) are manifest dicts; ``now`` is passed in.
"""

from __future__ import annotations

from orchestrator.present.describe_base import (
    Out,
    conditions,
    controller,
    events_table,
    head,
    labels_annotations,
    meta,
    owned_by,
    pod_template,
    pods_status,
    rfc1123z,
)
from orchestrator.present.printers import format_selector, human_duration, more_list, parse_time

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _endpoints(port: dict, slices: list) -> str:
    """Ready addresses serving this Service port, as kubectl's formatEndpointSlices."""
    name = port.get("name", "")
    found = []
    for s in slices:
        for sp in s.get("ports") or []:
            if sp.get("name", "") == name and sp.get("protocol", "TCP") == port.get(
                "protocol", "TCP"
            ):
                found += [
                    f"{a}:{sp['port']}"
                    for e in s.get("endpoints") or []
                    if (e.get("conditions") or {}).get("ready", True)
                    for a in e.get("addresses") or []
                ]
    return more_list(found) or "<none>"


def describe_service(obj: dict, events, now, related) -> str:
    out, spec = Out(), obj.get("spec") or {}
    head(out, obj)
    labels_annotations(out, obj)
    out.w(0, f"Selector:\t{format_selector({'matchLabels': spec.get('selector')}) or '<none>'}\n")
    kind = spec.get("type", "ClusterIP")
    out.w(0, f"Type:\t{kind}\n")
    out.w(0, f"IP Family Policy:\t{spec.get('ipFamilyPolicy', 'SingleStack')}\n")
    out.w(0, f"IP Families:\t{', '.join(spec.get('ipFamilies') or ['IPv4'])}\n")
    ip = spec.get("clusterIP") or "None"
    out.w(0, f"IP:\t{ip}\n")
    out.w(0, f"IPs:\t{', '.join(spec.get('clusterIPs') or [ip])}\n")
    slices = [
        s
        for s in related or []
        if (meta(s).get("labels") or {}).get(SERVICE_NAME_LABEL) == meta(obj).get("name")
    ]
    for p in spec.get("ports") or []:
        name = p.get("name") or "<unset>"
        proto = p.get("protocol", "TCP")
        out.w(0, f"Port:\t{name}  {p['port']}/{proto}\n")
        out.w(0, f"TargetPort:\t{p.get('targetPort', p['port'])}/{proto}\n")
        if p.get("nodePort"):
            out.w(0, f"NodePort:\t{name}  {p['nodePort']}/{proto}\n")
        out.w(0, f"Endpoints:\t{_endpoints(p, slices)}\n")
    out.w(0, f"Session Affinity:\t{spec.get('sessionAffinity', 'None')}\n")
    if kind in ("NodePort", "LoadBalancer"):
        out.w(0, f"External Traffic Policy:\t{spec.get('externalTrafficPolicy', 'Cluster')}\n")
    out.w(0, f"Internal Traffic Policy:\t{spec.get('internalTrafficPolicy', 'Cluster')}\n")
    events_table(out, events, now)
    return out.text()


def describe_statefulset(obj: dict, events, now, related) -> str:
    out, spec, status = Out(), obj.get("spec") or {}, obj.get("status") or {}
    head(out, obj)
    out.w(0, f"CreationTimestamp:\t{rfc1123z(meta(obj).get('creationTimestamp'))}\n")
    out.w(0, f"Selector:\t{format_selector(spec.get('selector'))}\n")
    labels_annotations(out, obj)
    out.w(0, f"Replicas:\t{spec.get('replicas', 1)} desired | {status.get('replicas', 0)} total\n")
    strategy = spec.get("updateStrategy") or {}
    out.w(0, f"Update Strategy:\t{strategy.get('type', 'RollingUpdate')}\n")
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        out.w(1, f"Partition:\t{(strategy.get('rollingUpdate') or {}).get('partition', 0)}\n")
    pods_status(out, owned_by(related or [], obj, "Pod"))
    pod_template(out, spec.get("template") or {})
    claims = spec.get("volumeClaimTemplates") or []
    out.w(0, f"Volume Claims:\t{'<none>' if not claims else ''}\n")
    for c in claims:
        out.w(1, f"Name:\t{meta(c).get('name')}\n")
    events_table(out, events, now)
    return out.text()


def describe_daemonset(obj: dict, events, now, related) -> str:
    out, spec, status = Out(), obj.get("spec") or {}, obj.get("status") or {}
    head(out, obj)
    out.w(0, f"Selector:\t{format_selector(spec.get('selector'))}\n")
    node_sel = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector")
    out.w(0, f"Node-Selector:\t{format_selector({'matchLabels': node_sel}) or '<none>'}\n")
    labels_annotations(out, obj)
    out.w(0, f"Desired Number of Nodes Scheduled: {status.get('desiredNumberScheduled', 0)}\n")
    out.w(0, f"Current Number of Nodes Scheduled: {status.get('currentNumberScheduled', 0)}\n")
    out.w(
        0,
        "Number of Nodes Scheduled with Up-to-date Pods: "
        f"{status.get('updatedNumberScheduled', 0)}\n",
    )
    out.w(0, f"Number of Nodes Scheduled with Available Pods: {status.get('numberAvailable', 0)}\n")
    out.w(0, f"Number of Nodes Misscheduled: {status.get('numberMisscheduled', 0)}\n")
    pods_status(out, owned_by(related or [], obj, "Pod"))
    pod_template(out, spec.get("template") or {})
    events_table(out, events, now)
    return out.text()


def _duration(start, end) -> str:
    a, b = parse_time(start), parse_time(end)
    return "" if a is None or b is None else human_duration((b - a).total_seconds())


def describe_job(obj: dict, events, now, related) -> str:
    out, spec, status = Out(), obj.get("spec") or {}, obj.get("status") or {}
    head(out, obj)
    out.w(0, f"Selector:\t{format_selector(spec.get('selector')) or '<none>'}\n")
    labels_annotations(out, obj)
    if controller(obj):
        out.w(0, f"Controlled By:\t{controller(obj)}\n")
    out.w(0, f"Parallelism:\t{spec.get('parallelism', 1)}\n")
    out.w(0, f"Completions:\t{spec.get('completions', '<unset>')}\n")
    out.w(0, f"Completion Mode:\t{spec.get('completionMode', 'NonIndexed')}\n")
    out.w(0, f"Backoff Limit:\t{spec.get('backoffLimit', 6)}\n")
    if status.get("startTime"):
        out.w(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    if status.get("completionTime"):
        out.w(0, f"Completed At:\t{rfc1123z(status['completionTime'])}\n")
        out.w(0, f"Duration:\t{_duration(status.get('startTime'), status['completionTime'])}\n")
    out.w(
        0,
        f"Pods Statuses:\t{status.get('active', 0)} Active ({status.get('ready', 0)} "
        f"Ready) / {status.get('succeeded', 0)} Succeeded / {status.get('failed', 0)} "
        "Failed\n",
    )
    pod_template(out, spec.get("template") or {})
    conditions(out, status.get("conditions"))
    events_table(out, events, now)
    return out.text()


def describe_cronjob(obj: dict, events, now, related) -> str:
    out, spec, status = Out(), obj.get("spec") or {}, obj.get("status") or {}
    head(out, obj)
    labels_annotations(out, obj)
    out.w(0, f"Schedule:\t{spec.get('schedule')}\n")
    if spec.get("timeZone"):
        out.w(0, f"Time Zone:\t{spec['timeZone']}\n")
    out.w(0, f"Concurrency Policy:\t{spec.get('concurrencyPolicy', 'Allow')}\n")
    out.w(0, f"Suspend:\t{spec.get('suspend', False)}\n")
    out.w(0, f"Successful Job History Limit:\t{spec.get('successfulJobsHistoryLimit', 3)}\n")
    out.w(0, f"Failed Job History Limit:\t{spec.get('failedJobsHistoryLimit', 1)}\n")
    deadline = spec.get("startingDeadlineSeconds")
    out.w(0, f"Starting Deadline Seconds:\t{deadline if deadline is not None else '<unset>'}\n")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    sel = job_spec.get("selector")
    out.w(0, f"Selector:\t{format_selector(sel) if sel else '<unset>'}\n")
    out.w(0, f"Parallelism:\t{job_spec.get('parallelism', '<unset>')}\n")
    out.w(0, f"Completions:\t{job_spec.get('completions', '<unset>')}\n")
    pod_template(out, job_spec.get("template") or {})
    out.w(0, f"Last Schedule Time:\t{rfc1123z(status.get('lastScheduleTime'))}\n")
    jobs = [
        j
        for j in owned_by(related or [], obj, "Job")
        if not any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in (j.get("status") or {}).get("conditions") or []
        )
    ]
    out.w(0, f"Active Jobs:\t{', '.join(meta(j).get('name') for j in jobs) or '<none>'}\n")
    events_table(out, events, now)
    return out.text()


DESCRIBERS = {
    "Service": describe_service,
    "StatefulSet": describe_statefulset,
    "DaemonSet": describe_daemonset,
    "Job": describe_job,
    "CronJob": describe_cronjob,
}
# The kind of related objects each describer summarises (read from the object's namespace).
RELATED = {
    "Service": "EndpointSlice",
    "StatefulSet": "Pod",
    "DaemonSet": "Pod",
    "CronJob": "Job",
    "Deployment": "ReplicaSet",
    "ReplicaSet": "Pod",
    "Node": "Pod",
}
