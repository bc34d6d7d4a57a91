"""v1 Service, v1 Endpoints and discovery.k8s.io/v1 EndpointSlice: defaulting and validation.

Pure. What the API server does on create (pkg/apis/core/v1 defaults.go, core/validation
ValidateService, discovery/validation): type ClusterIP by default, ports default to TCP with
targetPort = port, port names are DNS labels (required and unique once there are two ports),
a port+protocol appears once, nodePort only on NodePort Services, clusterIP "None" (headless)
only on ClusterIP Services, sessionAffinity None or ClientIP (timeoutSeconds 10800 by default,
1..86400). Allocating clusterIP and nodePort is orchestrator.control.serviceips' job, at apply time;
here the dual-stack fields are checked as ValidateServiceClusterIPsRelatedFields does, without
knowing the cluster: clusterIPs hold at most one address per family ("None" alone), clusterIPs[0]
is clusterIP, ipFamilies are IPv4/IPv6 once each and agree with clusterIPs index by index,
SingleStack has one of each. Defaulting ipFamilyPolicy and ipFamilies needs the cluster's
service families, so it is the allocator's too.

Endpoints and EndpointSlices carry their data at the top level (subsets; addressType,
endpoints, ports), not in a spec: normalize_endpoints / normalize_endpointslice return those
fields.
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
    check_dns1123_label,
    check_dns1123_subdomain,
    check_known,
    check_labels,
    check_port_name,
    child,
    each,
    fail,
    guard,
    item,
    one_of,
    type_name,
)

SERVICE_TYPES = ("ClusterIP", "NodePort")
UNSUPPORTED_TYPES = ("LoadBalancer", "ExternalName")
PROTOCOLS = ("TCP", "UDP", "SCTP")
AFFINITIES = ("None", "ClientIP")
TRAFFIC_POLICIES = ("Cluster", "Local")
DEFAULT_AFFINITY_SECONDS = 10800
MAX_AFFINITY_SECONDS = 86400
HEADLESS = "None"
IP_FAMILIES = ("IPv4", "IPv6")
FAMILY_NAMES = {4: "IPv4", 6: "IPv6"}     # an IP version as Kubernetes spells the family
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
SPEC_FIELDS = frozenset({
    "type", "clusterIP", "clusterIPs", "ports", "selector", "sessionAffinity",
    "sessionAffinityConfig", "publishNotReadyAddresses", "externalTrafficPolicy",
    "internalTrafficPolicy", "ipFamilies", "ipFamilyPolicy",
})
_PORT_FIELDS = frozenset({"name", "protocol", "port", "targetPort", "nodePort", "appProtocol"})
ENDPOINTS_FIELDS = frozenset({"subsets"})
ENDPOINTSLICE_FIELDS = frozenset({"addressType", "endpoints", "ports"})
_SUBSET_FIELDS = frozenset({"addresses", "notReadyAddresses", "ports"})
_ADDRESS_FIELDS = frozenset({"ip", "hostname", "nodeName", "targetRef"})
_EP_PORT_FIELDS = frozenset({"name", "port", "protocol", "appProtocol"})
_SLICE_EP_FIELDS = frozenset({"addresses", "conditions", "hostname", "nodeName", "targetRef",
                              "zone", "deprecatedTopology", "hints"})
_CONDITIONS = frozenset({"ready", "serving", "terminating"})
ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
MAX_SLICE_ENDPOINTS = 1000


def _port_number(value: Any, path: str, *, required: bool = True) -> int | None:
    if value is None:
        if required:
            fail(path, "Required value")
        return None
    return as_int(value, path, minimum=1, maximum=65535)


def _target_port(value: Any, path: str, default: int) -> int | str:
    if value is None:
        return default
    if isinstance(value, str):
        # IntOrString: "8080" written as a string is a name, and a name needs a letter.
        check_port_name(value, path)
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        fail(path, f"must be an integer or a port name, got {type_name(value)} {value!r}")
    return as_int(value, path, minimum=1, maximum=65535)


def normalize_service_spec(spec: Any) -> dict:
    """The spec defaulted and validated (a new dict); ValidationError naming the field."""
    spec = as_map(spec, "spec", required=True)
    check_known(spec, SPEC_FIELDS, "spec")
    stype = spec.get("type", "ClusterIP")
    with guard():
        if stype in UNSUPPORTED_TYPES:
            fail("spec.type", f"Unsupported value: {stype!r}: calinet serves Services of type "
                              f"{' and '.join(SERVICE_TYPES)} (no cloud load balancer, no "
                              "ExternalName)")
        one_of(stype, "spec.type", SERVICE_TYPES)
    out: dict = {"type": stype}
    ips: list[str] = []
    with guard():
        ips = _cluster_ips(spec, stype)
    if ips:
        out["clusterIP"], out["clusterIPs"] = ips[0], ips
    cip = ips[0] if ips else ""
    with guard():
        raw = as_list(spec.get("ports"), "spec.ports")
        ports = each(raw, "spec.ports", lambda p, at: _service_port(p, at, stype, len(raw)))
        if not raw and cip != HEADLESS:
            fail("spec.ports", "Required value")
        if len(ports) == len(raw):  # duplicates are named by index: only when all parsed
            _check_unique_ports(ports)
        out["ports"] = ports
    with guard():
        if "selector" in spec:
            out["selector"] = check_labels(spec["selector"], "spec.selector")
    with guard():
        _affinity(spec, out)
    with guard():
        pna = as_bool(spec.get("publishNotReadyAddresses"), "spec.publishNotReadyAddresses")
        if pna is not None:
            out["publishNotReadyAddresses"] = pna
    with guard():
        out["internalTrafficPolicy"] = one_of(spec.get("internalTrafficPolicy", "Cluster"),
                                              "spec.internalTrafficPolicy", TRAFFIC_POLICIES)
    with guard():
        if stype == "NodePort":
            out["externalTrafficPolicy"] = one_of(spec.get("externalTrafficPolicy", "Cluster"),
                                                  "spec.externalTrafficPolicy",
                                                  TRAFFIC_POLICIES)
        elif "externalTrafficPolicy" in spec:
            fail("spec.externalTrafficPolicy", "Invalid value: may only be set for externally-"
                                               "accessible services")
    with guard():
        fams = _ip_families(spec.get("ipFamilies"))
        if fams:
            out["ipFamilies"] = fams
        for i, (fam, ip) in enumerate(zip(fams, ips)):
            if ip != HEADLESS and _family_of(ip) != fam:
                fail(f"spec.clusterIPs[{i}]", f"Invalid value: {ip!r}: expected an {fam} value "
                                              f"as indicated by `ipFamilies[{i}]`")
    with guard():
        policy = spec.get("ipFamilyPolicy")
        if policy is not None:
            out["ipFamilyPolicy"] = one_of(policy, "spec.ipFamilyPolicy", IP_FAMILY_POLICIES)
            if policy == "SingleStack":
                if len(ips) == 2:
                    fail("spec.ipFamilyPolicy", "Invalid value: \"SingleStack\": must be "
                         "'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are "
                         "specified")
                if len(out.get("ipFamilies") or ()) == 2:
                    fail("spec.ipFamilyPolicy", "Invalid value: \"SingleStack\": must be "
                         "'RequireDualStack' or 'PreferDualStack' when multiple IP families "
                         "are specified")
    return out


def _family_of(ip: str) -> str:
    return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"


def _ip(value: Any, path: str, version: int | None = None) -> str:
    """An IP address (of ``version`` 4 or 6 when given), as text."""
    text = as_str(value, path, required=True)
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    if ip is None or version not in (None, ip.version):
        fail(path, f"Invalid value: {text!r}: must be a valid "
                   f"{f'IPv{version} ' if version else 'IP '}address")
    return text


def _cluster_ips(spec: dict, stype: str) -> list[str]:
    """clusterIP and clusterIPs, which must agree: [] (allocate), ["None"], or one address per
    family, primary first."""
    cip = as_str(spec.get("clusterIP"), "spec.clusterIP") or ""
    if cip and cip != HEADLESS:
        _ip(cip, "spec.clusterIP")
    ips = [as_str(v, item("spec.clusterIPs", i)) for i, v in
           enumerate(as_list(spec.get("clusterIPs"), "spec.clusterIPs"))]
    if not ips:
        ips = [cip] if cip else []
    elif cip and ips[0] != cip:
        fail("spec.clusterIPs[0]", f"Invalid value: {ips[0]!r}: must match `spec.clusterIP` "
                                   f"{cip!r}")
    if len(ips) > 2:
        fail("spec.clusterIPs", "Invalid value: may only hold up to 2 values")
    if HEADLESS in ips:
        if len(ips) > 1:
            fail("spec.clusterIPs", "Invalid value: must not have \"None\" alongside another "
                                    "IP")
        if stype != "ClusterIP":
            fail("spec.clusterIP", f"Invalid value: \"None\": may not be set to 'None' for "
                                   f"{stype} services")
        return ips
    for i, ip in enumerate(ips):
        _ip(ip, "spec.clusterIP" if i == 0 and cip else item("spec.clusterIPs", i))
    if len(ips) == 2 and _family_of(ips[0]) == _family_of(ips[1]):
        fail("spec.clusterIPs[1]", f"Invalid value: {ips[1]!r}: may specify no more than one "
                                   "IP for each IP family")
    return ips


def _ip_families(value: Any) -> list[str]:
    fams = as_list(value, "spec.ipFamilies")
    for i, fam in enumerate(fams):
        one_of(fam, item("spec.ipFamilies", i), IP_FAMILIES)
        if fam in fams[:i]:
            fail(item("spec.ipFamilies", i), f"Duplicate value: {fam!r}")
    return list(fams)


def _affinity(spec: dict, out: dict) -> None:
    affinity = spec.get("sessionAffinity", "None")
    one_of(affinity, "spec.sessionAffinity", AFFINITIES)
    out["sessionAffinity"] = affinity
    cfg = as_map(spec.get("sessionAffinityConfig"), "spec.sessionAffinityConfig")
    check_known(cfg, frozenset({"clientIP"}), "spec.sessionAffinityConfig")
    if affinity == "ClientIP":
        client = as_map(cfg.get("clientIP"), "spec.sessionAffinityConfig.clientIP")
        check_known(client, frozenset({"timeoutSeconds"}), "spec.sessionAffinityConfig.clientIP")
        timeout = as_int(client.get("timeoutSeconds", DEFAULT_AFFINITY_SECONDS),
                         "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                         minimum=1, maximum=MAX_AFFINITY_SECONDS)
        out["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": timeout}}
    elif cfg:
        fail("spec.sessionAffinityConfig", "Invalid value: must not be set when "
                                           "sessionAffinity is None")


def _service_port(p: Any, path: str, stype: str, count: int) -> dict:
    p = as_map(p, path, required=True)
    check_known(p, _PORT_FIELDS, path)
    out: dict = {}
    with guard():
        name = as_str(p.get("name"), child(path, "name"))
        if name:
            check_dns1123_label(name, child(path, "name"))
            out["name"] = name
        elif count > 1:
            fail(child(path, "name"), "Required value")
    with guard():
        out["protocol"] = one_of(p.get("protocol", "TCP"), child(path, "protocol"), PROTOCOLS)
    with guard():
        out["port"] = _port_number(p.get("port"), child(path, "port"))
    with guard():
        out["targetPort"] = _target_port(p.get("targetPort"), child(path, "targetPort"),
                                         out.get("port"))
    with guard():
        if p.get("appProtocol") is not None:
            out["appProtocol"] = as_str(p["appProtocol"], child(path, "appProtocol"))
    with guard():
        if p.get("nodePort") not in (None, 0):
            if stype != "NodePort":
                fail(child(path, "nodePort"), "Forbidden: may not be used when `type` is "
                                              f"'{stype}'")
            out["nodePort"] = _port_number(p["nodePort"], child(path, "nodePort"))
    return out


def _check_unique_ports(ports: list[dict]) -> None:
    names: set[str] = set()
    pairs: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for i, p in enumerate(ports):
        path = item("spec.ports", i)
        if p.get("name") in names:
            fail(child(path, "name"), f"Duplicate value: {p['name']!r}")
        names.add(p.get("name"))
        # .get: a port whose own fields had errors comes back without them
        pair = (p.get("port"), p.get("protocol"))
        if pair in pairs:
            fail(path, f"Duplicate value: {{port: {pair[0]}, protocol: {pair[1]}}}")
        pairs.add(pair)
        if "nodePort" in p:
            if (p["nodePort"], p.get("protocol")) in node_ports:
                fail(child(path, "nodePort"), f"Duplicate value: {p['nodePort']}")
            node_ports.add((p["nodePort"], p.get("protocol")))


# -- Endpoints / EndpointSlice ------------------------------------------------------------

def _target_ref(value: Any, path: str) -> dict:
    ref = as_map(value, path)
    for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
              "fieldPath"):
        as_str(ref.get(k), child(path, k))
    return dict(ref)


def _endpoint_port(p: Any, path: str, named: bool) -> dict:
    p = as_map(p, path, required=True)
    check_known(p, _EP_PORT_FIELDS, path)
    out: dict = {}
    name = as_str(p.get("name"), child(path, "name"))
    if name:
        check_dns1123_label(name, child(path, "name"))
        out["name"] = name
    elif named:
        fail(child(path, "name"), "Required value")
    out["port"] = _port_number(p.get("port"), child(path, "port"))
    out["protocol"] = one_of(p.get("protocol", "TCP"), child(path, "protocol"), PROTOCOLS)
    if p.get("appProtocol") is not None:
        out["appProtocol"] = as_str(p["appProtocol"], child(path, "appProtocol"))
    return out


def normalize_endpoints(obj: dict) -> dict:
    """{"subsets": [...]} of a v1 Endpoints object, validated."""
    return {"subsets": each(as_list(obj.get("subsets"), "subsets"), "subsets", _subset)}


def _subset(s: Any, path: str) -> dict:
    s = as_map(s, path, required=True)
    check_known(s, _SUBSET_FIELDS, path)
    out: dict = {}
    for key in ("addresses", "notReadyAddresses"):
        with guard():
            addrs = each(as_list(s.get(key), child(path, key)), child(path, key), _address)
            if addrs:
                out[key] = addrs
    with guard():
        ports = as_list(s.get("ports"), child(path, "ports"))
        out["ports"] = each(ports, child(path, "ports"),
                            lambda p, at: _endpoint_port(p, at, len(ports) > 1))
    return out


def _address(a: Any, apath: str) -> dict:
    a = as_map(a, apath, required=True)
    check_known(a, _ADDRESS_FIELDS, apath)
    addr = {"ip": _ip(a.get("ip"), child(apath, "ip"))}
    for k in ("hostname", "nodeName"):
        if a.get(k) is not None:
            addr[k] = as_str(a[k], child(apath, k))
    if "targetRef" in a:
        addr["targetRef"] = _target_ref(a["targetRef"], child(apath, "targetRef"))
    return addr


def normalize_endpointslice(obj: dict) -> dict:
    """{"addressType", "endpoints", "ports"} of an EndpointSlice, validated."""
    atype = obj.get("addressType")
    with guard():
        if atype is None:
            fail("addressType", "Required value")
        one_of(atype, "addressType", ADDRESS_TYPES)
    eps = as_list(obj.get("endpoints"), "endpoints")
    if len(eps) > MAX_SLICE_ENDPOINTS:
        fail("endpoints", f"Too many: {len(eps)}: must have at most {MAX_SLICE_ENDPOINTS} items")
    out_eps = []
    for i, ep in enumerate(eps):
        path = item("endpoints", i)
        ep = as_map(ep, path, required=True)
        check_known(ep, _SLICE_EP_FIELDS, path)
        addrs = as_list(ep.get("addresses"), child(path, "addresses"), required=True)
        if not 1 <= len(addrs) <= 100:
            fail(child(path, "addresses"), "Invalid value: must contain 1 to 100 addresses")
        for j, a in enumerate(addrs):
            apath = item(child(path, "addresses"), j)
            if atype == "FQDN":
                check_dns1123_subdomain(as_str(a, apath, required=True), apath)
            else:
                _ip(a, apath, 6 if atype == "IPv6" else 4)
        e: dict = {"addresses": list(addrs)}
        cond = as_map(ep.get("conditions"), child(path, "conditions"))
        check_known(cond, _CONDITIONS, child(path, "conditions"))
        for k in _CONDITIONS:
            as_bool(cond.get(k), child(child(path, "conditions"), k))
        e["conditions"] = dict(cond)
        for k in ("hostname", "nodeName", "zone"):
            if ep.get(k) is not None:
                e[k] = as_str(ep[k], child(path, k))
        if "targetRef" in ep:
            e["targetRef"] = _target_ref(ep["targetRef"], child(path, "targetRef"))
        out_eps.append(e)
    ports = as_list(obj.get("ports"), "ports")
    out_ports = [_endpoint_port(p, item("ports", i), False) for i, p in enumerate(ports)]
    seen: set = set()
    for i, p in enumerate(out_ports):
        if (p.get("name", ""), p["protocol"]) in seen:
            fail(child(item("ports", i), "name"), f"Duplicate value: {p.get('name', '')!r}")
        seen.add((p.get("name", ""), p["protocol"]))
    return {"addressType": atype, "endpoints": out_eps, "ports": out_ports}
