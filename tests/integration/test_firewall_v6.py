"""The policy applier with an IPv6 dataplane against real ip6tables and ipset in a throwaway
netns: both families in one apply (cali60 sets family inet6, ip6tables chains), idempotent,
incremental, through long-lived restore sessions of both tools; an IPv6 failure keeps the
previous rules and undoes the set changes; a later IPv4-only apply leaves the IPv6 side alone."""

from __future__ import annotations

import pytest

from orchestrator.errors import ApplyError
from orchestrator.host.runner import DEFAULT
from orchestrator.node.firewall import Firewall
from orchestrator.node.restore_session import ARGV6, RestoreSession
from policy.compiler import compile_node, endpoint
from policy.ir import Chain, Rule
from policy.model import from_k8s

pytestmark = pytest.mark.root
NSS = {"x": {"ns": "x"}, "y": {"ns": "y"}}
POLICY = from_k8s({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "allow-b", "namespace": "x"},
                   "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}},
                                                   "namespaceSelector": {}},
                                                  {"ipBlock": {"cidr": "fd00:99::/64",
                                                               "except": ["fd00:99::/96"]}}],
                                         "ports": [{"protocol": "TCP", "port": "http"}]}]}})


def model(extra: int = 0):
    eps = [endpoint(ns, p, "n1" if p != "c" else "n2", f"cali{ns}{p}000000000",
                    f"10.244.0.{i}", {"pod": p}, [("http", "tcp", 80)], f"fd00:10:244::{i}")
           for i, (ns, p) in enumerate(((ns, p) for ns in "xy" for p in "abc"), start=2)]
    eps += [endpoint("y", f"r{j}", "n3", "", f"10.244.9.{j}", {"pod": "b"},
                     ip6=f"fd00:10:244::9:{j}") for j in range(extra)]
    return eps


def both(eps, policies):
    return (compile_node("n1", eps, NSS, policies),
            compile_node("n1", eps, NSS, policies, family=6))


@pytest.fixture
def node(make_netns):
    ns = make_netns("calinet-fw6test", "10.9.0.1")
    DEFAULT.run(["ip6tables-restore", "--noflush"], netns=ns, input=(
        "*filter\n:other-chain - [0:0]\n-A FORWARD -j other-chain\nCOMMIT\n"))
    yield ns


@pytest.mark.parametrize("sessions", [False, True])
def test_both_families_in_one_apply(node, sessions):
    s4 = s6 = None
    if sessions:
        s4, s6 = RestoreSession(DEFAULT, netns=node), RestoreSession(DEFAULT, netns=node,
                                                                       argv=ARGV6)
        if not s4.available:
            pytest.skip("no /proc/<pid>/syscall: sessions unavailable")
    try:
        fw = Firewall("n1", None, netns=node, session=s4, session6=s6)
        w = fw.apply(*both(model(), [POLICY]))
        assert w.iptables and w.ip6tables and "family inet6" in w.ipset_pre
        save6 = DEFAULT.run(["ip6tables-save"], netns=node).stdout
        assert any(ln.startswith("-A cali-wl-to-host -p ipv6-icmp") and
                   ln.endswith("-m icmp6 --icmpv6-type 135 -j ACCEPT")
                   for ln in save6.splitlines()), save6
        assert "-s fd00:99::/64" in save6 and "other-chain" in save6
        sets = DEFAULT.run(["ipset", "save"], netns=node).stdout
        assert "family inet6" in sets and "fd00:10:244::3" in sets
        # idempotent, read back from the kernel too
        assert not fw.apply(*both(model(), [POLICY])).changed
        fresh = Firewall("n1", None, netns=node)
        assert not fresh.apply(*both(model(), [POLICY])).changed
        # a remote pod joins: one member in each family's selector set
        w = fw.apply(*both(model(extra=1), [POLICY]))
        adds = [ln for ln in w.ipset_pre.splitlines() if ln.startswith("add")]
        assert len(adds) == 2 and any("fd00:10:244::9:0" in a for a in adds)
        assert not w.iptables and not w.ip6tables
    finally:
        for s in (s4, s6):
            if s is not None:
                s.close()


def test_an_ipv6_failure_keeps_the_previous_rules(node):
    fw = Firewall("n1", None, netns=node)
    dp4, dp6 = both(model(), [POLICY])
    fw.apply(dp4, dp6)
    before = DEFAULT.run(["ip6tables-save"], netns=node).stdout
    bad4, bad6 = both(model(extra=1), [POLICY])
    bad6.add_chain("filter", Chain("cali-broken", (Rule(("-p", "nosuchproto"), ("-j", "DROP")),)))
    with pytest.raises(ApplyError, match="ip6tables-restore failed"):
        fw.apply(bad4, bad6)
    assert [ln for ln in DEFAULT.run(["ip6tables-save"], netns=node).stdout.splitlines()
            if "cali" in ln] == [ln for ln in before.splitlines() if "cali" in ln]
    sets = DEFAULT.run(["ipset", "save"], netns=node).stdout
    assert "fd00:10:244::9:0" not in sets        # the member added for the failed write is gone
    assert fw.apply(dp4, dp6) is not None        # and the next good apply converges
    assert not Firewall("n1", None, netns=node).apply(dp4, dp6).changed


def test_an_ipv4_only_apply_leaves_ipv6_alone(node):
    fw = Firewall("n1", None, netns=node)
    dp4, dp6 = both(model(), [POLICY])
    fw.apply(dp4, dp6)
    w = fw.apply(dp4)
    assert not w.changed
    assert "cali60" in DEFAULT.run(["ipset", "save"], netns=node).stdout
