"""projectcalico.org/v3 IPPool spec: defaulting and validation as Calico's API does it.

Pure. Follows libcalico-go's ipPools.validateAndSetDefaults and the v3 validator: CIDR must
parse and be strictly masked, block size 20-32 / 116-128 and no larger than the pool,
no overlap with link-local ranges, at most one of IPIP/VXLAN, no IPIP on IPv6.
Messages reuse Calico's wording.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from orchestrator.api.fields import (
    as_bool,
    as_int,
    as_list,
    as_map,
    as_str,
    check_known,
    child,
    fail,
    guard,
    item,
    one_of,
)
from orchestrator.errors import ValidationError

IPPOOL_SPEC_FIELDS = frozenset({
    "cidr", "blockSize", "ipipMode", "vxlanMode", "natOutgoing", "disabled",
    "disableBGPExport", "nodeSelector", "namespaceSelector", "allowedUses", "assignmentMode",
    "awsSubnetID",
})
ENCAP_MODES = ("Never", "Always", "CrossSubnet")
ALLOWED_USES = ("Workload", "Tunnel", "LoadBalancer")
DEFAULT_ALLOWED_USES = ("Workload", "Tunnel")
_LINK_LOCAL = {4: ipaddress.ip_network("169.254.0.0/16"), 6: ipaddress.ip_network("fe80::/10")}


def parse_pool_cidr(text: str, path: str = "spec.cidr"):
    """The pool's network; raises the errors Calico gives for bad or unmasked CIDRs."""
    try:
        iface = ipaddress.ip_interface(text.strip())
    except ValueError:
        fail(path, f"Invalid value: {text!r}: IPPool CIDR must be a valid subnet")
    if "/" not in text:
        fail(path, f"Invalid value: {text!r}: IPPool CIDR must be a valid subnet")
    if iface.ip != iface.network.network_address:
        fail(path, f"Invalid value: {text!r}: IPPool CIDR is not strictly masked "
                   f"(did you mean {iface.network}?)")
    return iface.network


def normalize_ippool_spec(spec: Any) -> dict:
    spec = as_map(spec, "spec", required=True)
    check_known(spec, IPPOOL_SPEC_FIELDS, "spec")
    out = dict(spec)
    net = None  # the checks that need the pool's network are skipped when it is invalid
    with guard():
        cidr_text = as_str(spec.get("cidr"), "spec.cidr")
        if not cidr_text:
            fail("spec.cidr", "Required value: IPPool CIDR must be specified")
        net = parse_pool_cidr(cidr_text)
        out["cidr"] = str(net)  # normalized, as Calico persists it (e.g. IPv6 compressed)
    v = net.version if net is not None else 4

    block = None
    with guard():
        default_block = 26 if v == 4 else 122
        block = as_int(spec.get("blockSize") or default_block, "spec.blockSize")
        low, high = (20, 32) if v == 4 else (116, 128)
        if net is not None and not low <= block <= high:
            fail("spec.blockSize", f"Invalid value: {block}: IPv{v} block size must be "
                                   f"between {low} and {high}")
        out["blockSize"] = block

    disabled = False
    with guard():
        disabled = as_bool(spec.get("disabled"), "spec.disabled") or False
        out["disabled"] = disabled
    if net is not None:
        with guard():
            _check_pool_size(net, out, block, disabled)

    with guard():
        _encapsulation(spec, out, v)
    for key in ("natOutgoing", "disableBGPExport"):
        with guard():
            out[key] = as_bool(spec.get(key), child("spec", key)) or False

    with guard():
        selector = as_str(spec.get("nodeSelector"), "spec.nodeSelector")
        if selector is not None and not selector.strip():
            fail("spec.nodeSelector", "Invalid value: '': IPPool nodeSelector must be a "
                                      "non-empty selector (omit it for all())")
        selector = selector or "all()"
        if "global()" in selector:
            fail("spec.nodeSelector", f"Invalid value: {selector!r}: IPPool should not use "
                                      "global() in nodeSelector")
        out["nodeSelector"] = selector
    with guard():
        as_str(spec.get("namespaceSelector"), "spec.namespaceSelector")
    with guard():
        if spec.get("assignmentMode") is not None:
            one_of(spec["assignmentMode"], "spec.assignmentMode", ("Automatic", "Manual"))
    with guard():
        out["allowedUses"] = _allowed_uses(spec.get("allowedUses"))
    return out


def _check_pool_size(net, out: dict, block: int | None, disabled: bool) -> None:
    v = net.version
    if not disabled and block is not None and net.prefixlen > block:
        fail("spec.cidr", f"Invalid value: {out['cidr']!r}: IP pool size is too small for use "
                          "with Calico IPAM. It must be equal to or greater than the block size.")
    if net.overlaps(_LINK_LOCAL[v]):
        fail("spec.cidr", f"Invalid value: {out['cidr']!r}: IPPool CIDR overlaps with "
                          f"IPv{v} Link Local range {_LINK_LOCAL[v]}")


def _encapsulation(spec: dict, out: dict, v: int) -> None:
    ipip = one_of(spec.get("ipipMode") or "Never", "spec.ipipMode", ENCAP_MODES)
    vxlan = one_of(spec.get("vxlanMode") or "Never", "spec.vxlanMode", ENCAP_MODES)
    if ipip != "Never" and vxlan != "Never":
        fail("spec.vxlanMode", f"Invalid value: {vxlan!r}: Cannot enable both VXLAN and IPIP "
                               "on the same IPPool")
    if v == 6 and ipip != "Never":
        fail("spec.ipipMode", f"Invalid value: {ipip!r}: IPIP is not supported on an IPv6 "
                              "IP pool")
    out["ipipMode"], out["vxlanMode"] = ipip, vxlan


def _allowed_uses(value: Any) -> list[str]:
    uses = as_list(value, "spec.allowedUses")
    if not uses:
        return list(DEFAULT_ALLOWED_USES)
    seen: list[str] = []
    for i, use in enumerate(uses):
        with guard():
            one_of(use, item("spec.allowedUses", i), ALLOWED_USES)
            if use in seen:
                fail(item("spec.allowedUses", i), f"Duplicate value: {use!r}")
            seen.append(use)
    if "LoadBalancer" in seen and len(seen) > 1:
        fail("spec.allowedUses", "Invalid value: LoadBalancer cannot be combined with "
                                 "other allowed uses")
    return seen


def check_pool_overlap(pool: dict, others: list[dict]) -> None:
    """Calico refuses a new pool whose CIDR overlaps another pool's (on create)."""
    name = pool["metadata"]["name"]
    net = ipaddress.ip_network(pool["spec"]["cidr"])
    for other in others:
        oname = other["metadata"]["name"]
        if oname == name:
            continue
        onet = ipaddress.ip_network(other["spec"]["cidr"])
        if onet.version == net.version and net.overlaps(onet):
            raise ValidationError(
                f"Invalid value: {pool['spec']['cidr']!r}: IPPool({name}) CIDR overlaps with "
                f"IPPool({oname}) CIDR {other['spec']['cidr']}", field="spec.cidr")
