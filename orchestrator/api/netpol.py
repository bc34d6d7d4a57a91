"""Kubernetes NetworkPolicy (networking.k8s.io/v1) spec: defaulting and validation.

Pure. Does what the API server does on create (kubernetes pkg/apis/networking/v1
defaults.go, pkg/apis/networking/validation ValidateNetworkPolicySpec): ports default to
TCP, policyTypes default to [Ingress] plus Egress when spec.egress has a rule, peers are
pod/namespace selectors or an ipBlock, and every error names its field path
("spec.ingress[0].from[1].ipBlock.except[0]"). One rule stricter than the API server:
a policyType listed twice is rejected (Kubernetes lets ["Ingress", "Ingress"] through).
Empty lists are left out of the result, as the API server's omitempty does on read-back.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from orchestrator.api.fields import (
    as_int,
    as_list,
    as_map,
    as_str,
    check_distinct_choices,
    check_known,
    check_port_name,
    child,
    each,
    fail,
    guard,
    item,
    one_of,
    type_name,
)
from orchestrator.api.labels import validate_label_selector

SPEC_FIELDS = frozenset({"podSelector", "policyTypes", "ingress", "egress"})
_PEER_FIELDS = frozenset({"podSelector", "namespaceSelector", "ipBlock"})
_IPBLOCK_FIELDS = frozenset({"cidr", "except"})
_PORT_FIELDS = frozenset({"protocol", "port", "endPort"})
PROTOCOLS = ("TCP", "UDP", "SCTP")
POLICY_TYPES = ("Ingress", "Egress")
DEFAULT_PROTOCOL = "TCP"
# direction -> the key naming its peers
_PEERS_KEY = {"ingress": "from", "egress": "to"}
_CIDR_HINT = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def normalize_networkpolicy_spec(spec: Any) -> dict:
    """The spec defaulted and validated (a new dict); ValidationError naming the field."""
    spec = as_map(spec, "spec", required=True)
    check_known(spec, SPEC_FIELDS, "spec")
    out: dict = {}
    with guard():
        if "podSelector" not in spec:
            fail("spec.podSelector", "Required value: use podSelector: {} to select every pod "
                                     "in the namespace")
        out["podSelector"] = validate_label_selector(spec["podSelector"], "spec.podSelector")
    for direction, peers_key in _PEERS_KEY.items():
        path = child("spec", direction)
        with guard():
            rules = each(as_list(spec.get(direction), path), path,
                         lambda r, at, key=peers_key: _rule(r, at, key))
            if rules:
                out[direction] = rules
    with guard():
        out["policyTypes"] = _policy_types(spec.get("policyTypes"),
                                           has_egress=bool(out.get("egress")))
    return out


def _policy_types(value: Any, *, has_egress: bool) -> list[str]:
    # SetDefaults_NetworkPolicy: an empty or missing list is defaulted; `egress: []` counts
    # as no egress rules, so such a policy stays ingress-only.
    path = "spec.policyTypes"
    types = as_list(value, path)
    if len(types) > len(POLICY_TYPES):
        fail(path, f"Invalid value: {types!r}: may not specify more than two policyTypes")
    check_distinct_choices(types, path, POLICY_TYPES, "")
    if types:
        return list(types)
    return ["Ingress", "Egress"] if has_egress else ["Ingress"]


def _rule(rule: Any, path: str, peers_key: str) -> dict:
    # A null rule decodes to the zero rule, which matches everything: keep it as {}.
    rule = as_map(rule, path)
    check_known(rule, frozenset({"ports", peers_key}), path)
    out: dict = {}
    for key in ("ports", peers_key):
        with guard():
            at = child(path, key)
            entries = each(as_list(rule.get(key), at), at, _port if key == "ports" else _peer)
            if entries:
                out[key] = entries
    return out


def _peer(peer: Any, path: str) -> dict:
    peer = as_map(peer, path)
    check_known(peer, _PEER_FIELDS, path)
    out: dict = {}
    for key in ("podSelector", "namespaceSelector"):
        with guard():
            if key in peer:
                out[key] = validate_label_selector(peer[key], child(path, key))
    with guard():
        if "ipBlock" in peer:
            out["ipBlock"] = _ip_block(peer["ipBlock"], child(path, "ipBlock"))
    if not any(k in peer for k in _PEER_FIELDS):
        fail(path, "Required value: must specify a peer (podSelector, namespaceSelector "
                   "or ipBlock)")
    if "ipBlock" in peer and len(set(peer) & _PEER_FIELDS) > 1:
        fail(path, "Forbidden: may not specify both ipBlock and another peer")
    return out


def _ip_block(block: Any, path: str) -> dict:
    block = as_map(block, path, required=True)
    check_known(block, _IPBLOCK_FIELDS, path)
    cidr_path = child(path, "cidr")
    cidr_text = as_str(block.get("cidr"), cidr_path, required=True)
    cidr = _parse_cidr(cidr_text, cidr_path)
    out: dict = {"cidr": cidr_text}
    except_path = child(path, "except")
    excepts = as_list(block.get("except"), except_path)
    for i, text in enumerate(excepts):
        with guard():
            _check_except(text, item(except_path, i), cidr, cidr_text)
    if excepts:
        out["except"] = list(excepts)
    return out


def _check_except(text: Any, at: str, cidr, cidr_text: str) -> None:
    net = _parse_cidr(as_str(text, at, required=True), at)
    # ValidateIPBlock: the except network's address inside cidr, and a longer prefix.
    if (net.version != cidr.version or net.network_address not in cidr
            or net.prefixlen <= cidr.prefixlen):
        fail(at, f"Invalid value: {text!r}: must be a strict subset of `cidr` ({cidr_text})")


def _parse_cidr(text: str, path: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    # Legacy CIDR field: host bits may be set ("10.0.0.1/24" is 10.0.0.0/24); a prefix
    # length must be there, as a number (Go's ParseCIDR takes no netmask form).
    net = None
    _, slash, prefix = text.partition("/")
    if slash and prefix.isascii() and prefix.isdigit():
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            net = None
    if net is None:
        fail(path, f"Invalid value: {text!r}: {_CIDR_HINT}")
    return net


def _port(port: Any, path: str) -> dict:
    port = as_map(port, path)
    check_known(port, _PORT_FIELDS, path)
    protocol = port.get("protocol", DEFAULT_PROTOCOL)
    one_of(protocol, child(path, "protocol"), PROTOCOLS)
    out: dict = {"protocol": protocol}
    end_path = child(path, "endPort")
    end = as_int(port.get("endPort"), end_path)
    if "port" not in port:
        if end is not None:
            fail(end_path, f"Invalid value: {end}: may not be specified when `port` is not "
                           "specified")
        return out
    value, port_path = port["port"], child(path, "port")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        fail(port_path, f"must be an integer or a port name, got {type_name(value)} {value!r}")
    if isinstance(value, str):
        # IntOrString: a quoted "80" is a name, and a port name needs a letter.
        check_port_name(value, port_path)
        if end is not None:
            fail(end_path, f"Invalid value: {end}: may not be specified when `port` is "
                           "non-numeric")
        out["port"] = value
        return out
    _check_port_number(value, port_path)
    out["port"] = value
    if end is not None:
        if end < value:
            fail(end_path, f"Invalid value: {end}: must be greater than or equal to `port`")
        _check_port_number(end, end_path)
        out["endPort"] = end
    return out


def _check_port_number(value: int, path: str) -> None:
    if not 1 <= value <= 65535:
        fail(path, f"Invalid value: {value}: must be between 1 and 65535, inclusive")
