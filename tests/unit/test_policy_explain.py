"""explain(): the policy and rule that decide a flow, per side, in the dataplane's order."""

from __future__ import annotations

import pytest

from policy.compiler import endpoint
from policy.explain import explain
from policy.model import from_calico, from_k8s

EPS = [endpoint(ns, p, f"node-{i % 3 + 1}", f"cali{ns}{p}000000000", f"10.244.0.{i}",
                {"pod": p}, [("serve-80-tcp", "tcp", 80), ("serve-80-udp", "udp", 80)])
       for i, (ns, p) in enumerate(((ns, p) for ns in "xyz" for p in "abc"), start=2)]
NSS = {n: {"ns": n, "kubernetes.io/metadata.name": n} for n in "xyz"}
ALLOW_B = from_k8s({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": "allow-b", "namespace": "x"},
                    "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                             "policyTypes": ["Ingress"],
                             "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}},
                                                    "namespaceSelector": {}}],
                                          "ports": [{"protocol": "TCP",
                                                     "port": "serve-80-tcp"}]}]}})


def test_allowed_by_rule_and_no_policy_on_egress():
    e = explain("y/b", "x/a", 80, "TCP", EPS, NSS, [ALLOW_B])
    assert e.allowed
    text = e.text()
    assert text.splitlines()[0] == "y/b (10.244.0.6) -> x/a (10.244.0.2) TCP/80: ALLOWED"
    assert "egress of y/b, chain cali-fw-caliyb000000000 on node-1: allowed" in text
    assert "no policy selects y/b for egress: allowed by profile kns.y" in text
    assert "1. NetworkPolicy x/allow-b (knp.default.allow-b, order 1000, chain cali-pi-_" in text
    assert "-> allowed by NetworkPolicy x/allow-b ingress[0].from[0]" in text


@pytest.mark.parametrize("src, port, proto, why", [
    ("x/c", 80, "TCP", "source not selected by \"pod == 'b'\""),
    ("y/b", 81, "TCP", "destination port 81 not in serve-80-tcp"),
    ("y/b", 80, "UDP", "protocol TCP is not UDP"),
])
def test_denied_at_end_of_tier_with_the_reason(src, port, proto, why):
    e = explain(src, "x/a", port, proto, EPS, NSS, [ALLOW_B])
    assert not e.allowed
    text = e.text()
    assert why in text, text
    assert "-> end of tier default: DROP (policies apply, none allowed it)" in text


def test_calico_order_deny_pass_and_addresses():
    deny = from_calico({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                        "metadata": {"name": "deny-y"},
                        "spec": {"order": 10, "selector": "pod == 'a'", "ingress": [
                            {"action": "Log"},
                            {"action": "Deny", "source": {"namespaceSelector": "ns == 'y'"}},
                            {"action": "Pass", "source": {"nets": ["10.99.0.0/16"]}}]}})
    e = explain("y/b", "x/a", 80, "TCP", EPS, NSS, [ALLOW_B, deny])
    lines = e.text().splitlines()
    assert not e.allowed
    assert any(ln.strip().startswith("1. GlobalNetworkPolicy deny-y") for ln in lines)
    assert "(logged; evaluation goes on)" in e.text()
    assert "-> denied by GlobalNetworkPolicy deny-y ingress[1]" in e.text()
    out = explain("10.99.1.1", "x/a", 80, "TCP", EPS, NSS, [ALLOW_B, deny])
    assert out.allowed and "not a pod: no egress policy applies" in out.text()
    assert "passed to the next tier: profile kns.x allows" in out.text()
    with pytest.raises(KeyError):
        explain("x/nope", "x/a", 80, "TCP", EPS, NSS, [])


# -- IPv6: one family per flow, the rules of that family's dataplane -----------------------

EPS6 = [endpoint(e.namespace, e.name, e.node, e.iface, e.ip, dict(e.labels), e.ports,
                 "fd00:10:244::" + e.ip.rsplit(".", 1)[1]) for e in EPS]
ONLY6 = [endpoint(e.namespace, e.name, e.node, e.iface, e.ip6, dict(e.labels), e.ports)
         for e in EPS6]


def calico(name, rules, selector="pod == 'a'", order=10):
    return from_calico({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                        "metadata": {"name": name},
                        "spec": {"order": order, "selector": selector, "ingress": rules}})


def test_ipv6_between_pods_uses_their_ipv6_addresses_and_ip6tables():
    e = explain("y/b", "x/a", 80, "TCP", EPS6, NSS, [ALLOW_B], family=6)
    assert e.allowed and e.family == 6
    lines = e.text().splitlines()
    assert lines[0] == "y/b (fd00:10:244::6) -> x/a (fd00:10:244::2) TCP/80: ALLOWED"
    assert "egress of y/b, chain cali-fw-caliyb000000000 on node-1 (ip6tables): allowed" in lines[1]
    assert "-> allowed by NetworkPolicy x/allow-b ingress[0].from[0]" in e.text()
    # the same pods without --family: IPv4, as before
    assert explain("y/b", "x/a", 80, "TCP", EPS6, NSS, [ALLOW_B]).text().splitlines()[0] == \
        "y/b (10.244.0.6) -> x/a (10.244.0.2) TCP/80: ALLOWED"


def test_an_ipv6_only_pod_is_explained_in_ipv6():
    """explain used to crash here (the pod's IPv4 address is "")."""
    e = explain("x/c", "x/a", 80, "TCP", ONLY6, NSS, [ALLOW_B])
    assert e.family == 6 and not e.allowed
    assert e.src == "x/c (fd00:10:244::4)"
    assert "source not selected by \"pod == 'b'\"" in e.text()


def test_ipblocks_match_in_their_own_family_only():
    pol = from_k8s({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": "blocks", "namespace": "x"},
                    "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                             "ingress": [{"from": [{"ipBlock": {"cidr": "10.99.0.0/16"}}]},
                                         {"from": [{"ipBlock": {
                                             "cidr": "fd00:99::/64",
                                             "except": ["fd00:99::/96"]}}]}]}})
    e = explain("fd00:99::1:0:0:7", "x/a", 80, "TCP", EPS6, NSS, [pol])
    assert e.allowed and e.family == 6, e.text()
    assert ("ingress[0].from[0] Allow: no (source nets 10.99.0.0/16 hold no IPv6 network)"
            in e.text())
    assert "-> allowed by NetworkPolicy x/blocks ingress[1].from[0]" in e.text()
    inside_except = explain("fd00:99::7", "x/a", 80, "TCP", EPS6, NSS, [pol])
    assert not inside_except.allowed
    assert "source fd00:99::7 in notNets fd00:99::/96" in inside_except.text()
    # an IPv4 address of the same policy: the IPv6 block is nothing to it
    v4 = explain("10.99.0.7", "x/a", 80, "TCP", EPS6, NSS, [pol])
    assert v4.allowed and "-> allowed by NetworkPolicy x/blocks ingress[0].from[0]" in v4.text()


def test_calico_ip_version_rules_apply_to_their_family():
    pol = calico("versions", [
        {"action": "Deny", "ipVersion": 6, "source": {"selector": "pod == 'b'"}},
        {"action": "Allow", "ipVersion": 4},
        {"action": "Allow", "protocol": "TCP"}])
    v6 = explain("y/b", "x/a", 80, "TCP", EPS6, NSS, [pol], family=6)
    assert not v6.allowed and "-> denied by GlobalNetworkPolicy versions ingress[0]" in v6.text()
    v4 = explain("y/b", "x/a", 80, "TCP", EPS6, NSS, [pol])
    assert v4.allowed
    assert "ingress[0] Deny: no (an IPv6 rule)" in v4.text()
    assert "-> allowed by GlobalNetworkPolicy versions ingress[1]" in v4.text()
    c6 = explain("y/c", "x/a", 80, "TCP", EPS6, NSS, [pol], family=6)
    assert "ingress[1] Allow: no (an IPv4 rule)" in c6.text()
    assert "-> allowed by GlobalNetworkPolicy versions ingress[2]" in c6.text()


def test_icmp_rules_per_family():
    pol = calico("icmp", [{"action": "Allow", "protocol": "ICMPv6", "icmp": {"type": 128}},
                          {"action": "Allow", "protocol": "ICMP"}])
    e = explain("y/b", "x/a", 0, "ICMPv6", EPS6, NSS, [pol], family=6)
    assert e.allowed and "-> allowed by GlobalNetworkPolicy icmp ingress[0]" in e.text()
    e4 = explain("y/b", "x/a", 0, "ICMP", EPS6, NSS, [pol])
    assert e4.allowed and "ingress[0] Allow: no (protocol ICMPV6 is not ICMP)" in e4.text()
    with pytest.raises(ValueError, match="protocol ICMP: an IPv6 flow's ICMP is ICMPV6"):
        explain("y/b", "x/a", 0, "ICMP", EPS6, NSS, [pol], family=6)


def test_an_ipv6_address_finds_its_pod_in_any_spelling():
    e = explain("fd00:10:244:0:0:0:0:6", "x/a", 80, "TCP", EPS6, NSS, [ALLOW_B])
    assert e.allowed and e.sides[0].endpoint.key == "y/b"


@pytest.mark.parametrize("src, dst, family, why", [
    ("10.244.0.6", "fd00:10:244::2", None,
     "10.244.0.6 is an IPv4 address and fd00:10:244::2 an IPv6 one: a flow has one IP family"),
    ("10.244.0.6", "x/a", 6, "10.244.0.6 is an IPv4 address, the flow is asked for in IPv6"),
    ("y/b", "fd00:10:244::2", 4,
     "fd00:10:244::2 is an IPv6 address, the flow is asked for in IPv4"),
    ("y/b", "fd00:10:244::2", 7, "family 7: use 4 or 6"),
])
def test_family_mismatches_are_clear_errors(src, dst, family, why):
    with pytest.raises(ValueError) as err:
        explain(src, dst, 80, "TCP", EPS6, NSS, [ALLOW_B], family=family)
    assert str(err.value) == why


def test_a_pod_without_an_address_of_the_family_is_named():
    with pytest.raises(ValueError, match=r"pod y/b has no IPv6 address \(it has 10.244.0.6\)"):
        explain("y/b", "x/a", 80, "TCP", EPS, NSS, [ALLOW_B], family=6)
    with pytest.raises(ValueError, match=r"pod x/a has no IPv4 address \(it has "
                                         r"fd00:10:244::2\)"):
        explain("10.244.0.6", "x/a", 80, "TCP", ONLY6, NSS, [ALLOW_B])
    with pytest.raises(KeyError, match="neither a pod .* nor an IPv4 or IPv6 address"):
        explain("fd00::zz", "x/a", 80, "TCP", EPS6, NSS, [])
