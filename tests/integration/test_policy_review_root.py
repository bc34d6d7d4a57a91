"""Review proofs that need the real iptables: valid policies the kernel tools refuse.

Side effects: a throwaway netns (make_netns), its iptables rules and ipsets; removed at
teardown pass or fail.
"""

from __future__ import annotations

import pytest

from orchestrator import api
from orchestrator.node.firewall import Firewall
from policy.compiler import compile_node, endpoint
from policy.model import from_object

pytestmark = pytest.mark.root
NOW = "2026-01-01T00:00:00Z"


def _policy(name: str, rule: dict):
    obj = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": "x"},
           "spec": {"selector": "all()", "ingress": [rule]}}
    return from_object(api.normalize(obj, now=NOW))   # accepted by validation


def test_protocol_with_not_protocol_applies(make_netns):
    ns = make_netns("calinet-review", "10.9.0.1")
    eps = [endpoint("x", "a", "n1", "calixa00000000", "10.244.0.2", {"pod": "a"})]
    good = _policy("good", {"action": "Allow", "protocol": "UDP"})
    bad = _policy("tcp-not-udp", {"action": "Allow", "protocol": "TCP", "notProtocol": "UDP"})
    fw = Firewall("n1", None, netns=ns)
    fw.apply(compile_node("n1", eps, {"x": {}}, [good, bad]))
