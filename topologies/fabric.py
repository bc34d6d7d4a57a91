"""Routed racks: the `fabric:` section of a topology -> routers, links and an address plan.

Pure. A fabric turns every rack into its own routed subnet behind a top-of-rack (ToR) router;
the ToRs uplink to one or more spine routers over point-to-point /31 links (RFC 3021), one
link per ToR-spine pair, so traffic between racks has as many equal paths as there are
spines. Every router is a Mininet host running BIRD 2 (topologies.bird renders its config);
what the routers peer with is derived here from the plan, as a fabric's operator would
configure it: a ToR peers with each node of its rack and with every spine, a spine with every
ToR. Addresses all come from the underlay CIDR, so the cluster's "pools must not overlap the
underlay" rule covers the whole fabric:

- rack i (1-based, in rack order) gets the i-th /24 of the underlay unless it names a
  `subnet`; its ToR is the subnet's first host (.1, the nodes' default gateway), the nodes get
  .2, .3, ... as on a flat underlay;
- router links are /31s from `fabric.linkCidr` (default: the underlay's last /24), ToR side
  first.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from orchestrator.errors import ValidationError
from orchestrator.host.asnumber import parse_as_number
from topologies.fields import DNS_LABEL as _DNS_LABEL
from topologies.fields import err as _err
from topologies.fields import mapping as _mapping

FABRIC_KEYS = {"spines", "linkCidr", "bandwidth", "holdTime", "bfd"}
SPINE_KEYS = {"name", "asNumber"}
SPINE_GEN_KEYS = {"count", "prefix", "asNumber"}
TOR_KEYS = {"name", "asNumber"}
DEFAULT_SPINE_AS = 65000          # spines share an AS (RFC 7938 section 5.2.1)
DEFAULT_TOR_AS_BASE = 65000       # ToR of rack i: 65000 + i (a unique AS per rack)
# BGP timers of the routers' own sessions. Data-centre fabrics run short timers (3 s
# keepalive, 9 s hold) rather than BGP's 240 s default; direct sessions also drop at once
# when their link loses carrier (BIRD's `check link`, on by default for direct peers).
DEFAULT_HOLD = 9
TOR_RACK_INTF = "eth0"
RACK_PREFIXLEN = 24
# Router interface names are "eth<N>" inside the router's own namespace; names of routers
# become Mininet host names (and BIRD protocol names after '-' -> '_').
MAX_ROUTER_NAME = 40


@dataclass(frozen=True)
class Interface:
    name: str          # inside the router's namespace
    ip: str
    prefixlen: int
    peer: str          # the router at the other end, or "rack <name>"


@dataclass(frozen=True)
class RouterSpec:
    name: str
    role: str          # "tor" | "spine"
    asNumber: int
    router_id: str
    interfaces: tuple
    rack: str | None = None

    def interface(self, name: str) -> Interface:
        return next(i for i in self.interfaces if i.name == name)


@dataclass(frozen=True)
class FabricLink:
    """A router-to-router cable: a veth pair between the two routers' namespaces."""
    a: str
    a_intf: str
    a_ip: str
    b: str
    b_intf: str
    b_ip: str
    prefixlen: int = 31
    bandwidth: float | None = None


@dataclass(frozen=True)
class RackNet:
    """A routed rack's subnet; the ToR owns ``gateway``."""
    subnet: str
    gateway: str
    tor: str


@dataclass(frozen=True)
class FabricSpec:
    routers: tuple
    links: tuple
    link_cidr: str
    hold_time: int = DEFAULT_HOLD
    bfd: bool = False

    @property
    def router_names(self) -> list[str]:
        return [r.name for r in self.routers]

    def router(self, name: str) -> RouterSpec:
        for r in self.routers:
            if r.name == name:
                return r
        raise KeyError(name)

    def tors(self) -> list[RouterSpec]:
        return [r for r in self.routers if r.role == "tor"]

    def spines(self) -> list[RouterSpec]:
        return [r for r in self.routers if r.role == "spine"]

    def addresses(self) -> dict[str, str]:
        """Every router address -> "router <name> (<interface>)", for peerIP checks."""
        return {i.ip: f"router {r.name} ({i.name})" for r in self.routers for i in r.interfaces}




def _router_name(name, fld: str) -> str:
    if not isinstance(name, str) or len(name) > MAX_ROUTER_NAME or not _DNS_LABEL.match(name):
        raise _err(f"router name {name!r} must be an RFC 1123 label of at most "
                   f"{MAX_ROUTER_NAME} characters", fld)
    return name


def _asn(value, fld: str) -> int:
    try:
        return parse_as_number(value, obj=None, field_name=fld)
    except ValidationError as exc:
        raise _err(exc.message, fld) from None


def _network(value, fld: str, underlay: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        raise _err(f"{value!r} is not an IPv4 network: {exc}", fld) from None
    if not net.subnet_of(underlay):
        raise _err(f"{net} is outside the underlay {underlay} (the fabric's addresses all come "
                   "from it, so IP pools can never overlap them)", fld)
    return net


def _spines(raw) -> list[tuple[str, int, str]]:
    """(name, AS, field path) per spine."""
    if isinstance(raw, dict):
        _mapping(raw, "fabric.spines", SPINE_GEN_KEYS)
        count = raw.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 16:
            raise _err(f"count must be an integer in 1..16, got {count!r}",
                       "fabric.spines.count")
        prefix = raw.get("prefix", "spine-")
        asn = _asn(raw.get("asNumber", DEFAULT_SPINE_AS), "fabric.spines.asNumber")
        return [(_router_name(f"{prefix}{i}", "fabric.spines.prefix"), asn,
                 f"fabric.spines[{prefix}{i}]") for i in range(1, count + 1)]
    if not isinstance(raw, list) or not raw:
        raise _err("must be a non-empty list of {name, asNumber} or {count, prefix, asNumber}",
                   "fabric.spines")
    out = []
    for i, s in enumerate(raw):
        p = f"fabric.spines[{i}]"
        _mapping(s, p, SPINE_KEYS)
        out.append((_router_name(s.get("name"), f"{p}.name"),
                    _asn(s.get("asNumber", DEFAULT_SPINE_AS), f"{p}.asNumber"), p))
    return out


def default_tor_name(rack: str) -> str:
    """rack-a -> tor-a; anything else -> tor-<rack>."""
    return "tor-" + (rack[len("rack-"):] if rack.startswith("rack-") and len(rack) > 5 else rack)


def plan(raw: dict, underlay_cidr: str, racks: list[dict]) -> tuple[FabricSpec, dict]:
    """``racks``: [{"name", "path", "subnet", "tor"}] as written (subnet/tor may be None).
    Returns the fabric and rack name -> RackNet. Errors name the field."""
    raw = _mapping(raw if raw is not None else {}, "fabric", FABRIC_KEYS)
    underlay = ipaddress.IPv4Network(underlay_cidr)
    if not racks:
        raise _err("a fabric needs racks (each rack is a routed subnet behind its ToR)",
                   "racks")
    spines = _spines(raw.get("spines"))
    bandwidth = raw.get("bandwidth")
    if bandwidth is not None and (isinstance(bandwidth, bool)
                                  or not isinstance(bandwidth, (int, float))
                                  or not 0 < bandwidth <= 1000):
        raise _err(f"bandwidth must be a number of Mbit/s in 0 < bw <= 1000, got {bandwidth!r}",
                   "fabric.bandwidth")
    hold = raw.get("holdTime", DEFAULT_HOLD)
    if isinstance(hold, bool) or not isinstance(hold, int) or not 3 <= hold <= 65535:
        raise _err(f"holdTime must be an integer number of seconds in 3..65535, got {hold!r}",
                   "fabric.holdTime")
    bfd = raw.get("bfd", False)
    if not isinstance(bfd, bool):
        raise _err(f"bfd must be true or false, got {bfd!r}", "fabric.bfd")

    if "linkCidr" in raw:
        link_net = _network(raw["linkCidr"], "fabric.linkCidr", underlay)
    else:
        if underlay.prefixlen > 23:
            raise _err(f"underlay {underlay} is too small for a fabric (needs /23 or larger, or "
                       "give fabric.linkCidr and every rack's subnet)", "underlay.cidr")
        link_net = list(underlay.subnets(new_prefix=24))[-1]
    need = len(racks) * len(spines)
    if link_net.num_addresses < 2 * need:
        raise _err(f"{link_net} holds {link_net.num_addresses // 2} /31 links; the fabric needs "
                   f"{need} ({len(racks)} ToRs x {len(spines)} spines)", "fabric.linkCidr")

    taken: list[tuple[ipaddress.IPv4Network, str]] = [(link_net, "fabric.linkCidr")]
    subnets: dict[str, ipaddress.IPv4Network] = {}
    for r in racks:
        if r.get("subnet") is None:
            continue
        fld = f"{r['path']}.subnet"
        net = _network(r["subnet"], fld, underlay)
        if net.prefixlen > 29:
            raise _err(f"{net} is too small for a rack (at most /29)", fld)
        for other, where in taken:
            if net.overlaps(other):
                raise _err(f"{net} overlaps {other} ({where})", fld)
        taken.append((net, fld))
        subnets[r["name"]] = net
    candidates = iter(underlay.subnets(new_prefix=RACK_PREFIXLEN)
                      if underlay.prefixlen <= RACK_PREFIXLEN else ())
    next(candidates, None)      # the underlay's first /24 stays free (as .1 on a flat one)
    for r in racks:
        if r["name"] in subnets:
            continue
        for net in candidates:
            if not any(net.overlaps(t) for t, _ in taken):
                break
        else:
            raise _err(f"no free /{RACK_PREFIXLEN} left in the underlay {underlay} for rack "
                       f"{r['name']!r} (give it a subnet)", f"{r['path']}.subnet")
        taken.append((net, f"{r['path']}.subnet"))
        subnets[r["name"]] = net

    names: dict[str, str] = {}

    def claim(name: str, fld: str) -> None:
        if name in names:
            raise _err(f"router name {name!r} is used twice (also {names[name]})", fld)
        names[name] = fld

    rack_nets: dict[str, RackNet] = {}
    tors: list[tuple[str, int, str, dict]] = []   # name, AS, rack, rack dict
    for i, r in enumerate(racks, start=1):
        tor = r.get("tor") or {}
        fld = f"{r['path']}.tor"
        _mapping(tor, fld, TOR_KEYS)
        name = _router_name(tor.get("name", default_tor_name(r["name"])), f"{fld}.name")
        claim(name, f"{fld}.name")
        asn = _asn(tor.get("asNumber", DEFAULT_TOR_AS_BASE + i), f"{fld}.asNumber")
        net = subnets[r["name"]]
        rack_nets[r["name"]] = RackNet(str(net), str(net.network_address + 1), name)
        tors.append((name, asn, r["name"], r))
    for name, _as, p in spines:
        claim(name, f"{p}.name")

    addrs = iter(ipaddress.IPv4Network((int(link_net.network_address) + 2 * k, 31))
                 for k in range(link_net.num_addresses // 2))
    links: list[FabricLink] = []
    up: dict[str, list[Interface]] = {n: [] for n, *_ in tors}
    down: dict[str, list[Interface]] = {n: [] for n, *_ in spines}
    for i, (tname, _tas, _rack, _r) in enumerate(tors, start=1):
        for j, (sname, _sas, _p) in enumerate(spines, start=1):
            net = next(addrs)
            t_ip, s_ip = str(net.network_address), str(net.network_address + 1)
            links.append(FabricLink(tname, f"eth{j}", t_ip, sname, f"eth{i}", s_ip, 31,
                                    float(bandwidth) if bandwidth is not None else None))
            up[tname].append(Interface(f"eth{j}", t_ip, 31, sname))
            down[sname].append(Interface(f"eth{i}", s_ip, 31, tname))
    routers = []
    for tname, tas, rack, _r in tors:
        rn = rack_nets[rack]
        rack_if = Interface(TOR_RACK_INTF, rn.gateway, ipaddress.IPv4Network(rn.subnet).prefixlen,
                            f"rack {rack}")
        routers.append(RouterSpec(tname, "tor", tas, rn.gateway, (rack_if, *up[tname]), rack))
    for sname, sas, _p in spines:
        ifs = tuple(down[sname])
        routers.append(RouterSpec(sname, "spine", sas, ifs[0].ip, ifs))
    return (FabricSpec(tuple(routers), tuple(links), str(link_net), hold, bfd), rack_nets)
