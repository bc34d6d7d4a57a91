"""The project's NetworkPolicy corpus in IPv6 on a real dual-stack cluster (and a few cases on
an IPv6-only one): probes to the pods' IPv6 addresses, {{ip ns/pod}} and {{podcidr}} as IPv6
/128s and the IPv6 pool, the policies enforced in ip6tables; SCTP probes (refused by the
prober in IPv6) skipped and reported. An IPv4 runner shares the cluster and its model; random
placeholder policies are checked against the oracle in both families' dataplanes."""

from __future__ import annotations

import ipaddress
import os
import random
from pathlib import Path

import pytest

from orchestrator import api
from orchestrator.testbed import Testbed
from orchestrator.traffic.conformance import Runner, truth_table
from policy import oracle
from policy.cases import XYZ_PODS, load_case, load_dir, substitute, x_y_z_model

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "conformance" / "cases"
DUAL = REPO / "topologies" / "examples" / "dual-stack.yaml"
POOL6 = "fd00:10:244::/56"
pytestmark = [pytest.mark.root, pytest.mark.mininet]


@pytest.fixture(scope="module")
def runners(tmp_path_factory):
    with Testbed(str(DUAL), state_dir=str(tmp_path_factory.mktemp("cf6")),
                 keep_state=False) as tb:
        r6 = Runner(tb, timeout=0.5, family=6)
        r6.setup()
        r4 = Runner(tb, timeout=0.5, family=4)
        r4.setup()           # the same nine pods: their model is built already
        yield r6, r4


def run_all(runner, cases):
    failures, results = [], []
    for case in cases:
        res = runner.run_case(case)
        results.append(res)
        if not res.passed and not res.skipped:
            tables = [truth_table(o) for o in res.outcomes if o.mismatches]
            failures.append(f"{case.name}: {res.error or ''}\n" + "\n".join(tables))
        for o in res.outcomes:
            assert o.seconds < 3.0, f"{case.name} {o.key}: matrix took {o.seconds:.2f}s"
    return failures, results


def test_one_model_two_families(runners):
    r6, r4 = runners
    tb = r6.tb
    assert set(r6.ips) == set(r4.ips) == set(XYZ_PODS)
    for key in XYZ_PODS:
        v6, v4 = ipaddress.ip_address(r6.ips[key]), ipaddress.ip_address(r4.ips[key])
        assert v6.version == 6 and v6 in ipaddress.ip_network(POOL6)
        assert v4.version == 4 and str(v4) == tb.pod_ip(key)     # IPv4 is the primary
    assert r6.podcidr == POOL6 and r4.podcidr == "10.244.0.0/16"
    assert {tb.pod_node(k) for k in XYZ_PODS} == set(tb.nodes())


def test_ipblock_cases_are_ipv6_blocks_enforced_in_ip6tables(runners):
    r6, _ = runners
    tb = r6.tb
    case = load_case(CORPUS / "061-ipblock-ingress-one-pod.yaml")
    res = r6.run_case(case)
    assert res.passed, res.as_dict()
    pol = tb.store.list("NetworkPolicy", "y")[0]
    blocks = [p["ipBlock"]["cidr"] for r in pol["spec"]["ingress"] for p in r["from"]
              if "ipBlock" in p]
    assert blocks == [f"{r6.ips['x/b']}/128"]
    # The denials seen were IPv6 ones: y/a's node has its rules in ip6tables.
    node = tb.pod_node("y/a")
    assert "cali-pi-" in tb.node_exec(node, ["ip6tables-save", "-t", "filter"]).stdout
    out = res.outcomes[0]
    assert sorted(p for p, ok in out.observed.items() if not ok) == sorted(
        p for p, ok in out.expected.items() if not ok) and not all(out.observed.values())


def test_forget_flows_removes_the_ipv6_probe_flows(runners):
    r6, _ = runners
    tb = r6.tb
    r6.reset()
    r6.wait_synced()
    assert all(tb.matrix(80, "UDP", pods=list(XYZ_PODS), timeout=0.5, family=6).values())

    def flows():
        return sum(len(tb.node_exec(n, ["conntrack", "-L", "-f", "ipv6", "-s", POOL6]).stdout
                       .splitlines()) for n in tb.nodes())
    assert flows() >= 72
    r6.forget_flows()
    assert flows() == 0


def test_cases_alternate_between_the_families_on_one_cluster(runners):
    r6, r4 = runners
    picked = [load_case(CORPUS / n) for n in (
        "033-ipblock-cidr-and-except-overlap.yaml", "035-sctp-is-not-tcp.yaml",
        "025-updated-namespace-label.yaml")]
    for case in picked:
        for runner in (r4, r6):
            res = runner.run_case(case)
            assert res.passed, (runner.family, res.as_dict())
            keys = [o.key for o in res.skipped_probes]
            assert keys == ([] if runner.family == 4 else
                            [p.key for s in case.steps for p in s.probes
                             if p.protocol == "SCTP"])
    # IPv4 probes SCTP for real; IPv6 learnt the prober's refusal
    assert not r4.refused and r6.refused["SCTP"].startswith("SCTP probes are IPv4 only")


@pytest.mark.slow
def test_project_corpus_passes_in_ipv6(runners):
    r6, _ = runners
    cases = load_dir(CORPUS)
    assert len(cases) >= 100
    failures, results = run_all(r6, cases)
    assert not failures, "\n\n".join(failures)
    # Only SCTP probes are skipped, every one of them; only an all-SCTP case is skipped.
    sctp = {c.name: [p.key for s in c.steps for p in s.probes if p.protocol == "SCTP"]
            for c in cases}
    for res in results:
        assert [o.key for o in res.skipped_probes] == sctp[res.case.name], res.case.name
        everything = [p for s in res.case.steps for p in s.probes]
        assert res.skipped == (bool(everything) and all(p.protocol == "SCTP"
                                                         for p in everything))
    assert sum(r.passed for r in results) == len(cases) - sum(r.skipped for r in results)


def random_policy(rng: random.Random, i: int) -> dict:
    """A random policy written as cases are (placeholders for addresses), so the same one is
    applied in each family: selectors, ipBlocks of one pod or the pool minus pods, ports."""
    def peer():
        pod = rng.choice(XYZ_PODS)
        if rng.random() < 0.6:       # mostly ipBlocks: the addresses are what differs
            return rng.choice([
                {"ipBlock": {"cidr": f"{{{{ip {pod}}}}}/32"}},
                {"ipBlock": {"cidr": "{{podcidr}}", "except": [f"{{{{ip {pod}}}}}/32"]}}])
        return rng.choice([{"podSelector": {"matchLabels": {"pod": rng.choice("abc")}}},
                           {"namespaceSelector": {"matchLabels": {"ns": rng.choice("xyz")}}}])

    def rules(peers_key):
        return [{**({peers_key: [peer() for _ in range(rng.randint(1, 2))]}
                    if rng.random() < 0.8 else {}),
                 **({"ports": [rng.choice([{"port": 80}, {"port": 81, "protocol": "UDP"},
                                           {"port": "serve-80-tcp"}])]}
                    if rng.random() < 0.5 else {})}
                for _ in range(rng.randint(1, 2))]
    direction = rng.choice(["Ingress", "Egress"])
    spec = {"podSelector": rng.choice([{}, {"matchLabels": {"pod": rng.choice("abc")}}]),
            "policyTypes": [direction]}
    if direction == "Ingress":
        spec["ingress"] = rules("from")
    else:
        spec["egress"] = rules("to")
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"rnd6-{i}", "namespace": rng.choice("xyz")}, "spec": spec}


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(int(os.environ.get("CALINET_DIFF_SEEDS", "8"))))
def test_random_policies_ip6tables_match_the_oracle_in_ipv6(runners, seed):
    # The same placeholder policies applied in IPv6 and then in IPv4: each family's
    # dataplane against the oracle evaluated with that family's pod addresses.
    rng = random.Random(1000 + seed)
    written = [random_policy(rng, i) for i in range(rng.randint(1, 3))]
    for runner in runners:
        tb = runner.tb
        runner.reset()
        policies = substitute(written, runner.ips, runner.podcidr)
        tb.apply(policies)
        try:
            runner.wait_synced()
            model = x_y_z_model(runner.ips)
            normalized = [api.normalize(p, now="2026-01-01T00:00:00Z") for p in policies]
            for port, proto in ((80, "TCP"), (81, "UDP")):
                want = oracle.matrix(model, normalized, port, proto)
                have = runner.probe_matrix(port, proto, want)
                diff = sorted(k for k in want if want[k] != have[k])
                assert not diff, (f"seed {seed} IPv{runner.family} {proto}/{port}: oracle and "
                                  f"dataplane differ on {diff}\npolicies: {policies}")
        finally:
            for p in policies:
                tb.delete("NetworkPolicy",
                          f"{p['metadata']['namespace']}/{p['metadata']['name']}")


def test_a_few_cases_on_an_ipv6_only_cluster(tmp_path):
    topo = DUAL.read_text().replace("name: dual-stack", "name: only6").replace(
        "ipFamilies: [IPv4, IPv6]", "ipFamilies: [IPv6]")
    assert "ipFamilies: [IPv6]" in topo
    with Testbed(topo, state_dir=str(tmp_path / "s"), keep_state=False, dns=False) as tb:
        runner = Runner(tb, timeout=0.5, family=6)
        runner.setup()
        assert runner.podcidr == POOL6
        cases = [load_case(CORPUS / n) for n in (
            "002-default-deny-ingress-namespace-y.yaml", "032-ipblock-except-egress.yaml",
            "062-ipblock-podcidr-except-one-ingress.yaml", "074-named-port-udp.yaml")]
        failures, _ = run_all(runner, cases)
        assert not failures, "\n\n".join(failures)
        with pytest.raises(Exception, match="ipFamilies"):
            Runner(tb, family=4)
