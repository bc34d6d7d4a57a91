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

With underlay.cidr6 topologies.fabric6 adds the IPv6 half of the plan to this one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from orchestrator.errors import ValidationError
from orchestrator.host.asnumber import parse_as_number
from topologies.fields import DNS_LABEL as _DNS_LABEL
from topologies.fields import err as _err
from topologies.fields import mapping as _mapping

FABRIC_KEYS = {"spines", "sites", "wan", "linkCidr", "bandwidth", "holdTime", "bfd"}
SITE_KEYS = {"name", "spines"}
WAN_KEYS = {"bandwidth", "delay", "loss"}
DEFAULT_WAN_BANDWIDTH = 100   # Mbit/s
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
    ip6: str | None = None          # underlay.cidr6: the interface's IPv6 address
    prefixlen6: int | None = None


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
    delay: str | None = None      # WAN links: netem delay ("20ms"), where the kernel has netem
    loss: float | None = None     # WAN links: netem loss in percent
    wan: bool = False
    a_ip6: str | None = None      # underlay.cidr6: a /127 per link (topologies.fabric6)
    b_ip6: str | None = None


@dataclass(frozen=True)
class RackNet:
    """A routed rack's subnet; the ToR owns ``gateway`` (and ``gateway6`` of ``subnet6``)."""
    subnet: str
    gateway: str
    tor: str
    subnet6: str | None = None
    gateway6: str | None = None


@dataclass(frozen=True)
class FabricSpec:
    routers: tuple
    links: tuple
    link_cidr: str
    hold_time: int = DEFAULT_HOLD
    bfd: bool = False
    sites: tuple = ()       # (site name, (spine names)) of a multi-site fabric
    link_cidr6: str | None = None   # underlay.cidr6: the router links' /64 (dual stack)

    @property
    def ipv6(self) -> bool:
        """Whether the routers have IPv6 addresses and sessions (underlay.cidr6)."""
        return self.link_cidr6 is not None

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
        """Every router address (IPv6 ones too) -> "router <name> (<interface>)", for peerIP
        checks."""
        return {ip: f"router {r.name} ({i.name})" for r in self.routers for i in r.interfaces
                for ip in (i.ip, i.ip6) if ip}




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


def _spines(raw, where: str = "fabric.spines",
            default_as: int = DEFAULT_SPINE_AS) -> list[tuple[str, int, str]]:
    """(name, AS, field path) per spine."""
    if isinstance(raw, dict):
        _mapping(raw, where, SPINE_GEN_KEYS)
        count = raw.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 16:
            raise _err(f"count must be an integer in 1..16, got {count!r}", f"{where}.count")
        prefix = raw.get("prefix", "spine-")
        asn = _asn(raw.get("asNumber", default_as), f"{where}.asNumber")
        return [(_router_name(f"{prefix}{i}", f"{where}.prefix"), asn,
                 f"{where}[{prefix}{i}]") for i in range(1, count + 1)]
    if not isinstance(raw, list) or not raw:
        raise _err("must be a non-empty list of {name, asNumber} or {count, prefix, asNumber}",
                   where)
    out = []
    for i, s in enumerate(raw):
        p = f"{where}[{i}]"
        _mapping(s, p, SPINE_KEYS)
        out.append((_router_name(s.get("name"), f"{p}.name"),
                    _asn(s.get("asNumber", default_as), f"{p}.asNumber"), p))
    return out


def _sites(raw) -> list[tuple[str, list]]:
    """(site name, its spines) per site: each site a data centre with spines of its own
    (one AS per site by default: 65000, 65100, ...)."""
    if not isinstance(raw, list) or len(raw) < 2:
        raise _err("must be a list of at least two {name, spines}", "fabric.sites")
    out, seen = [], set()
    for i, s in enumerate(raw):
        p = f"fabric.sites[{i}]"
        _mapping(s, p, SITE_KEYS)
        name = s.get("name")
        if not isinstance(name, str) or not _DNS_LABEL.match(name) or len(name) > 63:
            raise _err(f"site name {name!r} must be an RFC 1123 label", f"{p}.name")
        if name in seen:
            raise _err(f"duplicate site name {name!r}", f"{p}.name")
        seen.add(name)
        out.append((name, _spines(s.get("spines"), f"{p}.spines",
                                  DEFAULT_SPINE_AS + 100 * i)))
    return out


def _wan(raw) -> tuple[float, str | None, float | None]:
    raw = _mapping(raw if raw is not None else {}, "fabric.wan", WAN_KEYS)
    bw = raw.get("bandwidth", DEFAULT_WAN_BANDWIDTH)
    if isinstance(bw, bool) or not isinstance(bw, (int, float)) or not 0 < bw <= 1000:
        raise _err(f"bandwidth must be a number of Mbit/s in 0 < bw <= 1000, got {bw!r}",
                   "fabric.wan.bandwidth")
    delay = raw.get("delay")
    if delay is not None:
        text = str(delay).strip()
        num = text[:-2] if text.endswith("ms") else text
        try:
            ms = float(num)
        except ValueError:
            ms = -1.0
        if not 0 <= ms <= 10000:
            raise _err(f"delay must be milliseconds like 20ms (0..10000), got {delay!r}",
                       "fabric.wan.delay")
        delay = f"{ms:g}ms"
    loss = raw.get("loss")
    if loss is not None and (isinstance(loss, bool) or not isinstance(loss, (int, float))
                             or not 0 <= loss <= 100):
        raise _err(f"loss must be a percentage in 0..100, got {loss!r}", "fabric.wan.loss")
    return float(bw), delay, (float(loss) if loss is not None else None)


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
    if "sites" in raw:
        if "spines" in raw:
            raise _err("give spines per site (fabric.sites[].spines), not both", "fabric.spines")
        sites = _sites(raw["sites"])
        site_of_spine = {n: site for site, sp in sites for n, *_ in sp}
        spines = [s for _site, sp in sites for s in sp]
        known = {site for site, _ in sites}
        for r in racks:
            if r.get("site") not in known:
                raise _err(f"site {r.get('site')!r} is not one of {', '.join(sorted(known))} "
                           "(every rack of a multi-site fabric names its site)",
                           f"{r['path']}.site")
        wan = _wan(raw.get("wan"))
    else:
        if "wan" in raw:
            raise _err("a WAN joins sites: give fabric.sites", "fabric.wan")
        for r in racks:
            if r.get("site") is not None:
                raise _err("site needs fabric.sites", f"{r['path']}.site")
        sites, site_of_spine, wan = [], {}, None
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
    wan_pairs = [(a, b) for i, (_sa, sp_a) in enumerate(sites) for _sb, sp_b in sites[i + 1:]
                 for a, b in zip(sp_a, sp_b)]
    need = sum(1 for r in racks for s in spines
               if site_of_spine.get(s[0]) == r.get("site")) + len(wan_pairs)
    if link_net.num_addresses < 2 * need:
        raise _err(f"{link_net} holds {link_net.num_addresses // 2} /31 links; the fabric needs "
                   f"{need} (ToR uplinks and WAN links)", "fabric.linkCidr")

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
    # eBGP between every ToR and the spines (RFC 7938): a ToR in a spine's AS would be an
    # iBGP peer no one reflects for, and two ToRs in one AS drop each other's routes as loops.
    spine_as: dict[int, str] = {}
    for name, asn, _p in spines:
        spine_as.setdefault(asn, name)
    tor_as: dict[int, str] = {}
    for (name, asn, _rack, r) in tors:
        fld = f"{r['path']}.tor.asNumber"
        if asn in spine_as:
            raise _err(f"AS {asn} is also spine {spine_as[asn]}'s: every ToR needs an AS of "
                       "its own (eBGP to the spines)", fld)
        if asn in tor_as:
            raise _err(f"AS {asn} is also {tor_as[asn]}'s: two ToRs in one AS would drop each "
                       "other's routes (AS-path loop)", fld)
        tor_as[asn] = name
    for i, (site, sp) in enumerate(sites):
        if not any(r.get("site") == site for r in racks):
            raise _err(f"site {site!r} has no rack", f"fabric.sites[{i}]")
        if len(sp) != len(sites[0][1]):
            raise _err(f"every site needs the same number of spines ({len(sites[0][1])} in "
                       f"{sites[0][0]}): the WAN joins them pairwise", f"fabric.sites[{i}].spines")

    addrs = iter(ipaddress.IPv4Network((int(link_net.network_address) + 2 * k, 31))
                 for k in range(link_net.num_addresses // 2))
    links: list[FabricLink] = []
    up: dict[str, list[Interface]] = {n: [] for n, *_ in tors}
    down: dict[str, list[Interface]] = {n: [] for n, *_ in spines}
    for tname, _tas, _rack, r in tors:
        mine = [s for s in spines if site_of_spine.get(s[0]) == r.get("site")]
        for j, (sname, _sas, _p) in enumerate(mine, start=1):
            net = next(addrs)
            t_ip, s_ip = str(net.network_address), str(net.network_address + 1)
            s_if = f"eth{len(down[sname]) + 1}"
            links.append(FabricLink(tname, f"eth{j}", t_ip, sname, s_if, s_ip, 31,
                                    float(bandwidth) if bandwidth is not None else None))
            up[tname].append(Interface(f"eth{j}", t_ip, 31, sname))
            down[sname].append(Interface(s_if, s_ip, 31, tname))
    for (a, _aas, _ap), (b, _bas, _bp) in wan_pairs:
        net = next(addrs)
        a_ip, b_ip = str(net.network_address), str(net.network_address + 1)
        a_if, b_if = f"eth{len(down[a]) + 1}", f"eth{len(down[b]) + 1}"
        links.append(FabricLink(a, a_if, a_ip, b, b_if, b_ip, 31, wan[0], wan[1], wan[2],
                                wan=True))
        down[a].append(Interface(a_if, a_ip, 31, b))
        down[b].append(Interface(b_if, b_ip, 31, a))
    routers = []
    for tname, tas, rack, _r in tors:
        rn = rack_nets[rack]
        rack_if = Interface(TOR_RACK_INTF, rn.gateway, ipaddress.IPv4Network(rn.subnet).prefixlen,
                            f"rack {rack}")
        routers.append(RouterSpec(tname, "tor", tas, rn.gateway, (rack_if, *up[tname]), rack))
    for sname, sas, _p in spines:
        ifs = tuple(down[sname])
        routers.append(RouterSpec(sname, "spine", sas, ifs[0].ip, ifs))
    site_list = tuple((site, tuple(n for n, *_ in sp)) for site, sp in sites)
    return (FabricSpec(tuple(routers), tuple(links), str(link_net), hold, bfd, site_list),
            rack_nets)
