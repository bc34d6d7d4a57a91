"""Defects an independent review of the network-policy implementation found, as tests (fixed).

Pure. Each policy goes through the API validation (it is valid input), the model and the
compiler; the verdict for a flow comes from a small interpreter of the compiled chains (the
words the compiler emits: -i/-o, -s/-d, -p, set, multiport, mark, conntrack, icmp; MARK,
NFLOG, RETURN, jump and goto), walked from cali-FORWARD as the kernel would for a NEW packet.
Expected verdicts are written from Calico's sources (libcalico-go updateprocessors/rules.go
getEndpointSelector, felix/calc/rule_scanner.go, felix/calc/policy_sorter.go PolKVLess) and
reference/calico.md, not from this code's output. The first tests check the interpreter itself
on cases the implementation gets right.
"""

from __future__ import annotations

import ipaddress
import time

import pytest

from orchestrator import api
from orchestrator.errors import CommandError
from orchestrator.host.runner import RecordingRunner, Result
from policy.compiler import compile_node, endpoint
from policy.ir import FILTER, HASH_IP_PORT
from policy.model import from_object

NOW = "2026-01-01T00:00:00Z"
CALICO = "projectcalico.org/v3"
PORTS = [("http", "tcp", 8080), ("dns", "udp", 53)]
EPS = [endpoint(ns, p, node, f"cali{ns}{p}0000000", ip, {"pod": p}, PORTS)
       for ns, p, node, ip in (("x", "a", "n1", "10.244.0.2"), ("x", "c", "n1", "10.244.0.4"),
                               ("y", "b", "n2", "10.244.1.3"))]
BY_KEY = {ep.key: ep for ep in EPS}
NAMESPACES = {ns: api.normalize({"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": ns, "labels": {"ns": ns}}},
                                now=NOW)["metadata"]["labels"] for ns in "xy"}
_PROTO_NUMBERS = {"1": "icmp", "4": "ipencap", "6": "tcp", "17": "udp", "132": "sctp"}


def valid(obj: dict):
    """The policy as the policy agent sees it: validated and defaulted, then modelled."""
    return from_object(api.normalize(obj, now=NOW))


def cnp(name, spec, ns="x"):
    return {"apiVersion": CALICO, "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def gnp(name, spec):
    return {"apiVersion": CALICO, "kind": "GlobalNetworkPolicy", "metadata": {"name": name},
            "spec": spec}


def knp(name, spec, ns="x"):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


# -- a tiny interpreter of the compiled filter chains ----------------------------------

def _in_set(dp, name: str, dirs: str, pkt: dict) -> bool:
    s = dp.ipsets[name]
    side = dirs.split(",")[0]
    ip = pkt["s"] if side == "src" else pkt["d"]
    if s.type == HASH_IP_PORT:
        port = pkt["sport"] if side == "src" else pkt["dport"]
        return f"{ip},{pkt['p']}:{port}" in s.members
    addr = ipaddress.ip_address(ip)
    return any(addr in ipaddress.ip_network(m) for m in s.members)


def _proto(p: str) -> str:
    return _PROTO_NUMBERS.get(p, p)


def _ports(spec: str) -> list[tuple[int, int]]:
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition(":")
        out.append((int(lo), int(hi or lo)))
    return out


def _matches(dp, words: tuple[str, ...], pkt: dict, mark: int) -> bool:
    i, neg = 0, False
    while i < len(words):
        w = words[i]
        if w == "!":
            neg, i = True, i + 1
            continue
        if w in ("-i", "-o"):
            val, have = words[i + 1], pkt[w]
            res = have.startswith(val[:-1]) if val.endswith("+") else have == val
            i += 2
        elif w in ("-s", "-d"):
            res = ipaddress.ip_address(pkt[w[1]]) in ipaddress.ip_network(words[i + 1],
                                                                         strict=False)
            i += 2
        elif w == "-p":
            res = _proto(words[i + 1]) == pkt["p"]
            i += 2
        elif w == "--dport":
            res = int(words[i + 1]) == pkt["dport"]
            i += 2
        elif w == "-m":
            mod, i = words[i + 1], i + 2
            if mod == "comment":
                i += 2
                continue
            if i < len(words) and words[i] == "!":
                neg, i = True, i + 1
            if mod == "set":
                res, i = _in_set(dp, words[i + 1], words[i + 2], pkt), i + 3
            elif mod == "multiport":
                port = pkt["dport"] if words[i] == "--dports" else pkt["sport"]
                res = any(lo <= port <= hi for lo, hi in _ports(words[i + 1]))
                i += 2
            elif mod == "mark":
                value, mask = (int(v, 16) for v in words[i + 1].split("/"))
                res, i = (mark & mask) == value, i + 2
            elif mod == "conntrack":
                res, i = "NEW" in words[i + 1].split(","), i + 2
            elif mod == "icmp":
                t, _, c = words[i + 1].partition("/")
                res = pkt["p"] == "icmp" and pkt.get("icmp") == (int(t), int(c) if c else None)
                i += 2
            else:
                raise AssertionError(f"interpreter: unknown match module {mod!r}")
        else:
            raise AssertionError(f"interpreter: unknown match word {w!r} in {words}")
        if neg:
            res, neg = not res, False
        if not res:
            return False
    return True


def walk(dp, pkt: dict, start: str = "cali-FORWARD") -> str | None:
    """'ACCEPT', 'DROP', or None when the packet falls back to the kernel chain."""
    chains = dp.chains[FILTER]
    stack: list[tuple[str, int]] = []
    cur, i, mark = start, 0, 0
    for _ in range(10000):
        rules = chains[cur].rules
        if i >= len(rules):
            if not stack:
                return None
            cur, i = stack.pop()
            continue
        rule = rules[i]
        i += 1
        if not _matches(dp, rule.match, pkt, mark):
            continue
        kind, target = rule.target[0], rule.target[1]
        if kind == "-g":
            cur, i = target, 0
        elif target in ("ACCEPT", "DROP"):
            return target
        elif target == "RETURN":
            if not stack:
                return None
            cur, i = stack.pop()
        elif target == "MARK":
            value, mask = (int(v, 16) for v in rule.target[3].split("/"))
            mark = (mark & ~mask) ^ value
        elif target == "NFLOG":
            pass
        else:
            stack.append((cur, i))
            cur, i = target, 0
    raise AssertionError("interpreter: loop")


def allowed(policies, src: str, dst: str, port: int, proto: str = "tcp", *,
            namespaces=NAMESPACES, icmp=None) -> bool:
    """Whether a NEW packet src -> dst passes every node it crosses (src: a pod key or an
    address outside the cluster)."""
    memo: dict = {}
    dps = {n: compile_node(n, EPS, namespaces, policies, memo=memo) for n in ("n1", "n2")}
    d = BY_KEY[dst]
    if src in BY_KEY:
        s = BY_KEY[src]
        hops = ([(s.node, s.iface, d.iface)] if s.node == d.node else
                [(s.node, s.iface, "eth0"), (d.node, "eth0", d.iface)])
        src_ip = s.ip
    else:
        hops, src_ip = [(d.node, "eth0", d.iface)], src
    pkt = {"s": src_ip, "d": d.ip, "p": proto, "sport": 40000, "dport": port, "icmp": icmp}
    return all(walk(dps[node], {**pkt, "-i": i, "-o": o}) != "DROP" for node, i, o in hops)


# -- the interpreter agrees with what the implementation gets right --------------------

def test_interpreter_no_policy_allows_and_k8s_isolation_denies():
    assert allowed([], "y/b", "x/a", 80)
    deny = valid(knp("deny", {"podSelector": {}}))
    assert not allowed([deny], "y/b", "x/a", 80)
    assert allowed([deny], "x/a", "y/b", 80)          # y is not isolated; x has no egress


def test_interpreter_k8s_named_port_and_namespace_selector():
    pol = valid(knp("web", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{
        "from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}],
        "ports": [{"port": "http"}]}]}))
    assert allowed([pol], "y/b", "x/a", 8080)
    assert not allowed([pol], "y/b", "x/a", 8081)
    assert not allowed([pol], "x/c", "x/a", 8080)


def test_interpreter_calico_notselector_with_selector_and_gnp_notselector():
    # Found right: with a positive selector the namespace scoping of notSelector is moot,
    # and a GNP's notSelector alone is global.
    pol = valid(cnp("p", {"selector": "pod == 'a'", "ingress": [
        {"action": "Allow", "source": {"selector": "all()", "notSelector": "pod == 'c'"}}]}))
    assert allowed([pol], "x/c", "x/a", 80) is False
    assert allowed([pol], "y/b", "x/a", 80) is False
    g = valid(gnp("g", {"selector": "pod == 'a'", "ingress": [
        {"action": "Allow", "source": {"notSelector": "pod == 'c'"}}]}))
    assert allowed([g], "y/b", "x/a", 80) and allowed([g], "192.0.2.9", "x/a", 80)
    assert not allowed([g], "x/c", "x/a", 80)


def test_interpreter_pass_log_deny_order():
    log_only = valid(gnp("log", {"order": 10, "selector": "pod == 'a'",
                                 "ingress": [{"action": "Log"}]}))
    assert not allowed([log_only], "y/b", "x/a", 80)    # Log alone ends in the tier drop
    passes = valid(gnp("pass", {"order": 10, "selector": "pod == 'a'",
                                "ingress": [{"action": "Pass"}]}))
    deny = valid(gnp("deny", {"order": 20, "selector": "pod == 'a'",
                              "ingress": [{"action": "Deny"}]}))
    assert allowed([passes, deny], "y/b", "x/a", 80)    # Pass skips the rest of the tier


def test_interpreter_ipblock_endport_sctp_icmp_notports_egress_named_port():
    # Found right: ipBlock except, endPort, SCTP, protocol mismatch, ICMP type, notPorts
    # (numeric and named), k8s egress named port resolved on the peer.
    blk = valid(knp("blk", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{
        "from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.1.0/24"]}}],
        "ports": [{"port": 8000, "endPort": 8100, "protocol": "SCTP"}]}]}))
    assert allowed([blk], "x/c", "x/a", 8050, "sctp")
    assert not allowed([blk], "y/b", "x/a", 8050, "sctp")       # in except
    assert not allowed([blk], "x/c", "x/a", 8050, "tcp")
    assert not allowed([blk], "x/c", "x/a", 8101, "sctp")
    icmp = valid(gnp("icmp", {"selector": "pod == 'a'", "ingress": [
        {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}}]}))
    assert allowed([icmp], "y/b", "x/a", 0, "icmp", icmp=(8, None))
    assert not allowed([icmp], "y/b", "x/a", 0, "icmp", icmp=(0, None))
    notports = valid(cnp("np", {"selector": "pod == 'a'", "ingress": [
        {"action": "Allow", "protocol": "TCP", "destination": {"notPorts": [8080, "dns"]}}]}))
    assert not allowed([notports], "x/c", "x/a", 8080) and allowed([notports], "x/c", "x/a", 81)
    egress = valid(knp("eg", {"podSelector": {"matchLabels": {"pod": "a"}},
                              "policyTypes": ["Egress"], "egress": [{
                                  "to": [{"podSelector": {"matchLabels": {"pod": "b"}},
                                          "namespaceSelector": {}}],
                                  "ports": [{"port": "http"}]}]}))
    assert allowed([egress], "x/a", "y/b", 8080)
    assert not allowed([egress], "x/a", "x/c", 8080)
    assert not allowed([egress], "x/a", "y/b", 53, "udp")


# -- 1. semantics ----------------------------------------------------------------------

def test_calico_np_notselector_alone_is_scoped_to_the_policy_namespace():
    pol = valid(cnp("not-c", {"selector": "pod == 'a'", "ingress": [
        {"action": "Allow", "source": {"notSelector": "pod == 'c'"}}]}))
    assert not allowed([pol], "x/c", "x/a", 80)
    # Calico: source selector `projectcalico.org/namespace == 'x'`, notSelector global.
    assert not allowed([pol], "y/b", "x/a", 80)
    assert not allowed([pol], "192.0.2.9", "x/a", 80)


def test_calico_np_named_port_without_selector_resolves_on_every_pod():
    pol = valid(cnp("egress-http", {"selector": "pod == 'a'", "types": ["Egress"], "egress": [
        {"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http"]}}]}))
    assert allowed([pol], "x/a", "x/c", 8080)
    assert allowed([pol], "x/a", "y/b", 8080)       # y/b serves http on 8080


def test_ipversion_6_rule_does_not_touch_ipv4():
    pol = valid(gnp("v6-deny", {"selector": "pod == 'a'", "ingress": [
        {"action": "Deny", "ipVersion": 6}, {"action": "Allow"}]}))
    assert allowed([pol], "y/b", "x/a", 80)


def test_named_port_with_numeric_protocol():
    pol = valid(gnp("dns", {"selector": "pod == 'a'", "types": ["Egress"], "egress": [
        {"action": "Allow", "protocol": 17, "destination": {"ports": ["dns"]}}]}))
    assert allowed([pol], "x/a", "y/b", 53, "udp")


def test_namespace_selector_on_projectcalico_name():
    pol = valid(gnp("from-y", {"selector": "pod == 'a'", "ingress": [
        {"action": "Allow", "source": {"namespaceSelector": "projectcalico.org/name == 'y'"}}]}))
    assert allowed([pol], "y/b", "x/a", 80)


# -- 2. dataplane ----------------------------------------------------------------------

def test_protocol_and_not_protocol_render_one_p_flag():
    pol = valid(cnp("tcp-not-udp", {"selector": "all()", "ingress": [
        {"action": "Allow", "protocol": "TCP", "notProtocol": "UDP"}]}))
    dp = compile_node("n1", EPS, NAMESPACES, [pol])
    rules = [r for c in dp.chains[FILTER].values() for r in c.rules]
    assert all(r.match.count("-p") <= 1 for r in rules)


# -- 3. robustness ---------------------------------------------------------------------

class _Store:
    def __init__(self):
        self.objs: dict[str, list[dict]] = {"Pod": [], "Namespace": []}

    def list(self, kind, namespace=None):
        return [o for o in self.objs.get(kind, [])
                if namespace is None or o["metadata"].get("namespace") == namespace]


class _Iptables(RecordingRunner):
    """iptables-restore that refuses a rule with two -p flags, as the real one does."""

    def run(self, argv, **kw):
        argv = [str(a) for a in argv]
        if argv[0] == "iptables-restore":
            for line in (kw.get("input") or "").splitlines():
                # stands for any rule the kernel refuses (a missing module, say)
                if line.startswith("-A ") and "6666" in line.split():
                    raise CommandError(argv, 2, "", "refused", kw.get("input"))
        if argv[:1] == ["iptables-save"] or argv[:2] == ["ipset", "save"]:
            return Result(0, "", "")
        return super().run(argv, **kw)


def test_agent_recovers_once_the_failing_policy_is_deleted(monkeypatch):
    from orchestrator.node import policy_agent
    monkeypatch.setattr(policy_agent, "RETRY", 0.0)
    store = _Store()
    store.objs["Namespace"] = [{"metadata": {"name": "x", "labels": NAMESPACES["x"]}}]
    store.objs["Pod"] = [{"metadata": {"name": "a", "namespace": "x", "uid": "u1",
                                       "labels": {"pod": "a"}},
                          "spec": {"nodeName": "n1", "containers": []},
                          "status": {"podIP": "10.244.0.2"}}]
    agent = policy_agent.PolicyAgent(store, {"n1": 1}, _Iptables())
    try:
        agent.poll()
        assert agent.in_sync() == []
        bad = api.normalize(cnp("refused", {"selector": "all()", "ingress": [
            {"action": "Allow", "protocol": "TCP", "destination": {"ports": [6666]}}]}),
            now=NOW)
        store.objs["NetworkPolicy.projectcalico.org"] = [bad]
        agent.poll()
        assert agent.in_sync() and "n1" in agent.errors      # the failure is reported
        store.objs["NetworkPolicy.projectcalico.org"] = []   # the user deletes it
        agent.poll()
        agent.poll()
        assert agent.in_sync() == []
    finally:
        agent.stop()


def test_agent_retries_a_failing_node_at_most_once_per_retry_interval():
    from orchestrator.node import policy_agent
    store = _Store()
    store.objs["Pod"] = [{"metadata": {"name": "a", "namespace": "x", "uid": "u1",
                                       "labels": {"pod": "a"}},
                          "spec": {"nodeName": "n1", "containers": []},
                          "status": {"podIP": "10.244.0.2"}}]
    store.objs["NetworkPolicy.projectcalico.org"] = [api.normalize(cnp("refused", {
        "selector": "all()", "ingress": [
            {"action": "Allow", "protocol": "TCP", "destination": {"ports": [6666]}}]}),
        now=NOW)]
    runner = _Iptables()
    agent = policy_agent.PolicyAgent(store, {"n1": 1}, runner)
    try:
        restores = []
        real = runner.run

        def counting(argv, **kw):
            if str(argv[0]) == "iptables-restore":
                restores.append(1)
            return real(argv, **kw)
        runner.run = counting
        for _ in range(5):              # well within RETRY (1 s)
            agent.poll()
        assert len(restores) == 1
    finally:
        agent.stop()


def test_a_deleted_pods_endpoint_stays_until_its_sandbox_is_torn_down():
    # Calico drops a WorkloadEndpoint at CNI DEL: while a deleted pod's sandbox drains,
    # connections DNAT'ed to it just before kube-proxy dropped it must not hit
    # "Unknown interface" (the rolling-update SYN loss).
    from orchestrator.host import naming
    from orchestrator.node import policy_agent
    store = _Store()
    pod = {"metadata": {"name": "a", "namespace": "x", "uid": "u1", "labels": {"pod": "a"}},
           "spec": {"nodeName": "n1", "containers": []}, "status": {"podIP": "10.244.0.2"}}
    store.objs["Pod"] = [pod]
    agent = policy_agent.PolicyAgent(store, {"n1": 1}, _Iptables())
    iface = naming.veth_name("x", "a")
    try:
        def dispatched():
            for _ in range(200):     # the kicker thread may hold the pass: wait for it
                agent.poll()
                if agent.in_sync() == []:
                    break
                time.sleep(0.01)
            chain = agent.applied["n1"].chains[FILTER]["cali-to-wl-dispatch"]
            return any(iface in r.match for r in chain.rules)
        assert dispatched()
        agent.sandboxes_draining([pod])
        store.objs["Pod"] = []                  # the object leaves the store at once
        assert dispatched() and agent.in_sync() == []
        agent.sandboxes_removed(["u1"])         # the kubelet's teardown (CNI DEL)
        assert not dispatched()
        agent.sandboxes_removed(["u1"])         # idempotent
        assert agent.in_sync() == []
    finally:
        agent.stop()


def test_enforced_at_records_when_a_new_endpoints_rules_were_committed():
    from orchestrator.node import policy_agent
    store = _Store()
    store.objs["Pod"] = [{"metadata": {"name": "a", "namespace": "x", "uid": "u1",
                                       "labels": {"pod": "a"}},
                          "spec": {"nodeName": "n1", "containers": []},
                          "status": {"podIP": "10.244.0.2"}}]
    agent = policy_agent.PolicyAgent(store, {"n1": 1, "n2": 2}, _Iptables())
    try:
        t0 = time.monotonic()
        agent.poll()
        assert set(agent.enforced_at) == {"x/a"} and t0 <= agent.enforced_at["x/a"]
        first = agent.enforced_at["x/a"]
        agent.poll()
        assert agent.enforced_at["x/a"] == first          # not moved by later passes
        store.objs["Pod"] = []
        agent.poll()
        assert agent.enforced_at == {}
    finally:
        agent.stop()


class _VersionedStore(_Store):
    """The fake store with the real one's write counter."""

    def __init__(self):
        super().__init__()
        self.rv = 1

    def current_rv(self):
        return self.rv


def _pod(name, ip, node="n1"):
    return {"metadata": {"name": name, "namespace": "x", "uid": f"u-{name}",
                         "labels": {"pod": name}},
            "spec": {"nodeName": node, "containers": []}, "status": {"podIP": ip}}


def test_unchanged_store_skips_reading_inputs_and_a_write_is_seen():
    from orchestrator.node import policy_agent
    store = _VersionedStore()
    store.objs["Pod"] = [_pod("a", "10.244.0.2")]
    agent = policy_agent.PolicyAgent(store, {"n1": 1}, _Iptables())
    try:
        agent.poll()
        reads = []
        real = agent.inputs
        agent.inputs = lambda: reads.append(1) or real()
        agent.poll()
        agent.poll()
        assert reads == []                              # nothing written since: no read
        store.objs["Pod"].append(_pod("b", "10.244.0.3"))
        store.rv += 1
        assert agent.poll() == ["n1"] and reads == [1]
        agent.sandboxes_wired([("u-c", "10.244.0.4")])  # a notice, no store write
        agent.poll()
        assert len(reads) >= 2
    finally:
        agent.stop()


def test_an_unexpected_failure_does_not_stall_the_agent():
    from orchestrator.node import policy_agent
    store = _VersionedStore()
    store.objs["Pod"] = [_pod("a", "10.244.0.2")]
    runner = _Iptables()
    agent = policy_agent.PolicyAgent(store, {"n1": 1}, runner)
    try:
        agent.poll()
        real = runner.run
        failures = []

        def once(argv, **kw):
            if str(argv[0]) == "iptables-restore" and not failures:
                failures.append(1)
                raise BlockingIOError("fork: resource temporarily unavailable")
            return real(argv, **kw)
        runner.run = once
        store.objs["Pod"].append(_pod("b", "10.244.0.3"))
        store.rv += 1
        with pytest.raises(BlockingIOError):
            while True:          # the kicker may take the first pass: wait until it fails
                agent.poll()
                if failures:
                    raise BlockingIOError("raised in the kicker's pass")
                time.sleep(0.01)
        # no store write since: the next pass must still read and write
        for _ in range(200):
            agent.poll()
            if agent.in_sync() == []:
                break
            time.sleep(0.01)
        assert agent.in_sync() == []
        assert "x/b" in agent.enforced_at
    finally:
        agent.stop()


def test_a_draining_endpoint_stays_while_its_name_runs_again_on_another_node():
    from orchestrator.node import policy_agent
    store = _VersionedStore()
    old = _pod("db-0", "10.244.0.2", node="n1")
    store.objs["Pod"] = [old]
    agent = policy_agent.PolicyAgent(store, {"n1": 1, "n2": 2}, _Iptables())
    try:
        agent.sandboxes_draining([old])
        store.objs["Pod"] = [_pod("db-0", "10.244.1.2", node="n2")]   # the StatefulSet's new one
        store.rv += 1
        eps = agent.inputs()[0]
        assert sorted((e.node, e.ip) for e in eps) == [("n1", "10.244.0.2"), ("n2", "10.244.1.2")]
        agent.sandboxes_removed(["u-db-0"])
        assert [(e.node, e.ip) for e in agent.inputs()[0]] == [("n2", "10.244.1.2")]
    finally:
        agent.stop()


def test_agent_converts_and_compiles_each_policy_once_per_write(tmp_path, monkeypatch):
    # The caches behind a new pod's fast path (policy conversion by resourceVersion, policy
    # chains across passes, objects decoded once) against a real store: a pod, a label change,
    # a policy edit and a delete are all still seen.
    from orchestrator.control.store import Store
    from orchestrator.node import policy_agent
    store = Store(str(tmp_path / "state.db"), clock=lambda: NOW)
    conversions = []
    real_convert = policy_agent.from_object
    monkeypatch.setattr(policy_agent, "from_object",
                        lambda o: conversions.append(o["metadata"]["name"]) or real_convert(o))
    store.create({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": "x", "labels": NAMESPACES["x"]}})
    store.create(dict(_pod("a", "10.244.0.2"), apiVersion="v1", kind="Pod"))
    store.create(api.normalize(knp("only-b", {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}),
        now=NOW))
    agent = policy_agent.PolicyAgent(store, {"n1": 1}, _Iptables())

    def settled():
        for _ in range(200):
            agent.poll()
            if agent.in_sync() == []:
                return agent.applied["n1"]
            time.sleep(0.01)
        raise AssertionError(agent.in_sync())

    def client_set(dp):
        [s] = [s for s in dp.ipsets.values() if "role == \"client\"" in s.comment]
        return s.members
    try:
        first = settled()
        assert client_set(first) == frozenset() and conversions == ["only-b"]
        store.create(dict(_pod("b", "10.244.0.3"), apiVersion="v1", kind="Pod"))
        store.patch("Pod", "b", "x", lambda p: p["metadata"]["labels"].update(role="client"))
        second = settled()
        assert client_set(second) == {"10.244.0.3/32"}
        assert conversions == ["only-b"]                 # pods came, the policy was not redone
        [pol_chain] = [c for c in first.chains[FILTER] if c.startswith("cali-pi-")]
        assert second.chains[FILTER][pol_chain] is first.chains[FILTER][pol_chain]
        store.patch("NetworkPolicy", "only-b", "x", lambda o: o["spec"]["ingress"][0][
            "from"][0]["podSelector"]["matchLabels"].update(role="other"))
        third = settled()
        assert conversions == ["only-b", "only-b"]
        assert not any("role == \"client\"" in s.comment for s in third.ipsets.values())
        store.delete("NetworkPolicy", "only-b", "x")
        assert not any(c.startswith("cali-pi-") for c in settled().chains[FILTER])
    finally:
        agent.stop()
        store.close()


def test_a_pass_converts_only_the_pods_written_since_the_last_one(tmp_path, monkeypatch):
    # The endpoints are kept between passes (a bring-up's ~90 passes each walked all 500
    # pods before): a status write, a label change, a wired sandbox and a delete each touch
    # only their pod, and what the nodes get is still exactly the store's.
    from orchestrator.control.store import Store
    from orchestrator.host import naming
    from orchestrator.node import policy_agent
    store = Store(str(tmp_path / "state.db"), clock=lambda: NOW)
    for i in range(20):
        store.create(dict(_pod(f"p{i}", f"10.244.0.{i + 2}", node=f"n{i % 2 + 1}"),
                          apiVersion="v1", kind="Pod"))
    agent = policy_agent.PolicyAgent(store, {"n1": 1, "n2": 2}, _Iptables())
    made = []
    real = policy_agent.pod_endpoint
    monkeypatch.setattr(policy_agent, "pod_endpoint",
                        lambda pod, wired=None: made.append(pod["metadata"]["name"])
                        or real(pod, wired))

    def endpoints():
        return sorted((e.name, e.node, e.ip, e.labels) for e in agent.inputs()[0])
    try:
        assert len(endpoints()) == 20 and len(made) == 20
        made.clear()
        store.update_status("Pod", "p3", "x", {"podIP": "10.244.0.5", "phase": "Running"})
        assert len(endpoints()) == 20 and made == ["p3"]
        made.clear()
        store.patch("Pod", "p4", "x", lambda o: o["metadata"]["labels"].update(role="db"))
        assert ("p4", "n1", "10.244.0.6", (("pod", "p4"), ("role", "db"))) in endpoints()
        assert made == ["p4"]
        made.clear()
        new = dict(_pod("q", None, node="n2"), apiVersion="v1", kind="Pod")
        new["status"] = {}
        store.create(new)
        assert "q" not in [e[0] for e in endpoints()]     # no address yet: no endpoint
        agent.sandboxes_wired([("u-q", "10.244.1.9")])    # a notice, no store write
        made.clear()
        assert ("q", "n2", "10.244.1.9", (("pod", "q"),)) in endpoints() and made == ["q"]
        made.clear()
        store.delete("Pod", "p0", "x")
        eps = endpoints()
        assert "p0" not in [e[0] for e in eps] and len(eps) == 20 and made == []
        # ... and a pass's rules follow: the deleted pod's interface is gone from n1's.
        for _ in range(200):
            agent.poll()
            if agent.in_sync() == []:
                break
            time.sleep(0.01)
        rules = agent.applied["n1"].chains[FILTER]["cali-to-wl-dispatch"].rules
        assert not any(naming.veth_name("x", "p0") in r.match for r in rules)
        assert sorted(agent.endpoints_applied["n2"]) == sorted(
            f"x/{n}" for n in ["q"] + [f"p{i}" for i in range(1, 20, 2)])
    finally:
        agent.stop()
        store.close()


def test_wait_enforced_returns_once_the_wired_pod_is_committed_or_gives_up():
    # The kubelet starts a new pod's containers after this (Calico's CNI with
    # policy_setup_timeout_seconds): a wired sandbox's endpoint is written by the kicked pass.
    import time as _time

    from orchestrator.node import policy_agent
    store = _VersionedStore()
    store.objs["Pod"] = [_pod("a", "10.244.0.2")]
    runner = _Iptables()
    agent = policy_agent.PolicyAgent(store, {"n1": 1, "n2": 2}, runner)
    try:
        agent.poll()
        new = _pod("b", None, node="n2")
        new["status"] = {}
        store.objs["Pod"].append(new)
        store.rv += 1
        agent.sandboxes_wired([("u-b", "10.244.1.3")])
        assert agent.wait_enforced("n2", ["u-b"], timeout=5.0)
        assert agent.enforced_at["x/b"] <= _time.monotonic()
        # never an endpoint (no such pod): bounded by the timeout
        t = _time.monotonic()
        assert not agent.wait_enforced("n2", ["u-ghost"], timeout=0.2)
        assert 0.15 < _time.monotonic() - t < 2.0
        # a node whose writes fail: the wait ends once a pass has failed, not at the timeout
        real = runner.run

        def refuse(argv, **kw):
            if str(argv[0]) == "iptables-restore":
                raise CommandError([str(a) for a in argv], 2, "", "refused", kw.get("input"))
            return real(argv, **kw)
        runner.run = refuse
        late = _pod("c", None, node="n1")
        late["status"] = {}
        store.objs["Pod"].append(late)
        store.rv += 1
        t = _time.monotonic()
        agent.sandboxes_wired([("u-c", "10.244.0.9")])
        assert not agent.wait_enforced("n1", ["u-c"], timeout=5.0)
        assert _time.monotonic() - t < 2.0 and "n1" in agent.errors
    finally:
        agent.stop()


def test_wait_enforced_goes_by_pod_uid_not_by_a_name_draining_elsewhere():
    # A StatefulSet's pod recreated on n2 while its predecessor of the same name still
    # drains on n1: the old sandbox's rules on n1 must not count for the new pod on n2.
    from orchestrator.node import policy_agent
    store = _VersionedStore()
    old = _pod("w", "10.244.0.7", node="n1")
    old["metadata"]["uid"] = "u-old"
    agent = policy_agent.PolicyAgent(store, {"n1": 1, "n2": 2}, _Iptables())
    try:
        agent.sandboxes_draining([old])
        agent.poll()
        assert agent.wait_enforced("n1", ["u-old"], timeout=2.0)
        assert not agent.wait_enforced("n2", ["u-old"], timeout=0.1)
        new = _pod("w", None, node="n2")
        new["metadata"]["uid"], new["status"] = "u-new", {}
        store.objs["Pod"] = [new]
        store.rv += 1
        agent.sandboxes_wired([("u-new", "10.244.1.7")])
        assert agent.wait_enforced("n2", ["u-new"], timeout=5.0)
        assert not agent.wait_enforced("n1", ["u-new"], timeout=0.1)
    finally:
        agent.stop()
