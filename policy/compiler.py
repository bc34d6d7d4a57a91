"""Compile endpoints + policies into one node's chains and ipsets, in Felix's layout.

Pure. Input: every endpoint of the cluster (ipset members come from all nodes), the namespaces'
labels, and the policies (policy.model). Output: policy.ir.Dataplane for one node.

Packet path (filter table), as Felix programs it (see reference/calico.md section 4):
  FORWARD -> cali-FORWARD: clear marks; `-i cali+` -> cali-from-wl-dispatch (egress of the
  sending pod); `-o cali+` -> cali-to-wl-dispatch (ingress of the receiving pod); ACCEPT when
  the accept mark is set. The dispatch chains *goto* the endpoint chains, which RETURN on
  allow, so same-node traffic passes the sender's egress and the receiver's ingress in one pass.
  INPUT -> cali-INPUT: from a pod to its node goes through the pod's egress (cali-wl-to-host).
  OUTPUT -> cali-OUTPUT: the node's own traffic to its pods is not policed.
  raw PREROUTING -> cali-PREROUTING: strict reverse-path check on everything from `cali+`
  (anti-spoofing: a pod may only send from its own address).
Endpoint chain: conntrack ESTABLISHED,RELATED accept and INVALID drop first; clear marks; the
default tier (policies in order, each jumped to while the pass mark is clear, RETURN once one
accepted); end-of-tier DROP when any policy applies in that direction; then the namespace's
profile `kns.<ns>` (allow all: no policy means allowed); final DROP.
Selectors, named ports and CIDR lists become ipsets, so the rule count grows with policies and
endpoints on this node, never with the pods the selectors match.

IPv6 (family=6) is the same layout for ip6tables, as Felix's second dataplane: cali60 sets of
the endpoints' IPv6 addresses, rules keeping only IPv6 nets (a rule whose nets are all IPv4
matches nothing there, and the reverse), ICMPv6 for `icmpv6` rules, no IPIP drop, and
cali-wl-to-host accepting the ICMPv6 a pod needs from its router before any policy (multicast
listener query/report/done 130-132, router solicitation 133, neighbour solicitation and
advertisement 135-136), so no policy can cut a pod off its own gateway.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from policy import model as M
from policy import names as N
from policy.compile_cache import CompileCache
from policy.ir import FILTER, HASH_IP_PORT, HASH_NET, RAW, Chain, Dataplane, IPSet, Rule
from policy.model import ALLOW, DENY, EGRESS, INGRESS, LOG, PASS, Entity, Policy, PortSpec, Scope
from policy.selector import parse

MULTIPORT_MAX = 15          # iptables multiport: at most 15 ports, a range counts as two
NFLOG_IN, NFLOG_OUT = 1, 2  # Felix's NFLOG groups
ORCHESTRATOR_LABEL = "projectcalico.org/orchestrator"
NAMESPACE_LABEL = "projectcalico.org/namespace"
_PROTO_NAMES = {"tcp", "udp", "sctp", "icmp", "udplite", "icmpv6"}
# Felix's filterWorkloadToHostChain (IPv6 only): accepted from pods before their egress policy.
ICMPV6_ROUTER_TYPES = (130, 131, 132, 133, 135, 136)


@dataclass(frozen=True)
class Endpoint:
    """A pod as the policy compiler sees it (Calico: a WorkloadEndpoint)."""
    namespace: str
    name: str
    node: str
    iface: str
    ip: str                                         # the IPv4 address ("" for none)
    labels: tuple[tuple[str, str], ...] = ()
    ports: tuple[tuple[str, str, int], ...] = ()   # (name, protocol lower-case, port)
    ip6: str = ""                                   # the IPv6 address ("" for none)

    # The hash and key are worked out once, as Policy's hash: the policy agent's passes put
    # hundreds of endpoints in sets and dicts, several times a pass at a bring-up, and a
    # frozen dataclass hashes all eight fields, label tuples included, on every call.
    __hash__ = M.hash_once
    __getstate__ = M.state_without_hash

    def address(self, family: int) -> str:
        return self.ip6 if family == 6 else self.ip

    @property
    def key(self) -> str:
        k = self.__dict__.get("_key")
        if k is None:
            k = f"{self.namespace}/{self.name}"
            object.__setattr__(self, "_key", k)
        return k

    def label_view(self) -> dict[str, str]:
        """Labels policy selectors see: the pod's plus the ones Calico adds to every
        Kubernetes workload endpoint."""
        return {**dict(self.labels), NAMESPACE_LABEL: self.namespace,
                ORCHESTRATOR_LABEL: "k8s"}


def endpoint(namespace: str, name: str, node: str, iface: str, ip: str,
             labels: Mapping[str, str] | None = None,
             ports: Iterable[tuple[str, str, int]] = (), ip6: str = "") -> Endpoint:
    """``ip`` and ``ip6`` are the pod's addresses in any order of family (status.podIPs
    primary first): each lands in its family's field."""
    addrs = [a for a in (ip, ip6) if a]
    v4 = next((a for a in addrs if ":" not in a), "")
    v6 = next((a for a in addrs if ":" in a), "")
    return Endpoint(namespace, name, node, iface, v4, tuple(sorted((labels or {}).items())),
                    tuple(sorted(ports)), v6)


@lru_cache(maxsize=65536)
def _matches(selector: str, labels: tuple[tuple[str, str], ...]) -> bool:
    return parse(selector).matches(dict(labels))


def _view_key(ep: Endpoint) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(ep.label_view().items()))


@dataclass
class Context:
    """Cluster facts the rules are compiled against, plus the ipsets they use."""
    endpoints: Sequence[Endpoint]
    namespaces: Mapping[str, Mapping[str, str]]
    ipsets: dict[str, IPSet] = field(default_factory=dict)
    # Set contents by name, shared by the compilations of every node in one pass: a set's
    # members do not depend on the node.
    memo: dict[str, IPSet] = field(default_factory=dict)
    # While a policy chain is compiled for the chain cache: the sets it uses, as
    # (name, recipe), so a cached chain can bring its sets into a later compilation.
    recording: list | None = None
    cache: CompileCache | None = None
    family: int = 4

    def use(self, name: str, recipe: tuple) -> str:
        """The set ``name`` (built from ``recipe`` unless this pass already did) is used."""
        if self.recording is not None:
            self.recording.append((name, recipe))
        if name not in self.ipsets:
            if name not in self.memo:
                self.memo[name] = self._build(name, recipe)
            self.ipsets[name] = self.memo[name]
        return name

    def _build(self, name: str, recipe: tuple) -> IPSet:
        make = lambda members: _ipset(name, recipe, members)  # noqa: E731
        if self.cache is not None:
            return self.cache.ipset(recipe, self.endpoints, self.contribution, make)
        return make(frozenset(m for ep in self.endpoints for m in self.contribution(recipe, ep)))

    def contribution(self, recipe: tuple, ep: Endpoint) -> tuple[str, ...]:
        """The members ``ep`` brings to the set built from ``recipe``."""
        what = recipe[0]
        ip = ep.address(self.family)
        if what == "selector":
            _, selector, scope, _key = recipe
            full = f"{ip}/128" if self.family == 6 else f"{ip}/32"
            return (full,) if ip and self.selects(selector, scope, ep) else ()
        if what == "named-port":
            _, port, protocol, sel, scope, _key = recipe
            if not ip or not self.selects(sel, scope, ep):
                return ()
            return tuple(f"{ip},{protocol}:{number}" for pname, proto, number in ep.ports
                         if pname == port and proto == protocol)
        return ()

    def in_scope(self, ep: Endpoint, scope: Scope) -> bool:
        if scope.namespace is not None:
            return ep.namespace == scope.namespace
        if scope.namespace_selector is not None:
            # Calico's namespace profile carries the name as a label too.
            labels = tuple(sorted({**(self.namespaces.get(ep.namespace) or {}),
                                   "projectcalico.org/name": ep.namespace}.items()))
            return _matches(scope.namespace_selector, labels)
        return True

    def selects(self, selector: str, scope: Scope, ep: Endpoint) -> bool:
        return self.in_scope(ep, scope) and _matches(selector, _view_key(ep))

    def selector_set(self, selector: str, scope: Scope) -> str:
        key = f"{parse(selector).normalized} in {scope.describe()}"
        return self.use(N.selector_set(key, self.family), ("selector", selector, scope, key))

    def named_port_set(self, port: str, protocol: str, selector: str | None,
                       scope: Scope) -> str:
        sel = selector if selector is not None else "all()"
        key = f"{protocol}:{port} of {parse(sel).normalized} in {scope.describe()}"
        return self.use(N.named_port_set(key, self.family),
                        ("named-port", port, protocol, sel, scope, key))

    def cidr_set(self, nets: Sequence[str]) -> str:
        canon = tuple(sorted({str(_network(n)) for n in nets}))
        return self.use(N.cidr_set(",".join(canon), self.family), ("nets", canon))


def _ipset(name: str, recipe: tuple, members: frozenset) -> IPSet:
    family = 6 if name.startswith(N.set_prefix(6)) else 4
    if recipe[0] == "selector":
        return IPSet(name, HASH_NET, members, f"selector {recipe[3]}", family)
    if recipe[0] == "named-port":
        return IPSet(name, HASH_IP_PORT, members, f"named port {recipe[5]}", family)
    canon = recipe[1]     # a CIDR list: its members are the recipe
    return IPSet(name, HASH_NET, frozenset(canon), "nets " + ",".join(canon), family)


@lru_cache(maxsize=65536)
def _network(net: str):
    return ipaddress.ip_network(net, strict=False)


# -- rules ------------------------------------------------------------------------------

def _multiport_blocks(specs: Sequence[PortSpec]) -> list[str]:
    """Numeric ports as multiport lists of at most 15 slots (a range takes two)."""
    blocks, cur, used = [], [], 0
    for s in specs:
        cost = 1 if s.lo == s.hi else 2
        if used + cost > MULTIPORT_MAX:
            blocks.append(",".join(cur))
            cur, used = [], 0
        cur.append(str(s.lo) if s.lo == s.hi else f"{s.lo}:{s.hi}")
        used += cost
    if cur:
        blocks.append(",".join(cur))
    return blocks


def _is_everything(net: str) -> bool:
    return _network(net).prefixlen == 0


class _Never(Exception):
    """The rule can never match (e.g. notNets 0.0.0.0/0): it is dropped, as Felix does."""


def _entity_matches(ctx: Context, e: Entity, side: str, protocol: str | None
                    ) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(words every alternative has, alternatives ORed) for one side ("src"/"dst")."""
    flag = "-s" if side == "src" else "-d"
    words: list[str] = []
    nets = [n for n in e.nets if _network(n).version == ctx.family]
    if e.nets and not nets:
        raise _Never()
    not_nets = [n for n in e.not_nets if _network(n).version == ctx.family]
    if any(_is_everything(n) for n in not_nets):
        raise _Never()
    # iptables takes one -s (or -d) per rule, negated or not: the address flag goes to a
    # single net, everything else becomes a set.
    flag_free = True
    if nets and not any(_is_everything(n) for n in nets):
        if len(nets) == 1:
            words += [flag, nets[0]]
            flag_free = False
        else:
            words += ["-m", "set", "--match-set", ctx.cidr_set(nets), side]
    if len(not_nets) == 1 and flag_free:
        words += ["!", flag, not_nets[0]]
    elif not_nets:
        words += ["-m", "set", "!", "--match-set", ctx.cidr_set(not_nets), side]
    if e.selector is not None:
        words += ["-m", "set", "--match-set", ctx.selector_set(e.selector, e.scope), side]
    if e.not_selector is not None:
        words += ["-m", "set", "!", "--match-set", ctx.selector_set(e.not_selector, e.scope),
                  side]
    ports_flag = "--sports" if side == "src" else "--dports"
    # Calico resolves a named port without a selector on every endpoint of the cluster.
    port_scope = e.scope if e.selector is not None else Scope()
    pair = f"{side},{side}"
    for block in _multiport_blocks([p for p in e.not_ports if p.name is None]):
        words += ["-m", "multiport", "!", ports_flag, block]
    for p in e.not_ports:
        if p.name is not None:
            words += ["-m", "set", "!", "--match-set",
                      ctx.named_port_set(p.name, protocol or "tcp", e.selector, port_scope), pair]
    alternatives: list[tuple[str, ...]] = []
    for block in _multiport_blocks([p for p in e.ports if p.name is None]):
        alternatives.append(("-m", "multiport", ports_flag, block))
    for p in e.ports:
        if p.name is not None:
            alternatives.append(("-m", "set", "--match-set", ctx.named_port_set(
                p.name, protocol or "tcp", e.selector, port_scope), pair))
    if e.ports and not alternatives:
        raise _Never()
    return tuple(words), alternatives or [()]


def _iptables_protocol(protocol: str) -> str:
    # ip6tables knows ICMPv6 (58) as ipv6-icmp, the name Felix writes.
    return "ipv6-icmp" if protocol == "icmpv6" else protocol


def _protocol_words(rule, family: int = 4) -> tuple[str, ...]:
    words: list[str] = []
    # A rule for the other family (ipVersion, or ICMP of the other family) has nothing to
    # do in this table, as Felix's filterRuleToIPVersion.
    other_icmp = "icmpv6" if family == 4 else "icmp"
    if (rule.ip_version not in (None, family) or rule.protocol == other_icmp):
        raise _Never()
    if rule.protocol is not None:
        if rule.not_protocol == rule.protocol:
            raise _Never()
        # iptables takes one -p: with a protocol given, a different notProtocol adds nothing
        words += ["-p", _iptables_protocol(rule.protocol)]
    elif rule.not_protocol is not None:
        words += ["!", "-p", _iptables_protocol(rule.not_protocol)]
    module, flag = ("icmp6", "--icmpv6-type") if family == 6 else ("icmp", "--icmp-type")
    for icmp, neg in ((rule.icmp, False), (rule.not_icmp, True)):
        if icmp is not None:
            t, c = icmp
            words += ["-m", module] + (["!"] if neg else []) + [
                flag, f"{t}/{c}" if c is not None else str(t)]
    return tuple(words)


def rule_matches(ctx: Context, rule) -> list[tuple[str, ...]]:
    """Every iptables match (ORed) a model rule becomes; [] when it can never match."""
    try:
        proto = _protocol_words(rule, ctx.family)
        src_words, src_alts = _entity_matches(ctx, rule.source, "src", rule.protocol)
        dst_words, dst_alts = _entity_matches(ctx, rule.destination, "dst", rule.protocol)
    except _Never:
        return []
    return [proto + src_words + dst_words + a + b for a in src_alts for b in dst_alts]


def _action_rules(action: str, match: tuple[str, ...], direction: str,
                  policy: Policy) -> list[Rule]:
    if action == ALLOW:
        return [Rule(match, N.set_mark(N.ACCEPT_MARK)),
                Rule(N.mark_set(N.ACCEPT_MARK), ("-j", "RETURN"))]
    if action == PASS:
        return [Rule(match, N.set_mark(N.PASS_MARK)),
                Rule(N.mark_set(N.PASS_MARK), ("-j", "RETURN"))]
    if action == DENY:
        return [Rule(match, ("-j", "DROP"))]
    if action == LOG:
        group = NFLOG_IN if direction == INGRESS else NFLOG_OUT
        prefix = f"calico-packet {policy.id} {direction.lower()}"[:63]
        return [Rule(match, ("-j", "NFLOG", "--nflog-group", str(group), "--nflog-prefix",
                             f'"{prefix}"'))]
    raise ValueError(f"unknown action {action!r}")


def policy_chain(ctx: Context, policy: Policy, direction: str) -> Chain:
    name = (N.policy_in if direction == INGRESS else N.policy_out)(policy.id)
    rules_in = policy.ingress if direction == INGRESS else policy.egress
    out: list[Rule] = []
    for rule in rules_in:
        for match in rule_matches(ctx, rule):
            out += _action_rules(rule.action, match, direction, policy)
    while out and out[-1].target == ("-j", "RETURN"):
        out.pop()                    # Felix strips trailing RETURNs (the chain returns anyway)
    if out:
        first = out[0]
        out[0] = Rule(first.match, first.target,
                      f"Policy {policy.id} {direction.lower()}")
    return Chain(name, tuple(out))


# -- endpoints ---------------------------------------------------------------------------

def applicable(ctx: Context, policies: Sequence[Policy], ep: Endpoint,
               direction: str) -> list[Policy]:
    return [p for p in policies if direction in p.types and ctx.selects(p.selector, p.scope, ep)]


def endpoint_chain(ep: Endpoint, policies: Sequence[Policy], direction: str,
                   family: int = 4) -> Chain:
    ingress = direction == INGRESS
    name = N.to_workload(ep.iface) if ingress else N.from_workload(ep.iface)
    rules = [
        Rule(("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"), ("-j", "ACCEPT")),
        Rule(("-m", "conntrack", "--ctstate", "INVALID"), ("-j", "DROP")),
        Rule((), N.clear_mark(N.ACCEPT_MARK | N.PASS_MARK)),
    ]
    if not ingress and family == 4:
        rules += [Rule(("-p", "udp", "--dport", "4789"), ("-j", "DROP"),
                       "Drop VXLAN encapped packets originating in workloads"),
                  Rule(("-p", "ipencap"), ("-j", "DROP"),
                       "Drop IPinIP encapped packets originating in workloads")]
    if policies:
        rules.append(Rule((), N.clear_mark(N.PASS_MARK), "Start of tier default"))
        for p in policies:
            chain = (N.policy_in if ingress else N.policy_out)(p.id)
            rules += [Rule(N.mark_clear(N.PASS_MARK), ("-j", chain)),
                      Rule(N.mark_set(N.ACCEPT_MARK), ("-j", "RETURN"),
                           "Return if policy accepted")]
        rules.append(Rule(N.mark_clear(N.PASS_MARK), ("-j", "DROP"),
                          "End of tier default. Drop if no policies passed packet"))
    profile = (N.profile_in if ingress else N.profile_out)(f"kns.{ep.namespace}")
    rules += [Rule((), ("-j", profile)),
              Rule(N.mark_set(N.ACCEPT_MARK), ("-j", "RETURN"), "Return if profile accepted"),
              Rule((), ("-j", "DROP"), "Drop if no profiles matched")]
    return Chain(name, tuple(rules))


DISPATCH_FANOUT_OVER = 16   # more local endpoints than this: a two-level dispatch tree


def _dispatch(local: Sequence[Endpoint], ingress: bool) -> list[Chain]:
    """The dispatch chain(s): `-i/-o <iface> -g <endpoint chain>` per local endpoint, ending in
    "Unknown interface" DROP. Every packet from or to a pod walks this list, so with many
    endpoints it becomes a shallow tree on the first character after `cali`, as Felix's
    dispatch-<char> children: ~n/16 + 16 rules walked instead of n."""
    name = N.TO_WL_DISPATCH if ingress else N.FROM_WL_DISPATCH
    flag = "-o" if ingress else "-i"
    unknown = Rule((), ("-j", "DROP"), "Unknown interface")

    def leaf(chain: str, eps: Sequence[Endpoint]) -> Chain:
        return Chain(chain, tuple(
            Rule((flag, ep.iface), ("-g", N.to_workload(ep.iface) if ingress
                                    else N.from_workload(ep.iface))) for ep in eps)
            + (unknown,))

    if len(local) <= DISPATCH_FANOUT_OVER:
        return [leaf(name, local)]
    groups: dict[str, list[Endpoint]] = {}
    for ep in local:
        key = ep.iface[4:5] if ep.iface.startswith("cali") and len(ep.iface) > 4 else "_"
        groups.setdefault(key, []).append(ep)
    chains, root = [], []
    for key, eps in sorted(groups.items()):
        child = f"{name}-{key}"
        chains.append(leaf(child, eps))
        match = (flag, f"cali{key}+") if key != "_" else ()
        root.append(Rule(match, ("-g", child)) if match else None)
    # endpoints whose names do not start with cali<char> stay in the root, walked first
    odd = groups.get("_", [])
    head = leaf(name, odd).rules[:-1] if odd else ()
    rules = tuple(head) + tuple(r for r in root if r is not None) + (unknown,)
    return [Chain(name, rules)] + [c for c in chains if not c.name.endswith("-_")]


def _static(dp: Dataplane, family: int = 4) -> None:
    clear = N.PASS_MARK | N.DROP_MARK | N.SCRATCH0
    dp.add_chain(FILTER, Chain(N.FORWARD, (
        Rule((), N.clear_mark(clear)),
        Rule(("-i", "cali+"), ("-j", N.FROM_WL_DISPATCH)),
        Rule(("-o", "cali+"), ("-j", N.TO_WL_DISPATCH)),
        Rule(N.mark_set(N.ACCEPT_MARK), ("-j", "ACCEPT"), "Policy explicitly accepted packet."),
    )))
    dp.add_chain(FILTER, Chain(N.INPUT, (Rule(("-i", "cali+"), ("-g", N.WL_TO_HOST)),)))
    router = tuple(Rule(("-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", str(t)),
                        ("-j", "ACCEPT")) for t in ICMPV6_ROUTER_TYPES) if family == 6 else ()
    dp.add_chain(FILTER, Chain(N.WL_TO_HOST, router + (
        Rule((), ("-j", N.FROM_WL_DISPATCH)),
        Rule((), ("-j", "ACCEPT"), "Configured DefaultEndpointToHostAction"),
    )))
    dp.add_chain(FILTER, Chain(N.OUTPUT, (
        # "it's generally very useful to be able to contact any local workload from the host"
        Rule(("-o", "cali+"), ("-j", "RETURN")),
    )))
    dp.add_chain(RAW, Chain(N.PREROUTING, (
        Rule((), N.clear_mark(N.ACCEPT_MARK | N.PASS_MARK | N.DROP_MARK | N.SCRATCH0)),
        Rule(("-i", "cali+"), N.set_mark(N.SCRATCH0)),
        Rule(N.mark_set(N.SCRATCH0) + ("-m", "rpfilter", "--validmark", "--invert"),
             ("-j", "DROP")),
    )))
    dp.hooks = {
        (FILTER, "FORWARD"): (Rule((), ("-j", N.FORWARD)),),
        (FILTER, "INPUT"): (Rule((), ("-j", N.INPUT)),),
        (FILTER, "OUTPUT"): (Rule((), ("-j", N.OUTPUT)),),
        (RAW, "PREROUTING"): (Rule((), ("-j", N.PREROUTING)),),
    }


def cached_policy_chain(ctx: Context, policy: Policy, direction: str) -> Chain:
    """policy_chain through ``ctx.cache`` (compile_cache: the chain and the sets it uses).
    A cached chain brings its sets' recipes, whose members are the current ones."""
    cache = ctx.cache
    if cache is None:
        return policy_chain(ctx, policy, direction)
    hit = cache.policy_chains.get((policy, direction))
    if hit is None:
        outer, ctx.recording = ctx.recording, []
        try:
            chain = policy_chain(ctx, policy, direction)
            hit = cache.policy_chains[(policy, direction)] = (chain, tuple(ctx.recording))
        finally:
            ctx.recording = outer
    else:
        for name, recipe in hit[1]:
            ctx.use(name, recipe)
    return hit[0]


def cached_endpoint_chain(ctx: Context, ordered: Sequence[Policy], ep: Endpoint,
                          direction: str) -> tuple[tuple[Policy, ...], Chain]:
    """The policies applying to ``ep`` in ``direction`` and its endpoint chain, through
    ``ctx.cache``: evaluating every policy's selector for every local endpoint was most of a
    pass once the policy chains were cached."""
    cache = ctx.cache
    hit = cache.endpoint_chains.get((ep, direction)) if cache is not None else None
    if hit is None:
        pols = tuple(applicable(ctx, ordered, ep, direction))
        hit = (pols, endpoint_chain(ep, pols, direction, ctx.family))
        if cache is not None:
            cache.endpoint_chains[(ep, direction)] = hit
            cache.stats["endpoint_chains"] += 1
    return hit


def compile_node(node: str, endpoints: Sequence[Endpoint],
                 namespaces: Mapping[str, Mapping[str, str]],
                 policies: Iterable[Policy], *, memo: dict | None = None,
                 cache: CompileCache | None = None, family: int = 4) -> Dataplane:
    """The node's desired chains and ipsets in one IP family (4: iptables, 6: ip6tables).
    Pass one ``memo`` dict to the compilations of all nodes of one pass to compute each
    set's members once, and one ``cache`` (compile_cache.CompileCache, one per family) to
    every compilation while it is worth keeping: the result is the same with or without."""
    ctx = Context(endpoints, namespaces, memo={} if memo is None else memo, cache=cache,
                  family=family)
    ordered = sorted(policies, key=Policy.sort_key)
    if cache is not None:
        cache.begin(endpoints, namespaces, ordered)
    local = sorted((ep for ep in endpoints if ep.node == node and ep.iface),
                   key=lambda ep: ep.iface)
    dp = Dataplane()
    _static(dp, family)
    active: dict[tuple[str, str], Policy] = {}
    for ep in local:
        for direction in (INGRESS, EGRESS):
            pols, chain = cached_endpoint_chain(ctx, ordered, ep, direction)
            for p in pols:
                active[(p.id, direction)] = p
            dp.add_chain(FILTER, chain)
    for (_pid, direction), p in sorted(active.items(), key=lambda kv: kv[0]):
        dp.add_chain(FILTER, cached_policy_chain(ctx, p, direction))
    for ns in sorted({ep.namespace for ep in local}):
        for fn in (N.profile_in, N.profile_out):
            # kns.<ns>: Calico's per-namespace profile allows everything.
            dp.add_chain(FILTER, Chain(fn(f"kns.{ns}"), (Rule((), N.set_mark(N.ACCEPT_MARK)),)))
    for ingress in (False, True):
        for c in _dispatch(local, ingress=ingress):
            dp.add_chain(FILTER, c)
    dp.ipsets = dict(sorted(ctx.ipsets.items()))
    return dp
