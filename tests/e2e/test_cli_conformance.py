"""`calinet conformance DIR [--json OUT] [-k TEXT] [--family 6]` as a user runs it: its own
testbed (dual-stack for --family 6), PASS, FAIL and SKIP lines, the expected-vs-observed truth
table of a failing case, the JSON report, the exit codes (0 all passed, 1 any failed or
unusable case files or topology, 2 nothing matched) and nothing left behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "conformance" / "cases"
DENY_Y = CORPUS / "002-default-deny-ingress-namespace-y.yaml"
pytestmark = [pytest.mark.root, pytest.mark.mininet, pytest.mark.slow]


def conformance(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "conformance", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_cases_pass_fail_json_and_exit_codes(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(CORPUS / "001-no-policies-all-allowed.yaml", cases)
    shutil.copy(DENY_Y, cases / "002-deny-ingress.yaml")
    # A case whose expectation is wrong on purpose: y/a -> x/a is in fact allowed.
    wrong = yaml.safe_load(DENY_Y.read_text())
    wrong["name"] = "wrong-expectation"
    wrong["policies"] = []
    wrong["probes"] = [{"port": 80, "protocol": "TCP"}]
    wrong["expect"] = {"TCP/80": ["y/a -> x/a"]}
    (cases / "003-wrong.yaml").write_text(yaml.safe_dump(wrong))
    out = tmp_path / "results.json"
    before = set(subprocess.run(["ip", "netns", "list"], capture_output=True,
                                text=True).stdout.split())

    r = conformance(str(cases), "--json", str(out))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "PASS no-policies-all-allowed" in r.stdout
    assert "PASS default-deny-ingress-namespace-y" in r.stdout
    assert "FAIL wrong-expectation" in r.stdout
    assert "2/3 cases passed" in r.stdout
    # the truth table: y/a's row marks the pair expected denied and seen allowed
    assert "TCP/80: expected vs observed (1 differ)" in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.strip().startswith("y/a "))
    assert "!X" in row
    report = json.loads(out.read_text())
    assert [c["name"] for c in report] == ["no-policies-all-allowed",
                                           "default-deny-ingress-namespace-y", "wrong-expectation"]
    assert [c["passed"] for c in report] == [True, True, False]
    probe = report[2]["steps"][0]["probes"][0]
    assert probe["probe"] == "TCP/80" and probe["mismatches"] == ["y/a -> x/a"]
    assert report[1]["steps"][0]["probes"][0]["observed_denied"] == sorted(
        yaml.safe_load(DENY_Y.read_text())["expect"]["TCP/80"])

    r = conformance(str(cases), "-k", "no-policies")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "1/1 cases passed" in r.stdout

    r = conformance(str(cases), "-k", "matches-nothing")
    assert r.returncode == 2 and "no case files matched" in r.stderr

    after = set(subprocess.run(["ip", "netns", "list"], capture_output=True,
                               text=True).stdout.split())
    assert after <= before, after - before     # each run tore its testbed down


def test_an_unusable_case_file_is_named_and_nothing_starts(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "001-bad.yaml").write_text("name: bad\npolicies: []\nprobes:\n"
                                        "- {port: 80, protocol: ICMP}\nexpect: {}\n")
    r = conformance(str(cases), timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "001-bad.yaml" in r.stderr and "protocol" in r.stderr
    assert "building the x/y/z model" not in r.stderr


def test_family_6_on_its_default_dual_stack_testbed(tmp_path):
    # --family 6 without --topology: the dual-stack example; IPv6 probes and placeholders,
    # SCTP probes skipped and named, a case of SCTP probes only reported as SKIP (exit 0).
    cases = tmp_path / "cases"
    cases.mkdir()
    for name in ("032-ipblock-except-egress.yaml", "035-sctp-is-not-tcp.yaml",
                 "083-endport-range-lower-bound-sctp.yaml"):
        shutil.copy(CORPUS / name, cases)
    out = tmp_path / "results.json"
    r = conformance(str(cases), "--family", "6", "--json", str(out))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "cluster 'dual-stack'" in r.stderr and "{{podcidr}} = fd00:10:244::/56" in r.stderr
    assert "PASS ipblock-except-egress" in r.stdout and "PASS sctp-is-not-tcp" in r.stdout
    assert "SKIP endport-range-lower-bound-sctp" in r.stdout
    assert "2/2 cases passed, 1 skipped (4 probe(s) skipped in IPv6)" in r.stdout
    assert "SCTP probes skipped: SCTP probes are IPv4 only" in r.stdout
    report = json.loads(out.read_text())
    assert [(c["family"], c["passed"], c["skipped"]) for c in report] == [
        (6, True, False), (6, True, False), (6, False, True)]
    assert report[0]["steps"][0]["probes"][0]["observed_denied"] == ["x/a -> x/b"]

    r = conformance(str(cases), "--family", "6", "--topology",
                    str(REPO / "topologies" / "examples" / "three-node.yaml"), timeout=60)
    assert r.returncode == 1 and "ipFamilies" in r.stderr and "dual-stack" in r.stderr
    assert "building the x/y/z model" not in r.stderr
