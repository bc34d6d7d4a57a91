"""The policy model the compiler works on: Calico v3 semantics, one shape for all three kinds.

Pure. Kubernetes NetworkPolicy is converted the way Calico's kube-controllers / libcalico-go
convert it (conversion.go K8sNetworkPolicyToCalico): default tier, order 1000, name
`knp.default.<name>`, label selectors turned into Calico selector strings, one Calico rule per
(peer x protocol group of ports), ipBlock -> nets + notNets, no policyTypes -> [Ingress].
Calico NetworkPolicy / GlobalNetworkPolicy are taken as they are (after API validation).

Namespaces enter selectors through a *scope* rather than through Calico's `pcns.` label
rewriting: a peer is (selector on pod labels) within (a namespace, a namespace selector, or all
namespaces). The ipset a peer compiles to is keyed by both, which is what Felix's rewritten
selector amounts to.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from policy.selector import from_label_selector

K8S_ORDER = 1000.0
ALLOW, DENY, LOG, PASS = "Allow", "Deny", "Log", "Pass"
INGRESS, EGRESS = "Ingress", "Egress"
KNP, NP, GNP = "knp", "np", "gnp"


def hash_once(self) -> int:
    """__hash__ of a frozen dataclass computed once (its fields never change): for values
    that are keys of sets and dicts many times a pass. Assign it as ``__hash__`` in the
    class body, with ``__getstate__ = state_without_hash``."""
    h = self.__dict__.get("_hash")
    if h is None:
        h = hash(tuple(getattr(self, f.name) for f in fields(self)))
        object.__setattr__(self, "_hash", h)
    return h


def state_without_hash(self) -> dict:
    # str hashes differ between processes: an unpickled object computes its own again.
    return {k: v for k, v in self.__dict__.items() if k != "_hash"}


@dataclass(frozen=True)
class Scope:
    """Which namespaces a selector looks in: one by name, those a selector picks, or all."""
    namespace: str | None = None          # exactly this namespace
    namespace_selector: str | None = None  # Calico selector on namespace labels
    # neither set: every namespace

    def describe(self) -> str:
        if self.namespace is not None:
            return f"ns={self.namespace}"
        if self.namespace_selector is not None:
            return f"nssel={self.namespace_selector}"
        return "ns=*"


@dataclass(frozen=True)
class PortSpec:
    """One entry of ports/notPorts: a range (lo == hi for one port) or a named port."""
    lo: int = 0
    hi: int = 0
    name: str | None = None

    def text(self) -> str:
        if self.name is not None:
            return self.name
        return str(self.lo) if self.lo == self.hi else f"{self.lo}:{self.hi}"


@dataclass(frozen=True)
class Entity:
    """A rule's source or destination."""
    nets: tuple[str, ...] = ()
    not_nets: tuple[str, ...] = ()
    selector: str | None = None        # None: no selector match (any address)
    not_selector: str | None = None
    scope: Scope = field(default_factory=Scope)   # where selector / not_selector look
    ports: tuple[PortSpec, ...] = ()
    not_ports: tuple[PortSpec, ...] = ()


@dataclass(frozen=True)
class Rule:
    action: str
    protocol: str | None = None        # "tcp", "udp", "sctp", "icmp", "udplite" or a number
    not_protocol: str | None = None
    icmp: tuple[int, int | None] | None = None
    not_icmp: tuple[int, int | None] | None = None
    source: Entity = field(default_factory=Entity)
    destination: Entity = field(default_factory=Entity)
    origin: str = ""                   # where it came from, for explain: "ingress[0].from[1]"
    ip_version: int | None = None      # 6: an IPv6-only rule, nothing in these IPv4 tables


@dataclass(frozen=True)
class Policy:
    kind: str                          # knp, np, gnp
    name: str                          # Calico's name: knp.default.<n>, default.<n>
    namespace: str | None
    order: float | None
    selector: str                      # endpoints it applies to (within ``scope``)
    scope: Scope
    types: tuple[str, ...]
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    source_name: str = ""              # the object's own name ("deny-all")

    # A policy is a key of the compiler's caches, looked up for every endpoint and node of
    # every pass; hashing its nested rules each time was a third of a cached compile.
    __hash__ = hash_once
    __getstate__ = state_without_hash

    @property
    def id(self) -> str:
        """Felix's policy id (v3.28 style): <ns>/<name> for namespaced, <name> for global."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def display(self) -> str:
        kind = {KNP: "NetworkPolicy", NP: "NetworkPolicy.projectcalico.org",
                GNP: "GlobalNetworkPolicy"}[self.kind]
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{kind} {where}{self.source_name or self.name}"

    def sort_key(self):
        # Calico: lower order first, no order = infinite (last), ties by name.
        return (self.order is None, self.order or 0.0, self.name)


# -- Kubernetes NetworkPolicy ------------------------------------------------------------

def _k8s_ports(ports) -> list[tuple[str, tuple[PortSpec, ...]]]:
    """Ports grouped by protocol, in first-seen order; [] means any port, any protocol."""
    groups: dict[str, list[PortSpec]] = {}
    for p in ports or []:
        proto = (p.get("protocol") or "TCP").lower()
        port = p.get("port")
        specs = groups.setdefault(proto, [])
        if port is None:
            specs.clear()
            specs.append(None)          # the whole protocol
        elif isinstance(port, str):
            specs.append(PortSpec(name=port))
        else:
            specs.append(PortSpec(int(port), int(p.get("endPort") or port)))
    out = []
    for proto, specs in groups.items():
        if None in specs:
            out.append((proto, ()))
        else:
            out.append((proto, tuple(dict.fromkeys(specs))))
    return out


def _k8s_peer(peer: dict, namespace: str) -> Entity:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        return Entity(nets=(block["cidr"],), not_nets=tuple(block.get("except") or ()))
    pod_sel = peer.get("podSelector")
    ns_sel = peer.get("namespaceSelector")
    selector = from_label_selector(pod_sel) if pod_sel is not None else "all()"
    if ns_sel is None:
        scope = Scope(namespace=namespace)
    else:
        ns_text = from_label_selector(ns_sel)
        scope = Scope() if ns_text == "all()" else Scope(namespace_selector=ns_text)
    return Entity(selector=selector, scope=scope)


def _k8s_rules(rules, direction: str, namespace: str) -> tuple[Rule, ...]:
    out = []
    peer_key = "from" if direction == INGRESS else "to"
    for i, rule in enumerate(rules or []):
        peers = rule.get(peer_key) or []
        port_groups = _k8s_ports(rule.get("ports"))
        peer_entities = [(f"{peer_key}[{j}]", _k8s_peer(p, namespace))
                         for j, p in enumerate(peers)] or [("", Entity())]
        for where, peer in peer_entities:
            for proto, ports in port_groups or [(None, ())]:
                origin = f"{direction.lower()}[{i}]" + (f".{where}" if where else "")
                if direction == INGRESS:
                    out.append(Rule(ALLOW, protocol=proto, source=peer,
                                    destination=Entity(ports=ports), origin=origin))
                else:
                    out.append(Rule(ALLOW, protocol=proto, origin=origin,
                                    destination=Entity(
                                        nets=peer.nets, not_nets=peer.not_nets,
                                        selector=peer.selector, scope=peer.scope,
                                        ports=ports)))
    return tuple(out)


def from_k8s(obj: dict) -> Policy:
    """A normalized networking.k8s.io/v1 NetworkPolicy as Calico sees it."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    ns = meta["namespace"]
    types = tuple(spec.get("policyTypes") or (
        [INGRESS] + ([EGRESS] if spec.get("egress") else [])))
    return Policy(
        kind=KNP, name=f"knp.default.{meta['name']}", namespace=ns, order=K8S_ORDER,
        selector=from_label_selector(spec.get("podSelector") or {}), scope=Scope(namespace=ns),
        types=types,
        ingress=_k8s_rules(spec.get("ingress"), INGRESS, ns) if INGRESS in types else (),
        egress=_k8s_rules(spec.get("egress"), EGRESS, ns) if EGRESS in types else (),
        source_name=meta["name"])


# -- Calico v3 NetworkPolicy / GlobalNetworkPolicy --------------------------------------

def _cal_ports(values) -> tuple[PortSpec, ...]:
    out = []
    for v in values or []:
        if isinstance(v, int):
            out.append(PortSpec(v, v))
        elif isinstance(v, str) and ":" in v:
            lo, hi = v.split(":", 1)
            out.append(PortSpec(int(lo), int(hi)))
        elif isinstance(v, str) and v.isdigit():
            out.append(PortSpec(int(v), int(v)))
        else:
            out.append(PortSpec(name=str(v)))
    return tuple(out)


def _cal_entity(e: dict | None, namespace: str | None) -> Entity:
    e = e or {}
    ns_sel = e.get("namespaceSelector")
    selector, not_selector = e.get("selector"), e.get("notSelector")
    if ns_sel is not None and ns_sel.strip() and selector is None:
        selector = "all()"             # namespaceSelector alone: every pod in those namespaces
    elif namespace is not None and not_selector is not None and selector is None:
        # Calico (updateprocessors/rules.go): a namespaced policy's notSelector alone still
        # means "pods of this namespace, except..."
        selector = "all()"
    if ns_sel is not None and ns_sel.strip():
        scope = Scope() if ns_sel.strip() == "all()" else Scope(namespace_selector=ns_sel)
    elif namespace is not None:
        scope = Scope(namespace=namespace)   # a NetworkPolicy's selectors: its own namespace
    else:
        scope = Scope()                      # a GlobalNetworkPolicy's: every namespace
    return Entity(nets=tuple(e.get("nets") or ()), not_nets=tuple(e.get("notNets") or ()),
                  selector=selector, not_selector=not_selector, scope=scope,
                  ports=_cal_ports(e.get("ports")), not_ports=_cal_ports(e.get("notPorts")))


PROTOCOL_NUMBERS = {"1": "icmp", "6": "tcp", "17": "udp", "58": "icmpv6", "132": "sctp",
                    "136": "udplite"}


def _proto(value) -> str | None:
    if value is None:
        return None
    text = str(value).lower()
    return PROTOCOL_NUMBERS.get(text, text)


def _icmp(value) -> tuple[int, int | None] | None:
    if not value:
        return None
    return (int(value["type"]), None if value.get("code") is None else int(value["code"]))


def _cal_rules(rules, direction: str, namespace: str | None) -> tuple[Rule, ...]:
    return tuple(
        Rule(r["action"], protocol=_proto(r.get("protocol")),
             not_protocol=_proto(r.get("notProtocol")), icmp=_icmp(r.get("icmp")),
             not_icmp=_icmp(r.get("notICMP")),
             source=_cal_entity(r.get("source"), namespace),
             destination=_cal_entity(r.get("destination"), namespace),
             origin=f"{direction.lower()}[{i}]", ip_version=r.get("ipVersion"))
        for i, r in enumerate(rules or []))


def calico_types(spec: dict) -> tuple[str, ...]:
    if spec.get("types"):
        return tuple(spec["types"])
    if spec.get("egress") and not spec.get("ingress"):
        return (EGRESS,)
    if spec.get("egress"):
        return (INGRESS, EGRESS)
    return (INGRESS,)


def from_calico(obj: dict) -> Policy:
    """A normalized projectcalico.org/v3 NetworkPolicy or GlobalNetworkPolicy."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    is_global = obj["kind"] == "GlobalNetworkPolicy"
    ns = None if is_global else meta["namespace"]
    types = calico_types(spec)
    if is_global:
        ns_sel = (spec.get("namespaceSelector") or "").strip()
        scope = Scope(namespace_selector=ns_sel) if ns_sel and ns_sel != "all()" else Scope()
    else:
        scope = Scope(namespace=ns)
    order = spec.get("order")
    return Policy(
        kind=GNP if is_global else NP, name=f"default.{meta['name']}", namespace=ns,
        order=None if order is None else float(order),
        selector=spec.get("selector") or "all()", scope=scope, types=types,
        ingress=_cal_rules(spec.get("ingress"), INGRESS, ns) if INGRESS in types else (),
        egress=_cal_rules(spec.get("egress"), EGRESS, ns) if EGRESS in types else (),
        source_name=meta["name"])


def from_object(obj: dict) -> Policy:
    if obj.get("apiVersion", "").startswith("networking.k8s.io/"):
        return from_k8s(obj)
    return from_calico(obj)
