"""NetworkPolicy conformance cases: load and validate case files, build the x/y/z model.

Reads the case files it is given (YAML, the schema of conformance/README.md); everything
else is pure. A case is policies plus the expected reachability of the x/y/z model, in one
step or several; errors name the file, the step and the field so a typo in a corpus of a
hundred files is found from the message alone. The same files run in IPv4 and IPv6: the
placeholders take the run's family (substitute).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import yaml

from orchestrator.errors import ValidationError
from policy.oracle import PROTOCOLS, Model, as_model, pod_key

NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
SERVED_PORTS = (80, 81)
XYZ_PODS = tuple(f"{ns}/{p}" for ns in NAMESPACES for p in POD_NAMES)

_CASE_FIELDS = frozenset({"name", "source", "tags", "why", "policies", "probes", "expect",
                          "steps"})
_SINGLE_STEP_FIELDS = ("policies", "probes", "expect")
_STEP_FIELDS = frozenset({"description", "delete", "apply", "add_pod_labels",
                          "add_namespace_labels", "probes", "expect"})
_PROBE_KEY_RE = re.compile(r"^(TCP|UDP|SCTP)/([0-9]+)$")
_PAIR_RE = re.compile(r"^([a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*) -> "
                      r"([a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*)$")
# A placeholder and the prefix length written right after it ("{{ip x/b}}/32").
_PLACEHOLDER_RE = re.compile(r"\{\{(.*?)\}\}(?:/([0-9]+))?")
_IP_PLACEHOLDER_RE = re.compile(r"^\s*ip\s+(\S+)\s*$")
_PODCIDR_RE = re.compile(r"^\s*podcidr\s*$")
# Cases are written for IPv4: a prefix length after {{ip ns/pod}} counts IPv4 bits. An IPv6
# run keeps the number of host bits: /32 (one pod) -> /128, /24 -> /120, /0 -> /96.
V6_PREFIX_OFFSET = 128 - 32
DEFAULT_PODCIDR = {4: "10.244.0.0/16", 6: "fd00:10:244::/56"}


@dataclass(frozen=True)
class Probe:
    port: int
    protocol: str

    @property
    def key(self) -> str:
        return f"{self.protocol}/{self.port}"


@dataclass(frozen=True)
class Step:
    """One step; ``expect`` maps a probe key ("TCP/80") to its DENIED (src, dst) pairs."""

    description: str = ""
    delete: list[dict] = field(default_factory=list)
    apply: list[dict] = field(default_factory=list)
    add_pod_labels: list[dict] = field(default_factory=list)
    add_namespace_labels: list[dict] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    expect: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    tags: list[str]
    why: str
    path: str
    steps: list[Step]


class _Where:
    """Location of what is being checked: file, step (1-based), field path."""

    def __init__(self, source: str, step: int | None = None):
        self.source, self.step = source, step

    def fail(self, field_path: str, message: str) -> None:
        obj = f"step {self.step}" if self.step is not None else None
        raise ValidationError(message, source=self.source, obj=obj, field=field_path)


def load_case(path: str | Path, pods: Iterable[str] = XYZ_PODS) -> Case:
    """Read and validate one case file; ``pods`` are the "ns/name" keys expectations may use."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ValidationError(f"not valid YAML: {exc}", source=path) from None
    return parse_case(doc, path, pods)


def load_dir(directory: str | Path, pods: Iterable[str] = XYZ_PODS) -> list[Case]:
    """Every ``*.yaml``/``*.yml`` case in ``directory``, in file-name order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValidationError("not a directory", source=str(directory))
    pods = tuple(pods)
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    cases, seen = [], {}
    for f in files:
        case = load_case(f, pods)
        if case.name in seen:
            raise ValidationError(f"duplicate case name {case.name!r} (also in {seen[case.name]})",
                                  source=str(f), field="name")
        seen[case.name] = str(f)
        cases.append(case)
    return cases


def parse_case(doc: Any, source: str = "<text>", pods: Iterable[str] = XYZ_PODS) -> Case:
    """Validate an already-parsed case document."""
    top = _Where(source)
    pods = frozenset(pods)
    if not isinstance(doc, dict):
        top.fail(None, f"a case must be a mapping, got {type(doc).__name__}")
    for key in doc:
        if key not in _CASE_FIELDS:
            top.fail(str(key), f'unknown field "{key}"')
    name = _str(doc.get("name"), "name", top, required=True)
    source_text = _str(doc.get("source"), "source", top) or ""
    why = _str(doc.get("why"), "why", top) or ""
    tags = _list(doc.get("tags"), "tags", top)
    for i, t in enumerate(tags):
        _str(t, f"tags[{i}]", top, required=True)
    single = [k for k in _SINGLE_STEP_FIELDS if k in doc]
    if "steps" in doc:
        if single:
            top.fail(single[0], 'cannot be combined with "steps" (single-step and multi-step '
                                'forms are exclusive)')
        raw_steps = _list(doc["steps"], "steps", top)
        if not raw_steps:
            top.fail("steps", "Required value: at least one step")
        steps = [_parse_step(s, f"steps[{i}]", _Where(source, i + 1), pods)
                 for i, s in enumerate(raw_steps)]
    else:
        if "probes" not in doc:
            top.fail("probes", "Required value: a case needs probes (or steps)")
        raw = {"description": name, "apply": doc.get("policies") or [],
               "probes": doc.get("probes"), "expect": doc.get("expect")}
        steps = [_parse_step(raw, "", top, pods, apply_field="policies")]
    return Case(name=name, source=source_text, tags=list(tags), why=why, path=source,
                steps=steps)


def _parse_step(raw: Any, path: str, where: _Where, pods: frozenset[str],
                apply_field: str = "apply") -> Step:
    def at(key: str) -> str:
        return f"{path}.{key}" if path else key

    if not isinstance(raw, dict):
        where.fail(path, "a step must be a mapping")
    for key in raw:
        if key not in _STEP_FIELDS:
            where.fail(at(str(key)), f'unknown field "{key}"')
    namespaces = {p.split("/", 1)[0] for p in pods}
    description = _str(raw.get("description"), at("description"), where) or ""
    delete = []
    for i, ref in enumerate(_list(raw.get("delete"), at("delete"), where)):
        f = at(f"delete[{i}]")
        _mapping(ref, f, where, {"namespace", "name"})
        delete.append({"namespace": _str(ref.get("namespace"), f + ".namespace", where,
                                         required=True),
                       "name": _str(ref.get("name"), f + ".name", where, required=True)})
    apply = []
    for i, m in enumerate(_list(raw.get("apply"), at(apply_field), where)):
        f = at(f"{apply_field}[{i}]")
        if not isinstance(m, dict):
            where.fail(f, "a manifest must be a mapping")
        _check_placeholders(m, f, where, pods)
        apply.append(copy.deepcopy(m))
    pod_labels = []
    for i, entry in enumerate(_list(raw.get("add_pod_labels"), at("add_pod_labels"), where)):
        f = at(f"add_pod_labels[{i}]")
        _mapping(entry, f, where, {"pod", "labels"})
        pod = _str(entry.get("pod"), f + ".pod", where, required=True)
        if pod not in pods:
            where.fail(f + ".pod", f"unknown pod {pod!r}")
        pod_labels.append({"pod": pod, "labels": _labels(entry.get("labels"), f, where)})
    ns_labels = []
    for i, entry in enumerate(_list(raw.get("add_namespace_labels"),
                                    at("add_namespace_labels"), where)):
        f = at(f"add_namespace_labels[{i}]")
        _mapping(entry, f, where, {"namespace", "labels"})
        ns = _str(entry.get("namespace"), f + ".namespace", where, required=True)
        if ns not in namespaces:
            where.fail(f + ".namespace", f"unknown namespace {ns!r}")
        ns_labels.append({"namespace": ns, "labels": _labels(entry.get("labels"), f, where)})
    probes = _parse_probes(raw.get("probes"), at("probes"), where)
    expect = _parse_expect(raw.get("expect"), at("expect"), where, probes, pods)
    return Step(description, delete, apply, pod_labels, ns_labels, probes, expect)


def _parse_probes(raw: Any, path: str, where: _Where) -> list[Probe]:
    probes: list[Probe] = []
    for i, p in enumerate(_list(raw, path, where)):
        f = f"{path}[{i}]"
        _mapping(p, f, where, {"port", "protocol"})
        port = p.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            where.fail(f + ".port", f"Invalid value: {port!r}: must be a port number 1-65535")
        proto = p.get("protocol")
        if proto not in PROTOCOLS:
            where.fail(f + ".protocol", f"Unsupported value: {proto!r}: supported values: "
                                        + ", ".join(f'"{x}"' for x in PROTOCOLS))
        probe = Probe(port, proto)
        if probe in probes:
            where.fail(f, f"Duplicate value: probe {probe.key}")
        probes.append(probe)
    return probes


def _parse_expect(raw: Any, path: str, where: _Where, probes: list[Probe],
                  pods: frozenset[str]) -> dict[str, list[tuple[str, str]]]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        where.fail(path, "must be a mapping of probe key (\"TCP/80\") to denied pairs")
    keys = {p.key for p in probes}
    out: dict[str, list[tuple[str, str]]] = {}
    for key, pairs in raw.items():
        f = f"{path}.{key}"
        if not isinstance(key, str) or not _PROBE_KEY_RE.match(key):
            where.fail(f, f'Invalid value: {key!r}: an expect key is "<PROTO>/<port>" '
                          "with PROTO one of TCP, UDP, SCTP")
        if key not in keys:
            where.fail(f, f"expect key {key!r} has no probe in this step")
        denied: list[tuple[str, str]] = []
        for i, text in enumerate(_list(pairs, f, where)):
            pf = f"{f}[{i}]"
            m = _PAIR_RE.match(text) if isinstance(text, str) else None
            if not m:
                where.fail(pf, f'Invalid value: {text!r}: a pair is "ns/pod -> ns/pod"')
            src, dst = m.group(1), m.group(2)
            for pod in (src, dst):
                if pod not in pods:
                    where.fail(pf, f"unknown pod {pod!r}")
            if src == dst:
                where.fail(pf, f"self pair {text!r}: self traffic is never probed")
            if (src, dst) in denied:
                where.fail(pf, f"Duplicate value: {text!r}")
            denied.append((src, dst))
        out[key] = denied
    for probe in probes:
        if probe.key not in out:
            where.fail(f"{path}.{probe.key}", f"Required value: probe {probe.key} has no "
                                              "expectation ([] means all allowed)")
    return out


def _mapping(value: Any, path: str, where: _Where, known: set[str]) -> None:
    if not isinstance(value, dict):
        where.fail(path, f"must be a mapping with keys {', '.join(sorted(known))}")
    for key in value:
        if key not in known:
            where.fail(f"{path}.{key}", f'unknown field "{key}"')


def _str(value: Any, path: str, where: _Where, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            where.fail(path, "Required value")
        return value
    if not isinstance(value, str):
        where.fail(path, f"must be a string, got {value!r}")
    return value


def _list(value: Any, path: str, where: _Where) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        where.fail(path, f"must be a list, got {type(value).__name__}")
    return value


def _labels(value: Any, path: str, where: _Where) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        where.fail(path + ".labels", "Required value: a non-empty mapping of labels")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            where.fail(f"{path}.labels.{k}", f"label {k!r}: {v!r} must be string: string")
    return dict(value)


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _check_placeholders(manifest: dict, path: str, where: _Where, pods: frozenset[str]) -> None:
    # Checked at load so a typo ({{ip x/d}}) fails before any cluster is built.
    for text in _strings(manifest):
        for inner, prefix in _PLACEHOLDER_RE.findall(text):
            m = _IP_PLACEHOLDER_RE.match(inner)
            if m and m.group(1) not in pods:
                where.fail(path, f"placeholder {{{{{inner}}}}} names unknown pod {m.group(1)!r}")
            if not m and not _PODCIDR_RE.match(inner):
                where.fail(path, f"unknown placeholder {{{{{inner}}}}}: "
                                 "use {{ip ns/pod}} or {{podcidr}}")
            if prefix and not m:
                where.fail(path, f"{{{{{inner}}}}}/{prefix}: {{{{podcidr}}}} is a CIDR already "
                                 "(no prefix length after it)")
            if prefix and int(prefix) > 32:
                where.fail(path, f"{{{{{inner}}}}}/{prefix}: the prefix length after "
                                 "{{ip ns/pod}} is an IPv4 one, 0-32 (an IPv6 run adds "
                                 f"{V6_PREFIX_OFFSET}: /32 is /128)")


def substitute(obj: Any, ips: Mapping[str, str], podcidr: str) -> Any:
    """A copy of ``obj`` with ``{{ip ns/pod}}`` and ``{{podcidr}}`` replaced in every string.

    The family is the addresses': with IPv6 ``ips`` (an IPv6 run), a prefix length written
    after ``{{ip ns/pod}}`` -- an IPv4 one, as cases are written -- becomes the IPv6 one with
    as many host bits (``{{ip x/b}}/32`` -> ``<x/b's IPv6 address>/128``); ``podcidr`` is
    given in the run's family (the IPv6 pool)."""
    if isinstance(obj, dict):
        return {k: substitute(v, ips, podcidr) for k, v in obj.items()}
    if isinstance(obj, list):
        return [substitute(v, ips, podcidr) for v in obj]
    if not isinstance(obj, str):
        return obj

    def one(m: re.Match) -> str:
        inner, prefix = m.group(1), m.group(2)
        ip = _IP_PLACEHOLDER_RE.match(inner)
        if ip:
            if ip.group(1) not in ips:
                raise ValidationError(f"no IP for pod {ip.group(1)!r} in placeholder {m.group(0)}")
            addr = ips[ip.group(1)]
            if prefix is None:
                return addr
            bits = int(prefix)
            if bits > 32:
                raise ValidationError(f"{m.group(0)}: the prefix length after {{{{ip ns/pod}}}} "
                                      "is an IPv4 one, 0-32")
            return f"{addr}/{bits + V6_PREFIX_OFFSET if ':' in addr else bits}"
        if _PODCIDR_RE.match(inner):
            if prefix is not None:
                raise ValidationError(f"{m.group(0)}: {{{{podcidr}}}} is a CIDR already")
            return podcidr
        raise ValidationError(f"unknown placeholder {m.group(0)}: use {{{{ip ns/pod}}}} or "
                              "{{podcidr}}")
    return _PLACEHOLDER_RE.sub(one, obj)


def expected_matrix(step: Step, probe: Probe | str,
                    pods: Iterable[str] | Model) -> dict[tuple[str, str], bool]:
    """``{(src, dst): allowed}`` for every ordered pair of distinct ``pods`` (keys or a Model):
    every pair is allowed except the step's denied ones for ``probe``."""
    key = probe.key if isinstance(probe, Probe) else probe
    keys = pods.keys() if isinstance(pods, Model) else list(pods)
    denied = set(step.expect[key])
    return {(s, d): (s, d) not in denied for s in keys for d in keys if s != d}


def x_y_z_model(ips: Mapping[str, str] | None = None) -> Model:
    """The README's model: namespaces x/y/z, pods a/b/c in each, ports 80/81 on TCP/UDP/SCTP
    named ``serve-<port>-<proto>``; pod IPs from ``ips`` ("ns/pod" -> address) or None. The
    addresses are those of the family probed (IPv6 ones for an IPv6 run): they are what
    ipBlocks see."""
    namespaces = {ns: {"ns": ns, "kubernetes.io/metadata.name": ns} for ns in NAMESPACES}
    ports = [{"name": f"serve-{port}-{proto.lower()}", "port": port, "protocol": proto}
             for port in SERVED_PORTS for proto in PROTOCOLS]
    pods = [{"namespace": ns, "name": p, "labels": {"pod": p},
             "ip": (ips or {}).get(f"{ns}/{p}"), "ports": [dict(x) for x in ports]}
            for ns in NAMESPACES for p in POD_NAMES]
    return Model(namespaces=namespaces, pods=pods)


def with_labels(model: Model | Mapping, step: Step) -> Model:
    """A new model with the step's pod and namespace labels merged in."""
    model = as_model(model)
    namespaces = {ns: dict(labels) for ns, labels in model.namespaces.items()}
    for entry in step.add_namespace_labels:
        namespaces[entry["namespace"]].update(entry["labels"])
    pods = [dict(p, labels=dict(p.get("labels") or {})) for p in model.pods]
    by_key = {pod_key(p): p for p in pods}
    for entry in step.add_pod_labels:
        by_key[entry["pod"]]["labels"].update(entry["labels"])
    return replace(model, namespaces=namespaces, pods=pods)


def replay(case: Case, model: Model | Mapping, *, ips: Mapping[str, str], podcidr: str,
           normalize: Callable[[dict], dict] | None = None
           ) -> Iterator[tuple[int, Step, Model, list[dict]]]:
    """Walk the case's steps the way the runner does (delete, apply, labels), yielding
    ``(step number, step, model, policies in force)``; ``normalize`` defaults each applied
    manifest (API defaulting) after placeholder substitution."""
    in_force: dict[tuple[str, str], dict] = {}
    for n, step in enumerate(case.steps, 1):
        for i, ref in enumerate(step.delete):
            if in_force.pop((ref["namespace"], ref["name"]), None) is None:
                _Where(case.path, n).fail(f"steps[{n - 1}].delete[{i}]",
                                          f"no policy {ref['namespace']}/{ref['name']} "
                                          "to delete")
        for manifest in step.apply:
            m = substitute(manifest, ips, podcidr)
            if normalize is not None:
                m = normalize(m)
            meta = m.get("metadata") or {}
            in_force[(meta.get("namespace") or "default", meta.get("name"))] = m
        model = with_labels(model, step)
        yield n, step, model, list(in_force.values())
