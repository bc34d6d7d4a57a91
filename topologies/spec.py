"""Cluster topology spec: a YAML file -> a validated, frozen ``ClusterSpec``.

Pure (reads the file it is given, nothing else). Schema (see topologies/README.md)::

    name: three-node                  # cluster name, RFC 1123 label
    underlay:                         # optional
      cidr: 172.18.0.0/16             # default; node IPs .2, .3, ... in node order (like docker)
      cidr6: fd00:172:18::/64         # optional: nodes get IPv6 addresses too (::2, ::3, ...);
                                      # with fabric: rack i the i-th /64 (ToR ::1), router
                                      # links /127s from the last /64 (topologies.fabric6)
      bandwidth: 1000                 # Mbit/s on every node link (0 < bw <= 1000), optional
    racks:                            # optional; absent = one L2 switch for all nodes
      - {name: rack-a, nodes: [node-1, node-2]}
        # with `fabric:` also: subnet: 172.18.1.0/24, tor: {name: tor-a, asNumber: 65001}
    fabric:                           # optional: routed racks (topologies.fabric)
      spines: [{name: spine-1, asNumber: 65000}]   # or {count: 2, prefix: spine-, asNumber}
      linkCidr: 172.18.255.0/24       # router links (/31 each); bandwidth, holdTime, bfd
    nodes:
      - name: node-1                  # RFC 1123 label, unique
        role: control-plane           # control-plane | worker (default worker)
        schedulable: true             # default: false for control-plane, true for workers
        labels: {k: v}
        capacity: {cpu: "4", memory: 8Gi, pods: 110}   # defaults 2, 4Gi, 110
        taints: [{key: k, value: v, effect: NoSchedule}]
        ip: 172.18.0.10               # optional, inside the underlay
        ip6: fd00:172:18::10          # optional, inside underlay.cidr6 (its rack's /64)
        bandwidth: 100                # optional per-node override, Mbit/s
        routeReflectorClusterID: 224.0.0.1               # optional dotted quad
        asNumber: 65101               # optional: Calico Node spec.bgp.asNumber
    generate:                         # optional mapping or list: {count, prefix, start, ...node fields}
      {count: 50, prefix: node-, role: worker}           # node-1 .. node-50, after explicit nodes
    ipFamilies: [IPv4, IPv6]          # optional: the pods' families, primary first; default
                                      # [IPv4], or [IPv4, IPv6] when underlay.cidr6 is set
    manifests:                        # optional: applied before the speakers start
      - bgp.yaml                      # a manifest file, relative to the topology file
      - {apiVersion: ..., kind: ...}  # or an inline API object

Every node gets kubernetes.io/hostname, kubernetes.io/os=linux, kubernetes.io/arch=amd64,
node-role.kubernetes.io/control-plane="" (control plane) and topology.kubernetes.io/zone=<rack>.
An unschedulable control-plane node gets node-role.kubernetes.io/control-plane:NoSchedule (as
kubeadm does); an unschedulable worker gets node.kubernetes.io/unschedulable:NoSchedule (cordon).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestrator.api.quantity import parse_quantity
from orchestrator.errors import ValidationError
from orchestrator.host.asnumber import parse_as_number
from topologies import fabric as fabricmod
from topologies.addressing import assign_node_ips
from topologies.fields import DNS_LABEL as _DNS_LABEL
from topologies.fields import err as _err
from topologies.fields import mapping as _mapping

DEFAULT_CIDR = "172.18.0.0/16"
DEFAULT_CPU, DEFAULT_MEMORY, DEFAULT_PODS = "2", "4Gi", 110
# Mininet's TCLink (htb) accepts 0..1000 Mbit/s and ignores anything else.
MAX_BANDWIDTH = 1000
ROLES = ("control-plane", "worker")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"

_TOP_KEYS = {"name", "underlay", "racks", "fabric", "external", "nodes", "generate",
             "manifests", "ipFamilies"}
FAMILY_NAMES = {"IPv4": 4, "IPv6": 6}   # Kubernetes' spelling (Service spec.ipFamilies)
_UNDERLAY_KEYS = {"cidr", "cidr6", "bandwidth"}
_RACK_KEYS = {"name", "nodes"}
_ROUTED_RACK_KEYS = _RACK_KEYS | {"subnet", "tor", "site"}
DEFAULT_AS = 64512   # Calico's default BGPConfiguration asNumber
_NODE_KEYS = {"name", "role", "schedulable", "labels", "capacity", "taints", "ip", "ip6",
              "bandwidth",
              "routeReflectorClusterID", "asNumber"}
_GENERATE_KEYS = (_NODE_KEYS - {"name", "ip", "ip6"}) | {"count", "prefix", "start"}
_CAPACITY_KEYS = {"cpu", "memory", "pods"}
_TAINT_KEYS = {"key", "value", "effect"}

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str = ""

    def as_dict(self) -> dict:
        d = {"key": self.key, "effect": self.effect}
        if self.value:
            d["value"] = self.value
        return d


@dataclass(frozen=True)
class Capacity:
    cpu: str                 # as written, Kubernetes quantity form ("2", "500m")
    memory: str              # as written ("4Gi")
    pods: int
    cpu_millis: int
    memory_bytes: int

    def as_resources(self) -> dict:
        """Node status.capacity form: every value a string, as the API server returns it."""
        return {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods)}


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str
    ip: str
    capacity: Capacity
    labels: dict = field(hash=False)
    taints: tuple = ()
    schedulable: bool = True
    rack: str | None = None
    bandwidth: float | None = None          # Mbit/s on the node's link; None = unshaped
    route_reflector_cluster_id: str | None = None
    prefixlen: int = 16                     # of the node's subnet (underlay, or its rack's)
    gateway: str | None = None              # routed rack: its ToR; None = on-link default
    as_number: int | None = None            # Calico Node spec.bgp.asNumber; None = cluster's
    ip6: str | None = None                  # IPv6 address (underlay.cidr6); None = IPv4 only
    prefixlen6: int | None = None
    gateway6: str | None = None             # routed rack with cidr6: its ToR's ::1

    @property
    def is_control_plane(self) -> bool:
        return self.role == "control-plane"


@dataclass(frozen=True)
class RackSpec:
    name: str
    nodes: tuple
    subnet: str | None = None   # routed racks (fabric) only
    tor: str | None = None
    subnet6: str | None = None  # routed racks with underlay.cidr6 (topologies.fabric6)


@dataclass(frozen=True)
class UnderlaySpec:
    cidr: str
    prefixlen: int
    bandwidth: float | None = None
    cidr6: str | None = None        # the nodes' IPv6 network; None = an IPv4-only underlay
    prefixlen6: int | None = None


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    underlay: UnderlaySpec
    nodes: tuple
    racks: tuple = ()
    source: str = "<dict>"
    # The topology's own manifests (orchestrator.api.loader Documents, in file order): what
    # the cluster needs to work as described (e.g. the BGPPeers of route reflectors).
    manifests: tuple = field(default=(), hash=False)
    fabric: fabricmod.FabricSpec | None = None
    external: object | None = None   # topologies.external.ExternalSpec
    # The AS a node without its own asNumber has: the manifests' BGPConfiguration asNumber,
    # else Calico's 64512 (what a ToR must expect from the rack's nodes).
    cluster_as: int = DEFAULT_AS
    # The pods' IP families, primary first (topology `ipFamilies`): (4,), (6,), (4, 6), (6, 4).
    ip_families: tuple = (4,)

    @property
    def routed(self) -> bool:
        return self.fabric is not None

    @property
    def families(self) -> tuple[int, ...]:
        """The IP families pods get, primary first (``ipFamilies``): what IPPools may serve."""
        return self.ip_families

    @property
    def node_families(self) -> tuple[int, ...]:
        """The IP families the nodes have: (4,) or (4, 6) (underlay.cidr6)."""
        return (4, 6) if self.underlay.cidr6 else (4,)

    def peer_scope(self):
        """Where a BGPPeer's peerIP may point: the underlay CIDR on an L2 underlay (a list
        [cidr, cidr6] on a dual-stack one); on a routed fabric exactly the addresses nodes and
        routers own (address -> owner), IPv6 ones too."""
        if self.fabric is None:
            return [self.underlay.cidr, self.underlay.cidr6] if self.underlay.cidr6 \
                else self.underlay.cidr
        return {**{n.ip: f"node {n.name}" for n in self.nodes},
                **{n.ip6: f"node {n.name}" for n in self.nodes if n.ip6},
                **self.fabric.addresses()}

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


# ---------------------------------------------------------------------------------- loading

def load_spec(path_or_text) -> ClusterSpec:
    """Load a spec from a file path (str or Path) or from YAML text (anything with a newline)."""
    if isinstance(path_or_text, Path) or (
            isinstance(path_or_text, str) and "\n" not in path_or_text
            and not path_or_text.lstrip().startswith("{")):
        path = Path(path_or_text)
        source = str(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValidationError(f"cannot read topology file: {exc.strerror}",
                                  source=source) from None
    else:
        text, source = str(path_or_text), "<text>"
        path = None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValidationError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}",
                              source=source) from None
    return spec_from_dict(data, source, base=path.parent if path is not None else None)


def spec_from_dict(d, source: str = "<dict>", base: Path | None = None) -> ClusterSpec:
    """Validate a parsed document and return the spec; errors name ``source`` and the field.
    Manifest paths are relative to ``base`` (the topology file's directory; default cwd)."""
    try:
        return _build(d, source, base)
    except ValidationError as exc:
        raise exc.located(source=source) from None




def _sub(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _build(d, source: str, base: Path | None = None) -> ClusterSpec:
    if d is None:
        raise _err("empty topology document")
    d = _mapping(d, "", _TOP_KEYS)
    name = d.get("name")
    if not isinstance(name, str) or not _DNS_LABEL.match(name) or len(name) > 63:
        raise _err(f"cluster name {name!r} must be an RFC 1123 label", "name")
    underlay = _underlay(d.get("underlay", {}))
    raw_nodes = d.get("nodes", [])
    if not isinstance(raw_nodes, list):
        raise _err("must be a list of nodes", "nodes")
    drafts = [_node(n, f"nodes[{i}]") for i, n in enumerate(raw_nodes)]
    drafts += _generated(d.get("generate"))
    if not drafts:
        raise _err("the cluster needs at least one node (nodes or generate)", "nodes")
    seen: dict[str, str] = {}
    for dr in drafts:
        if dr["name"] in seen:
            raise _err(f"duplicate node name {dr['name']!r} (also {seen[dr['name']]})",
                       dr["path"] + ".name")
        seen[dr["name"]] = dr["path"]
    routed = "fabric" in d
    racks, rack_of = _racks(d.get("racks"), seen, routed=routed)
    fabric, nets = None, {}
    if routed:
        fabric, nets = fabricmod.plan(d.get("fabric"), underlay.cidr, [
            {"name": r.name, "path": f"racks[{i}]", "subnet": r.subnet,
             "tor": (d["racks"][i] or {}).get("tor"), "site": (d["racks"][i] or {}).get("site")}
            for i, r in enumerate(racks)])
        if underlay.cidr6 is not None:
            from topologies.fabric6 import plan6
            fabric, nets = plan6(fabric, nets, [r.name for r in racks], underlay.cidr6)
        clash = set(fabric.router_names) & set(seen)
        if clash:
            name = sorted(clash)[0]
            where = next((f"racks[{i}].tor.name" for i, r in enumerate(racks)
                          if fabricmod.default_tor_name(r.name) == name
                          or ((d["racks"][i] or {}).get("tor") or {}).get("name") == name),
                         "fabric.spines")
            raise _err(f"router name {name!r} is also a node name", where)
        racks = tuple(RackSpec(r.name, r.nodes, nets[r.name].subnet, nets[r.name].tor,
                               nets[r.name].subnet6)
                      for r in racks)
        ips, ips6 = {}, {}
        for r in racks:
            # Like a flat underlay, with the ToR as .1: nodes get .2, .3, ... of their rack.
            members = [dr for dr in drafts if rack_of[dr["name"]] == r.name]
            for dr in members:
                if dr["ip"] is not None and str(dr["ip"]) == nets[r.name].gateway:
                    raise _err(f"{dr['ip']} is the address of {r.name}'s ToR {r.tor}",
                               dr["path"] + ".ip")
            ips.update(assign_node_ips(
                [(dr["name"], dr["ip"], dr["path"] + ".ip") for dr in members], r.subnet))
            if r.subnet6 is not None:
                ips6.update(_rack_ips6(members, r, nets[r.name].gateway6))
        _no_ip6(drafts, underlay)
    else:
        ips = assign_node_ips([(dr["name"], dr["ip"], dr["path"] + ".ip") for dr in drafts],
                              underlay.cidr)
        ips6 = _node_ips6(drafts, underlay)
    nodes = tuple(_finish(dr, ips[dr["name"]], rack_of.get(dr["name"]), underlay,
                          nets.get(rack_of.get(dr["name"])), ips6.get(dr["name"]))
                  for dr in drafts)
    manifests = _manifests(d.get("manifests"), source, base)
    external = None
    if "external" in d:
        from topologies import external as externalmod
        external, new_fabric = externalmod.parse(d["external"], underlay.cidr, fabric, seen)
        fabric = new_fabric or fabric
    return ClusterSpec(name=name, underlay=underlay, nodes=nodes, racks=racks, source=source,
                       manifests=manifests, fabric=fabric, cluster_as=_cluster_as(manifests),
                       external=external, ip_families=_ip_families(d.get("ipFamilies"), underlay))


def _ip_families(raw, underlay: UnderlaySpec) -> tuple[int, ...]:
    """``ipFamilies`` (primary first). Absent: the underlay's families, so an underlay with
    cidr6 makes a dual-stack cluster, as calico-node creates an IPv6 pool on IPv6 nodes."""
    if raw is None:
        return (4, 6) if underlay.cidr6 else (4,)
    if not isinstance(raw, list) or not 1 <= len(raw) <= 2:
        raise _err(f"must be a list of one or two of IPv4, IPv6 (primary first), got {raw!r}",
                   "ipFamilies")
    out = []
    for i, name in enumerate(raw):
        if name not in FAMILY_NAMES:
            raise _err(f"{name!r} is not an IP family: use IPv4 or IPv6", f"ipFamilies[{i}]")
        if FAMILY_NAMES[name] in out:
            raise _err(f"{name} is listed twice", f"ipFamilies[{i}]")
        out.append(FAMILY_NAMES[name])
    if 6 in out and underlay.cidr6 is None:
        raise _err("IPv6 pods need nodes with IPv6 addresses: set underlay.cidr6",
                   f"ipFamilies[{out.index(6)}]")
    return tuple(out)


def _no_ip6(drafts, underlay: UnderlaySpec) -> None:
    """Without underlay.cidr6 no node may ask for an IPv6 address."""
    if underlay.cidr6 is None:
        for dr in drafts:
            if dr.get("ip6") is not None:
                raise _err("an IPv6 address needs an IPv6 underlay: set underlay.cidr6",
                           dr["path"] + ".ip6")


def _node_ips6(drafts, underlay: UnderlaySpec) -> dict[str, str]:
    """Node name -> IPv6 address on an L2 underlay, from underlay.cidr6 (none without it)."""
    _no_ip6(drafts, underlay)
    if underlay.cidr6 is None:
        return {}
    return assign_node_ips([(dr["name"], dr.get("ip6"), dr["path"] + ".ip6") for dr in drafts],
                           underlay.cidr6, field="underlay.cidr6")


def _rack_ips6(members, rack: RackSpec, gateway6: str) -> dict[str, str]:
    """A routed rack's nodes' IPv6 addresses: ::2, ::3, ... of its /64 (the ToR is ::1)."""
    for dr in members:
        want = dr.get("ip6")
        try:
            tor = want is not None and ipaddress.ip_address(str(want)) == \
                ipaddress.ip_address(gateway6)
        except ValueError:
            tor = False     # assign_node_ips names what is wrong with it
        if tor:
            raise _err(f"{want} is the IPv6 address of {rack.name}'s ToR {rack.tor}",
                       dr["path"] + ".ip6")
    return assign_node_ips([(dr["name"], dr.get("ip6"), dr["path"] + ".ip6")
                            for dr in members], rack.subnet6, field="underlay.cidr6")


def _cluster_as(docs) -> int:
    """asNumber of the topology's own BGPConfiguration (validated fully at apply time)."""
    for doc in docs:
        body = getattr(doc, "obj", doc)
        if isinstance(body, dict) and body.get("kind") == "BGPConfiguration":
            raw = (body.get("spec") or {}).get("asNumber")
            if raw is not None:
                return parse_as_number(raw, obj="BGPConfiguration", field_name="spec.asNumber")
    return DEFAULT_AS


def _manifests(entries, source: str, base: Path | None) -> tuple:
    """Each entry a manifest file (relative to the topology file) or an inline mapping, read
    and parsed now: a missing file or bad YAML is the topology's error, before anything runs.
    API validation is the apply's (all or nothing, naming the file and document)."""
    from orchestrator.api.loader import Document, parse_yaml_stream
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise _err("must be a list of manifest file paths or inline API objects (mappings), "
                   f"got {type(entries).__name__}", "manifests")
    docs: list = []
    for i, entry in enumerate(entries):
        fld = f"manifests[{i}]"
        if isinstance(entry, dict):
            docs.append(Document(entry, f"{source} {fld}", 0))
            continue
        if not isinstance(entry, str) or not entry.strip():
            raise _err("must be a manifest file path (relative to the topology file) or an "
                       f"inline API object (a mapping), got {type(entry).__name__} {entry!r}",
                       fld)
        path = Path(entry)
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = "no such file" if isinstance(exc, FileNotFoundError) else str(exc)
            raise _err(f"cannot read manifest file {path}: {why}", fld) from None
        try:
            docs += parse_yaml_stream(text, str(path))
        except ValidationError as exc:
            doc = f" document {exc.index}" if exc.index is not None else ""
            raise _err(f"manifest file {path}{doc}: {exc.message}", fld) from None
    return tuple(docs)


def _underlay(u) -> UnderlaySpec:
    u = _mapping(u or {}, "underlay", _UNDERLAY_KEYS)
    cidr = u.get("cidr", DEFAULT_CIDR)
    try:
        net = ipaddress.IPv4Network(str(cidr), strict=True)
    except ValueError as exc:
        raise _err(f"{cidr!r} is not an IPv4 network: {exc}", "underlay.cidr") from None
    if net.prefixlen > 30:
        raise _err(f"{cidr} is too small for nodes (at most /30)", "underlay.cidr")
    net6 = None
    if u.get("cidr6") is not None:
        try:
            net6 = ipaddress.IPv6Network(str(u["cidr6"]), strict=True)
        except ValueError as exc:
            raise _err(f"{u['cidr6']!r} is not an IPv6 network: {exc}", "underlay.cidr6") from None
        if net6.prefixlen > 120:
            raise _err(f"{net6} is too small for nodes (at most /120)", "underlay.cidr6")
        if net6.is_link_local or net6.is_multicast or net6.is_loopback:
            raise _err(f"{net6} is a link-local, multicast or loopback range; use a global "
                       "or unique local (fd00::/8) network", "underlay.cidr6")
    return UnderlaySpec(cidr=str(net), prefixlen=net.prefixlen,
                        bandwidth=_bandwidth(u.get("bandwidth"), "underlay.bandwidth"),
                        cidr6=str(net6) if net6 else None,
                        prefixlen6=net6.prefixlen if net6 else None)


def _bandwidth(v, fld: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _err(f"bandwidth must be a number of Mbit/s, got {v!r}", fld)
    if not 0 < v <= MAX_BANDWIDTH:
        raise _err(f"bandwidth {v} Mbit/s is outside 0 < bw <= {MAX_BANDWIDTH} "
                   "(the range Mininet's tc htb links accept)", fld)
    return float(v)


def _node(n, path: str, *, generated: bool = False) -> dict:
    """Check one node's fields; return a draft dict (IP and rack are filled in later)."""
    n = _mapping(n, path, _GENERATE_KEYS if generated else _NODE_KEYS)
    draft = {"path": path}
    if not generated:
        name = n.get("name")
        if not isinstance(name, str) or len(name) > 63 or not _DNS_LABEL.match(name):
            raise _err(f"node name {name!r} must be an RFC 1123 label "
                       "(lowercase letters, digits, '-', at most 63)", _sub(path, "name"))
        draft["name"] = name
        draft["ip"] = n.get("ip")
        draft["ip6"] = n.get("ip6")
    role = n.get("role", "worker")
    if role not in ROLES:
        raise _err(f"role {role!r} must be one of {', '.join(ROLES)}", _sub(path, "role"))
    draft["role"] = role
    sched = n.get("schedulable", role != "control-plane")
    if not isinstance(sched, bool):
        raise _err(f"schedulable must be true or false, got {sched!r}", _sub(path, "schedulable"))
    draft["schedulable"] = sched
    draft["labels"] = _labels(n.get("labels", {}), _sub(path, "labels"))
    draft["capacity"] = _capacity(n.get("capacity", {}), _sub(path, "capacity"))
    draft["taints"] = _taints(n.get("taints", []), _sub(path, "taints"))
    draft["bandwidth"] = _bandwidth(n.get("bandwidth"), _sub(path, "bandwidth"))
    rr = n.get("routeReflectorClusterID")
    if rr is not None:
        try:
            rr = str(ipaddress.IPv4Address(str(rr)))
        except ValueError:
            raise _err(f"{rr!r} is not a dotted-quad IPv4 address",
                       _sub(path, "routeReflectorClusterID")) from None
    draft["rr"] = rr
    asn = n.get("asNumber")
    draft["asn"] = None if asn is None else parse_as_number(
        asn, obj=None, field_name=_sub(path, "asNumber"))
    return draft


def _generated(g) -> list[dict]:
    if g is None:
        return []
    items = [("generate", g)] if isinstance(g, dict) else None
    if items is None:
        if not isinstance(g, list):
            raise _err("must be a mapping or a list of mappings", "generate")
        items = [(f"generate[{i}]", x) for i, x in enumerate(g)]
    out = []
    for path, item in items:
        _mapping(item, path, _GENERATE_KEYS)
        count, start = item.get("count"), item.get("start", 1)
        for key, val, low in (("count", count, 1), ("start", start, 0)):
            if isinstance(val, bool) or not isinstance(val, int) or val < low:
                raise _err(f"{key} must be an integer >= {low}, got {val!r}", f"{path}.{key}")
        prefix = item.get("prefix", "node-")
        if not isinstance(prefix, str):
            raise _err("prefix must be a string", f"{path}.prefix")
        template = _node(item, path, generated=True)
        for i in range(start, start + count):
            name = f"{prefix}{i}"
            if len(name) > 63 or not _DNS_LABEL.match(name):
                raise _err(f"generated node name {name!r} is not an RFC 1123 label",
                           f"{path}.prefix")
            out.append(dict(template, name=name, ip=None, path=f"{path}[{name}]"))
    return out


def _label_key(k, fld: str) -> str:
    if not isinstance(k, str) or not k:
        raise _err(f"label key {k!r} must be a non-empty string", fld)
    prefix, _, name = k.rpartition("/")
    if "/" in k and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise _err(f"label key {k!r}: prefix must be a DNS subdomain", fld)
    if len(name) > 63 or not _LABEL_NAME.match(name):
        raise _err(f"label key {k!r}: name must be at most 63 alphanumerics, '-', '_', '.'", fld)
    return k


def _labels(labels, fld: str) -> dict:
    if not isinstance(labels, dict):
        raise _err("must be a mapping of label key to value", fld)
    out = {}
    for k, v in labels.items():
        _label_key(k, f"{fld}.{k}")
        if v is None:
            v = ""
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise _err(f"label value {v!r} must be a string", f"{fld}.{k}")
        v = str(v)
        if v and (len(v) > 63 or not _LABEL_NAME.match(v)):
            raise _err(f"label value {v!r} must be at most 63 alphanumerics, '-', '_', '.'",
                       f"{fld}.{k}")
        out[k] = v
    return out


def _taints(taints, fld: str) -> tuple:
    if not isinstance(taints, list):
        raise _err("must be a list of {key, value, effect}", fld)
    out = []
    for i, t in enumerate(taints):
        p = f"{fld}[{i}]"
        _mapping(t, p, _TAINT_KEYS)
        key = _label_key(t.get("key"), f"{p}.key")
        value = "" if t.get("value") is None else str(t.get("value"))
        if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
            raise _err(f"taint value {value!r} is not a valid label value", f"{p}.value")
        effect = t.get("effect")
        if effect not in EFFECTS:
            raise _err(f"effect {effect!r} must be one of {', '.join(EFFECTS)}", f"{p}.effect")
        out.append(Taint(key=key, value=value, effect=effect))
    return tuple(out)


def _capacity(c, fld: str) -> Capacity:
    c = _mapping(c or {}, fld, _CAPACITY_KEYS)
    cpu = str(c.get("cpu", DEFAULT_CPU)).strip()
    memory = str(c.get("memory", DEFAULT_MEMORY)).strip()
    cpu_millis = parse_quantity(c.get("cpu", DEFAULT_CPU), f"{fld}.cpu") * 1000
    if cpu_millis <= 0 or cpu_millis.denominator != 1:
        raise _err(f"cpu {cpu!r} must be positive with at most millicore precision", f"{fld}.cpu")
    mem = parse_quantity(c.get("memory", DEFAULT_MEMORY), f"{fld}.memory")
    if mem <= 0 or mem.denominator != 1:
        raise _err(f"memory {memory!r} must be a positive whole number of bytes", f"{fld}.memory")
    pods = c.get("pods", DEFAULT_PODS)
    if isinstance(pods, str) and pods.strip().isdigit():
        pods = int(pods)
    if isinstance(pods, bool) or not isinstance(pods, int) or pods < 1:
        raise _err(f"pods must be a positive integer, got {pods!r}", f"{fld}.pods")
    return Capacity(cpu=cpu, memory=memory, pods=pods, cpu_millis=int(cpu_millis),
                    memory_bytes=int(mem))


def _racks(racks, known: dict, *, routed: bool = False) -> tuple[tuple, dict]:
    if racks is None:
        return (), {}
    if not isinstance(racks, list) or not racks:
        raise _err("must be a non-empty list of {name, nodes}", "racks")
    out, rack_of, names = [], {}, set()
    for i, r in enumerate(racks):
        p = f"racks[{i}]"
        if not routed and isinstance(r, dict) and ({"subnet", "tor"} & set(r)):
            raise _err("subnet and tor need a `fabric:` section (routed racks); without it "
                       "racks share one L2 underlay", f"{p}.{sorted({'subnet', 'tor'} & set(r))[0]}")
        _mapping(r, p, _ROUTED_RACK_KEYS if routed else _RACK_KEYS)
        name = r.get("name")
        if not isinstance(name, str) or len(name) > 63 or not _DNS_LABEL.match(name):
            raise _err(f"rack name {name!r} must be an RFC 1123 label", f"{p}.name")
        if name in names:
            raise _err(f"duplicate rack name {name!r}", f"{p}.name")
        names.add(name)
        members = r.get("nodes")
        if not isinstance(members, list) or not members:
            raise _err("must be a non-empty list of node names", f"{p}.nodes")
        for j, node in enumerate(members):
            if node not in known:
                raise _err(f"unknown node {node!r}", f"{p}.nodes[{j}]")
            if node in rack_of:
                raise _err(f"node {node!r} is already in rack {rack_of[node]!r}",
                           f"{p}.nodes[{j}]")
            rack_of[node] = name
        out.append(RackSpec(name=name, nodes=tuple(members), subnet=r.get("subnet")))
    for node, path in known.items():
        if node not in rack_of:
            raise _err(f"node {node!r} is in no rack (racks are given, so every node needs one)",
                       path)
    return tuple(out), rack_of


def _finish(dr: dict, ip: str, rack: str | None, underlay: UnderlaySpec,
            net: fabricmod.RackNet | None = None, ip6: str | None = None) -> NodeSpec:
    name, path = dr["name"], dr["path"]
    user = dr["labels"]
    if user.get(HOSTNAME_LABEL, name) != name:
        raise _err(f"{HOSTNAME_LABEL} must equal the node name {name!r}",
                   f"{path}.labels.{HOSTNAME_LABEL}")
    labels = {"kubernetes.io/arch": "amd64", HOSTNAME_LABEL: name, "kubernetes.io/os": "linux"}
    if dr["role"] == "control-plane":
        labels[CONTROL_PLANE_LABEL] = ""
    if rack:
        labels[ZONE_LABEL] = rack
    labels.update(user)
    taints = list(dr["taints"])
    if not dr["schedulable"]:
        key = CONTROL_PLANE_LABEL if dr["role"] == "control-plane" else UNSCHEDULABLE_TAINT
        if not any(t.key == key and t.effect == "NoSchedule" for t in taints):
            taints.append(Taint(key=key, effect="NoSchedule"))
    bw = dr["bandwidth"] if dr["bandwidth"] is not None else underlay.bandwidth
    return NodeSpec(name=name, role=dr["role"], ip=ip, capacity=dr["capacity"],
                    labels=dict(sorted(labels.items())), taints=tuple(taints),
                    schedulable=dr["schedulable"], rack=rack, bandwidth=bw,
                    route_reflector_cluster_id=dr["rr"],
                    prefixlen=(ipaddress.IPv4Network(net.subnet).prefixlen if net
                               else underlay.prefixlen),
                    gateway=net.gateway if net else None, as_number=dr["asn"],
                    ip6=ip6, gateway6=net.gateway6 if net and ip6 else None,
                    prefixlen6=(None if not ip6 else ipaddress.IPv6Network(net.subnet6).prefixlen
                                if net else underlay.prefixlen6))
