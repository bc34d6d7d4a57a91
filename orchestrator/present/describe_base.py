"""Building blocks of `kubectl describe` text: kubectl's PrefixWriter, label / toleration /
container / volume / condition / event sections, and the generic unstructured dump.

Pure text. Lines are built with tabs and aligned by the tabwriter emulation kubectl uses
(min width 0, padding 2); a flush ends an aligned block, as kubectl flushes before Events.
"""

from __future__ import annotations

import re

from orchestrator.api.quantity import parse_cpu, parse_memory
from orchestrator.present.printers import age, parse_time, tabwrite

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ACRONYMS = ("API", "URL", "UID", "OSB", "GUID")
# The annotation kubectl apply writes; describe hides it.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class Out:
    """kubectl's PrefixWriter: each level indents two spaces; flush() ends an aligned block."""

    def __init__(self):
        self.blocks: list[str] = []
        self.buf: list[str] = []

    def w(self, level: int, text: str) -> None:
        self.buf.append("  " * level + text)

    def flush(self) -> None:
        self.blocks.append(tabwrite("".join(self.buf), minwidth=0, padding=2))
        self.buf = []

    def text(self) -> str:
        self.flush()
        return "".join(self.blocks)


def rfc1123z(value) -> str:
    """Go's time.RFC1123Z in UTC: "Mon, 02 Jan 2006 15:04:05 +0000" (locale independent)."""
    t = parse_time(value)
    if t is None:
        return "<unset>"
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} +0000")


def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def map_lines(out: Out, indent: str, title: str, values: dict | None, sep: str) -> None:
    """printLabelsMultiline / printAnnotationsMultiline: sorted, one per line, aligned."""
    keys = sorted(k for k in (values or {}) if k != _LAST_APPLIED)
    if not keys:
        out.w(0, f"{indent}{title}:\t<none>\n")
        return
    for i, key in enumerate(keys):
        label = f"{indent}{title}:" if i == 0 else indent
        out.w(0, f"{label}\t{key}{sep}{values[key]}\n")


def labels_annotations(out: Out, obj: dict) -> None:
    """The Labels and Annotations blocks every describer prints under the name."""
    map_lines(out, "", "Labels", meta(obj).get("labels"), "=")
    map_lines(out, "", "Annotations", meta(obj).get("annotations"), ": ")


def pods_status(out: Out, pods: list) -> None:
    """A controller's "Pods Status" line from its pods' phases."""
    phases = [(p.get("status") or {}).get("phase", "Pending") for p in pods]
    out.w(0, f"Pods Status:\t{phases.count('Running')} Running / {phases.count('Pending')} "
             f"Waiting / {phases.count('Succeeded')} Succeeded / {phases.count('Failed')} "
             "Failed\n")


def tolerations(out: Out, indent: str, tolerations: list | None) -> None:
    if not tolerations:
        out.w(0, f"{indent}Tolerations:\t<none>\n")
        return
    for i, t in enumerate(tolerations):
        text = (t.get("key") or "") + (f"={t['value']}" if t.get("value") else "")
        text += f":{t['effect']}" if t.get("effect") else ""
        if t.get("operator") == "Exists" and not t.get("value"):
            text += " op=Exists" if t.get("key") or t.get("effect") else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        out.w(0, f"{indent + 'Tolerations:' if i == 0 else indent}\t{text}\n")


def controller(obj: dict) -> str:
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return ""


def _ports(ports: list, field: str) -> str:
    return ", ".join(f"{p.get(field, 0)}/{p.get('protocol', 'TCP')}" for p in ports)


def _state(out: Out, title: str, state: dict) -> None:
    if state.get("running") is not None:
        out.w(2, f"{title}:\tRunning\n")
        out.w(3, f"Started:\t{rfc1123z(state['running'].get('startedAt'))}\n")
    elif state.get("terminated") is not None:
        term = state["terminated"]
        out.w(2, f"{title}:\tTerminated\n")
        if term.get("reason"):
            out.w(3, f"Reason:\t{term['reason']}\n")
        if term.get("message"):
            out.w(3, f"Message:\t{term['message']}\n")
        out.w(3, f"Exit Code:\t{term.get('exitCode', 0)}\n")
        if term.get("signal"):
            out.w(3, f"Signal:\t{term['signal']}\n")
        out.w(3, f"Started:\t{rfc1123z(term.get('startedAt'))}\n")
        out.w(3, f"Finished:\t{rfc1123z(term.get('finishedAt'))}\n")
    else:
        out.w(2, f"{title}:\tWaiting\n")
        reason = (state.get("waiting") or {}).get("reason")
        if reason:
            out.w(3, f"Reason:\t{reason}\n")


def containers(out: Out, label: str, containers: list, statuses: list | None,
                space: str) -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    out.w(0, f"{space}{label}:\n" if containers else f"{space}{label}: <none>\n")
    for c in containers:
        status = by_name.get(c.get("name"))
        out.w(1, f"{' ' if space else ''}{c.get('name')}:\n")
        if status is not None:
            out.w(2, f"Container ID:\t{status.get('containerID', '')}\n")
        out.w(2, f"Image:\t{c.get('image', '')}\n")
        if status is not None:
            out.w(2, f"Image ID:\t{status.get('imageID', '')}\n")
        ports = c.get("ports") or []
        port, host = _ports(ports, "containerPort"), _ports(ports, "hostPort")
        out.w(2, f"{'Ports' if ',' in port else 'Port'}:\t{port or '<none>'}\n")
        out.w(2, f"{'Host Ports' if ',' in host else 'Host Port'}:\t{host or '<none>'}\n")
        for title, items in (("Command", c.get("command")), ("Args", c.get("args"))):
            if items:
                out.w(2, f"{title}:\n")
                for item in items:
                    for line in str(item).split("\n"):
                        out.w(3, f"{line}\n")
        if status is not None:
            _state(out, "State", status.get("state") or {})
            if (status.get("lastState") or {}).get("terminated"):
                _state(out, "Last State", status["lastState"])
            out.w(2, f"Ready:\t{'True' if status.get('ready') else 'False'}\n")
            out.w(2, f"Restart Count:\t{status.get('restartCount', 0)}\n")
        resources = c.get("resources") or {}
        for title in ("limits", "requests"):
            if resources.get(title):
                out.w(2, f"{title.capitalize()}:\n")
                for name in sorted(resources[title]):
                    out.w(3, f"{name}:\t{resources[title][name]}\n")
        env = c.get("env") or []
        out.w(2, "Environment:\t<none>\n" if not env else "Environment:\n")
        for e in env:
            value = e.get("value", "") if "valueFrom" not in e else "<set from valueFrom>"
            out.w(3, f"{e.get('name')}:\t{value}\n")
        out.w(2, "Mounts:\t<none>\n" if not c.get("volumeMounts") else "Mounts:\n")
        for m in c.get("volumeMounts") or []:
            out.w(3, f"{m.get('mountPath')} from {m.get('name')}\n")


def volumes(out: Out, volumes: list | None, space: str) -> None:
    if not volumes:
        out.w(0, f"{space}Volumes:\t<none>\n")
        return
    out.w(0, f"{space}Volumes:\n")
    for v in volumes:
        out.w(1, f"{space}{v.get('name')}:\n")
        kinds = [k for k in v if k != "name"]
        out.w(2, f"{space}Type:\t{kinds[0] if kinds else '<unknown>'}\n")


def qos_class(pod: dict) -> str:
    """v1 QOS class: Guaranteed (cpu+memory limits == requests everywhere), BestEffort (no
    cpu/memory requests or limits at all), else Burstable."""
    spec = pod.get("spec") or {}
    every = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    any_set, guaranteed = False, bool(every)
    for c in every:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if any(r in limits or r in requests for r in ("cpu", "memory")):
            any_set = True
        for r, parse in (("cpu", parse_cpu), ("memory", parse_memory)):
            if r not in limits or parse(requests.get(r, limits[r])) != parse(limits[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def events_table(out: Out, events, now) -> None:
    """DescribeEvents: its own aligned block, oldest lastTimestamp first, repeats as
    "<last> (xN over <first>)". None prints nothing (kubectl's --show-events=false)."""
    if events is None:
        return
    if not events:
        out.w(0, "Events:\t<none>\n")
        return
    out.flush()
    out.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    out.w(1, "----\t------\t----\t----\t-------\n")

    def last_seen(e):
        t = parse_time(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp"))
        # Go sorts a zero (unset) time before every real one
        return (t is not None, t.timestamp() if t else 0)

    for e in sorted(events, key=last_seen):
        first = age(e.get("eventTime") or e.get("firstTimestamp"), now)
        series = e.get("series") or {}
        if series:
            interval = (f"{age(series.get('lastObservedTime'), now)} "
                        f"(x{series.get('count', 1)} over {first})")
        elif int(e.get("count") or 1) > 1:
            interval = f"{age(e.get('lastTimestamp'), now)} (x{e['count']} over {first})"
        else:
            interval = first
        source = (e.get("source") or {}).get("component") or e.get("reportingController", "")
        message = " ".join(str(e.get("message", "")).split("\n")).strip()
        out.w(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{interval}\t{source}\t"
                 f"{message}\n")


def head(out: Out, obj: dict, namespaced: bool = True) -> None:
    out.w(0, f"Name:\t{meta(obj).get('name', '')}\n")
    if namespaced:
        out.w(0, f"Namespace:\t{meta(obj).get('namespace') or 'default'}\n")


def pod_template(out: Out, template: dict) -> None:
    out.w(0, "Pod Template:\n")
    meta, spec = template.get("metadata") or {}, template.get("spec") or {}
    map_lines(out, "  ", "Labels", meta.get("labels"), "=")
    if meta.get("annotations"):
        map_lines(out, "  ", "Annotations", meta.get("annotations"), ": ")
    if spec.get("initContainers"):
        containers(out, "Init Containers", spec["initContainers"], None, "  ")
    containers(out, "Containers", spec.get("containers") or [], None, "  ")
    volumes(out, spec.get("volumes"), "  ")
    if spec.get("nodeSelector"):
        map_lines(out, "  ", "Node-Selectors", spec["nodeSelector"], "=")
    if spec.get("tolerations"):
        tolerations(out, "  ", spec["tolerations"])


def conditions(out: Out, conditions: list | None) -> None:
    if conditions:
        out.w(0, "Conditions:\n  Type\tStatus\tReason\n")
        out.w(1, "----\t------\t------\n")
        for c in conditions:
            out.w(1, f"{c.get('type')} \t{c.get('status')}\t{c.get('reason', '')}\n")


def owned_by(items: list, obj: dict, kind: str) -> list:
    uid = meta(obj).get("uid")
    return [i for i in items if i.get("kind", kind) == kind and uid and any(
        r.get("uid") == uid for r in meta(i).get("ownerReferences") or [])]


def smart_label(field: str) -> str:
    """kubectl's smartLabelFor: "ipipMode" -> "Ipip Mode", "apiVersion" -> "API Version"."""
    if re.search(r"[^A-Za-z-]", field):
        return field
    parts = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[A-Z]+|-", field)
    return " ".join(p.upper() if p.upper() in _ACRONYMS else p[:1].upper() + p[1:]
                    for p in parts)


def unstructured(out: Out, level: int, content: dict, prefix: str, skip: set) -> None:
    for key in sorted(content):
        path, value = f"{prefix}.{key}", content[key]
        if path in skip:
            continue
        if isinstance(value, dict):
            out.w(level, f"{smart_label(key)}:\n")
            unstructured(out, level + 1, value, path, skip)
        elif isinstance(value, list):
            out.w(level, f"{smart_label(key)}:\n")
            for item in value:
                if isinstance(item, dict):
                    unstructured(out, level + 1, item, path, skip)
                else:
                    out.w(level + 1, f"{item}\n")
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            out.w(level, f"{smart_label(key)}:\t{text}\n")
