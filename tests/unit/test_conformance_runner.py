"""orchestrator.traffic.conformance.Runner and `calinet conformance` in IPv4 and IPv6, against a
testbed whose probes are answered by the reference oracle (a real store and API client; no
namespaces, nothing probed): the family's addresses and pool in the placeholders and probes,
SCTP over IPv6 refused by the real prober and reported as skipped, the family's conntrack
flows forgotten, and the command's checks, output and JSON."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.cli import conformance_cmd
from orchestrator.control.client import Client
from orchestrator.control.store import Store
from orchestrator.errors import ValidationError
from orchestrator.traffic import conformance
from orchestrator.traffic import probe as probe_mod
from policy import cases, oracle

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "conformance" / "cases"
IPS = {4: {k: f"10.244.{i // 3}.{i % 3 + 2}" for i, k in enumerate(cases.XYZ_PODS)},
       6: {k: f"fd00:10:244::{i // 3 * 64 + i % 3 + 2:x}" for i, k in enumerate(cases.XYZ_PODS)}}
POOLS = [("default-ipv4-ippool", "10.244.0.0/16"), ("default-ipv6-ippool", "fd00:10:244::/56")]
SCTP_ONLY = "endport-range-lower-bound-sctp"


class OracleTestbed:
    """What Runner uses of a Testbed; every matrix is the oracle's verdict on the store's
    policies and labels for the family's pod addresses."""

    def __init__(self, tmp_path, families=(4, 6), nodes=("node-1", "node-2", "node-3")):
        self.spec = SimpleNamespace(families=tuple(families))
        self.store = Store(str(tmp_path / "store.db"))
        self.client = Client(self.store)
        self.client.apply([{"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                            "metadata": {"name": name}, "spec": {"cidr": cidr}}
                           for name, cidr in POOLS if (6 if ":" in cidr else 4) in families])
        self.policy = SimpleNamespace(in_sync=lambda: [])
        self._nodes = list(nodes)
        self.matrix_calls: list[tuple] = []
        self.node_argv: list[tuple[str, list[str]]] = []
        self.refuse: ValidationError | None = None      # raised by matrix() when set

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def apply(self, source):
        return self.client.apply(source)

    def delete(self, kind, key):
        return [self.client.delete(kind, key)]

    def get(self, kind, key):
        return self.client.get(kind, key)

    def label(self, kind, key, labels):
        return self.client.label(kind, key, labels)

    def wait_ready(self, timeout=60.0):
        pass

    def nodes(self):
        return list(self._nodes)

    def node_exec(self, node, argv, timeout=30.0):
        self.node_argv.append((node, list(argv)))
        return SimpleNamespace(returncode=1, stdout="", stderr="0 flow entries deleted")

    def pod_ip(self, key, family=None):
        family = family or self.spec.families[0]
        if family not in self.spec.families:
            raise AssertionError(f"asked for the IPv{family} address of {key}")
        return IPS[family][key]

    def pod_netns(self, key):
        return f"pod-{key.replace('/', '-')}"

    def pod_node(self, key):
        return self._nodes[cases.XYZ_PODS.index(key) % len(self._nodes)]

    def model(self, family):
        nss = {o["metadata"]["name"]: o["metadata"].get("labels") or {}
               for o in self.store.list("Namespace")}
        model = cases.x_y_z_model(IPS[family])
        for pod in model.pods:
            pod["labels"] = self.store.get("Pod", pod["name"], pod["namespace"])["metadata"][
                "labels"]
        return oracle.Model(namespaces={ns: nss[ns] for ns in cases.NAMESPACES},
                            pods=model.pods)

    def matrix(self, port, protocol, pods=None, timeout=1.0, family=None):
        self.matrix_calls.append((port, protocol, family))
        if self.refuse is not None:
            raise self.refuse
        if family == 6 and protocol == "SCTP":
            # The real prober's answer to an IPv6 SCTP probe (it refuses before any socket).
            probe_mod.probe_many([(self.pod_netns(pods[0]), IPS[6][pods[1]])], port, protocol)
        got = oracle.matrix(self.model(family), self.store.list("NetworkPolicy"), port,
                            protocol)
        return {k: v for k, v in got.items() if k[0] in pods and k[1] in pods}


@pytest.fixture
def tb(tmp_path):
    return OracleTestbed(tmp_path)


def runner(tb, family):
    r = conformance.Runner(tb, timeout=0.1, family=family)
    r.setup()
    return r


@pytest.mark.parametrize("family", [4, 6])
def test_the_corpus_passes_through_the_runner_in_both_families(tb, family):
    r = runner(tb, family)
    assert r.ips == IPS[family]
    assert r.podcidr == dict(POOLS)[f"default-ipv{family}-ippool"]
    results = [r.run_case(c) for c in cases.load_dir(CORPUS)]
    failed = {res.case.name: res.error or [o.key for o in res.outcomes if o.mismatches]
              for res in results if not res.passed and not res.skipped}
    assert not failed
    assert {f for _p, _proto, f in tb.matrix_calls} == {family}
    skipped = {res.case.name for res in results if res.skipped}
    skipped_probes = [o for res in results for o in res.skipped_probes]
    if family == 4:
        assert not skipped and not skipped_probes and not r.refused
        assert sum(res.passed for res in results) == len(results)
    else:
        # Every SCTP probe, and only those, skipped with the prober's reason; the one case
        # made of SCTP probes only checked nothing, so it is skipped, not passed.
        assert skipped == {SCTP_ONLY}
        assert {o.key.split("/")[0] for o in skipped_probes} == {"SCTP"}
        assert len(skipped_probes) == sum(p.protocol == "SCTP" for c in cases.load_dir(CORPUS)
                                          for s in c.steps for p in s.probes)
        assert all(o.skipped == r.refused["SCTP"] for o in skipped_probes)
        assert r.refused["SCTP"].startswith("SCTP probes are IPv4 only")
        # Learnt once: the prober was asked about SCTP a single time.
        assert sum(proto == "SCTP" for _p, proto, _f in tb.matrix_calls) == 1
        by_name = {res.case.name: res for res in results}
        mixed = by_name["sctp-is-not-tcp"]
        assert mixed.passed and [o.key for o in mixed.skipped_probes] == ["SCTP/81", "SCTP/80"]
        assert by_name[SCTP_ONLY].as_dict()["skipped"] is True
        assert by_name[SCTP_ONLY].as_dict()["passed"] is False


def test_ipv6_placeholders_are_applied_as_ipv6_blocks(tb):
    r = runner(tb, 6)
    case = cases.load_case(CORPUS / "033-ipblock-cidr-and-except-overlap.yaml")
    res = r.run_case(case)
    assert res.passed, res.as_dict()
    pol = tb.get("NetworkPolicy", "x/allow-client-a-via-cidr-egress-rule")
    # the last step's {{ip x/b}}/32 is x/b's IPv6 /128
    assert pol["spec"]["egress"][0]["to"][0]["ipBlock"] == {"cidr": IPS[6]["x/b"] + "/128"}
    res = r.run_case(cases.load_case(CORPUS / "062-ipblock-podcidr-except-one-ingress.yaml"))
    assert res.passed
    block = tb.store.list("NetworkPolicy", "x")[0]["spec"]["ingress"][0]["from"][0]["ipBlock"]
    assert block == {"cidr": "fd00:10:244::/56", "except": [IPS[6]["z/c"] + "/128"]}


def test_an_ipv4_runner_on_ipv6_addresses_would_fail_the_ipblock_cases(tb):
    # The oracle-backed testbed really checks the family: IPv4 blocks against IPv6 traffic
    # deny what the case expects allowed.
    r = runner(tb, 4)
    r.family = 6          # probes in IPv6, placeholders left IPv4
    res = r.run_case(cases.load_case(CORPUS / "061-ipblock-ingress-one-pod.yaml"))
    assert not res.passed and res.outcomes[0].mismatches


def test_forget_flows_deletes_the_family_s_flows_from_the_pool(tb):
    for family, want in ((4, ["-f", "ipv4", "-s", "10.244.0.0/16"]),
                         (6, ["-f", "ipv6", "-s", "fd00:10:244::/56"])):
        tb.node_argv.clear()
        runner(tb, family).forget_flows()
        assert tb.node_argv == [(n, ["conntrack", "-D", *want]) for n in tb.nodes()]


def test_a_failed_conntrack_is_an_error_naming_the_node(tb):
    r = runner(tb, 6)
    tb.node_exec = lambda node, argv, timeout=30.0: SimpleNamespace(
        returncode=2, stdout="", stderr="conntrack: bad family")
    with pytest.raises(Exception, match="conntrack -D on node-1 failed .2.: conntrack: bad"):
        r.forget_flows()


def test_a_refusal_other_than_sctp_over_ipv6_is_the_case_s_error(tb):
    r = runner(tb, 6)
    tb.refuse = ValidationError("nope", obj="probe", field="dst_ip")
    res = r.run_case(cases.load_case(CORPUS / "001-no-policies-all-allowed.yaml"))
    assert not res.passed and not res.skipped
    assert res.error.startswith("ValidationError: ") and "nope" in res.error
    assert not r.refused


def test_pairs_that_differ_are_probed_again_at_their_ipv6_addresses(tb, monkeypatch):
    r = runner(tb, 6)
    sent = []

    def matrix(pairs, port, protocol, timeout):
        sent.extend(pairs)
        return {p: True for p in pairs}
    monkeypatch.setattr(conformance.probe_mod, "matrix", matrix)
    wrong = cases.parse_case({"name": "wrong", "probes": [{"port": 80, "protocol": "TCP"}],
                              "expect": {"TCP/80": ["y/a -> x/b"]}})
    res = r.run_case(wrong)
    assert sent == [(tb.pod_netns("y/a"), IPS[6]["x/b"])]
    assert res.outcomes[0].mismatches == [("y/a", "x/b")]


def test_pod_cidr_is_the_family_s_pool_holding_the_pods():
    pools = [{"spec": {"cidr": c}} for c in ("10.244.0.0/16", "fd00:99::/64",
                                             "fd00:10:244::/56")]
    assert conformance.pod_cidr(pools, IPS[6].values(), 6) == "fd00:10:244::/56"
    assert conformance.pod_cidr(pools, IPS[4].values(), 4) == "10.244.0.0/16"
    # no pool holds them all: the family's first pool; no pool of the family: the default
    assert conformance.pod_cidr(pools[:2], IPS[6].values(), 6) == "fd00:99::/64"
    assert conformance.pod_cidr(pools[:1], IPS[6].values(), 6) == "fd00:10:244::/56"
    assert conformance.pod_cidr([], IPS[4].values(), 4) == "10.244.0.0/16"


def test_a_family_the_cluster_has_no_addresses_of_is_refused(tmp_path):
    v4 = OracleTestbed(tmp_path, families=(4,))
    with pytest.raises(ValidationError) as exc:
        conformance.Runner(v4, family=6)
    assert exc.value.field == "ipFamilies" and "[IPv4]" in exc.value.message
    assert "dual-stack" in exc.value.message
    with pytest.raises(ValidationError) as exc:
        conformance.Runner(v4, family=5)
    assert exc.value.field == "family" and "5" in exc.value.message


# -- `calinet conformance` -----------------------------------------------------------------

def cli_args(directory, family=4, topology=None, json=None, k=None):
    return argparse.Namespace(directory=str(directory), json=json, topology=topology,
                              timeout=0.1, k=k, family=family)


def test_family_5_is_refused_naming_the_option():
    for bad in ("5", "six"):
        r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "conformance",
                            str(CORPUS), "--family", bad], cwd=REPO, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 2, r.stderr
        assert "argument --family" in r.stderr and bad in r.stderr
        assert "building the x/y/z model" not in r.stderr


def test_an_ipv4_only_topology_is_refused_before_anything_starts(monkeypatch):
    def no_testbed(*a, **kw):
        raise AssertionError("a testbed was started")
    monkeypatch.setattr(conformance_cmd, "Testbed", no_testbed)
    topo = str(REPO / "topologies" / "examples" / "three-node.yaml")
    with pytest.raises(ValidationError) as exc:
        conformance_cmd.run_conformance(cli_args(CORPUS, family=6, topology=topo))
    assert exc.value.field == "ipFamilies" and exc.value.source == topo
    assert "IPv6 conformance needs pods with IPv6 addresses" in str(exc.value)


@pytest.mark.parametrize("family,topology", [(4, "three-node.yaml"), (6, "dual-stack.yaml")])
def test_the_default_topology_has_the_family(monkeypatch, tmp_path, family, topology):
    started = []

    def fake(path, progress=None):
        started.append(path)
        return OracleTestbed(tmp_path)
    monkeypatch.setattr(conformance_cmd, "Testbed", fake)
    assert conformance_cmd.run_conformance(cli_args(CORPUS, family=family, k="001-")) == 0
    assert started == [str(REPO / "topologies" / "examples" / topology)]


def test_ipv6_output_skips_and_json(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(conformance_cmd, "Testbed",
                        lambda path, progress=None: OracleTestbed(tmp_path))
    picked = tmp_path / "cases"
    picked.mkdir()
    for name in ("035-sctp-is-not-tcp.yaml", "061-ipblock-ingress-one-pod.yaml",
                 "083-endport-range-lower-bound-sctp.yaml"):
        (picked / name).write_text((CORPUS / name).read_text())
    out = tmp_path / "r.json"
    assert conformance_cmd.run_conformance(cli_args(picked, family=6, json=str(out))) == 0
    text = capsys.readouterr().out
    assert "PASS sctp-is-not-tcp" in text and "PASS ipblock-ingress-one-pod" in text
    assert f"SKIP {SCTP_ONLY}" in text
    assert "  skipped in IPv6: SCTP/81, SCTP/80" in text
    assert "2/2 cases passed, 1 skipped (4 probe(s) skipped in IPv6)" in text
    assert "SCTP probes skipped: SCTP probes are IPv4 only" in text
    report = json.loads(out.read_text())
    assert [(c["name"], c["family"], c["passed"], c["skipped"]) for c in report] == [
        ("sctp-is-not-tcp", 6, True, False), ("ipblock-ingress-one-pod", 6, True, False),
        (SCTP_ONLY, 6, False, True)]
    probes = report[0]["steps"][0]["probes"]
    assert [(p["probe"], bool(p["skipped"])) for p in probes] == [
        ("TCP/81", False), ("SCTP/81", True), ("SCTP/80", True)]
    assert probes[1]["observed_denied"] == [] and probes[1]["mismatches"] == []


def test_ipv6_failure_is_exit_1_with_the_truth_table(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(conformance_cmd, "Testbed",
                        lambda path, progress=None: OracleTestbed(tmp_path))
    monkeypatch.setattr(conformance.probe_mod, "matrix",
                        lambda pairs, port, protocol, timeout: {p: True for p in pairs})
    picked = tmp_path / "cases"
    picked.mkdir()
    (picked / "001.yaml").write_text(json.dumps({
        "name": "wrong", "probes": [{"port": 80, "protocol": "TCP"}],
        "expect": {"TCP/80": ["y/a -> x/a"]}}))
    assert conformance_cmd.run_conformance(cli_args(picked, family=6)) == 1
    text = capsys.readouterr().out
    assert "FAIL wrong" in text and "0/1 cases passed in" in text
    assert "TCP/80: expected vs observed (1 differ)" in text
