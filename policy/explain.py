"""Why is a flow allowed or denied? Walk the policies the way the compiled chains do.

Pure. For a flow SRC -> DST PORT/PROTO it evaluates the model (policy.model) in the order the
dataplane does: the source pod's egress (its cali-fw chain), then the destination pod's ingress
(its cali-tw chain); per side the default tier's policies in order, each one's rules in order,
the first Allow / Deny / Pass deciding (Log goes on), end-of-tier drop when a policy applied but
none decided, the namespace profile (allow) when no policy applies or one passed. The answer
names the policy, the rule (`ingress[0].from[1]` of the manifest) and the chain, which is what a
user then finds in `iptables-save`. Only pods are endpoints: a side that is not a pod (an
address outside the cluster) has no policy of its own.

A flow has one IP family, and each family has its own dataplane (iptables, ip6tables: see
policy.compiler). An IPv6 flow takes the pods' IPv6 addresses and is judged by the rules as
the ip6tables one is compiled: nets of the other family never match (a rule whose nets are
all IPv4 matches nothing there), nor does a rule of the other `ipVersion` or an ICMP rule of
the other family (ICMP vs ICMPv6).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from policy import names as N
from policy.compiler import Context, Endpoint
from policy.model import (
    ALLOW,
    DENY,
    EGRESS,
    INGRESS,
    LOG,
    PASS,
    Entity,
    Policy,
    PortSpec,
    Rule,
    Scope,
)

_PROTO_NUMBERS = {"1": "icmp", "6": "tcp", "17": "udp", "58": "icmpv6", "132": "sctp",
                  "136": "udplite"}
_ICMP = {4: "icmp", 6: "icmpv6"}     # each family's ICMP, as the rules name it


@dataclass
class Side:
    direction: str
    endpoint: Endpoint | None
    allowed: bool = True
    lines: list[str] = field(default_factory=list)


@dataclass
class Explanation:
    src: str
    dst: str
    port: int
    protocol: str
    sides: list[Side]
    family: int = 4

    @property
    def allowed(self) -> bool:
        return all(s.allowed for s in self.sides)

    def text(self) -> str:
        out = [f"{self.src} -> {self.dst} {self.protocol}/{self.port}: "
               f"{'ALLOWED' if self.allowed else 'DENIED'}"]
        for s in self.sides:
            who = s.endpoint.key if s.endpoint else "(not a pod)"
            chain = ""
            if s.endpoint is not None:
                chain = (N.from_workload(s.endpoint.iface) if s.direction == EGRESS
                         else N.to_workload(s.endpoint.iface))
                where = " (ip6tables)" if self.family == 6 else ""
                chain = f", chain {chain} on {s.endpoint.node}{where}"
            out.append(f"  {s.direction.lower()} of {who}{chain}: "
                       f"{'allowed' if s.allowed else 'DENIED'}")
            out += [f"    {line}" for line in s.lines]
        return "\n".join(out)


def _proto(p: str | None) -> str | None:
    return None if p is None else _PROTO_NUMBERS.get(str(p), str(p).lower())


def _in_nets(ip: str, nets: Sequence[str]) -> bool:
    # A network of the other family contains no address of this one (ipaddress says False),
    # as the compiler leaves it out of this family's rules.
    addr = ipaddress.ip_address(ip)
    return any(addr in ipaddress.ip_network(n, strict=False) for n in nets)


def _family_nets(nets: Sequence[str], family: int) -> list[str]:
    return [n for n in nets if ipaddress.ip_network(n, strict=False).version == family]


def _port_in(port: int, protocol: str, specs: Sequence[PortSpec], dst: Endpoint | None,
             ctx: Context, e: Entity) -> bool:
    for s in specs:
        if s.name is None:
            if s.lo <= port <= s.hi:
                return True
        elif dst is not None:
            sel = e.selector if e.selector is not None else "all()"
            scope = e.scope if e.selector is not None else Scope()
            if ctx.selects(sel, scope, dst) and any(
                    n == s.name and pr == protocol and num == port for n, pr, num in dst.ports):
                return True
    return False


def _entity(ctx: Context, e: Entity, ip: str, ep: Endpoint | None, *, port: int | None,
            protocol: str, is_dst: bool) -> str | None:
    """None when the side matches; else why not."""
    family = ipaddress.ip_address(ip).version
    if e.nets and not _family_nets(e.nets, family):
        return f"nets {', '.join(e.nets)} hold no IPv{family} network"
    if e.nets and not _in_nets(ip, e.nets):
        return f"{ip} not in nets {', '.join(e.nets)}"
    if e.not_nets and _in_nets(ip, e.not_nets):
        return f"{ip} in notNets {', '.join(e.not_nets)}"
    if e.selector is not None and not (ep is not None and ctx.selects(e.selector, e.scope, ep)):
        return f"not selected by {e.selector!r} ({e.scope.describe()})"
    if e.not_selector is not None and ep is not None and ctx.selects(e.not_selector, e.scope, ep):
        return f"selected by notSelector {e.not_selector!r}"
    if e.ports:
        if not is_dst:
            return "source ports are not known for a new connection"
        if not _port_in(port, protocol, e.ports, ep, ctx, e):
            return f"port {port} not in {', '.join(p.text() for p in e.ports)}"
    if e.not_ports and is_dst and _port_in(port, protocol, e.not_ports, ep, ctx, e):
        return f"port {port} in notPorts"
    return None


def rule_mismatch(ctx: Context, rule: Rule, src_ip: str, src: Endpoint | None, dst_ip: str,
                  dst: Endpoint | None, port: int, protocol: str) -> str | None:
    """None when ``rule`` matches the flow, else the first reason it does not. The flow's
    family is ``ctx.family`` (the addresses are of it)."""
    proto = protocol.lower()
    if rule.ip_version not in (None, ctx.family):
        return f"an IPv{rule.ip_version} rule"
    if rule.protocol is not None and _proto(rule.protocol) != proto:
        return f"protocol {str(rule.protocol).upper()} is not {protocol.upper()}"
    if rule.not_protocol is not None and _proto(rule.not_protocol) == proto:
        return f"notProtocol {str(rule.not_protocol).upper()}"
    if rule.icmp is not None or rule.not_icmp is not None:
        if proto != _ICMP[ctx.family]:
            return "an ICMPv6 rule" if ctx.family == 6 else "an ICMP rule"
    why = _entity(ctx, rule.source, src_ip, src, port=None, protocol=proto, is_dst=False)
    if why:
        return f"source {why}"
    why = _entity(ctx, rule.destination, dst_ip, dst, port=port, protocol=proto, is_dst=True)
    return f"destination {why}" if why else None


def _side(ctx: Context, policies: Sequence[Policy], direction: str, ep: Endpoint,
          flow: tuple) -> Side:
    side = Side(direction, ep)
    pols = [p for p in policies if direction in p.types and ctx.selects(p.selector, p.scope, ep)]
    profile = f"kns.{ep.namespace}"
    if not pols:
        side.lines.append(f"no policy selects {ep.key} for {direction.lower()}: allowed by "
                          f"profile {profile}")
        return side
    chain_of = N.policy_out if direction == EGRESS else N.policy_in
    for i, p in enumerate(pols, 1):
        order = "no order" if p.order is None else f"order {p.order:g}"
        side.lines.append(f"{i}. {p.display} ({p.name}, {order}, chain {chain_of(p.id)}):")
        rules = p.egress if direction == EGRESS else p.ingress
        if not rules:
            side.lines.append(f"     no {direction.lower()} rules")
        for rule in rules:
            why = rule_mismatch(ctx, rule, *flow)
            if why is not None:
                side.lines.append(f"     {rule.origin or 'rule'} {rule.action}: no ({why})")
                continue
            side.lines.append(f"     {rule.origin or 'rule'} {rule.action}: matches")
            if rule.action == ALLOW:
                side.lines.append(f"   -> allowed by {p.display} {rule.origin}")
                return side
            if rule.action == DENY:
                side.allowed = False
                side.lines.append(f"   -> denied by {p.display} {rule.origin}")
                return side
            if rule.action == PASS:
                side.lines.append(f"   -> passed to the next tier: profile {profile} allows")
                return side
            if rule.action == LOG:
                side.lines.append("     (logged; evaluation goes on)")
    side.allowed = False
    side.lines.append("   -> end of tier default: DROP (policies apply, none allowed it)")
    return side


def explain(src: str, dst: str, port: int, protocol: str, endpoints: Sequence[Endpoint],
            namespaces: Mapping[str, Mapping[str, str]], policies: Sequence[Policy],
            family: int | None = None) -> Explanation:
    """``src``/``dst``: a pod key ("ns/name") or an IPv4 / IPv6 address. ``family`` (4 or 6)
    is the flow's IP family, the pods taking their address of it; None: the family of an
    address given, else 4 when both pods have an IPv4 address, else 6. KeyError for a side
    that is neither a pod nor an address; ValueError for a flow that cannot be (addresses of
    two families, a pod without an address of the family, ICMP of the other family)."""
    if family not in (None, 4, 6):
        raise ValueError(f"family {family!r}: use 4 or 6")
    by_key = {ep.key: ep for ep in endpoints}
    # By address object, so any spelling of an IPv6 address (fd00:0::1, fd00::1) finds its pod.
    by_ip = {ipaddress.ip_address(a): ep for ep in endpoints for a in (ep.ip, ep.ip6) if a}

    def parse(what: str):
        if what in by_key:
            return by_key[what], None
        try:
            return None, ipaddress.ip_address(what)
        except ValueError:
            raise KeyError(f"{what!r} is neither a pod (namespace/name) with an address nor "
                           "an IPv4 or IPv6 address") from None

    (src_pod, src_addr), (dst_pod, dst_addr) = parse(src), parse(dst)
    fam = _flow_family(family, (src, src_pod, src_addr), (dst, dst_pod, dst_addr))
    proto = protocol.lower()
    if proto in _ICMP.values() and proto != _ICMP[fam]:
        raise ValueError(f"protocol {protocol}: an IPv{fam} flow's ICMP is "
                         f"{_ICMP[fam].upper()}")

    def resolve(pod: Endpoint | None, addr) -> tuple[str, Endpoint | None]:
        if pod is not None:
            return pod.address(fam), pod
        return str(addr), by_ip.get(addr)

    src_ip, src_ep = resolve(src_pod, src_addr)
    dst_ip, dst_ep = resolve(dst_pod, dst_addr)
    ctx = Context(endpoints, namespaces, family=fam)
    ordered = sorted(policies, key=Policy.sort_key)
    flow = (src_ip, src_ep, dst_ip, dst_ep, int(port), proto)
    sides = []
    sides.append(_side(ctx, ordered, EGRESS, src_ep, flow) if src_ep else
                 Side(EGRESS, None, True, ["not a pod: no egress policy applies"]))
    sides.append(_side(ctx, ordered, INGRESS, dst_ep, flow) if dst_ep else
                 Side(INGRESS, None, True, ["not a pod: no ingress policy applies"]))
    label = lambda k, ip: k if k == ip else f"{k} ({ip})"  # noqa: E731
    return Explanation(label(src, src_ip), label(dst, dst_ip), int(port), protocol.upper(),
                       sides, fam)


def _flow_family(family: int | None, *sides) -> int:
    """The flow's family from what was asked and what the sides are; each side is (as given,
    its pod or None, its address or None)."""
    for what, _pod, addr in sides:
        if addr is not None and family is not None and addr.version != family:
            raise ValueError(f"{what} is an IPv{addr.version} address, the flow is asked "
                             f"for in IPv{family}")
    versions = {addr.version for _what, _pod, addr in sides if addr is not None}
    if len(versions) > 1:
        (a, _, av), (b, _, bv) = sides
        raise ValueError(f"{a} is an IPv{av.version} address and {b} an IPv{bv.version} one: "
                         "a flow has one IP family")
    pods = [pod for _what, pod, _addr in sides if pod is not None]
    fam = family or (versions.pop() if versions else None)
    if fam is None:
        # Two pods: IPv4 when both have an address of it (the primary family of the default
        # dual-stack ipFamilies [IPv4, IPv6]), else IPv6 (an IPv6-only cluster).
        fam = 4 if all(p.ip for p in pods) else 6
    for p in pods:
        if not p.address(fam):
            have = " and ".join(a for a in (p.ip, p.ip6) if a)
            raise ValueError(f"pod {p.key} has no IPv{fam} address (it has {have})")
    return fam
