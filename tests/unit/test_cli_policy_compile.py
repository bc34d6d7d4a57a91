"""`calinet policy compile -f FILE [--node N]` as a user runs it: no root, no testbed (the
conformance model), the iptables-restore and ipset text of the node asked for, and clear
errors for a file that is not a policy, a node without pods and malformed YAML."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-from-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
    ports: [{port: 80, protocol: TCP}]
"""


def calinet(tmp_path, *args):
    env = {**os.environ, "CALINET_STATE_DIR": str(tmp_path / "no-testbed")}
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)


def test_compiles_for_the_node_asked_for_without_root_or_testbed(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(POLICY)
    r = calinet(tmp_path, "policy", "compile", "-f", str(f), "--node", "node-1")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("# 1 policy(ies) compiled for node-1 against the conformance model")
    assert "*filter" in out and "COMMIT" in out
    # x/a lives on node-1 in the model: its ingress chain calls the policy's chain
    assert ":cali-pi-" in out and "-j cali-pi-" in out
    assert "-m multiport --dports 80" in out and "-m set --match-set cali40s:" in out
    assert "Policy x/knp.default.allow-from-y ingress" in out
    assert "# ipset restore input:" in out and "create cali40s:" in out
    # node-2 holds no pod the policy selects: no policy chain there
    r2 = calinet(tmp_path, "policy", "compile", "-f", str(f), "--node", "node-2")
    assert r2.returncode == 0, r2.stderr
    assert ":cali-pi-" not in r2.stdout and "*filter" in r2.stdout


def test_bad_input_names_what_is_wrong(tmp_path):
    svc = tmp_path / "svc.yaml"
    svc.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                   "spec: {ports: [{port: 80}]}\n")
    r = calinet(tmp_path, "policy", "compile", "-f", str(svc))
    assert r.returncode == 1 and "only NetworkPolicy / GlobalNetworkPolicy" in r.stderr
    assert "Service s" in r.stderr and r.stdout == ""

    pol = tmp_path / "p.yaml"
    pol.write_text(POLICY)
    r = calinet(tmp_path, "policy", "compile", "-f", str(pol), "--node", "node-9")
    assert r.returncode == 1 and "node 'node-9' has no pods here" in r.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: NetworkPolicy\nmetadata: {name: [unclosed\n")
    r = calinet(tmp_path, "policy", "compile", "-f", str(bad))
    assert r.returncode == 1 and "bad.yaml" in r.stderr, r.stderr

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(POLICY.replace("protocol: TCP", "protocol: ICMPX"))
    r = calinet(tmp_path, "policy", "compile", "-f", str(wrong))
    assert r.returncode == 1 and "protocol" in r.stderr, r.stderr
