"""Experiment files: load and validate them completely before anything is built.

Pure apart from reading the experiment file and the files it names. An experiment is a
topology, optional manifests, and ordered steps. Each step is a mapping with exactly one step
key (its type), plus optional `name` and `expect`. Every error names the file, the step
number (1-based) and the field. The format is documented in docs/EXPERIMENTS.md.

The steps that send pod traffic (TRAFFIC_STEPS) choose an IP family, 4 or 6: their own
`family`, else the experiment's, else the pods' primary one (the topology's first
ipFamilies entry). The family is resolved here, against the families the topology's pods
have, so a run never starts with a step that asks for addresses no pod will get.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator import api
from orchestrator.errors import ValidationError

STEP_TYPES = ("apply", "delete", "label", "wait", "probe-matrix", "ping", "iperf", "http",
              "fail-node", "restore-node", "link-down", "link-up", "kill-speaker", "bandwidth",
              "capture", "routes", "iperf-baseline", "fabric-link-down", "fabric-link-up",
              "fail-router", "restore-router", "fabric-link-failure")
TOP_FIELDS = {"name", "description", "seed", "topology", "bgp", "dns", "manifests", "steps",
              "family"}
PROTOCOLS = ("TCP", "UDP", "SCTP")
FAMILY_NAMES = api.service.FAMILY_NAMES
TRAFFIC_STEPS = ("probe-matrix", "ping", "iperf", "http")   # the steps with a `family`
# A probe-matrix expectation key: "TCP/80" (every family the step probes) or "IPv6 TCP/80".
MATRIX_KEY = re.compile(r"^(?:(IPv4|IPv6) )?(TCP|UDP|SCTP)/([0-9]+)$")
OPS = ("==", "!=", "<", "<=", ">", ">=")
_POD_KEY = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_RATE = re.compile(r"^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$")
_TIME = re.compile(r"^[0-9]+(\.[0-9]+)?(us|ms|s)$")
_PCT = re.compile(r"^[0-9]+(\.[0-9]+)?%$")


@dataclass(frozen=True)
class PodRef:
    """One pod by "ns/name", or pods chosen by namespace + labels (first, random or all)."""
    key: str | None = None
    namespace: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    pick: str = "first"

    def describe(self) -> str:
        if self.key:
            return self.key
        sel = ",".join(f"{k}={v}" for k, v in self.labels)
        return f"{self.namespace or '*'}/[{sel}] ({self.pick})"


@dataclass
class Step:
    index: int
    type: str
    name: str
    params: dict
    expect: dict | None = None
    raw: dict = field(default_factory=dict)


@dataclass
class Experiment:
    name: str
    description: str
    path: str
    seed: int
    topology: str
    bgp: bool
    manifests: list[str]
    steps: list[Step]
    pods_defined: set[str] = field(default_factory=set)
    dns: bool = True
    family: int = 4                 # the traffic steps' default (explicit or the primary)
    families: tuple = (4,)          # the families the topology's pods have, primary first


class _At:
    def __init__(self, source: str, step: int | None = None):
        self.source, self.step = source, step

    def fail(self, field_path: str, message: str):
        raise ValidationError(message, source=self.source,
                              obj=f"step {self.step}" if self.step else None, field=field_path)


def load(path: str | Path) -> Experiment:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ValidationError("no such experiment file", source=str(path)) from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"not valid YAML: {exc}", source=str(path)) from None
    return parse(doc, path)


def parse(doc: Any, path: Path) -> Experiment:
    at = _At(str(path))
    if not isinstance(doc, dict):
        at.fail("", "an experiment must be a mapping")
    unknown = sorted(set(doc) - TOP_FIELDS)
    if unknown:
        at.fail(unknown[0], f"unknown field (known: {', '.join(sorted(TOP_FIELDS))})")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        at.fail("name", "required: a non-empty string")
    seed = doc.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        at.fail("seed", "must be an integer")
    bgp = doc.get("bgp", True)
    if not isinstance(bgp, bool):
        at.fail("bgp", "must be true or false")
    dns = doc.get("dns", True)
    if not isinstance(dns, bool):
        at.fail("dns", "must be true or false")
    topo = doc.get("topology")
    if not isinstance(topo, str):
        at.fail("topology", "required: the path of a topology file (relative to the experiment)")
    topo_path = _relative(path, topo)
    if not Path(topo_path).is_file():
        at.fail("topology", f"no such topology file: {topo_path}")
    from topologies.spec import load_spec
    try:
        spec = load_spec(topo_path)
    except ValidationError as exc:
        at.fail("topology", f"invalid topology {topo_path}: {exc}")
    fams = tuple(spec.families)
    default_family = _family(doc["family"], at, "family", fams) if "family" in doc else fams[0]
    nodes = {n.name for n in spec.nodes}
    fabric = spec.fabric
    routers = set(fabric.router_names) if fabric else set()
    links = {frozenset((ln.a, ln.b)) for ln in fabric.links} if fabric else set()
    manifests = doc.get("manifests") or []
    if not isinstance(manifests, list) or not all(isinstance(m, str) for m in manifests):
        at.fail("manifests", "must be a list of manifest file paths")
    # The topology's own manifests are applied first: their pods count as created.
    defined: set[str] = _pods_in(list(spec.manifests), at, "topology") if spec.manifests \
        else set()
    manifest_paths = []
    for i, m in enumerate(manifests):
        mp = _relative(path, m)
        manifest_paths.append(mp)
        defined |= _pods_in(mp, at, f"manifests[{i}]")
    steps_doc = doc.get("steps")
    if not isinstance(steps_doc, list) or not steps_doc:
        at.fail("steps", "required: a non-empty list of steps")
    steps = []
    for i, raw in enumerate(steps_doc, start=1):
        step = _step(raw, i, path, nodes, routers, links, fams=fams, family=default_family)
        if step.type == "apply":
            for j, src in enumerate(step.params["sources"]):
                defined |= _pods_in(src, _At(str(path), i), f"apply[{j}]")
        steps.append(step)
    exp = Experiment(name, str(doc.get("description") or ""), str(path), seed, topo_path, bgp,
                     manifest_paths, steps, defined, dns=dns, family=default_family,
                     families=fams)
    _check_pod_refs(exp)
    return exp


def _relative(base: Path, p: str) -> str:
    q = Path(p)
    return str(q if q.is_absolute() else (base.parent / q).resolve())


def _pods_in(source, at: _At, where: str) -> set[str]:
    """"ns/name" of every Pod a manifest defines (validated as apply would)."""
    try:
        docs = api.load_documents(source)
        objs = api.normalize_all(docs, now="1970-01-01T00:00:00Z")
    except ValidationError as exc:
        at.fail(where, f"invalid manifest: {exc}")
    return {f"{o['metadata']['namespace']}/{o['metadata']['name']}"
            for o in objs if o["kind"] == "Pod" and o["metadata"].get("name")}


def _step(raw: Any, index: int, path: Path, nodes: set[str], routers: set = frozenset(),
          links: set = frozenset(), *, fams: tuple = (4,), family: int = 4) -> Step:
    at = _At(str(path), index)
    if not isinstance(raw, dict):
        at.fail("", "a step must be a mapping with one step key (e.g. `ping: {...}`)")
    types = [k for k in raw if k in STEP_TYPES]
    extra = sorted(k for k in raw if k not in STEP_TYPES and k not in ("name", "expect"))
    if extra:
        at.fail(extra[0], f"unknown step field or step type (step types: {', '.join(STEP_TYPES)})")
    if len(types) != 1:
        at.fail("", f"a step has exactly one step key, found {types or 'none'}")
    kind = types[0]
    name = raw.get("name", f"{kind}")
    if not isinstance(name, str):
        at.fail("name", "must be a string")
    if kind in FABRIC_STEPS:
        params = _fabric_params(kind, raw[kind], at, routers, links)
    else:
        params = _params(kind, raw[kind], at, path, nodes)
    if kind in TRAFFIC_STEPS:
        _step_family(kind, raw[kind], params, at, fams, family)
    expect = raw.get("expect")
    if expect is not None:
        _check_expect(kind, expect, at, params)
    return Step(index, kind, name, params, expect, raw)


def _family(value: Any, at: _At, fieldp: str, fams: tuple) -> int:
    """4 or 6, from 4, 6, "IPv4" or "IPv6" (any case); it must be a family the pods have."""
    if isinstance(value, int) and not isinstance(value, bool) and value in FAMILY_NAMES:
        fam = value
    elif isinstance(value, str) and value.lower() in ("ipv4", "ipv6"):
        fam = int(value[-1])
    else:
        at.fail(fieldp, f"{value!r} is not an IP family: use 4 or 6 (or IPv4, IPv6)")
    if fam not in fams:
        have = ", ".join(FAMILY_NAMES[f] for f in fams)
        at.fail(fieldp, f"the pods have no {FAMILY_NAMES[fam]} addresses: the topology's "
                        f"ipFamilies are [{have}] (a dual-stack cluster has underlay.cidr6 "
                        "and ipFamilies [IPv4, IPv6], as topologies/examples/dual-stack.yaml)")
    return fam


def _step_family(kind: str, v: Any, params: dict, at: _At, fams: tuple, default: int) -> None:
    """params["family"] (ping, iperf, http) or params["families"] (probe-matrix: one family
    or a list of them, a matrix per family)."""
    raw = v.get("family") if isinstance(v, dict) else None
    if kind != "probe-matrix":
        params["family"] = default if raw is None else _family(raw, at, f"{kind}.family", fams)
        return
    if raw is None:
        params["families"] = [default]
    elif isinstance(raw, list):
        if not raw:
            at.fail(f"{kind}.family", "must be a family (4 or 6) or a non-empty list of them")
        out = []
        for i, item in enumerate(raw):
            fam = _family(item, at, f"{kind}.family[{i}]", fams)
            if fam in out:
                at.fail(f"{kind}.family[{i}]", f"{FAMILY_NAMES[fam]} is listed twice")
            out.append(fam)
        params["families"] = out
    else:
        params["families"] = [_family(raw, at, f"{kind}.family", fams)]
    if 6 in params["families"] and "SCTP" in params["protocols"]:
        # The prober crafts SCTP INITs on an IPv4 raw socket (orchestrator.traffic.probe).
        at.fail(f"{kind}.protocols[{params['protocols'].index('SCTP')}]",
                "SCTP probes are IPv4 only, and this step probes IPv6: probe SCTP in a step "
                "with family 4")


def _need(value: Any, at: _At, fieldp: str, kinds, what: str):
    if not isinstance(value, kinds):
        at.fail(fieldp, f"must be {what}")
    return value


def _pod_ref(value: Any, at: _At, fieldp: str) -> PodRef:
    if isinstance(value, str):
        if not _POD_KEY.match(value):
            at.fail(fieldp, f"{value!r} is not a pod as namespace/name")
        return PodRef(key=value)
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"namespace", "labels", "pick"})
        if unknown:
            at.fail(f"{fieldp}.{unknown[0]}", "unknown field (namespace, labels, pick)")
        labels = value.get("labels") or {}
        if not isinstance(labels, dict):
            at.fail(f"{fieldp}.labels", "must be a mapping")
        pick = value.get("pick", "first")
        if pick not in ("first", "random", "all"):
            at.fail(f"{fieldp}.pick", "must be first, random or all")
        return PodRef(namespace=value.get("namespace"),
                      labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
                      pick=pick)
    at.fail(fieldp, "must be a pod (namespace/name) or {namespace, labels, pick}")


def _positive(value, at, fieldp, what="a positive number", integer=False):
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if not ok or value <= 0:
        at.fail(fieldp, f"must be {what}")
    return value


FABRIC_STEPS = ("fabric-link-down", "fabric-link-up", "fail-router", "restore-router",
                "fabric-link-failure")


def _router(value, at, fieldp, routers):
    if not routers:
        at.fail(fieldp, "the topology has no fabric routers (no `fabric:` section)")
    if not isinstance(value, str) or value not in routers:
        at.fail(fieldp, f"{value!r} is not a router of the topology ({', '.join(sorted(routers))})")
    return value


def _fabric_params(kind: str, v: Any, at, routers: set, links: set) -> dict:
    if kind in ("fail-router", "restore-router"):
        if isinstance(v, dict):
            _known(v, {"router"}, at, kind)
        router = v.get("router") if isinstance(v, dict) else v
        return {"router": _router(router, at, kind, routers)}
    _need(v, at, kind, dict, "a mapping {a: ROUTER, b: ROUTER, ...}")
    allowed = {"a", "b"}
    if kind == "fabric-link-failure":
        allowed |= {"from", "to", "interval", "before", "after"}
    _known(v, allowed, at, kind)
    a = _router(v.get("a"), at, f"{kind}.a", routers)
    b = _router(v.get("b"), at, f"{kind}.b", routers)
    if frozenset((a, b)) not in links:
        at.fail(kind, f"no fabric link joins {a} and {b}")
    out = {"a": a, "b": b}
    if kind == "fabric-link-failure":
        for key in ("from", "to"):
            if key not in v:
                at.fail(f"{kind}.{key}", "required")
        out.update({"from": _pod_ref(v["from"], at, f"{kind}.from"),
                    "to": _pod_ref(v["to"], at, f"{kind}.to"),
                    "interval": _positive(v.get("interval", 0.01), at, f"{kind}.interval"),
                    "before": _positive(v.get("before", 1.0), at, f"{kind}.before"),
                    "after": _positive(v.get("after", 3.0), at, f"{kind}.after")})
    return out


def _node(value, at, fieldp, nodes):
    if not isinstance(value, str) or value not in nodes:
        at.fail(fieldp, f"{value!r} is not a node of the topology ({', '.join(sorted(nodes))})")
    return value


def _known(d: dict, allowed: set[str], at: _At, base: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        at.fail(f"{base}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(allowed))})")


def _params(kind: str, v: Any, at: _At, path: Path, nodes: set[str]) -> dict:
    if kind in ("apply", "delete"):
        items = v if isinstance(v, list) else [v]
        sources = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                sources.append(_relative(path, item))
            elif isinstance(item, dict) and kind == "apply":
                sources.append(item)
            elif isinstance(item, dict) and kind == "delete":
                _known(item, {"kind", "name", "namespace"}, at, f"{kind}[{i}]")
                if not isinstance(item.get("kind"), str) or not isinstance(item.get("name"), str):
                    at.fail(f"{kind}[{i}]", "needs kind and name")
                try:
                    api.resolve_kind(item["kind"])
                except ValidationError as exc:
                    at.fail(f"{kind}[{i}].kind", str(exc))
                sources.append(item)
            else:
                at.fail(f"{kind}[{i}]", "must be a manifest path or an inline object")
        if kind == "apply":
            for i, s in enumerate(sources):
                try:
                    api.normalize_all(api.load_documents(s), now="1970-01-01T00:00:00Z")
                except ValidationError as exc:
                    at.fail(f"apply[{i}]", f"invalid manifest: {exc}")
        return {"sources": sources}
    if kind == "label":
        _need(v, at, "label", dict, "a mapping {kind, name, labels}")
        _known(v, {"kind", "name", "namespace", "labels"}, at, "label")
        if not isinstance(v.get("kind"), str) or not isinstance(v.get("name"), str):
            at.fail("label", "needs kind and name")
        if not isinstance(v.get("labels"), dict):
            at.fail("label.labels", "must be a mapping (a null value removes the label)")
        return dict(v)
    if kind == "wait":
        if isinstance(v, str):
            v = {"for": v}
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = {"seconds": v}
        _need(v, at, "wait", dict, "ready, converged, a number of seconds or a mapping")
        _known(v, {"for", "seconds", "timeout"}, at, "wait")
        what = v.get("for", "duration" if "seconds" in v else None)
        if what not in ("ready", "converged", "duration"):
            at.fail("wait.for", "must be ready, converged or duration (with seconds)")
        if what == "duration":
            _positive(v.get("seconds"), at, "wait.seconds")
        if "timeout" in v:
            _positive(v["timeout"], at, "wait.timeout")
        return {"for": what, "seconds": v.get("seconds"), "timeout": v.get("timeout", 60)}
    if kind == "probe-matrix":
        v = v or {}
        _need(v, at, "probe-matrix", dict, "a mapping")
        _known(v, {"ports", "protocols", "pods", "timeout", "family"}, at, "probe-matrix")
        ports = v.get("ports", [80])
        if not isinstance(ports, list) or not ports or not all(
                isinstance(p, int) and 1 <= p <= 65535 for p in ports):
            at.fail("probe-matrix.ports", "must be a list of port numbers 1..65535")
        protos = v.get("protocols", ["TCP"])
        if not isinstance(protos, list) or not all(str(p).upper() in PROTOCOLS for p in protos):
            at.fail("probe-matrix.protocols", f"must be a list of {', '.join(PROTOCOLS)}")
        pods = v.get("pods")
        refs = None
        if pods is not None:
            if isinstance(pods, list):
                refs = [_pod_ref(p, at, f"probe-matrix.pods[{i}]") for i, p in enumerate(pods)]
            else:
                refs = [_pod_ref({**pods, "pick": "all"} if isinstance(pods, dict) else pods,
                                 at, "probe-matrix.pods")]
        timeout = v.get("timeout", 0.5)
        _positive(timeout, at, "probe-matrix.timeout")
        return {"ports": ports, "protocols": [str(p).upper() for p in protos], "pods": refs,
                "timeout": timeout}
    if kind in ("ping", "iperf", "http"):
        _need(v, at, kind, dict, "a mapping with from and to")
        allowed = {"ping": {"from", "to", "count", "interval"},
                   "iperf": {"from", "to", "protocol", "duration", "parallel", "port",
                             "bitrate"},
                   "http": {"from", "to", "port", "path", "requests", "timeout"}}[kind] | {
                       "family"}
        _known(v, allowed, at, kind)
        for key in ("from", "to"):
            if key not in v:
                at.fail(f"{kind}.{key}", "required")
        out = {"from": _pod_ref(v["from"], at, f"{kind}.from"),
               "to": _pod_ref(v["to"], at, f"{kind}.to")}
        if kind == "ping":
            out["count"] = _positive(v.get("count", 5), at, "ping.count", "a positive integer",
                                     integer=True)
            out["interval"] = _positive(v.get("interval", 0.2), at, "ping.interval")
        elif kind == "iperf":
            proto = str(v.get("protocol", "TCP")).upper()
            if proto not in ("TCP", "UDP"):
                at.fail("iperf.protocol", "must be TCP or UDP")
            out.update(protocol=proto,
                       duration=_positive(v.get("duration", 3), at, "iperf.duration"),
                       parallel=_positive(v.get("parallel", 1), at, "iperf.parallel",
                                          "a positive integer", integer=True),
                       port=_positive(v.get("port", 5201), at, "iperf.port", "a port",
                                      integer=True),
                       bitrate=str(v.get("bitrate", "0" if proto == "TCP" else "1G")))
        else:
            out.update(port=_positive(v.get("port", 80), at, "http.port", "a port",
                                      integer=True),
                       path=str(v.get("path", "/")),
                       requests=_positive(v.get("requests", 10), at, "http.requests",
                                          "a positive integer", integer=True),
                       timeout=_positive(v.get("timeout", 2.0), at, "http.timeout"))
        return out
    if kind in ("fail-node", "restore-node", "link-down", "link-up", "kill-speaker"):
        node = v.get("node") if isinstance(v, dict) else v
        return {"node": _node(node, at, kind, nodes)}
    if kind == "routes":
        node = v.get("node") if isinstance(v, dict) else v
        return {"node": _node(node, at, "routes", nodes)}
    if kind == "iperf-baseline":
        v = v or {}
        _need(v, at, kind, dict, "a mapping {duration, parallel}")
        _known(v, {"duration", "parallel"}, at, kind)
        return {"duration": _positive(v.get("duration", 3), at, f"{kind}.duration"),
                "parallel": _positive(v.get("parallel", 1), at, f"{kind}.parallel",
                                      "a positive integer", integer=True)}
    if kind == "bandwidth":
        _need(v, at, "bandwidth", dict, "a mapping {node, rate, delay, loss}")
        _known(v, {"node", "rate", "delay", "loss", "clear"}, at, "bandwidth")
        out = {"node": _node(v.get("node"), at, "bandwidth.node", nodes),
               "clear": bool(v.get("clear", False))}
        for key, rx, what in (("rate", _RATE, "like 100mbit"), ("delay", _TIME, "like 10ms"),
                              ("loss", _PCT, "like 1%")):
            if key in v:
                if not isinstance(v[key], str) or not rx.match(v[key]):
                    at.fail(f"bandwidth.{key}", f"must be {what}")
                out[key] = v[key]
        if not out["clear"] and not any(k in out for k in ("rate", "delay", "loss")):
            at.fail("bandwidth", "needs rate, delay or loss (or clear: true)")
        return out
    if kind == "capture":
        _need(v, at, "capture", dict, "a mapping {interfaces, seconds, count}")
        _known(v, {"interfaces", "seconds", "count", "filter"}, at, "capture")
        ifaces = v.get("interfaces")
        if not isinstance(ifaces, list) or not ifaces:
            at.fail("capture.interfaces", "must be a list like [node-1:eth0, demo/web-0:eth0]")
        parsed = []
        for i, spec in enumerate(ifaces):
            if not isinstance(spec, str) or ":" not in spec:
                at.fail(f"capture.interfaces[{i}]", "must be NODE:IFACE or NS/POD:IFACE")
            owner, iface = spec.rsplit(":", 1)
            if "/" in owner:
                _pod_ref(owner, at, f"capture.interfaces[{i}]")
            else:
                _node(owner, at, f"capture.interfaces[{i}]", nodes)
            parsed.append((owner, iface))
        return {"interfaces": parsed,
                "seconds": _positive(v.get("seconds", 5), at, "capture.seconds"),
                "count": v.get("count"), "filter": v.get("filter")}
    raise AssertionError(kind)


def _check_expect(kind: str, expect: Any, at: _At, params: dict | None = None) -> None:
    if not isinstance(expect, dict) or not expect:
        at.fail("expect", "must be a non-empty mapping")
    for key, cond in expect.items():
        fieldp = f"expect.{key}"
        if kind == "probe-matrix":
            m = MATRIX_KEY.match(str(key))
            if not m:
                at.fail(fieldp, "keys are PROTO/PORT, like TCP/80, or FAMILY PROTO/PORT, "
                                "like IPv6 TCP/80")
            probed = (params or {}).get("families")
            if m.group(1) and probed and int(m.group(1)[-1]) not in probed:
                at.fail(fieldp, f"the step probes {', '.join(FAMILY_NAMES[f] for f in probed)} "
                                f"only (probe-matrix.family), not {m.group(1)}")
            if cond in ("all-allowed", "all-denied"):
                continue
            if not isinstance(cond, dict) or set(cond) - {"denied", "allowed"} or len(cond) != 1:
                at.fail(fieldp, "must be all-allowed, all-denied, {denied: [pairs]} or "
                                "{allowed: [pairs]}")
            pairs = next(iter(cond.values()))
            if not isinstance(pairs, list):
                at.fail(fieldp, "pairs must be a list of 'ns/a -> ns/b'")
            for i, p in enumerate(pairs):
                if not isinstance(p, str) or not re.match(r"^\S+/\S+ -> \S+/\S+$", p):
                    at.fail(f"{fieldp}[{i}]", "must be like 'ns/a -> ns/b'")
            continue
        if not isinstance(key, str) or not re.match(r"^[A-Za-z_][-A-Za-z0-9_.]*$", key):
            at.fail(fieldp, "must be a measurement name like gbps or rtt_ms.avg")
        if not isinstance(cond, dict) or not cond:
            at.fail(fieldp, f"must be a mapping of comparisons ({', '.join(OPS)}) to values")
        for op, value in cond.items():
            if op not in OPS:
                at.fail(f"{fieldp}.{op}", f"unknown comparison (use {', '.join(OPS)})")
            if not isinstance(value, (int, float, str, bool)):
                at.fail(f"{fieldp}.{op}", "must be a number, string or boolean")


def _check_pod_refs(exp: Experiment) -> None:
    """Pods named as ns/name must be created by the experiment's manifests or apply steps
    (a typo is caught before anything is built)."""
    for step in exp.steps:
        at = _At(exp.path, step.index)
        refs = []
        if step.type in ("ping", "iperf", "http", "fabric-link-failure"):
            refs = [("from", step.params["from"]), ("to", step.params["to"])]
        elif step.type == "probe-matrix" and step.params["pods"]:
            refs = [(f"pods[{i}]", r) for i, r in enumerate(step.params["pods"])]
        elif step.type == "capture":
            refs = [(f"interfaces[{i}]", PodRef(key=o)) for i, (o, _) in
                    enumerate(step.params["interfaces"]) if "/" in o]
        for where, ref in refs:
            if ref.key and ref.key not in exp.pods_defined:
                at.fail(f"{step.type}.{where}",
                        f"pod {ref.key} is not created by this experiment's manifests or "
                        "apply steps (pods of Deployments: use {namespace, labels})")
