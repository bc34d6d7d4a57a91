"""BGP objects of projectcalico.org/v3 (BGPConfiguration, BGPPeer, a node's BGP facts).

Pure. Builds frozen dataclasses from manifest dicts and validates them before anything starts:
every error is a ValidationError naming the object ("BGPPeer rack1-tor") and the field
("spec.peerIP"). Selectors use the same small Calico subset as IPPool node selectors
(orchestrator.ipam.selector: all(), has(k), k == 'v', k != 'v', !, &&, ||, parentheses).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from orchestrator.errors import ValidationError
from orchestrator.host.asnumber import AS_MAX, parse_as_number  # noqa: F401 (re-exported)
from orchestrator.ipam.selector import pool_selects_node, validate_selector

API_VERSION = "projectcalico.org/v3"
# Calico's defaults (api/pkg/apis/projectcalico/v3/bgpconfig.go) and BIRD's, which Calico's
# bgp_template does not override: hold 240 s, keepalive a third of it, graceful restart 120 s.
DEFAULT_AS = 64512
DEFAULT_HOLD = 240
DEFAULT_RESTART = 120
LOG_SEVERITIES = ("Debug", "Info", "Warning", "Error", "Fatal")


@dataclass(frozen=True)
class BGPConfiguration:
    asNumber: int = DEFAULT_AS
    nodeToNodeMeshEnabled: bool = True
    listenPort: int = 179
    logSeverityScreen: str = "Info"
    # calinet extensions (experiments shorten them); ExaBGP sends keepalives every hold/3.
    holdTime: int = DEFAULT_HOLD
    keepaliveTime: int = DEFAULT_HOLD // 3
    # Calico's nodeMeshMaxRestartTime; unset in Calico means BIRD's 120 s.
    nodeMeshMaxRestartTime: int = DEFAULT_RESTART
    # Service address ranges every node advertises (Calico: "All nodes in the cluster
    # statically advertise a route to the service CIDR"); CIDR strings.
    serviceClusterIPs: tuple = ()
    serviceExternalIPs: tuple = ()

    @property
    def service_cidrs(self) -> list[str]:
        return sorted(set(self.serviceClusterIPs) | set(self.serviceExternalIPs))


@dataclass(frozen=True)
class BGPPeer:
    name: str
    peerIP: str | None = None
    asNumber: int | None = None
    node: str | None = None
    nodeSelector: str | None = None
    peerSelector: str | None = None

    @property
    def is_global(self) -> bool:
        """Calico: a peer with neither node nor nodeSelector applies to every node."""
        return not self.node and not self.nodeSelector


@dataclass(frozen=True)
class NodeBGP:
    name: str
    ip: str
    asNumber: int | None = None
    routeReflectorClusterID: str | None = None
    labels: tuple[tuple[str, str], ...] = field(default=())
    ip6: str | None = None          # the node's IPv6 address (IPv6 sessions), if any

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def is_route_reflector(self) -> bool:
        return bool(self.routeReflectorClusterID)

    def as_number(self, config: BGPConfiguration) -> int:
        return self.asNumber if self.asNumber is not None else config.asNumber


def selects(selector: str | None, labels: Mapping[str, str]) -> bool:
    """Calico selector match; None or empty selects nothing (BGPPeer selectors are opt-in)."""
    if selector is None or not selector.strip():
        return False
    return pool_selects_node(selector, labels)


def _selector(value, *, obj: str, field_name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"selector must be a string, got {value!r}", obj=obj,
                              field=field_name)
    try:
        validate_selector(value)
    except ValidationError as exc:
        raise ValidationError(exc.message, obj=obj, field=field_name) from None
    return value


def _int(spec: Mapping, key: str, default: int, lo: int, hi: int, obj: str) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValidationError(f"must be an integer in {lo}..{hi}, got {value!r}", obj=obj,
                              field=f"spec.{key}")
    return value


def _meta(doc: Mapping, kind: str) -> tuple[str, Mapping]:
    if not isinstance(doc, Mapping):
        raise ValidationError(f"a {kind} must be a mapping, got {type(doc).__name__}")
    if doc.get("kind", kind) != kind:
        raise ValidationError(f"expected kind {kind}, got {doc.get('kind')!r}", field="kind")
    name = (doc.get("metadata") or {}).get("name")
    if not name or not isinstance(name, str):
        raise ValidationError("metadata.name is required", obj=kind, field="metadata.name")
    spec = doc.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise ValidationError("spec must be a mapping", obj=f"{kind} {name}", field="spec")
    return name, spec


def configuration_from_manifest(doc: Mapping | None) -> BGPConfiguration:
    """The cluster's BGPConfiguration; None (none applied) means Calico's defaults."""
    if doc is None:
        return BGPConfiguration()
    name, spec = _meta(doc, "BGPConfiguration")
    obj = f"BGPConfiguration {name}"
    asn = DEFAULT_AS
    if spec.get("asNumber") is not None:
        asn = parse_as_number(spec["asNumber"], obj=obj, field_name="spec.asNumber")
    mesh = spec.get("nodeToNodeMeshEnabled", True)
    if not isinstance(mesh, bool):
        raise ValidationError(f"must be true or false, got {mesh!r}", obj=obj,
                              field="spec.nodeToNodeMeshEnabled")
    severity = spec.get("logSeverityScreen", "Info")
    if severity not in LOG_SEVERITIES:
        raise ValidationError(f"must be one of {', '.join(LOG_SEVERITIES)}, got {severity!r}",
                              obj=obj, field="spec.logSeverityScreen")
    hold = _int(spec, "holdTime", DEFAULT_HOLD, 0, 65535, obj)
    if 0 < hold < 3:
        raise ValidationError("must be 0 or at least 3 seconds (RFC 4271)", obj=obj,
                              field="spec.holdTime")
    keepalive = _int(spec, "keepaliveTime", hold // 3, 0, 21845, obj)
    if keepalive != hold // 3:
        # ExaBGP has no keepalive knob: it always sends one every negotiated hold time / 3.
        raise ValidationError(f"must be holdTime/3 = {hold // 3} (ExaBGP derives keepalives "
                              "from the hold time)", obj=obj, field="spec.keepaliveTime")
    restart_raw = spec.get("nodeMeshMaxRestartTime", DEFAULT_RESTART)
    restart = _duration(restart_raw, obj, "spec.nodeMeshMaxRestartTime")
    return BGPConfiguration(asNumber=asn, nodeToNodeMeshEnabled=mesh,
                            listenPort=_int(spec, "listenPort", 179, 1, 65535, obj),
                            logSeverityScreen=severity, holdTime=hold, keepaliveTime=keepalive,
                            nodeMeshMaxRestartTime=restart,
                            serviceClusterIPs=_service_cidrs(spec, "serviceClusterIPs", obj),
                            serviceExternalIPs=_service_cidrs(spec, "serviceExternalIPs", obj))


def _service_cidrs(spec: Mapping, key: str, obj: str) -> tuple:
    """Calico's [{cidr: 10.96.0.0/12}, {cidr: fd00:10:96::/112}, ...] form: IPv4 or IPv6
    CIDRs (a dual-stack cluster advertises both service ranges, each over its family's
    sessions)."""
    raw = spec.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValidationError("must be a list of {cidr: ...}", obj=obj, field=f"spec.{key}")
    out = []
    for i, item in enumerate(raw):
        fld = f"spec.{key}[{i}].cidr"
        if not isinstance(item, Mapping) or set(item) != {"cidr"}:
            raise ValidationError(f"must be a mapping with only cidr, got {item!r}", obj=obj,
                                  field=f"spec.{key}[{i}]")
        try:
            out.append(str(ipaddress.ip_network(str(item["cidr"]), strict=False)))
        except ValueError as exc:
            raise ValidationError(f"not an IP CIDR: {exc}", obj=obj, field=fld) from None
    return tuple(out)


def _duration(value, obj: str, field_name: str) -> int:
    """Seconds as an int, or a Kubernetes duration string ("120s", "2m")."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value[:-1].isdigit() and value[-1:] in ("s", "m"):
        seconds = int(value[:-1]) * (60 if value.endswith("m") else 1)
    else:
        raise ValidationError(f"invalid duration {value!r} (e.g. 120s)", obj=obj,
                              field=field_name)
    if not 0 <= seconds <= 4095:  # the graceful-restart capability has 12 bits
        raise ValidationError(f"restart time {seconds}s out of range 0..4095", obj=obj,
                              field=field_name)
    return seconds


def node_bgp(name: str, ip: str, *, labels: Mapping[str, str] | None = None,
             asNumber=None, routeReflectorClusterID: str | None = None,
             ip6: str | None = None) -> NodeBGP:
    """A node's BGP facts (Calico Node spec.bgp + metadata.labels), validated."""
    obj = f"Node {name}"
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        raise ValidationError(f"not an IPv4 address: {ip!r}", obj=obj,
                              field="spec.bgp.ipv4Address") from None
    asn = None if asNumber is None else parse_as_number(asNumber, obj=obj,
                                                         field_name="spec.bgp.asNumber")
    cid = routeReflectorClusterID or None
    if cid is not None:
        try:
            ipaddress.IPv4Address(cid)
        except ValueError:
            raise ValidationError(f"cluster ID must be dotted-quad like 224.0.0.1, got {cid!r}",
                                  obj=obj, field="spec.bgp.routeReflectorClusterID") from None
    if ip6:
        try:
            ip6 = str(ipaddress.IPv6Address(ip6))
        except ValueError:
            raise ValidationError(f"not an IPv6 address: {ip6!r}", obj=obj,
                                  field="spec.bgp.ipv6Address") from None
    return NodeBGP(name=name, ip=str(addr), asNumber=asn, routeReflectorClusterID=cid,
                   labels=tuple(sorted((labels or {}).items())), ip6=ip6 or None)


def node_from_manifest(doc: Mapping) -> NodeBGP:
    """A projectcalico.org/v3 Node: spec.bgp.ipv4Address ("10.0.0.1/24"), asNumber,
    routeReflectorClusterID; labels from metadata.labels."""
    name, spec = _meta(doc, "Node")
    bgp = spec.get("bgp") or {}
    address = str(bgp.get("ipv4Address", "")).split("/")[0]
    return node_bgp(name, address, labels=(doc.get("metadata") or {}).get("labels"),
                    asNumber=bgp.get("asNumber"),
                    routeReflectorClusterID=bgp.get("routeReflectorClusterID"))


def peer_from_manifest(doc: Mapping, *, node_names: Iterable[str],
                       underlay: str | ipaddress.IPv4Network | Mapping[str, str]) -> BGPPeer:
    """A BGPPeer, checked against the cluster: known node, peer IP inside the underlay (a
    CIDR, or a list of one CIDR per family), or one of the addresses a routed fabric's nodes
    and routers own (a mapping of address -> owner). The peerIP may be IPv6."""
    name, spec = _meta(doc, "BGPPeer")
    obj = f"BGPPeer {name}"
    node = spec.get("node") or None
    if node is not None and node not in set(node_names):
        raise ValidationError(f"unknown node {node!r}", obj=obj, field="spec.node")
    node_sel = _selector(spec.get("nodeSelector"), obj=obj, field_name="spec.nodeSelector")
    peer_sel = _selector(spec.get("peerSelector"), obj=obj, field_name="spec.peerSelector")
    if node and node_sel:
        raise ValidationError("node and nodeSelector are mutually exclusive", obj=obj,
                              field="spec.nodeSelector")
    peer_ip, asn = spec.get("peerIP") or None, spec.get("asNumber")
    if peer_sel and (peer_ip or asn is not None):
        raise ValidationError("peerSelector excludes peerIP and asNumber", obj=obj,
                              field="spec.peerSelector")
    if not peer_sel:
        if not peer_ip:
            raise ValidationError("peerIP (or peerSelector) is required", obj=obj,
                                  field="spec.peerIP")
        peer_ip = _peer_ip(peer_ip, underlay, obj)
        if asn is None:
            raise ValidationError("asNumber is required with peerIP", obj=obj,
                                  field="spec.asNumber")
        asn = parse_as_number(asn, obj=obj, field_name="spec.asNumber")
    return BGPPeer(name=name, peerIP=peer_ip, asNumber=asn, node=node, nodeSelector=node_sel,
                   peerSelector=peer_sel)


def _peer_ip(value, underlay, obj: str) -> str:
    text = str(value)
    if text.count(":") == 1:  # Calico allows "ip:port"; ExaBGP peers here use listenPort
        raise ValidationError(f"peerIP with a port is not supported: {text!r}", obj=obj,
                              field="spec.peerIP")
    try:
        # An IPv6 peerIP is an IPv6 session (Calico's bird6.cfg), for nodes with IPv6.
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ValidationError(f"not an IPv4 or IPv6 address: {text!r}", obj=obj,
                              field="spec.peerIP") from None
    if isinstance(underlay, Mapping):
        # A routed fabric: only addresses something owns (a node, a router interface).
        if str(addr) not in underlay:
            routers = sorted({v.split(" (")[0] + " " + k for k, v in underlay.items()
                              if v.startswith("router ")
                              and ipaddress.ip_address(k).version == addr.version})
            raise ValidationError(f"{addr} is no address of a node or fabric router, so no "
                                  f"BGP speaker could answer there (routers: "
                                  f"{', '.join(routers[:8]) or 'none'})", obj=obj,
                                  field="spec.peerIP")
        return str(addr)
    # A CIDR, or the CIDRs of a dual-stack underlay (underlay.cidr, underlay.cidr6).
    nets = [ipaddress.ip_network(u, strict=False)
            for u in (underlay if isinstance(underlay, (list, tuple)) else [underlay])]
    mine = [n for n in nets if n.version == addr.version]
    if not mine:
        raise ValidationError(f"{addr} is an IPv{addr.version} address and the underlay "
                              f"{', '.join(map(str, nets))} is IPv{nets[0].version} only"
                              + (" (set the topology's underlay.cidr6)"
                                 if addr.version == 6 else ""),
                              obj=obj, field="spec.peerIP")
    if not any(addr in n for n in mine):
        raise ValidationError(f"{addr} is outside the underlay {mine[0]}", obj=obj,
                              field="spec.peerIP")
    return str(addr)


def load(docs: Iterable[Mapping], nodes: Iterable[NodeBGP],
         underlay: str | ipaddress.IPv4Network) -> tuple[BGPConfiguration, list[BGPPeer]]:
    """Validate a set of BGP manifests: at most one BGPConfiguration ("default"), any number
    of BGPPeers with distinct names; other kinds are ignored. Peers sorted by name."""
    node_names = [n.name for n in nodes]
    config_doc, peers = None, {}
    for doc in docs:
        kind = doc.get("kind") if isinstance(doc, Mapping) else None
        if kind == "BGPConfiguration":
            if config_doc is not None:
                raise ValidationError("more than one BGPConfiguration",
                                      obj=f"BGPConfiguration {(doc.get('metadata') or {}).get('name')}")
            config_doc = doc
        elif kind == "BGPPeer":
            peer = peer_from_manifest(doc, node_names=node_names, underlay=underlay)
            if peer.name in peers:
                raise ValidationError("duplicate name", obj=f"BGPPeer {peer.name}",
                                      field="metadata.name")
            peers[peer.name] = peer
    return configuration_from_manifest(config_doc), [peers[k] for k in sorted(peers)]
