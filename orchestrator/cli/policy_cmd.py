"""`calinet policy compile` and `calinet explain`: what the policy dataplane is and why.

Side effects: reads manifests and, when a testbed is found, its state store. Needs no root:
both work on the model, not on the kernel. Without a testbed, `policy compile` compiles against
the conformance model (namespaces x/y/z, pods a/b/c spread over node-1..3, ports 80/81 named
serve-<port>-<proto>), dual-stack: addresses from 10.244.0.0/16 and from the default IPv6
pool fd00:10:244::/56. Both commands take an IP family: `--family 6` compiles the ip6tables
dataplane (Felix's second one) and explains a flow with the pods' IPv6 addresses.
"""

from __future__ import annotations

import ipaddress

from orchestrator import api
from orchestrator.errors import CalinetError, ValidationError
from orchestrator.node.policy_agent import POLICY_KINDS, pod_endpoint
from policy.compiler import compile_node, endpoint
from policy.explain import explain
from policy.model import from_object
from policy.render import render_full, render_ipsets_full

POLICY_KIND_KEYS = frozenset(POLICY_KINDS)
FAMILIES = (4, 6)


def check_family(family) -> int:
    """4 or 6, else a ValidationError naming --family (argparse's choices say the same for the
    CLI; this is for callers of compile_text / explain_text)."""
    if family not in FAMILIES:
        raise ValidationError(f"{family!r} is not an IP family: use 4 (iptables) or 6 "
                              "(ip6tables)", field="--family")
    return family


def xyz_endpoints():
    eps, namespaces = [], {}
    for i, ns in enumerate("xyz"):
        namespaces[ns] = {"ns": ns, "kubernetes.io/metadata.name": ns}
        for j, pod in enumerate("abc"):
            ports = [(f"serve-{port}-{proto}", proto, port) for port in (80, 81)
                     for proto in ("tcp", "udp", "sctp")]
            # cali + 11 hex, as naming.veth_name makes them. The IPv6 address mirrors the
            # IPv4 one (node j's pods in fd00:10:244:j::/64, within the default IPv6 pool),
            # spelled canonically as IPAM writes addresses (fd00:10:244::a, not :0::a).
            ip6 = str(ipaddress.IPv6Address(f"fd00:10:244:{j}::{10 + i:x}"))
            eps.append(endpoint(ns, pod, f"node-{j + 1}", f"cali{i:02x}{j:02x}0000000",
                                f"10.244.{j}.{10 + i}", {"pod": pod}, ports, ip6))
    return eps, namespaces


def store_endpoints(store):
    eps = [e for e in map(pod_endpoint, store.list("Pod")) if e is not None]
    namespaces = {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {})
                  for n in store.list("Namespace")}
    return eps, namespaces


def store_policies(store):
    return [from_object(o) for kind in POLICY_KINDS for o in store.list(kind)]


def compile_text(sources: list[str], *, node: str | None, ctx=None, family: int = 4) -> str:
    """The iptables-restore (family 6: ip6tables-restore) and ipset restore text of the
    policies in ``sources`` on ``node``."""
    check_family(family)
    objs = []
    for src in sources:
        objs += api.normalize_all(api.load_documents(src), now="1970-01-01T00:00:00Z")
    others = [o for o in objs if api.kind_key(o) not in POLICY_KIND_KEYS]
    if others:
        o = others[0]
        raise ValidationError("only NetworkPolicy / GlobalNetworkPolicy objects can be "
                              "compiled", obj=f"{o['kind']} {o['metadata'].get('name')}")
    policies = [from_object(o) for o in objs]
    if ctx is not None:
        eps, namespaces = store_endpoints(ctx.store)
        where = f"the pods of testbed {ctx.testbed_id or ctx.state_dir}"
    else:
        eps, namespaces = xyz_endpoints()
        where = "the conformance model (x/y/z, pods a/b/c on node-1..3; no testbed found)"
    nodes = sorted({e.node for e in eps})
    if node is None:
        node = nodes[0] if nodes else "node-1"
    elif node not in nodes:
        raise CalinetError(f"node {node!r} has no pods here; nodes with pods: "
                           f"{', '.join(nodes) or 'none'}")
    if family == 6 and not any(e.ip6 for e in eps):
        # An IPv4-only testbed has no ip6tables dataplane: its output would be chains for
        # pods that cannot send IPv6 and empty sets, which reads like a policy bug.
        raise CalinetError(f"--family 6: no pod of {where} has an IPv6 address (an IPv4-only "
                           "cluster; topology ipFamilies with IPv6 and underlay.cidr6 give "
                           "pods one)")
    dp = compile_node(node, eps, namespaces, policies, family=family)
    tool = "ip6tables-restore" if family == 6 else "iptables-restore"
    head = (f"# {len(policies)} policy(ies) compiled for {node} against {where}\n"
            f"# {dp.rule_count()} rules, {len(dp.ipsets)} ipsets; "
            f"{tool} --noflush input:\n")
    return head + render_full(dp) + "\n# ipset restore input:\n" + render_ipsets_full(dp.ipsets)


def explain_text(ctx, src: str, dst: str, port_proto: str, namespace: str,
                 family: int | None = None) -> str:
    """``family`` None: the flow's family follows the addresses given (policy.explain)."""
    port_s, _, proto = port_proto.partition("/")
    proto = (proto or "TCP").upper()
    if not port_s.isdigit() or not 1 <= int(port_s) <= 65535:
        raise CalinetError(f"PORT/PROTO: {port_proto!r} is not like 80/TCP")
    if proto not in ("TCP", "UDP", "SCTP"):
        raise CalinetError(f"PORT/PROTO: protocol {proto!r} is not TCP, UDP or SCTP")
    if family is not None:
        check_family(family)
    eps, namespaces = store_endpoints(ctx.store)

    def key(what: str) -> str:
        if "/" in what or _is_ip(what):
            return what
        return f"{namespace}/{what}"
    try:
        return explain(key(src), key(dst), int(port_s), proto, eps, namespaces,
                       store_policies(ctx.store), family=family).text()
    except KeyError as exc:
        raise CalinetError(str(exc.args[0])) from None
    except ValueError as exc:
        # A flow that cannot be: addresses of two families, a pod without an address of
        # the family asked for.
        raise CalinetError(str(exc)) from None


def _is_ip(what: str) -> bool:
    try:
        ipaddress.ip_address(what)
    except ValueError:
        return False
    return True


def log_text(ctx, node: str | None) -> str:
    """<state>/policy/<node>/packets.log of one node or all, merged by time."""
    import os
    base = os.path.join(ctx.state_dir, "policy")
    nodes = [node] if node else sorted(os.listdir(base)) if os.path.isdir(base) else []
    lines = []
    for n in nodes:
        path = os.path.join(base, n, "packets.log")
        if node and not os.path.exists(path):
            raise CalinetError(f"no packet log for node {node!r} in {ctx.state_dir}")
        if os.path.exists(path):
            with open(path) as f:
                lines += f.read().splitlines()
    if not lines:
        return "no packets logged (policies log with `action: Log` rules)\n"
    return "\n".join(sorted(lines)) + "\n"
