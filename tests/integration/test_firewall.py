"""The policy applier against real iptables and ipset in a throwaway netns: bulk, idempotent,
incremental, atomic on failure, and blind to everything that is not its own."""

from __future__ import annotations

import re

import pytest

from orchestrator.errors import ApplyError
from orchestrator.host.runner import DEFAULT
from orchestrator.node.firewall import Firewall
from orchestrator.node.restore_session import RestoreSession
from policy.compiler import compile_node, endpoint
from policy.ir import Chain, Rule
from policy.model import from_k8s

pytestmark = pytest.mark.root


def model(extra: int = 0):
    eps = [endpoint(ns, p, "n1" if p != "c" else "n2", f"cali{ns}{p}000000000",
                    f"10.244.0.{i}", {"pod": p}, [("serve-80-tcp", "tcp", 80)])
           for i, (ns, p) in enumerate(((ns, p) for ns in "xy" for p in "abc"), start=2)]
    eps += [endpoint("y", f"r{j}", "n3", "", f"10.244.9.{j}", {"pod": "b"}) for j in range(extra)]
    return eps


NSS = {"x": {"ns": "x"}, "y": {"ns": "y"}}
POLICY = from_k8s({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "allow-b", "namespace": "x"},
                   "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}},
                                                   "namespaceSelector": {}}],
                                         "ports": [{"protocol": "TCP",
                                                    "port": "serve-80-tcp"}]}]}})


def save(ns):
    return DEFAULT.run(["iptables-save"], netns=ns).stdout


def sets(ns):
    return DEFAULT.run(["ipset", "save"], netns=ns).stdout


@pytest.fixture
def node(make_netns):
    ns = make_netns("calinet-fwtest", "10.9.0.1")
    # Someone else's rules and set: must survive everything we do.
    DEFAULT.run(["iptables-restore", "--noflush"], netns=ns, input=(
        "*filter\n:other-chain - [0:0]\n-A FORWARD -j other-chain\n"
        "-A other-chain -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"))
    DEFAULT.run(["ipset", "create", "other-set", "hash:ip"], netns=ns)
    yield ns
    # ipsets are destroyed with the netns; nothing else to remove


@pytest.fixture(params=["fork", "session"])
def make_fw(request, node):
    """Firewalls that fork iptables-restore per write, or write through one long-lived
    restore_session (as the testbed's agent does): the same behaviour either way."""
    sessions = []

    def make():
        session = None
        if request.param == "session":
            session = RestoreSession(DEFAULT, netns=node)
            if not session.available:
                pytest.skip("no /proc/<pid>/syscall: sessions unavailable")
            sessions.append(session)
        return Firewall("n1", None, netns=node, session=session)
    yield make
    for session in sessions:
        session.close()


def test_apply_is_bulk_idempotent_and_incremental(node, make_fw):
    fw = make_fw()
    dp = compile_node("n1", model(), NSS, [POLICY])
    w = fw.apply(dp)
    assert w.iptables.count("COMMIT") == 2 and w.changed
    text = save(node)
    assert "-A FORWARD -m comment --comment \"cali:" in text and "-j cali-FORWARD" in text
    assert "cali-pi-_" in text and "-m set --match-set cali40s:" in text
    assert "other-chain" in text and "-A other-chain -p tcp -m tcp --dport 22 -j ACCEPT" in text
    # idempotent, also when the state is read back from the kernel
    assert not fw.apply(dp).changed
    fw.refresh()
    assert not fw.apply(dp).changed, "hashes read back from iptables-save must match"
    # a remote pod joins the selected group: members change, no chain is rewritten
    fw.refresh()
    w = fw.apply(compile_node("n1", model(extra=1), NSS, [POLICY]))
    assert w.iptables == "" and "10.244.9.0" in w.ipset_pre
    assert "10.244.9.0" in sets(node)
    # the policy goes: its chain and sets go, the rest stays
    w = fw.apply(compile_node("n1", model(extra=1), NSS, []))
    text = save(node)
    assert "cali-pi-_" not in text and "cali40s:" not in sets(node)
    assert "other-chain" in text and "other-set" in sets(node)
    assert "-j cali-FORWARD" in text


def test_failed_restore_keeps_the_old_rules_and_ipsets(node, make_fw):
    fw = make_fw()
    dp = compile_node("n1", model(), NSS, [POLICY])
    fw.apply(dp)
    before_rules, before_sets = save(node), sets(node)
    bad = compile_node("n1", model(extra=1), NSS, [POLICY])
    bad.add_chain("filter", Chain("cali-broken", (Rule(("-m", "nosuchmatch"), ("-j", "DROP")),)))
    with pytest.raises(ApplyError) as err:
        fw.apply(bad)
    assert "previous rules kept" in str(err.value) and "cali-broken" in err.value.rendered_input
    strip = lambda t: [ln for ln in t.splitlines() if not ln.startswith("#")]  # noqa: E731
    assert strip(save(node)) == strip(before_rules)
    assert sets(node) == before_sets, "the ipset member changes were undone"
    # and the next good apply still works (the applier re-reads after a failure)
    assert fw.apply(compile_node("n1", model(extra=1), NSS, [POLICY])).changed
    assert "10.244.9.0" in sets(node)


def test_dispatch_tree_for_many_endpoints_is_accepted(node):
    eps = [endpoint("x", f"p{i}", "n1", f"cali{i:011x}", f"10.244.1.{i}", {"pod": "a"})
           for i in range(60)]
    fw = Firewall("n1", None, netns=node)
    fw.apply(compile_node("n1", eps, NSS, [POLICY]))
    text = save(node)
    assert "-A cali-from-wl-dispatch -i cali0+ -m comment" in text or \
        "-A cali-from-wl-dispatch -i cali0+" in text.replace(' -m comment --comment', '')
    fw.refresh()
    assert not fw.apply(compile_node("n1", eps, NSS, [POLICY])).changed


class _Counting:
    """DEFAULT, counting the reads (iptables-save, ipset save) it forks."""

    def __init__(self):
        self.reads = 0

    def run(self, argv, **kw):
        if argv[:1] == ["iptables-save"] or argv[:2] == ["ipset", "save"]:
            self.reads += 1
        return DEFAULT.run(argv, **kw)


def test_a_fresh_netns_is_written_without_reading_it_first(make_netns):
    # fresh=True (the testbed's nodes, made just before): the first apply forks no read and
    # leaves exactly what an applier that read the empty netns leaves.
    dp = compile_node("n1", model(), NSS, [POLICY])
    fresh_ns, read_ns = make_netns("calinet-fwfresh", "10.9.0.1"), make_netns("calinet-fwread", "10.9.0.1")
    counting = _Counting()
    fresh = Firewall("n1", None, counting, netns=fresh_ns, fresh=True)
    assert fresh.apply(dp).changed and counting.reads == 0
    Firewall("n1", None, netns=read_ns).apply(dp)

    def body(text):    # without comments, hash seeds (initval) and member order
        return sorted(re.sub(r" initval 0x[0-9a-f]+", "", line) for line in text.splitlines()
                      if not line.startswith("#"))
    assert body(save(fresh_ns)) == body(save(read_ns))
    assert body(sets(fresh_ns)) == body(sets(read_ns))
    assert not fresh.apply(dp).changed and counting.reads == 0    # trusted, as always
    fresh.refresh()
    assert not fresh.apply(dp).changed and counting.reads == 2    # ... until refreshed
