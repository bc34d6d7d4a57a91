"""projectcalico.org/v3 NetworkPolicy and GlobalNetworkPolicy specs: defaulting, validation.

Pure. Fields and rules follow Calico's v3 API (api/pkg/apis/projectcalico/v3
policy_common.go, networkpolicy.go, globalnetworkpolicy.go) and libcalico-go's validator:
types defaulted from the rules present, action Allow/Deny/Log/Pass, protocol by name or
1-255, ports only with TCP/UDP/SCTP, nets strictly masked, selectors in Calico's selector
language (policy.selector). calinet has the default tier only, and rejects by name what it
cannot enforce (serviceAccountSelector, serviceAccounts, services, http, and a GNP's
doNotTrack/preDNAT/applyOnForward) rather than accept a policy it would not apply.
Objects stay in manifest form; empty optional fields are left out, as Calico's read-back does.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any

from orchestrator.api.fields import (
    DNS1123_SUBDOMAIN_MAX,
    as_bool,
    as_int,
    as_list,
    as_map,
    as_str,
    check_annotations,
    check_distinct_choices,
    check_known,
    child,
    each,
    fail,
    guard,
    item,
    one_of,
    type_name,
)
from orchestrator.errors import ValidationError

DEFAULT_TIER = "default"
ACTIONS = ("Allow", "Deny", "Log", "Pass")
POLICY_TYPES = ("Ingress", "Egress")
PROTOCOL_NAMES = ("TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite")
# numorstring.Protocol.SupportsPorts: UDPLite is not among them, by name or number.
_PORT_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP", 6, 17, 132})
_ICMP_PROTOCOLS = {"ICMP": 4, "ICMPv6": 6}   # protocol -> the IP version it implies
MAX_RULES = 1024
MAX_NETS = 256
MAX_PORTS = 50
PERFORMANCE_HINTS = ("AssumeNeededOnEveryNode",)

SPEC_FIELDS = frozenset({"order", "tier", "selector", "types", "ingress", "egress",
                         "serviceAccountSelector", "performanceHints"})
GNP_SPEC_FIELDS = SPEC_FIELDS | {"namespaceSelector", "doNotTrack", "preDNAT", "applyOnForward"}
_RULE_FIELDS = frozenset({"action", "ipVersion", "protocol", "notProtocol", "icmp", "notICMP",
                          "source", "destination", "http", "metadata"})
_ENTITY_FIELDS = frozenset({"nets", "notNets", "selector", "notSelector", "namespaceSelector",
                            "ports", "notPorts", "serviceAccounts", "services"})
_ICMP_FIELDS = frozenset({"type", "code"})
_GNP_UNSUPPORTED_FLAGS = {
    "doNotTrack": "untracked (raw table) policy",
    "preDNAT": "pre-DNAT (mangle table) policy",
    "applyOnForward": "host endpoint forwarding policy",
}

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
# libcalico-go networkPolicyNameRegex / globalNetworkPolicyNameRegex (without the
# "knp.default." names Calico reserves for converted Kubernetes policies).
_POLICY_NAME_RE = re.compile(rf"{_LABEL}(\.{_LABEL})?")
_PORT_RANGE_RE = re.compile(r"([0-9]+):([0-9]+)")
_PORT_NAME_RE = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
_GLOBAL = "global()"
_DIGITS_RE = re.compile(r"[0-9]+")


def check_policy_name(value: str, path: str) -> None:
    """Calico policy names: a DNS-1123 label, or two joined by one dot (<tier>.<name>)."""
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        fail(path, f"Invalid value: {value!r}: must be no more than "
                   f"{DNS1123_SUBDOMAIN_MAX} characters")
    if not _POLICY_NAME_RE.fullmatch(value):
        fail(path, f"Invalid value: {value!r}: a Calico policy name must consist of lower "
                   "case alphanumeric characters or '-', with at most one '.' (regex used "
                   f"for validation is '{_LABEL}(\\.{_LABEL})?')")


def normalize_calico_networkpolicy_spec(spec: Any) -> dict:
    """A projectcalico.org/v3 NetworkPolicy spec, defaulted and validated (a new dict)."""
    return _normalize_spec(spec, global_policy=False)


def normalize_globalnetworkpolicy_spec(spec: Any) -> dict:
    """A GlobalNetworkPolicy spec, defaulted and validated (a new dict)."""
    return _normalize_spec(spec, global_policy=True)


def _normalize_spec(spec: Any, *, global_policy: bool) -> dict:
    spec = as_map(spec, "spec")
    check_known(spec, GNP_SPEC_FIELDS if global_policy else SPEC_FIELDS, "spec")
    out: dict = {"tier": DEFAULT_TIER}
    with guard():
        out["tier"] = _tier(spec.get("tier"))
    with guard():
        if "order" in spec:
            out["order"] = _order(spec["order"])
    for key in ("selector", "namespaceSelector"):
        with guard():
            text = _selector(spec.get(key), child("spec", key))
            if text:
                out[key] = text
    with guard():
        _unsupported(spec, "spec", "serviceAccountSelector", "service account selectors")
    for flag, what in _GNP_UNSUPPORTED_FLAGS.items():
        with guard():
            if as_bool(spec.get(flag), child("spec", flag)):
                fail(child("spec", flag), f"Unsupported value: true: {flag} ({what}) is not "
                                          "supported by calinet, which has no host endpoints")
    for direction in ("ingress", "egress"):
        path = child("spec", direction)
        with guard():
            rules = as_list(spec.get(direction), path)
            if len(rules) > MAX_RULES:
                fail(path, f"Too many: {len(rules)}: must have at most {MAX_RULES} rules")
            normalized = each(rules, path, _rule)
            if normalized:
                out[direction] = normalized
    with guard():
        out["types"] = _types(spec.get("types"), ingress=bool(out.get("ingress")),
                              egress=bool(out.get("egress")))
    with guard():
        hints_path = child("spec", "performanceHints")
        hints = as_list(spec.get("performanceHints"), hints_path)
        each(hints, hints_path, lambda hint, at: one_of(hint, at, PERFORMANCE_HINTS))
        if hints:
            out["performanceHints"] = list(hints)
    return out


def _tier(value: Any) -> str:
    tier = as_str(value, "spec.tier") or DEFAULT_TIER
    if tier != DEFAULT_TIER:
        fail("spec.tier", f"Unsupported value: {tier!r}: calinet has only the "
                          f"{DEFAULT_TIER!r} tier (no Tier kind); leave tier unset")
    return tier


def _order(value: Any) -> int | float:
    # Calico's Order is a *float64: any finite number; missing means "last".
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not math.isfinite(value)):
        fail("spec.order", f"must be a finite number, got {type_name(value)} {value!r}")
    return value


def _types(value: Any, *, ingress: bool, egress: bool) -> list[str]:
    # defaultPolicyTypesField (libcalico-go clientv3): only when the list is empty.
    path = "spec.types"
    types = as_list(value, path)
    check_distinct_choices(types, path, POLICY_TYPES, " type specified more than once")
    if types:
        return list(types)
    if not egress:
        return ["Ingress"]
    return ["Ingress", "Egress"] if ingress else ["Egress"]


def _unsupported(obj: dict, path: str, key: str, what: str) -> None:
    if obj.get(key) not in (None, "", {}, []):
        fail(child(path, key), f"Forbidden: {key} ({what}) is not supported by calinet")


def _selector(value: Any, path: str, *, allow_global: bool = False) -> str | None:
    """A Calico selector string, parsed to check it; global() only where Calico allows it
    (alone, in a rule's namespaceSelector)."""
    text = as_str(value, path)
    if not text or not text.strip():
        return text
    # Imported here: policy.selector is the policy package's parser, and the API layer
    # must stay importable (every other kind usable) without loading it.
    from policy.selector import parse
    try:
        parsed = parse(text)
    except ValidationError as exc:
        fail(path, f"Invalid value: {exc.message}")
    # libcalico-go's checks are textual too (strings.Contains "global()" / "global(").
    if allow_global:
        if "global(" in text and parsed.normalized != _GLOBAL:
            fail(path, f"Invalid value: {text!r}: {_GLOBAL} cannot be combined with other "
                       "selectors")
    elif _GLOBAL in text:
        fail(path, f"Invalid value: {text!r}: {_GLOBAL} can only be used in a rule's "
                   "namespaceSelector")
    return text


def _rule(rule: Any, path: str) -> dict:
    rule = as_map(rule, path, required=True)
    check_known(rule, _RULE_FIELDS, path)
    out: dict = {}
    with guard():
        if rule.get("action") in (None, ""):
            fail(child(path, "action"), f"Required value: one of {', '.join(ACTIONS)}")
        out["action"] = one_of(rule["action"], child(path, "action"), ACTIONS)
    version = as_int(rule.get("ipVersion"), child(path, "ipVersion"))
    if version is not None:
        if version not in (4, 6):
            fail(child(path, "ipVersion"), f"Unsupported value: {version}: supported values: 4, 6")
        out["ipVersion"] = version
    protocols = {}
    for key in ("protocol", "notProtocol"):
        if key in rule:
            protocols[key] = out[key] = _protocol(rule[key], child(path, key))
    for proto in protocols.values():
        implied = _ICMP_PROTOCOLS.get(proto)
        if implied and version is not None and version != implied:
            fail(child(path, "ipVersion"), f"Invalid value: {version}: protocol {proto} "
                                           f"needs ipVersion {implied}")
    for key in ("icmp", "notICMP"):
        if key in rule:
            out[key] = _icmp(rule[key], child(path, key), protocols.get("protocol"))
    ports_ok = protocols.get("protocol") in _PORT_PROTOCOLS
    families: dict[int, tuple[str, str]] = {}   # IP version -> (path, text) of its first net
    for key in ("source", "destination"):
        with guard():
            out[key] = _entity(rule.get(key), child(path, key), ports_ok, families)
    if version is not None:
        for family, (where, text) in families.items():
            if family != version:
                fail(where, f"Invalid value: {text!r}: an IPv{family} network in a rule with "
                            f"ipVersion {version}")
    _unsupported(rule, path, "http", "HTTP match, which needs an application-layer proxy")
    if "metadata" in rule:
        meta_path = child(path, "metadata")
        meta = as_map(rule["metadata"], meta_path)
        check_known(meta, frozenset({"annotations"}), meta_path)
        annotations = check_annotations(meta.get("annotations"), child(meta_path, "annotations"))
        if annotations:
            out["metadata"] = {"annotations": annotations}
    return out


def _protocol(value: Any, path: str) -> int | str:
    # Uint8OrString: a number, or a name; a quoted number decodes as the number.
    if isinstance(value, str) and _DIGITS_RE.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 255:
            fail(path, f"Invalid value: {value}: protocol number must be between 1 and 255")
        return value
    if value not in PROTOCOL_NAMES:
        fail(path, f"Unsupported value: {value!r}: supported values: "
                   f"{', '.join(PROTOCOL_NAMES)} or a number 1-255")
    return value


def _icmp(value: Any, path: str, protocol: int | str | None) -> dict:
    fields = as_map(value, path)
    check_known(fields, _ICMP_FIELDS, path)
    if protocol not in _ICMP_PROTOCOLS:
        # Calico checks this for icmp; notICMP without it would render an iptables
        # `! --icmp-type` match with no `-p icmp`, which iptables refuses.
        fail(path, f"Forbidden: rules that specify ICMP fields must set protocol to \"ICMP\" "
                   f"or \"ICMPv6\", by name (protocol is {protocol!r})")
    out = {}
    icmp_type = as_int(fields.get("type"), child(path, "type"), minimum=0, maximum=254)
    code = as_int(fields.get("code"), child(path, "code"), minimum=0, maximum=255)
    if code is not None and icmp_type is None:
        fail(child(path, "code"), "Forbidden: ICMP code specified without an ICMP type")
    if icmp_type is not None:
        out["type"] = icmp_type
    if code is not None:
        out["code"] = code
    return out


def _entity(value: Any, path: str, ports_ok: bool,
            families: dict[int, tuple[str, str]]) -> dict:
    entity = as_map(value, path)
    check_known(entity, _ENTITY_FIELDS, path)
    _unsupported(entity, path, "serviceAccounts", "service account match")
    _unsupported(entity, path, "services", "Kubernetes Service match")
    out: dict = {}
    for key in ("nets", "notNets"):
        with guard():
            nets = _nets(entity.get(key), child(path, key), families)
            if nets:
                out[key] = nets
    for key in ("selector", "notSelector", "namespaceSelector"):
        with guard():
            text = _selector(entity.get(key), child(path, key),
                             allow_global=key == "namespaceSelector")
            if text:
                out[key] = text
    for key in ("ports", "notPorts"):
        with guard():
            _entity_ports(entity, key, child(path, key), ports_ok, out)
    return out


def _entity_ports(entity: dict, key: str, ports_path: str, ports_ok: bool, out: dict) -> None:
    ports = as_list(entity.get(key), ports_path)
    if not ports:
        return
    if not ports_ok:
        fail(ports_path, "Forbidden: rules that specify ports must set protocol to TCP, "
                         "UDP or SCTP")
    if len(ports) > MAX_PORTS:
        fail(ports_path, f"Too many: {len(ports)}: must have at most {MAX_PORTS} entries")
    out[key] = each(ports, ports_path, _port)


def _nets(value: Any, path: str, families: dict[int, tuple[str, str]]) -> list[str]:
    nets = as_list(value, path)
    if len(nets) > MAX_NETS:
        fail(path, f"Too many: {len(nets)}: must have at most {MAX_NETS} entries")
    for i, text in enumerate(nets):
        at = item(path, i)
        net = _network(as_str(text, at, required=True), at)
        other = next((f for f in families if f != net.version), None)
        if other is not None:
            fail(at, f"Invalid value: {text!r}: rule contains both IPv4 and IPv6 CIDRs "
                     f"(IPv{other} at {families[other][0]})")
        families.setdefault(net.version, (at, text))
    return list(nets)


def _network(text: str, path: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    # Calico's "net" validator: a CIDR with no host bits set, or a bare address (/32, /128).
    net = None
    _, slash, prefix = text.partition("/")
    if not slash or _DIGITS_RE.fullmatch(prefix):
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError:
            net = None
    if net is None:
        fail(path, f"Invalid value: {text!r}: must be an IP network with no host bits set "
                   "(e.g. 10.0.0.0/24) or an IP address")
    return net


def _port(value: Any, path: str) -> int | str:
    """numorstring.Port: 80, "80", "1000:2000" or a port name; a single port comes back
    as an int, a range as "min:max" (Calico's MarshalJSON)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        fail(path, f"must be a port number, a \"min:max\" range or a port name, got "
                   f"{type_name(value)} {value!r}")
    if isinstance(value, int):
        low = high = value
    elif _DIGITS_RE.fullmatch(value):
        low = high = int(value)
    elif m := _PORT_RANGE_RE.fullmatch(value):
        low, high = int(m.group(1)), int(m.group(2))
        if low > high:
            fail(path, f"Invalid value: {value!r}: minimum port number ({low}) is greater "
                       f"than maximum port number ({high}) in port range")
    elif _PORT_NAME_RE.fullmatch(value):
        return value
    else:
        fail(path, f"Invalid value: {value!r}: a port name must match "
                   "^[a-zA-Z0-9_.-]{1,128}$")
    for port in (low, high):
        if not 1 <= port <= 65535:
            fail(path, f"Invalid value: {value!r}: port number must be between 1 and 65535")
    return low if low == high else f"{low}:{high}"
