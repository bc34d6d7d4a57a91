"""The kube-proxy applier against real iptables in a throwaway netns: one restore, only KUBE-
chains, idempotent, incremental, and the rules really balance connections over endpoints."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from kubeproxy import Endpoint, ServicePort, compile_nat
from orchestrator.errors import ApplyError
from orchestrator.host.runner import DEFAULT, RecordingRunner, Result, in_netns
from orchestrator.node.kubeproxy_agent import NatApplier

pytestmark = pytest.mark.root

BACKENDS = ("10.9.0.1", "10.9.0.2", "10.9.0.3")
EPS = tuple(Endpoint(ip, 8080) for ip in BACKENDS)


def web(eps=EPS, **kw):
    return ServicePort("default", "web", "http", "TCP", "10.96.0.50", 80, endpoints=eps, **kw)


def save(ns):
    return DEFAULT.run(["iptables-save", "-t", "nat"], netns=ns).stdout


@pytest.fixture
def node(make_netns):
    ns = make_netns("calinet-kptest", BACKENDS[0])
    for ip in BACKENDS[1:]:
        DEFAULT.run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "x0"])
    # The route lookup before nat OUTPUT needs one for the ClusterIP (a node's default route).
    DEFAULT.run(["ip", "-n", ns, "route", "add", "10.96.0.0/12", "dev", "x0"])
    # Someone else's nat rules: must survive everything we do.
    DEFAULT.run(["iptables-restore", "--noflush"], netns=ns, input=(
        "*nat\n:OTHER - [0:0]\n-A PREROUTING -j OTHER\n"
        "-A OTHER -p tcp --dport 2222 -j DNAT --to-destination 10.9.0.1:22\nCOMMIT\n"))
    yield ns


def test_apply_once_idempotent_incremental_and_blind_to_others(node):
    kp = NatApplier("n1", None, netns=node)
    assert "*nat" in kp.apply(compile_nat([web()], "10.244.0.0/16"))
    text = save(node)
    for rule in ('-A PREROUTING -m comment --comment "kubernetes service portals" '
                 "-j KUBE-SERVICES",
                 '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" '
                 "-j KUBE-POSTROUTING",
                 "--probability 0.33333333349", "-j DNAT --to-destination 10.9.0.3:8080",
                 "-A OTHER -p tcp -m tcp --dport 2222"):
        assert rule in text, rule
    assert kp.apply(compile_nat([web()], "10.244.0.0/16")) == ""
    # A new applier (a restart) knows nothing: it rewrites its chains once, adds no hooks.
    again = NatApplier("n1", None, netns=node)
    written = again.apply(compile_nat([web(eps=EPS[:2])], "10.244.0.0/16"))
    assert "-I PREROUTING" not in written and "-X KUBE-SEP-" in written
    after = save(node)
    assert after.count("-j KUBE-SERVICES") == 2       # PREROUTING and OUTPUT, once each
    assert "10.9.0.3:8080" not in after and "-A OTHER" in after
    assert after.count("-A PREROUTING") == 2


def test_writes_through_a_long_lived_restore_session(node):
    # The policy agent's per-node session carries kube-proxy's *nat blocks too: no fork per
    # write, the same rules, and the same process for the next write.
    from orchestrator.node.restore_session import RestoreSession
    session = RestoreSession(DEFAULT, netns=node)
    try:
        kp = NatApplier("n1", None, netns=node, session=session)
        kp.apply(compile_nat([web()], "10.244.0.0/16"))
        if session.disabled:
            pytest.skip("restore sessions unavailable here (writes fork)")
        pid = session.proc.pid
        assert "-j DNAT --to-destination 10.9.0.3:8080" in save(node)
        kp.apply(compile_nat([web(eps=EPS[:2])], "10.244.0.0/16"))
        after = save(node)
        assert "10.9.0.3:8080" not in after and "-A OTHER" in after
        assert session.proc.pid == pid and session.spawned == 1
    finally:
        session.close()


def test_failure_keeps_previous_rules_and_carries_input():
    runner = RecordingRunner(responses={("iptables-restore",): Result(1, "", "boom")})
    kp = NatApplier("n1", 1, runner)
    with pytest.raises(ApplyError) as exc:
        kp.apply(compile_nat([web()]))
    assert "*nat" in exc.value.rendered_input and "boom" in str(exc.value)


SERVER = r"""
import socket, sys, threading
def serve(ip):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, 8080)); s.listen(64)
    while True:
        c, _ = s.accept(); c.sendall(ip.encode()); c.close()
for ip in sys.argv[1:]:
    threading.Thread(target=serve, args=(ip,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""
CLIENT = r"""
import socket, sys
seen = []
for _ in range(int(sys.argv[1])):
    s = socket.create_connection(("10.96.0.50", 80), timeout=2)
    seen.append(s.recv(64).decode()); s.close()
print(" ".join(seen))
"""


def test_cluster_ip_balances_over_every_endpoint_and_affinity_sticks(node):
    proc = subprocess.Popen(in_netns([sys.executable, "-c", SERVER, *BACKENDS], netns=node),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        kp = NatApplier("n1", None, netns=node)
        kp.apply(compile_nat([web()]))
        out = DEFAULT.run([sys.executable, "-c", CLIENT, "60"], netns=node).stdout.split()
        assert len(out) == 60 and set(out) == set(BACKENDS), out
        kp.apply(compile_nat([web(affinity_seconds=60)]))
        time.sleep(0.1)
        out = DEFAULT.run([sys.executable, "-c", CLIENT, "20"], netns=node).stdout.split()
        assert len(set(out)) == 1, out
    finally:
        proc.terminate()
        proc.wait(5)


def test_a_fresh_netns_gets_its_nat_rules_without_a_read(make_netns):
    ns = make_netns("calinet-kpfresh", BACKENDS[0])
    reads = []

    class Counting:
        def run(self, argv, **kw):
            if argv[:1] == ["iptables-save"]:
                reads.append(argv)
            return DEFAULT.run(argv, **kw)
    kp = NatApplier("n1", None, Counting(), netns=ns, fresh=True)
    kp.apply(compile_nat([web()], "10.244.0.0/16"))
    assert reads == []
    text = save(ns)
    assert "-j DNAT --to-destination 10.9.0.3:8080" in text
    assert text.count("-j KUBE-SERVICES") == 2     # PREROUTING and OUTPUT hooks, once each
