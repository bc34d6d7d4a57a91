"""The policy compiler and renderer (pure): Felix's layout, ipsets, diffs, golden output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from policy import names as N
from policy.compile_cache import CompileCache
from policy.compiler import Context, compile_node, endpoint, rule_matches
from policy.ir import FILTER, RAW
from policy.model import (
    EGRESS,
    INGRESS,
    Entity,
    PortSpec,
    Rule,
    Scope,
    from_calico,
    from_k8s,
)
from policy.render import (
    inverse_member_changes,
    parse_ipset_save,
    parse_save,
    render_full,
    render_ipsets,
    render_ipsets_full,
    render_iptables,
)

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "policy"
NODES = {"a": "node-1", "b": "node-1", "c": "node-2"}


def xyz(extra_remote: int = 0):
    eps, i = [], 2
    for ns in "xyz":
        for p in "abc":
            eps.append(endpoint(ns, p, NODES[p], f"cali{ns}{p}{'0' * 9}", f"10.244.0.{i}",
                                {"pod": p}, [(f"serve-{port}-{pr}", pr, port) for port in (80, 81)
                                             for pr in ("tcp", "udp", "sctp")]))
            i += 1
    for j in range(extra_remote):
        eps.append(endpoint("y", f"r{j}", "node-3", f"caliy{j:010d}", f"10.244.8.{j % 250}",
                            {"pod": "b"}, [("serve-80-tcp", "tcp", 80)]))
    return eps


NSS = {n: {"ns": n, "kubernetes.io/metadata.name": n} for n in "xyz"}


def k8s(name, ns, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


ALLOW_B = k8s("allow-b", "x", {
    "podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"],
    "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}},
                           "namespaceSelector": {"matchExpressions": [
                               {"key": "ns", "operator": "NotIn", "values": ["x"]}]}}],
                 "ports": [{"protocol": "TCP", "port": "serve-80-tcp"},
                           {"protocol": "TCP", "port": 81}]}]})


def chain(dp, name, table=FILTER):
    return dp.chains[table][name]


def targets(c):
    return [" ".join(r.target) for r in c.rules]


# -- layout -----------------------------------------------------------------------------

def test_no_policy_endpoints_get_profiles_only_and_static_chains():
    dp = compile_node("node-1", xyz(), NSS, [])
    tw = chain(dp, "cali-tw-calixa000000000")
    assert [" ".join(r.match) for r in tw.rules[:2]] == [
        "-m conntrack --ctstate RELATED,ESTABLISHED", "-m conntrack --ctstate INVALID"]
    assert targets(tw) == ["-j ACCEPT", "-j DROP", "-j MARK --set-xmark 0x0/0x30000",
                           "-j cali-pri-kns.x", "-j RETURN", "-j DROP"]
    assert "Start of tier default" not in str(tw)
    # local endpoints only (c is on node-2), dispatch ends with "Unknown interface"
    disp = chain(dp, N.TO_WL_DISPATCH)
    assert [r.match for r in disp.rules[:-1]] == [("-o", f"cali{ns}{p}000000000")
                                                  for ns in "xyz" for p in "ab"]
    assert disp.rules[-1].comment == "Unknown interface"
    assert targets(chain(dp, "cali-pri-kns.y")) == ["-j MARK --set-xmark 0x10000/0x10000"]
    fw = chain(dp, "cali-fw-calixa000000000")
    assert "Drop VXLAN encapped packets originating in workloads" in [r.comment for r in fw.rules]
    assert {k: [" ".join(r.target) for r in v] for k, v in dp.hooks.items()} == {
        (FILTER, "FORWARD"): ["-j cali-FORWARD"], (FILTER, "INPUT"): ["-j cali-INPUT"],
        (FILTER, "OUTPUT"): ["-j cali-OUTPUT"], (RAW, "PREROUTING"): ["-j cali-PREROUTING"]}
    raw = chain(dp, N.PREROUTING, RAW)
    assert "-m rpfilter --validmark --invert" in raw.rules[-1].text()
    assert dp.ipsets == {}


def test_policy_applies_to_its_endpoints_in_its_direction_only():
    dp = compile_node("node-1", xyz(), NSS, [from_k8s(ALLOW_B)])
    pi = N.policy_in("x/knp.default.allow-b")
    assert len(pi) <= 28 and pi.startswith("cali-pi-_")
    tw = targets(chain(dp, "cali-tw-calixa000000000"))
    assert tw[3:8] == ["-j MARK --set-xmark 0x0/0x20000", f"-j {pi}", "-j RETURN", "-j DROP",
                       "-j cali-pri-kns.x"]
    assert f"-j {pi}" not in targets(chain(dp, "cali-tw-calixb000000000"))   # pod b: no
    assert f"-j {pi}" not in targets(chain(dp, "cali-fw-calixa000000000"))   # ingress only
    assert N.policy_out("x/knp.default.allow-b") not in dp.chains[FILTER]
    rules = chain(dp, pi).rules
    assert rules[0].comment == "Policy x/knp.default.allow-b ingress"
    sel = next(s for s in dp.ipsets.values() if s.name.startswith("cali40s:"))
    assert sel.members == {"10.244.0.6/32", "10.244.0.9/32"} == {
        f"{ip}/32" for ip in ("10.244.0.6", "10.244.0.9")}   # y/b, z/b
    named = next(s for s in dp.ipsets.values() if s.name.startswith("cali40n:"))
    assert named.type == "hash:ip,port" and len(named.members) == 9
    assert "10.244.0.2,tcp:80" in named.members


def test_policy_not_applying_here_is_not_programmed():
    dp = compile_node("node-2", xyz(), NSS, [from_k8s(ALLOW_B)])
    assert not any(n.startswith("cali-pi-") for n in dp.chains[FILTER])
    assert dp.ipsets == {}


def test_rule_count_grows_with_policies_not_with_remote_pods():
    small = compile_node("node-1", xyz(), NSS, [from_k8s(ALLOW_B)])
    big = compile_node("node-1", xyz(extra_remote=900), NSS, [from_k8s(ALLOW_B)])
    assert small.rule_count() == big.rule_count()
    def sel(dp):
        return next(s for s in dp.ipsets.values() if s.name.startswith("cali40s:"))
    assert len(sel(big).members) == len(sel(small).members) + 250   # 900 pods, 250 distinct IPs


def test_named_port_with_protocol_mismatch_matches_nothing():
    pol = k8s("udp-name-on-tcp", "x", {"podSelector": {}, "policyTypes": ["Ingress"],
                                        "ingress": [{"ports": [{"protocol": "TCP",
                                                                "port": "serve-80-udp"}]}]})
    dp = compile_node("node-1", xyz(), NSS, [from_k8s(pol)])
    named = [s for s in dp.ipsets.values() if s.name.startswith("cali40n:")]
    assert len(named) == 1 and named[0].members == frozenset()


def test_ipblock_except_and_catch_all_nets():
    ctx = Context(xyz(), NSS)
    r = Rule("Allow", protocol="tcp", source=Entity(nets=("10.244.0.0/16",),
                                                    not_nets=("10.244.0.2/32",)))
    (m,) = rule_matches(ctx, r)   # one -s per rule: the except goes into a set
    assert m[:4] == ("-p", "tcp", "-s", "10.244.0.0/16")
    assert m[4:7] == ("-m", "set", "!") and m[-1] == "src"
    assert ctx.ipsets[m[-2]].members == {"10.244.0.2/32"}
    alone = Rule("Allow", source=Entity(not_nets=("10.244.0.2/32",)))
    assert rule_matches(ctx, alone) == [("!", "-s", "10.244.0.2/32")]
    assert rule_matches(ctx, Rule("Allow", source=Entity(nets=("0.0.0.0/0",)))) == [()]
    assert rule_matches(ctx, Rule("Allow", source=Entity(not_nets=("0.0.0.0/0",)))) == []
    two = rule_matches(ctx, Rule("Allow", source=Entity(nets=("10.1.0.0/16", "10.2.0.0/16"))))
    assert two[0][:3] == ("-m", "set", "--match-set") and two[0][4] == "src"
    assert ctx.ipsets[two[0][3]].members == {"10.1.0.0/16", "10.2.0.0/16"}


def test_multiport_splits_at_15_slots_and_ranges_take_two():
    ports = tuple(PortSpec(p, p) for p in range(1000, 1014)) + (PortSpec(2000, 2010),)
    ctx = Context([], {})
    alts = rule_matches(ctx, Rule("Allow", protocol="tcp", destination=Entity(ports=ports)))
    assert [a[-1] for a in alts] == [",".join(str(p) for p in range(1000, 1014)), "2000:2010"]


def test_calico_actions_order_and_icmp():
    def gnp(name, order, rules):
        return from_calico({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                            "metadata": {"name": name},
                            "spec": {"order": order, "selector": "pod == 'a'",
                                     "ingress": rules}})
    p1 = gnp("late", None, [{"action": "Allow"}])
    p2 = gnp("first", 10, [{"action": "Log", "protocol": "ICMP", "icmp": {"type": 8, "code": 0}},
                           {"action": "Deny", "protocol": "ICMP", "notICMP": {"type": 0}},
                           {"action": "Pass", "source": {"selector": "pod == 'b'"}}])
    p3 = gnp("second", 10, [{"action": "Allow"}])
    dp = compile_node("node-1", xyz(), NSS, [p1, p3, p2])
    tw = targets(chain(dp, "cali-tw-calixa000000000"))
    jumps = [t for t in tw if t.startswith("-j cali-pi-")]
    assert jumps == [f"-j {N.policy_in(n)}" for n in ("default.first", "default.second",
                                                     "default.late")]
    first = chain(dp, N.policy_in("default.first")).rules
    assert first[0].text().startswith("-p icmp -m icmp --icmp-type 8/0")
    assert first[0].target[:2] == ("-j", "NFLOG") and "default.first" in first[0].target[-1]
    assert first[1].text() == "-p icmp -m icmp ! --icmp-type 0 -j DROP"
    assert first[2].target == ("-j", "MARK", "--set-xmark", "0x20000/0x20000")
    assert len(first) == 3   # the trailing RETURN after Pass is stripped


def test_names_fit_kernel_limits():
    long = "x" * 200
    assert len(N.policy_in(long)) == 28 and len(N.to_workload("cali0123456789a")) == 23
    assert N.to_workload("cali0123456789a") == "cali-tw-cali0123456789a"
    assert len(N.selector_set(long)) == 31 and N.selector_set(long).startswith("cali40s:")
    assert N.selector_set("a") != N.selector_set("b")


# -- model conversion -------------------------------------------------------------------

def test_k8s_conversion_as_calico_does_it():
    p = from_k8s(k8s("p", "x", {"podSelector": {}, "egress": [{"to": [{"ipBlock": {
        "cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}], "ports": [
        {"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 80, "endPort": 90},
        {"protocol": "TCP", "port": "http"}]}]}))
    assert p.name == "knp.default.p" and p.order == 1000 and p.types == (INGRESS, EGRESS)
    assert p.scope == Scope(namespace="x") and p.selector == "all()"
    assert [(r.protocol, [s.text() for s in r.destination.ports]) for r in p.egress] == [
        ("udp", ["53"]), ("tcp", ["80:90", "http"])]
    assert p.egress[0].destination.nets == ("10.0.0.0/8",)
    assert p.egress[0].destination.not_nets == ("10.1.0.0/16",)
    # no policyTypes and an empty egress list: ingress only (the defaulting trap)
    assert from_k8s(k8s("q", "x", {"podSelector": {}, "egress": []})).types == (INGRESS,)
    # explicit Ingress-only with egress rules: the egress rules are not enforced
    r = from_k8s(k8s("r", "x", {"podSelector": {}, "policyTypes": ["Ingress"],
                                 "egress": [{}]}))
    assert r.types == (INGRESS,) and r.egress == ()
    # a port entry without a number: the whole protocol
    w = from_k8s(k8s("w", "x", {"podSelector": {}, "ingress": [{"ports": [
        {"protocol": "SCTP"}]}]}))
    assert [(x.protocol, x.destination.ports) for x in w.ingress] == [("sctp", ())]
    # namespaceSelector {} alone: every namespace, every pod
    e = from_k8s(k8s("e", "x", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {}}]}]}))
    assert e.ingress[0].source.scope == Scope() and e.ingress[0].source.selector == "all()"


def test_calico_types_defaulting():
    def cnp(spec):
        return from_calico({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                            "metadata": {"name": "n", "namespace": "x"}, "spec": spec})
    assert cnp({}).types == (INGRESS,)
    assert cnp({"egress": [{"action": "Allow"}]}).types == (EGRESS,)
    assert cnp({"egress": [{"action": "Allow"}], "ingress": [{"action": "Deny"}]}).types == (
        INGRESS, EGRESS)
    assert cnp({}).name == "default.n" and cnp({}).order is None


# -- renderer: diffs ---------------------------------------------------------------------

def as_saved(restore_text: str) -> str:
    """What iptables-save shows after applying a full render to an empty node."""
    out = []
    for line in restore_text.splitlines():
        if line.startswith("-I "):
            w = line.split(" ", 3)
            line = f"-A {w[1]} {w[3]}"
        out.append(line)
    return "\n".join(out)


def test_rerender_after_apply_is_empty_and_changes_are_minimal():
    dp = compile_node("node-1", xyz(), NSS, [from_k8s(ALLOW_B)])
    current = parse_save(as_saved(render_full(dp)))
    assert render_iptables(dp, current) == ""
    # a remote pod joining a selected group: ipset members only, no iptables change
    dp2 = compile_node("node-1", xyz(extra_remote=1), NSS, [from_k8s(ALLOW_B)])
    assert render_iptables(dp2, current) == ""
    sets = parse_ipset_save(render_ipsets_full(dp.ipsets))
    pre, post = render_ipsets(dp2.ipsets, sets)
    assert sorted(pre.splitlines()) == [
        "add " + next(n for n in dp.ipsets if n.startswith("cali40n:")) + " 10.244.8.0,tcp:80",
        "add " + next(n for n in dp.ipsets if n.startswith("cali40s:")) + " 10.244.8.0"]
    assert post == "" and inverse_member_changes(pre).splitlines()[0].startswith("del ")
    # the policy deleted: its chain flushed and deleted, the tier gone, its sets destroyed
    dp3 = compile_node("node-1", xyz(), NSS, [])
    text = render_iptables(dp3, current)
    pi = N.policy_in("x/knp.default.allow-b")
    assert f":{pi} - [0:0]" in text and text.rstrip().endswith("COMMIT")
    assert f"-X {pi}" in text and "-A cali-tw-calixa000000000 " in text
    assert "-A cali-tw-calixb000000000 " not in text       # untouched chains stay
    assert "-I FORWARD" not in text                       # hooks are already there
    pre, post = render_ipsets(dp3.ipsets, sets)
    assert pre == "" and sorted(post.split()) == sorted(
        ["destroy", "destroy", *dp.ipsets])


def test_ipset_type_change_is_swapped_in():
    dp = compile_node("node-1", xyz(), NSS, [from_k8s(ALLOW_B)])
    name = next(n for n in dp.ipsets if n.startswith("cali40s:"))
    current = parse_ipset_save(f"create {name} hash:ip family inet\nadd {name} 10.244.0.6\n"
                               "create other-set hash:ip\n")
    assert "other-set" not in current                     # not ours: never touched
    pre, _ = render_ipsets({name: dp.ipsets[name]}, current)
    assert pre.splitlines()[0] == "create cali4t0 hash:net family inet maxelem 1048576"
    assert pre.splitlines()[-2:] == [f"swap cali4t0 {name}", "destroy cali4t0"]


def test_golden_render():
    dp = compile_node("node-1", xyz(), NSS, [from_k8s(ALLOW_B)])
    text = render_full(dp) + "\n# ipsets\n" + render_ipsets_full(dp.ipsets)
    path = GOLDEN / "xyz_allow_b_node1.txt"
    if os.environ.get("CALINET_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize("direction", [INGRESS, EGRESS])
def test_every_chain_name_and_set_name_fits(direction):
    dp = compile_node("node-1", xyz(), NSS, [from_k8s(ALLOW_B)])
    assert all(len(n) <= 28 for t in dp.chains.values() for n in t)
    assert all(len(n) <= 31 for n in dp.ipsets)


def test_many_local_endpoints_get_a_two_level_dispatch_tree():
    eps = [endpoint("x", f"p{i}", "node-1", f"cali{i:011x}"[:4] + f"{(i * 7919) % 16:x}"
                    + f"{i:010x}", f"10.244.1.{i}", {"pod": "a"}) for i in range(40)]
    dp = compile_node("node-1", eps, NSS, [])
    root = chain(dp, N.FROM_WL_DISPATCH)
    children = {n: c for n, c in dp.chains[FILTER].items()
                if n.startswith(N.FROM_WL_DISPATCH + "-")}
    assert len(root.rules) <= 17 and root.rules[-1].comment == "Unknown interface"
    assert all(r.match[1].startswith("cali") and r.match[1].endswith("+")
               for r in root.rules[:-1])
    gotos = [r.target[1] for c in children.values() for r in c.rules if r.target[0] == "-g"]
    assert sorted(gotos) == sorted(N.from_workload(ep.iface) for ep in eps)
    assert all(len(n) <= 28 for n in children)
    # few endpoints: one flat chain, as before
    assert not any(n.startswith(N.FROM_WL_DISPATCH + "-")
                   for n in compile_node("node-1", xyz(), NSS, []).chains[FILTER])


def test_a_shared_compile_cache_compiles_exactly_what_a_fresh_compile_does():
    # The policy agent keeps compiled policy and endpoint chains and set members across
    # passes and nodes; every corpus case's steps (policy updates and deletes, pod and
    # namespace label changes) are compiled through one shared cache and must equal a
    # compilation from scratch, sets included (a cached chain brings its sets' current
    # members, not the ones it was compiled with).
    from orchestrator import api
    from policy import cases
    from policy.model import from_object

    ips = {f"{ns}/{p}": f"10.244.{i}.{j + 2}" for i, ns in enumerate("xyz")
           for j, p in enumerate("abc")}
    cache = CompileCache()
    hits = 0
    corpus = Path(__file__).resolve().parents[2] / "conformance" / "cases"
    for case in cases.load_dir(corpus):
        steps = cases.replay(case, cases.x_y_z_model(ips), ips=ips, podcidr="10.244.0.0/16",
                             normalize=lambda m: api.normalize(m, now="2026-01-01T00:00:00Z"))
        for _n, _step, model, objs in steps:
            pols = [from_object(o) for o in objs]
            eps = [endpoint(p["namespace"], p["name"], NODES[p["name"]],
                            f"cali{p['namespace']}{p['name']}{'0' * 9}", p["ip"], p["labels"],
                            [(x["name"], x["protocol"].lower(), x["port"]) for x in p["ports"]])
                   for p in model.pods]
            memo: dict = {}
            for node in ("node-1", "node-2"):
                before = len(cache.policy_chains)
                cached = compile_node(node, eps, model.namespaces, pols, memo=memo,
                                      cache=cache)
                hits += before == len(cache.policy_chains) and bool(pols)
                assert cached == compile_node(node, eps, model.namespaces, pols), \
                    f"{case.name} on {node}"
    assert hits > 50      # the cache was really used, not refilled every time


def test_host_encapsulation_rules_golden():
    """Felix's cali-INPUT/cali-OUTPUT rules for IPIP and VXLAN, with their host sets, only
    while such a pool is enabled."""
    from policy.hostencap import encap_parts, encap_pool_specs, with_host_encap
    pools = [{"spec": {"cidr": "10.244.0.0/16", "ipipMode": "CrossSubnet"}},
             {"spec": {"cidr": "10.245.0.0/16", "vxlanMode": "Always"}},
             {"spec": {"cidr": "10.246.0.0/16", "ipipMode": "Always", "disabled": True}}]
    hosts = [("172.18.1.2", True), ("172.18.2.2", False)]
    base = compile_node("node-1", xyz(), NSS, [from_k8s(ALLOW_B)])
    dp = with_host_encap(base, encap_parts(encap_pool_specs(pools), hosts))
    assert base.ipsets.keys().isdisjoint({"cali40all-hosts-net", "cali40all-vxlan-net"})
    assert dp.ipsets["cali40all-hosts-net"].members == {"172.18.1.2/32", "172.18.2.2/32"}
    assert dp.ipsets["cali40all-vxlan-net"].members == {"172.18.1.2/32"}
    text = render_full(dp) + "\n# ipsets\n" + render_ipsets_full(
        {k: v for k, v in dp.ipsets.items() if k.startswith("cali40all-")})
    path = GOLDEN / "host_encap_node1.txt"
    if os.environ.get("CALINET_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()
    # No encapsulated pool: the compile's own dataplane, untouched.
    none = encap_parts(encap_pool_specs([pools[2]]), hosts)
    assert with_host_encap(base, none) is base
