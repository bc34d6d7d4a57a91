"""Network policy on a real 3-node cluster with BGP: conformance cases (the project's corpus:
its upstream-derived cases, then all of it), explain, Calico policy order and actions, bad input, and a randomized
differential test of the dataplane against the reference oracle."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator import api
from orchestrator.errors import ValidationError
from orchestrator.host import naming
from orchestrator.testbed import Testbed
from orchestrator.traffic.conformance import Runner, truth_table
from policy import names, oracle
from policy.cases import XYZ_PODS, load_dir, x_y_z_model

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "conformance" / "cases"
pytestmark = [pytest.mark.root, pytest.mark.mininet]


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    tb = Testbed(str(REPO / "topologies" / "examples" / "three-node.yaml"),
                 state_dir=str(tmp_path_factory.mktemp("policy")), keep_state=False)
    tb.start()
    try:
        r = Runner(tb, timeout=0.5)
        r.setup()
        yield r
    finally:
        tb.stop()


def run_all(runner, cases):
    failures = []
    for case in cases:
        res = runner.run_case(case)
        if not res.passed:
            tables = [truth_table(o) for _, _, outs in res.steps for o in outs if o.mismatches]
            failures.append(f"{case.name}: {res.error or ''}\n" + "\n".join(tables))
        for _, _, outs in res.steps:
            for o in outs:
                # "A full 72-pair matrix per probe in about 3 s or less."
                assert o.seconds < 3.0, f"{case.name} {o.key}: matrix took {o.seconds:.2f}s"
    return failures


def test_pods_are_spread_over_every_node(runner):
    assert {runner.tb.pod_node(k) for k in XYZ_PODS} == set(runner.tb.nodes())


def test_upstream_derived_corpus_cases_pass(runner):
    # The corpus cases taken from the upstream e2e suite (source names the test): a quick
    # tier; the whole corpus runs in the slow one below.
    cases = [c for c in load_dir(CORPUS) if c.source.startswith("NetworkPolicy between")]
    assert len(cases) >= 14
    failures = run_all(runner, cases)
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_project_corpus_passes(runner):
    cases = load_dir(CORPUS)
    assert len(cases) >= 60
    failures = run_all(runner, cases)
    assert not failures, "\n\n".join(failures)


# -- explain ---------------------------------------------------------------------------

ALLOW_B = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{podSelector: {matchLabels: {pod: b}}, namespaceSelector: {}}]
    ports: [{port: serve-80-tcp}]
"""


def test_explain_names_the_policy_rule_and_chain(runner):
    tb = runner.tb
    runner.reset()
    tb.apply(ALLOW_B)
    runner.wait_synced()
    cli = [sys.executable, "-m", "orchestrator.cli.main", "--state-dir", tb.state_dir, "explain"]
    r = subprocess.run(cli + ["y/b", "x/a", "80/TCP"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"y/b ({tb.pod_ip('y/b')}) -> x/a ({tb.pod_ip('x/a')}) "
                               "TCP/80: ALLOWED"), r.stdout
    assert "allowed by NetworkPolicy x/allow-b ingress[0].from[0]" in r.stdout
    assert "no policy selects y/b for egress" in r.stdout
    assert tb.probe("y/b", "x/a", 80, "TCP", timeout=0.5)
    r = subprocess.run(cli + ["c", "a", "81/TCP", "-n", "x"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert "TCP/81: DENIED" in r.stdout and "end of tier default: DROP" in r.stdout
    assert "destination port 81 not in serve-80-tcp" in r.stdout or \
        "source not selected" in r.stdout, r.stdout
    assert not tb.probe("x/c", "x/a", 81, "TCP", timeout=0.5)
    chain = next(line for line in r.stdout.splitlines() if "chain cali-tw-" in line)
    iface = chain.split("chain cali-tw-")[1].split()[0]
    saved = tb.node_exec(tb.pod_node("x/a"), ["iptables-save", "-t", "filter"]).stdout
    assert f"-A cali-tw-{iface} " in saved
    r = subprocess.run(cli + ["x/nope", "x/a", "80"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "x/nope" in r.stderr


# -- Calico policies: order, Deny, Pass, Log, ICMP --------------------------------------

def test_calico_order_deny_before_kubernetes_allow_and_log(runner):
    tb = runner.tb
    runner.reset()
    tb.apply("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: x}
spec:
  podSelector: {}
  ingress: [{}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-y-to-x}
spec:
  order: 10
  selector: projectcalico.org/namespace == 'x'
  ingress:
  - action: Log
    source: {namespaceSelector: ns == 'y'}
  - action: Deny
    source: {namespaceSelector: ns == 'y'}
  - action: Pass
    source: {namespaceSelector: ns == 'z', selector: pod == 'a'}
""")
    try:
        runner.wait_synced()
        res = tb.matrix(80, "TCP", pods=list(XYZ_PODS), timeout=0.5)
        for (s, d), ok in res.items():
            if d.startswith("x/"):
                want = not s.startswith("y/")   # order 10 Deny beats the k8s allow (1000)
                assert ok == want, (s, d, ok)
        node = tb.pod_node("x/a")
        saved = tb.node_exec(node, ["iptables-save", "-t", "filter"]).stdout
        assert "--nflog-prefix " in saved and "default.deny-y-to-x" in saved
        # The Log rule recorded the denied SYNs: in the API and from another terminal.
        src, dst = tb.pod_ip("y/a"), tb.pod_ip("x/a")
        want = f"TCP {src}:"

        def logged():
            return [ln for ln in tb.packet_log(node).splitlines()
                    if "deny-y-to-x" in ln and want in ln and f"-> {dst}:80" in ln]
        deadline = time.monotonic() + 5
        while not logged() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert logged(), tb.packet_log(node)
        assert not [ln for ln in tb.packet_log().splitlines()
                    if "deny-y-to-x" in ln and tb.pod_ip("z/b") + ":" in ln.split("->")[0]]
        cli = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "--state-dir",
                              tb.state_dir, "policy", "log", node], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0 and logged()[0] in cli.stdout, (cli.stdout, cli.stderr)
        bad = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "--state-dir",
                              tb.state_dir, "policy", "log", "node-9"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "no packet log for node 'node-9'" in bad.stderr
        # z/a passes the GNP: the next tier is the profile, which allows
        assert tb.probe("z/a", "x/a", 80, "TCP", timeout=0.5)
    finally:
        tb.delete("GlobalNetworkPolicy", "deny-y-to-x")
        tb.delete("NetworkPolicy", "x/allow-all")


CONNECT = ("import socket, sys\n"
           "s = socket.socket(); s.settimeout(float(sys.argv[3]))\n"
           "sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))\n")


def test_a_node_reaches_its_own_pods_under_default_deny_but_not_other_nodes_pods(runner):
    # Felix polices no traffic from the host to its local workloads (cali-OUTPUT returns for
    # -o cali+); traffic from another node is forwarded and meets the pod's ingress policy.
    tb = runner.tb
    runner.reset()
    tb.apply("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
""")
    try:
        runner.wait_synced()
        own = tb.pod_node("x/a")
        other = next(n for n in tb.nodes() if n != own)
        ip = tb.pod_ip("x/a")

        def connects(node):
            return tb.node_exec(node, [sys.executable, "-c", CONNECT, ip, "80", "0.5"],
                                timeout=10).returncode == 0
        assert connects(own)
        assert not connects(other)
        assert not tb.probe("y/a", "x/a", 80, "TCP", timeout=0.5)
    finally:
        tb.delete("NetworkPolicy", "x/deny-ingress")
    runner.wait_synced()
    assert connects(other)


def test_a_new_pods_containers_start_once_its_rules_are_committed(runner):
    # As Calico's CNI with policy_setup_timeout_seconds: the kubelet waits for the node to
    # enforce the new endpoint before starting its containers, so the pod's first packet is
    # policed (never "Unknown interface"). The rules go through each node's long-lived
    # iptables-restore (restore_session), which lives in that node's network namespace.
    tb = runner.tb
    runner.reset()
    tb.apply("""
apiVersion: v1
kind: Pod
metadata: {name: late, namespace: x, labels: {pod: late}}
spec: {containers: [{name: c, image: agnhost}]}
""")
    try:
        deadline = time.monotonic() + 20
        while (tb.get("Pod", "x/late").get("status") or {}).get("phase") != "Running":
            assert time.monotonic() < deadline, tb.get("Pod", "x/late").get("status")
            time.sleep(0.02)
        enforced_wall = time.time() - (time.monotonic() - tb.policy.enforced_at["x/late"])
        started_wall = tb.runtime._pods["x/late"]["c"].started_wall
        assert started_wall >= enforced_wall - 0.005, (started_wall, enforced_wall)
        node = tb.pod_node("x/late")
        chain = names.to_workload(naming.veth_name("x", "late"))
        assert f":{chain} " in tb.node_exec(node, ["iptables-save", "-t", "filter"]).stdout
        for name, session in tb.policy.sessions.items():
            if session.proc is None:
                continue
            node_pid = tb._node(name).pid
            assert os.stat(f"/proc/{session.proc.pid}/ns/net").st_ino == \
                os.stat(f"/proc/{node_pid}/ns/net").st_ino
            assert session.proc.poll() is None
        assert any(s.proc is not None for s in tb.policy.sessions.values())
    finally:
        tb.delete("Pod", "x/late")
        # Gone from the store only once its sandbox is torn down (its endpoint stays until
        # then, as Calico's WorkloadEndpoint until CNI DEL): the next test's "before" rules
        # must not still hold it.
        deadline = time.monotonic() + 30
        while tb.store.get("Pod", "late", "x") is not None:
            assert time.monotonic() < deadline, "x/late was not torn down"
            time.sleep(0.02)
        runner.wait_synced()


# -- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec, field", [
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 80}]}]},
     "spec.ingress[0].ports[0].endPort"),
    ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16",
                                                             "except": ["10.1.0.0/24"]}}]}]},
     "spec.ingress[0].from[0].ipBlock.except[0]"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Sometimes"}]}},
     "spec.podSelector.matchExpressions[0].operator"),
])
def test_bad_policy_is_rejected_and_the_rules_stay(runner, spec, field):
    tb = runner.tb
    runner.reset()
    tb.apply(ALLOW_B)
    runner.wait_synced()
    before = {n: tb.node_exec(n, ["iptables-save", "-t", "filter"]).stdout for n in tb.nodes()}
    doc = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "bad", "namespace": "x"}, "spec": spec}
    with pytest.raises(ValidationError) as err:
        tb.apply([yaml.safe_load(ALLOW_B.replace("allow-b", "allow-b2")), doc])
    assert err.value.field == field and "NetworkPolicy x/bad" in str(err.value), str(err.value)
    assert tb.store.get("NetworkPolicy", "allow-b2", "x") is None
    runner.wait_synced()
    strip = lambda t: [ln for ln in t.splitlines() if not ln.startswith("#")]  # noqa: E731
    after = {n: tb.node_exec(n, ["iptables-save", "-t", "filter"]).stdout for n in tb.nodes()}
    assert {n: strip(t) for n, t in after.items()} == {n: strip(t) for n, t in before.items()}
    bad = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
           "metadata": {"name": "bad-action", "namespace": "x"},
           "spec": {"ingress": [{"action": "Maybe"}]}}
    with pytest.raises(ValidationError) as err:
        tb.apply([bad])
    assert "spec.ingress[0].action" in str(err.value)


# -- differential: random policies, oracle vs dataplane ----------------------------------

def random_policy(rng: random.Random, i: int, ips: dict) -> dict:
    def label_selector():
        return rng.choice([
            {}, {"matchLabels": {"pod": rng.choice("abc")}},
            {"matchExpressions": [{"key": "pod", "operator": rng.choice(["In", "NotIn"]),
                                   "values": rng.sample("abc", rng.randint(1, 2))}]},
            {"matchExpressions": [{"key": rng.choice(["pod", "nope"]),
                                   "operator": rng.choice(["Exists", "DoesNotExist"])}]}])

    def ns_selector():
        return rng.choice([{}, {"matchLabels": {"ns": rng.choice("xyz")}},
                           {"matchExpressions": [{"key": "ns", "operator": "NotIn",
                                                  "values": [rng.choice("xyz")]}]}])

    def peer():
        kind = rng.randrange(4)
        if kind == 0:
            return {"podSelector": label_selector()}
        if kind == 1:
            return {"namespaceSelector": ns_selector()}
        if kind == 2:
            return {"podSelector": label_selector(), "namespaceSelector": ns_selector()}
        ip = ips[rng.choice(XYZ_PODS)]
        return {"ipBlock": {"cidr": "10.244.0.0/16", "except": [f"{ip}/32"]}} \
            if rng.random() < 0.5 else {"ipBlock": {"cidr": f"{ip}/32"}}

    def ports():
        return rng.choice([None, [{"port": 80}], [{"port": 81, "protocol": "UDP"}],
                           [{"port": "serve-80-tcp"}], [{"port": "serve-81-udp",
                                                         "protocol": "UDP"}],
                           [{"port": 80, "endPort": 81}], [{"protocol": "UDP"}]])

    def rules(key):
        out = []
        for _ in range(rng.randint(0, 2)):
            r = {}
            if rng.random() < 0.8:
                r[key] = [peer() for _ in range(rng.randint(1, 2))]
            p = ports()
            if p:
                r["ports"] = p
            out.append(r)
        return out

    spec = {"podSelector": label_selector()}
    types = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"], None])
    if types:
        spec["policyTypes"] = types
    if types is None or "Ingress" in types:
        spec["ingress"] = rules("from")
    if types is None or "Egress" in types or rng.random() < 0.2:
        spec["egress"] = rules("to")
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"rnd-{i}", "namespace": rng.choice("xyz")}, "spec": spec}


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(int(os.environ.get("CALINET_DIFF_SEEDS", "12"))))
def test_random_policies_dataplane_matches_the_oracle(runner, seed):
    rng = random.Random(seed)
    tb = runner.tb
    runner.reset()
    policies = [random_policy(rng, i, runner.ips) for i in range(rng.randint(1, 4))]
    normalized = [api.normalize(p, now="2026-01-01T00:00:00Z") for p in policies]
    tb.apply(policies)
    try:
        runner.wait_synced()
        model = x_y_z_model(runner.ips)
        for port, proto in ((80, "TCP"), (81, "UDP")):
            want = oracle.matrix(model, normalized, port, proto)
            have = runner.probe_matrix(port, proto, want)
            diff = sorted(k for k in want if want[k] != have[k])
            assert not diff, (f"seed {seed} {proto}/{port}: oracle and dataplane differ on "
                              f"{diff}\npolicies: {policies}")
    finally:
        for p in policies:
            tb.delete("NetworkPolicy", f"{p['metadata']['namespace']}/{p['metadata']['name']}")
