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
