"""Reference evaluator of Kubernetes NetworkPolicy: the test oracle for the policy compiler.

Pure. Written from the Kubernetes semantics alone (kubernetes.io "Network Policies", the e2e
netpol suite, cyclonus), not from the iptables compiler, so the two can check each other.
Input is a model (namespaces with labels, pods with labels, IP and container ports) and
NetworkPolicy dicts in manifest form *after* API defaulting (every port has a protocol,
policyTypes is set); the oracle refuses undefaulted input rather than guess.

A pod's ``ip`` is the address of the family being evaluated, IPv4 or IPv6 (a dual-stack pod
is modelled once per family): an ipBlock matches it only within its own family, so an IPv4
block never matches IPv6 traffic and the other way round, as Calico renders each block into
its family's dataplane only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from orchestrator.api import label_selector_matches
from orchestrator.errors import ValidationError

PROTOCOLS = ("TCP", "UDP", "SCTP")
NOT_ISOLATED = "not isolated"
NO_RULE = "no rule allowed"


@dataclass(frozen=True)
class Model:
    """Namespaces ``{name: labels}`` and pods ``[{namespace, name, labels, ip, ports}]``,
    where ports are ``[{name, port, protocol}]`` (the pod's container ports)."""

    namespaces: dict[str, dict[str, str]]
    pods: list[dict] = field(default_factory=list)

    def pod(self, key: str) -> dict:
        for pod in self.pods:
            if pod_key(pod) == key:
                return pod
        raise KeyError(f"no pod {key!r} in the model")

    def keys(self) -> list[str]:
        return [pod_key(p) for p in self.pods]


def pod_key(pod: Mapping) -> str:
    return f"{pod['namespace']}/{pod['name']}"


def as_model(model: Model | Mapping) -> Model:
    """A Model, or a mapping with ``namespaces`` and ``pods`` keys turned into one."""
    if isinstance(model, Model):
        return model
    return Model(namespaces=dict(model["namespaces"]), pods=list(model["pods"]))


@dataclass(frozen=True)
class Verdict:
    """One direction of one connection. ``policies`` are the "ns/name" of the policies that
    select ``pod`` for this direction; ``rules`` are the rules that allow the traffic
    ("ns/name ingress[0]"); ``reason`` is "not isolated", "no rule allowed" or the first rule."""

    direction: str
    pod: str
    policies: tuple[str, ...]
    rules: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return not self.policies or bool(self.rules)

    @property
    def reason(self) -> str:
        if not self.policies:
            return NOT_ISOLATED
        return f"allowed by {self.rules[0]}" if self.rules else NO_RULE


@dataclass(frozen=True)
class Explanation:
    src: str
    dst: str
    port: int
    protocol: str
    egress: Verdict
    ingress: Verdict

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed

    def __str__(self) -> str:
        head = (f"{self.src} -> {self.dst} {self.protocol}/{self.port}: "
                f"{'allowed' if self.allowed else 'denied'}")
        lines = [head]
        for v in (self.egress, self.ingress):
            pols = ", ".join(v.policies) or "none"
            lines.append(f"  {v.direction} on {v.pod}: {v.reason} (policies: {pols})")
        return "\n".join(lines)


def allowed(model: Model | Mapping, policies: Iterable[dict], src_pod: str | Mapping,
            dst_pod: str | Mapping, port: int, protocol: str) -> bool:
    """Whether ``src_pod`` may open ``protocol``/``port`` to ``dst_pod`` (keys "ns/name" or pod
    dicts): the source's egress and the destination's ingress must both allow it."""
    return explain(model, policies, src_pod, dst_pod, port, protocol).allowed


def matrix(model: Model | Mapping, policies: Iterable[dict], port: int,
           protocol: str) -> dict[tuple[str, str], bool]:
    """``{(src, dst): allowed}`` for every ordered pair of distinct pods, in model order."""
    model = as_model(model)
    policies = list(policies)
    _check_protocol(protocol)
    return {(pod_key(s), pod_key(d)): _explain(model, policies, s, d, port, protocol).allowed
            for s in model.pods for d in model.pods if s is not d}


def explain(model: Model | Mapping, policies: Iterable[dict], src_pod: str | Mapping,
            dst_pod: str | Mapping, port: int, protocol: str) -> Explanation:
    """Which policies isolate each side and which rule (if any) lets the traffic through."""
    model = as_model(model)
    _check_protocol(protocol)
    src = model.pod(src_pod) if isinstance(src_pod, str) else src_pod
    dst = model.pod(dst_pod) if isinstance(dst_pod, str) else dst_pod
    return _explain(model, list(policies), src, dst, port, protocol)


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")


def _explain(model: Model, policies: list[dict], src: Mapping, dst: Mapping, port: int,
             protocol: str) -> Explanation:
    # Egress is decided on the sending pod, ingress on the receiving one; in both the
    # port/protocol is the destination's (named ports resolve on dst's container ports).
    egress = _direction(model, policies, "Egress", subject=src, peer=dst, dst=dst,
                        port=port, protocol=protocol)
    ingress = _direction(model, policies, "Ingress", subject=dst, peer=src, dst=dst,
                         port=port, protocol=protocol)
    return Explanation(pod_key(src), pod_key(dst), port, protocol, egress, ingress)


def _direction(model: Model, policies: list[dict], ptype: str, *, subject: Mapping,
               peer: Mapping, dst: Mapping, port: int, protocol: str) -> Verdict:
    rules_key, peers_key = ("ingress", "from") if ptype == "Ingress" else ("egress", "to")
    selecting: list[str] = []
    allowing: list[str] = []
    for pol in policies:
        ref, spec = _policy_parts(pol)
        ns = ref.split("/", 1)[0]
        if ptype not in spec["policyTypes"]:
            # A policy whose policyTypes omit this direction does not isolate it, even when
            # it carries rules for it (they are ignored).
            continue
        if subject["namespace"] != ns or not _selects(spec.get("podSelector"), subject):
            continue
        selecting.append(ref)
        for i, rule in enumerate(spec.get(rules_key) or []):
            where = (f"NetworkPolicy {ref}", f"spec.{rules_key}[{i}].{peers_key}")
            if (_peers_match(model, ns, rule.get(peers_key), peer, where)
                    and _ports_match(rule.get("ports"), dst, port, protocol,
                                     (where[0], f"spec.{rules_key}[{i}].ports"))):
                allowing.append(f"{ref} {rules_key}[{i}]")
    return Verdict(ptype.lower(), pod_key(subject), tuple(selecting), tuple(allowing))


def _policy_parts(pol: Mapping) -> tuple[str, dict]:
    meta = pol.get("metadata") or {}
    ref = f"{meta.get('namespace')}/{meta.get('name')}"
    if not meta.get("namespace") or not meta.get("name"):
        raise ValidationError("metadata.namespace and metadata.name are required",
                              obj=f"NetworkPolicy {ref}", field="metadata")
    spec = pol.get("spec")
    if not isinstance(spec, Mapping):
        raise ValidationError("Required value", obj=f"NetworkPolicy {ref}", field="spec")
    types = spec.get("policyTypes")
    if not types or any(t not in ("Ingress", "Egress") for t in types):
        raise ValidationError(
            f"Required value: got {types!r}; the oracle takes API-defaulted policies "
            "(policyTypes set to Ingress and/or Egress)",
            obj=f"NetworkPolicy {ref}", field="spec.policyTypes")
    return ref, spec


def _selects(selector: Any, pod: Mapping) -> bool:
    # spec.podSelector is not a pointer in the API type: absent decodes as {} = every pod.
    return label_selector_matches(selector if selector is not None else {}, pod.get("labels"))


def _peers_match(model: Model, policy_ns: str, peers: list | None, pod: Mapping,
                 where: tuple[str, str]) -> bool:
    if not peers:  # missing or empty from/to: every source / destination
        return True
    return any(_peer_matches(model, policy_ns, p, pod, (where[0], f"{where[1]}[{i}]"))
               for i, p in enumerate(peers))


def _peer_matches(model: Model, policy_ns: str, peer: Mapping, pod: Mapping,
                  where: tuple[str, str]) -> bool:
    pod_sel, ns_sel, block = peer.get("podSelector"), peer.get("namespaceSelector"), \
        peer.get("ipBlock")
    if block is not None:
        return _in_block(block, pod.get("ip"), where)
    if pod_sel is None and ns_sel is None:
        raise ValidationError("a peer needs podSelector, namespaceSelector or ipBlock",
                              obj=where[0], field=where[1])
    if ns_sel is None:
        # podSelector alone: pods of the policy's own namespace only.
        if pod["namespace"] != policy_ns:
            return False
    else:
        ns_labels = model.namespaces.get(pod["namespace"])
        if ns_labels is None or not label_selector_matches(ns_sel, ns_labels):
            return False
    # namespaceSelector alone: every pod of the matching namespaces; both: ANDed.
    return pod_sel is None or label_selector_matches(pod_sel, pod.get("labels"))


def _in_block(block: Mapping, ip: str | None, where: tuple[str, str]) -> bool:
    if not ip:
        return False
    addr = ipaddress.ip_address(ip)
    # An address is never in a network of the other family (``in`` is False, not an error):
    # an IPv4 cidr or except says nothing about an IPv6 pod.
    try:
        if addr not in ipaddress.ip_network(block["cidr"], strict=False):
            return False
        return not any(addr in ipaddress.ip_network(e, strict=False)
                       for e in block.get("except") or [])
    except (KeyError, ValueError) as exc:
        raise ValidationError(f"Invalid value: {dict(block)!r}: {exc}",
                              obj=where[0], field=f"{where[1]}.ipBlock") from None


def _ports_match(ports: list | None, dst: Mapping, port: int, protocol: str,
                 where: tuple[str, str]) -> bool:
    if not ports:  # no ports: every port of every protocol
        return True
    return any(_port_matches(p, dst, port, protocol, (where[0], f"{where[1]}[{i}]"))
               for i, p in enumerate(ports))


def _port_matches(entry: Mapping, dst: Mapping, port: int, protocol: str,
                  where: tuple[str, str]) -> bool:
    rule_proto = entry.get("protocol")
    if rule_proto is None:
        raise ValidationError("Required value: the oracle takes API-defaulted policies",
                              obj=where[0], field=f"{where[1]}.protocol")
    if rule_proto != protocol:
        return False
    want = entry.get("port")
    if want is None:  # protocol only: all its ports
        return True
    if isinstance(want, str):
        # Named port: the destination pod's container port of that name *and* protocol; a
        # pod without it matches nothing (it is not an error).
        return any(cp.get("name") == want and cp.get("protocol", "TCP") == rule_proto
                   and cp.get("port") == port for cp in dst.get("ports") or [])
    end = entry.get("endPort")
    return want <= port <= end if end is not None else want == port
