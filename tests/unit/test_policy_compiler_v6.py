"""The policy compiler's IPv6 dataplane (pure): Felix's ip6tables layout, cali60 ipsets of the
pods' IPv6 addresses, rules kept to their family, ICMPv6, the router ICMPv6 a pod always
needs, and a golden file of a dual-stack node's ip6tables."""

from __future__ import annotations

import os
from pathlib import Path

from policy import names as N
from policy.compiler import ICMPV6_ROUTER_TYPES, Context, compile_node, endpoint, rule_matches
from policy.ir import FILTER
from policy.model import Entity, Rule, from_calico, from_k8s
from policy.natoutgoing import nat_parts
from policy.render import parse_ipset_save, render_full, render_ipsets, render_ipsets_full

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "policy"
NODES = {"a": "node-1", "b": "node-1", "c": "node-2"}
NSS = {n: {"ns": n, "kubernetes.io/metadata.name": n} for n in "xy"}


def dual():
    eps, i = [], 2
    for ns in "xy":
        for p in "abc":
            eps.append(endpoint(ns, p, NODES[p], f"cali{ns}{p}{'0' * 9}", f"10.244.0.{i}",
                                {"pod": p}, [("http", "tcp", 80)], f"fd00:10:244::{i:x}"))
            i += 1
    return eps


def k8s(name, ns, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


ALLOW_B = k8s("allow-b", "x", {
    "podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"],
    "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}],
                 "ports": [{"protocol": "TCP", "port": "http"}]},
                {"from": [{"ipBlock": {"cidr": "fd00:99::/64", "except": ["fd00:99::/96"]}},
                          {"ipBlock": {"cidr": "192.168.0.0/16"}}]}]})


def test_endpoint_takes_addresses_in_either_order():
    a = endpoint("x", "a", "n", "calia", "fd00::5", ip6="10.0.0.5")
    b = endpoint("x", "a", "n", "calia", "10.0.0.5", ip6="fd00::5")
    assert (a.ip, a.ip6) == (b.ip, b.ip6) == ("10.0.0.5", "fd00::5")
    only6 = endpoint("x", "a", "n", "calia", "fd00::5")
    assert (only6.ip, only6.ip6) == ("", "fd00::5")


def test_selector_sets_hold_ipv6_addresses_with_felixs_v6_prefix():
    dp = compile_node("node-1", dual(), NSS, [from_k8s(ALLOW_B)], family=6)
    sel = [s for s in dp.ipsets.values() if s.name.startswith("cali60s:")]
    assert sel and all(s.family == 6 for s in dp.ipsets.values())
    assert {m for s in sel for m in s.members} >= {"fd00:10:244::3/128"}
    named = [s for s in dp.ipsets.values() if s.name.startswith("cali60n:")]
    assert named and {m for s in named for m in s.members} == {
        f"fd00:10:244::{i},tcp:80" for i in range(2, 8)}
    # the same selector's IPv4 set: same hashed name but for the prefix
    dp4 = compile_node("node-1", dual(), NSS, [from_k8s(ALLOW_B)])
    assert sorted(n[6:] for n in dp4.ipsets if n.startswith("cali40s:")) == \
        sorted(n[6:] for n in dp.ipsets if n.startswith("cali60s:"))


def test_ipblocks_stay_in_their_family():
    rules = compile_node("node-1", dual(), NSS, [from_k8s(ALLOW_B)], family=6)
    text = render_full(rules)
    assert "-s fd00:99::/64" in text and "192.168.0.0/16" not in text
    text4 = render_full(compile_node("node-1", dual(), NSS, [from_k8s(ALLOW_B)]))
    assert "192.168.0.0/16" in text4 and "fd00:99" not in text4


def test_protocols_and_ip_version_per_family():
    ctx6, ctx4 = Context(dual(), NSS, family=6), Context(dual(), NSS)
    icmp6 = Rule("Allow", protocol="icmpv6", icmp=(128, 0))
    assert rule_matches(ctx6, icmp6) == [("-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type",
                                         "128/0")]
    assert rule_matches(ctx4, icmp6) == []
    icmp4 = Rule("Allow", protocol="icmp", icmp=(8, None))
    assert rule_matches(ctx6, icmp4) == [] and rule_matches(ctx4, icmp4)
    v6only = Rule("Deny", ip_version=6, protocol="tcp")
    assert rule_matches(ctx6, v6only) == [("-p", "tcp")] and rule_matches(ctx4, v6only) == []
    v4only = Rule("Deny", ip_version=4, protocol="udp")
    assert rule_matches(ctx6, v4only) == [] and rule_matches(ctx4, v4only) == [("-p", "udp")]
    # a rule whose nets are all IPv4 matches nothing in IPv6, and the reverse
    assert rule_matches(ctx6, Rule("Allow", source=Entity(nets=("10.0.0.0/8",)))) == []
    assert rule_matches(ctx6, Rule("Allow", source=Entity(nets=("::/0",)))) == [()]
    assert rule_matches(ctx6, Rule("Allow", source=Entity(not_nets=("::/0",)))) == []


def test_calico_policy_with_ip_version_6_is_programmed_in_ip6tables_only():
    gnp = from_calico({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                       "metadata": {"name": "v6-echo"},
                       "spec": {"selector": "pod == 'a'", "ingress": [
                           {"action": "Allow", "ipVersion": 6, "protocol": "ICMPv6",
                            "icmp": {"type": 128}}]}})
    dp6 = compile_node("node-1", dual(), NSS, [gnp], family=6)
    dp4 = compile_node("node-1", dual(), NSS, [gnp])
    rules6 = dp6.chains[FILTER][N.policy_in("default.v6-echo")].rules
    assert rules6[0].text().startswith("-p ipv6-icmp -m icmp6 --icmpv6-type 128")
    assert dp4.chains[FILTER][N.policy_in("default.v6-echo")].rules == ()


def test_router_icmpv6_is_accepted_from_pods_before_their_egress_policy():
    dp6 = compile_node("node-1", dual(), NSS, [], family=6)
    wl = dp6.chains[FILTER][N.WL_TO_HOST].rules
    types = [r.match[-1] for r in wl[:len(ICMPV6_ROUTER_TYPES)]]
    assert types == [str(t) for t in ICMPV6_ROUTER_TYPES] == ["130", "131", "132", "133",
                                                              "135", "136"]
    assert all(r.target == ("-j", "ACCEPT") for r in wl[:6])
    assert wl[6].target == ("-j", N.FROM_WL_DISPATCH)
    dp4 = compile_node("node-1", dual(), NSS, [])
    assert dp4.chains[FILTER][N.WL_TO_HOST].rules[0].target == ("-j", N.FROM_WL_DISPATCH)
    # no IPIP/VXLAN drop in the IPv6 workload chains (Felix: IPIP is IPv4 only)
    fw6 = render_full(dp6)
    assert "ipencap" not in fw6 and "4789" not in fw6 and "ipencap" in render_full(dp4)


def test_ipv6_sets_render_as_inet6_and_parse_back():
    dp6 = compile_node("node-1", dual(), NSS, [from_k8s(ALLOW_B)], family=6)
    pre, _ = render_ipsets(dp6.ipsets, {})
    assert all("family inet6" in line for line in pre.splitlines() if line.startswith("create"))
    assert "fd00:10:244::3/128" not in pre and "fd00:10:244::3" in pre   # as ipset save
    save = pre.replace("maxelem", "hashsize 1024 maxelem")
    back = parse_ipset_save(save)
    assert all(s.family == 6 for s in back.values())
    assert render_ipsets(dp6.ipsets, back) == ("", "")


def test_nat_outgoing_per_family():
    pools = [{"cidr": "10.244.0.0/16", "natOutgoing": True},
             {"cidr": "fd00:10:244::/56", "natOutgoing": False}]
    _c4, _h4, sets4 = nat_parts(pools)
    _c6, _h6, sets6 = nat_parts(pools, family=6)
    assert sets4["cali40all-ipam-pools"].members == {"10.244.0.0/16"}
    assert sets6["cali60all-ipam-pools"].members == {"fd00:10:244::/56"}
    assert sets6["cali60masq-ipam-pools"].members == frozenset()
    assert sets6["cali60all-ipam-pools"].family == 6


def test_golden_ipv6_render():
    dp = compile_node("node-1", dual(), NSS, [from_k8s(ALLOW_B)], family=6)
    text = render_full(dp) + "\n# ipsets\n" + render_ipsets_full(dp.ipsets)
    path = GOLDEN / "dual_allow_b_node1_v6.txt"
    if os.environ.get("CALINET_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()


def test_set_members_lose_only_their_own_familys_full_length():
    from policy.render import norm_member
    assert norm_member("10.0.0.1/32") == "10.0.0.1"
    assert norm_member("fd00::1/128") == "fd00::1"
    assert norm_member("2001:db8::/32") == "2001:db8::/32"      # a /32 of IPv6 is a network
