"""NetworkPolicy conformance on a live testbed: the x/y/z model, each case's steps, probes.

Side effects: through the Testbed: namespaces x, y, z with pods a, b, c each (spread over the
nodes by the scheduler), policies applied and deleted, labels changed, probes sent between the
pods. Cases are read by policy.cases (schema of netpol-cases/README.md). Each case starts from
the clean model (no policies in x/y/z, default labels); within a step: delete, apply, labels,
wait until every node's rules are written, then every probe as one all-pairs matrix (72 pairs,
probed in parallel with a short timeout).

IPv4 or IPv6 (``family``): the probes go to the pods' addresses of that family and the
placeholders take it too ({{ip ns/pod}} the pod's IPv6 address, {{ip ns/pod}}/32 its /128,
{{podcidr}} the IPv6 pool), so the same case files run on a dual-stack or IPv6-only cluster.
A probe the prober refuses for the family (SCTP over IPv6: its INIT is crafted on an IPv4 raw
socket, this kernel has no SCTP sockets) is skipped and reported with the prober's reason,
never counted as passed or failed; a case whose every probe was skipped is itself skipped.

Each matrix probes new flows only: the nodes' conntrack entries of earlier probes between the
model's pods are deleted first (``conntrack -D`` in each node's namespace, entries of the
family from the pod CIDR only). Otherwise a UDP probe that happens to reuse the source port of
an allowed probe of a few seconds before matches that flow's ESTABLISHED entry and passes a
policy that denies it, as a real connection would; the oracle describes new connections. A
pair that disagrees with the expectation is probed once more (a lost datagram is not a policy
verdict); what the second probe sees is the result.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass, field

from orchestrator.errors import CalinetError, SupervisorTimeout, ValidationError
from orchestrator.traffic import probe as probe_mod
from policy.cases import (
    DEFAULT_PODCIDR,
    NAMESPACES,
    POD_NAMES,
    SERVED_PORTS,
    XYZ_PODS,
    Case,
    expected_matrix,
)
from policy.cases import substitute as substitute_placeholders

POLICY_KINDS = ("NetworkPolicy", "NetworkPolicy.projectcalico.org")
PROTOCOLS = ("TCP", "UDP", "SCTP")
FAMILIES = (4, 6)
_LEADING_ADDRESS = re.compile(r"^[0-9A-Fa-f:.]+: ")


def model_manifests() -> list[dict]:
    objs: list[dict] = [{"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": ns, "labels": {"ns": ns}}} for ns in NAMESPACES]
    ports = [{"name": f"serve-{port}-{proto.lower()}", "containerPort": port, "protocol": proto}
             for port in SERVED_PORTS for proto in PROTOCOLS]
    for ns in NAMESPACES:
        for pod in POD_NAMES:
            objs.append({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": pod, "namespace": ns, "labels": {"pod": pod}},
                         "spec": {"containers": [{"name": "serve", "image": "agnhost",
                                                  "ports": ports}],
                                  "terminationGracePeriodSeconds": 0}})
    return objs


@dataclass
class ProbeOutcome:
    key: str                                   # "TCP/80"
    expected: dict[tuple[str, str], bool]
    observed: dict[tuple[str, str], bool]
    seconds: float
    skipped: str | None = None                 # why the prober refused it (then not probed)

    @property
    def mismatches(self) -> list[tuple[str, str]]:
        if self.skipped:
            return []
        return sorted(p for p, ok in self.expected.items() if self.observed.get(p) != ok)


@dataclass
class CaseResult:
    case: Case
    steps: list[tuple[int, str, list[ProbeOutcome]]] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    family: int = 4

    @property
    def outcomes(self) -> list[ProbeOutcome]:
        return [o for _, _, outs in self.steps for o in outs]

    @property
    def skipped_probes(self) -> list[ProbeOutcome]:
        return [o for o in self.outcomes if o.skipped]

    @property
    def skipped(self) -> bool:
        """Nothing was checked: every probe of the case was refused for this family."""
        outs = self.outcomes
        return self.error is None and bool(outs) and all(o.skipped for o in outs)

    @property
    def passed(self) -> bool:
        return (self.error is None and not self.skipped
                and all(not o.mismatches for o in self.outcomes))

    def as_dict(self) -> dict:
        return {"name": self.case.name, "path": self.case.path, "family": self.family,
                "passed": self.passed, "skipped": self.skipped,
                "error": self.error, "seconds": round(self.seconds, 3),
                "steps": [{"step": n, "description": d, "probes": [
                    {"probe": o.key, "seconds": round(o.seconds, 3), "skipped": o.skipped,
                     "expected_denied": [f"{s} -> {t}" for (s, t), ok in
                                         sorted(o.expected.items()) if not ok],
                     "observed_denied": [f"{s} -> {t}" for (s, t), ok in
                                         sorted(o.observed.items()) if not ok],
                     "mismatches": [f"{s} -> {t}" for s, t in o.mismatches]}
                    for o in outs]} for n, d, outs in self.steps]}


def check_family(family, families, topology: str | None = None) -> None:
    """ValidationError unless ``family`` (4 or 6) is one of the cluster's pod ``families``."""
    if family not in FAMILIES:
        raise ValidationError(f"Unsupported value: {family!r}: supported values: 4, 6",
                              field="family")
    if family not in families:
        have = ", ".join(f"IPv{f}" for f in families)
        raise ValidationError(
            f"IPv{family} conformance needs pods with IPv{family} addresses, and this "
            f"topology's ipFamilies are [{have}]: use a dual-stack or IPv{family}-only topology"
            + (" (topologies/examples/dual-stack.yaml)" if family == 6 else ""),
            source=topology, field="ipFamilies")


class Runner:
    """Runs cases on ``tb`` in IPv4 or IPv6 (``family``). Two runners of different families
    may share one dual-stack testbed and its model (the second setup() finds it built)."""

    def __init__(self, tb, *, timeout: float = 0.5, sync_timeout: float = 15.0,
                 family: int = 4):
        check_family(family, tb.spec.families)
        self.tb, self.timeout, self.sync_timeout = tb, timeout, sync_timeout
        self.family = family
        self.ips: dict[str, str] = {}
        self.podcidr = ""
        # protocol -> the prober's reason for refusing it in this family (learnt on first use)
        self.refused: dict[str, str] = {}

    def setup(self, ready_timeout: float = 120.0) -> None:
        self.tb.apply(model_manifests())
        self.tb.wait_ready(timeout=ready_timeout)
        self.ips = {k: self.tb.pod_ip(k, self.family) for k in XYZ_PODS}
        self.podcidr = pod_cidr(self.tb.store.list("IPPool"), self.ips.values(), self.family)

    def reset(self) -> None:
        for kind in POLICY_KINDS:
            for ns in NAMESPACES:
                for obj in self.tb.store.list(kind, ns):
                    self.tb.client.delete(kind, f"{ns}/{obj['metadata']['name']}")
        for ns in NAMESPACES:
            self._set_labels("Namespace", ns, {"ns": ns, "kubernetes.io/metadata.name": ns})
            for pod in POD_NAMES:
                self._set_labels("Pod", f"{ns}/{pod}", {"pod": pod})

    def _set_labels(self, kind: str, key: str, want: dict) -> None:
        obj = self.tb.get(kind, key)
        have = obj["metadata"].get("labels") or {}
        if have != want:
            self.tb.label(kind, key, {**{k: None for k in have if k not in want}, **want})

    def wait_synced(self) -> None:
        deadline = time.monotonic() + self.sync_timeout
        while True:
            problems = self.tb.policy.in_sync()
            if not problems:
                return
            if time.monotonic() > deadline:
                raise SupervisorTimeout("policy rules not written after "
                                        f"{self.sync_timeout}s: {'; '.join(problems)}")
            time.sleep(0.01)

    def forget_flows(self) -> None:
        """Delete the nodes' conntrack entries of flows from the pod CIDR (earlier probes)."""
        argv = ["conntrack", "-D", "-f", "ipv6" if self.family == 6 else "ipv4",
                "-s", self.podcidr]
        for node in self.tb.nodes():
            # exit 1 with "0 flow entries" when there was nothing to delete
            r = self.tb.node_exec(node, argv, timeout=10)
            if r.returncode not in (0, 1):
                raise CalinetError(f"conntrack -D on {node} failed ({r.returncode}): "
                                   f"{r.stderr.strip()}")

    def probe_matrix(self, port: int, protocol: str,
                     expected: dict[tuple[str, str], bool]) -> dict[tuple[str, str], bool]:
        """All pairs of the model as new flows; pairs that differ from ``expected`` once more."""
        self.forget_flows()
        observed = self.tb.matrix(port, protocol, pods=list(XYZ_PODS), timeout=self.timeout,
                                  family=self.family)
        differ = [k for k, ok in expected.items() if observed.get(k) != ok]
        if differ:
            self.forget_flows()
            for (src, dst), ok in self._probe_pairs(differ, port, protocol).items():
                observed[(src, dst)] = ok
        return observed

    def _probe_pairs(self, pairs, port: int, protocol: str) -> dict[tuple[str, str], bool]:
        tb = self.tb
        by_ip = {(tb.pod_netns(s), tb.pod_ip(d, self.family)): (s, d) for s, d in pairs}
        got = probe_mod.matrix(list(by_ip), port, protocol, timeout=self.timeout)
        return {by_ip[k]: ok for k, ok in got.items()}

    def run_probe(self, step, probe) -> ProbeOutcome:
        """One probe of a step as a matrix against the step's expectation; a probe the prober
        refuses for this family comes back skipped, with its reason."""
        t = time.monotonic()
        expected = expected_matrix(step, probe, XYZ_PODS)
        if probe.protocol not in self.refused:
            try:
                observed = self.probe_matrix(probe.port, probe.protocol, expected)
                return ProbeOutcome(probe.key, expected, observed, time.monotonic() - t)
            except ValidationError as exc:
                # The prober refuses a protocol it cannot send in a family before any packet
                # (SCTP over IPv6); any other refusal is the case's error.
                if not (self.family == 6 and probe.protocol == "SCTP"
                        and exc.obj == "probe" and exc.field == "dst_ip"):
                    raise
                # Its message starts with the one address it was refused for: not the point.
                self.refused[probe.protocol] = _LEADING_ADDRESS.sub("", exc.message)
        return ProbeOutcome(probe.key, expected, {}, time.monotonic() - t,
                            skipped=self.refused[probe.protocol])

    def run_case(self, case: Case) -> CaseResult:
        t0 = time.monotonic()
        result = CaseResult(case, family=self.family)
        try:
            self.reset()
            for n, step in enumerate(case.steps, 1):
                for ref in step.delete:
                    self.tb.delete("NetworkPolicy", f"{ref['namespace']}/{ref['name']}")
                if step.apply:
                    self.tb.apply(substitute_placeholders(step.apply, self.ips, self.podcidr))
                for entry in step.add_pod_labels:
                    self.tb.label("Pod", entry["pod"], entry["labels"])
                for entry in step.add_namespace_labels:
                    self.tb.label("Namespace", entry["namespace"], entry["labels"])
                self.wait_synced()
                outs = [self.run_probe(step, probe) for probe in step.probes]
                result.steps.append((n, step.description, outs))
        except Exception as exc:  # noqa: BLE001 - reported as the case's failure
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.monotonic() - t0
        return result


def pod_cidr(pools: list[dict], ips, family: int) -> str:
    """{{podcidr}}: the CIDR of the first IPPool of ``family`` holding every one of ``ips``;
    else that family's first pool, else the default pool of the family."""
    ips = [ipaddress.ip_address(ip) for ip in ips]
    cidrs = [ipaddress.ip_network(p["spec"]["cidr"], strict=False) for p in pools]
    cidrs = [c for c in cidrs if c.version == family]
    holding = [c for c in cidrs if all(ip in c for ip in ips)]
    return str((holding or cidrs or [DEFAULT_PODCIDR[family]])[0])


def truth_table(outcome: ProbeOutcome) -> str:
    """Expected vs observed, Kubernetes e2e style: rows are sources, columns destinations;
    `.` allowed, `X` denied, and where they differ `!x` (expected x, observed the other)."""
    pods = list(XYZ_PODS)
    head = "src\\dst " + " ".join(f"{p:>4}" for p in pods)
    lines = [f"{outcome.key}: expected vs observed ({len(outcome.mismatches)} differ)", head]
    for s in pods:
        cells = []
        for d in pods:
            if s == d:
                cells.append("   -")
                continue
            exp, obs = outcome.expected[(s, d)], outcome.observed.get((s, d))
            mark = "." if exp else "X"
            cells.append(f"{mark:>4}" if exp == obs else f"{'!' + mark:>4}")
        lines.append(f"{s:>7} " + " ".join(cells))
    return "\n".join(lines)
