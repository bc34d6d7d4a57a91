"""Experiments choose the IP family per step, on a real dual-stack testbed: `calinet run` on a
cluster whose pods are IPv6 first, steps without a family measure over IPv6 (the pods'
primary family), steps with one over that family, each measurement records it, a policy that
admits only IPv4 sources shows apart in the two families' matrices, and report.html shows both.
An IPv6 step on an IPv4-only topology is refused before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.root, pytest.mark.mininet]
DUAL = REPO / "topologies" / "examples" / "dual-stack.yaml"
XY = REPO / "experiments" / "manifests" / "xy-pods.yaml"

INTO_Y = ["x/a -> y/a", "x/b -> y/a", "x/c -> y/a", "y/b -> y/a", "y/c -> y/a",
          "x/a -> y/b", "x/b -> y/b", "x/c -> y/b", "y/a -> y/b", "y/c -> y/b",
          "x/a -> y/c", "x/b -> y/c", "x/c -> y/c", "y/a -> y/c", "y/b -> y/c"]
EXPERIMENT = f"""
name: v6-first
description: IPv6-primary pods; the default family, both families, an IPv4-only policy.
topology: TOPOLOGY
dns: false
manifests: [{XY}]
steps:
  - wait: ready
  - name: default family
    probe-matrix: {{ports: [80]}}
    expect: {{TCP/80: all-allowed}}
  - name: ping, default family
    ping: {{from: x/a, to: y/c, count: 5, interval: 0.05}}
    expect: {{loss: {{"==": 0}}, family: {{"==": 6}}}}
  - name: ping over IPv4
    ping: {{from: x/a, to: y/c, count: 5, interval: 0.05, family: IPv4}}
    expect: {{loss: {{"==": 0}}}}
  - name: HTTP over IPv6
    http: {{from: y/b, to: x/c, requests: 5}}
    expect: {{ok: {{"==": 5}}}}
  - name: UDP iperf3 over IPv4
    iperf: {{from: x/a, to: y/c, protocol: UDP, bitrate: 100M, duration: 1, family: 4}}
    expect: {{lost_percent: {{"<": 5}}}}
  - name: y admits ingress from IPv4 pod addresses only
    apply:
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {{name: ipv4-sources-only, namespace: y}}
        spec:
          podSelector: {{}}
          policyTypes: [Ingress]
          ingress: [{{from: [{{ipBlock: {{cidr: 10.244.0.0/16}}}}]}}]
  - wait: converged
  - name: y is open over IPv4, closed over IPv6
    probe-matrix: {{ports: [80], family: [4, 6]}}
    expect:
      IPv4 TCP/80: all-allowed
      IPv6 TCP/80: {{denied: [{", ".join(INTO_Y)}]}}
"""


def calinet_run(path, out, timeout=300):
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "run", str(path),
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def ours() -> set[str]:
    return {n for n in os.listdir("/var/run/netns") if n.startswith("calinet-")} \
        if os.path.isdir("/var/run/netns") else set()


def test_steps_measure_the_family_they_choose_and_the_report_shows_both(tmp_path):
    topo = tmp_path / "v6-first-topology.yaml"
    topo.write_text(DUAL.read_text().replace("ipFamilies: [IPv4, IPv6]",
                                             "ipFamilies: [IPv6, IPv4]"))
    exp = tmp_path / "v6-first.yaml"
    exp.write_text(EXPERIMENT.replace("TOPOLOGY", str(topo)))
    before = ours()
    r = calinet_run(exp, tmp_path / "out")
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["passed"] and all(a["ok"] for a in res["assertions"])
    assert res["experiment"]["family"] == 6 and res["topology"]["ipFamilies"] == ["IPv6", "IPv4"]
    st = {s["index"]: s for s in res["steps"]}
    m = {i: s["measurements"] for i, s in st.items()}
    assert [st[i].get("families") for i in sorted(st)] == [
        None, [6], [6], [4], [6], [4], None, None, [4, 6]]
    # each measurement went to the address of its family, and says which
    assert [x["family"] for x in m[2]["matrices"]] == [6]
    assert (m[3]["family"], ":" in m[3]["dst_ip"]) == (6, True)
    assert (m[4]["family"], ":" in m[4]["dst_ip"]) == (4, False)
    assert m[3]["dst"] == m[4]["dst"] == "y/c"
    assert m[5]["family"] == 6 and m[5]["url"].startswith("http://[fd00:10:244:")
    assert m[6]["family"] == 4 and "." in m[6]["dst_ip"] and m[6]["gbps"] > 0
    assert [x["family"] for x in m[9]["matrices"]] == [4, 6]
    assert m[9]["by_family"] == {
        "IPv4": {"allowed_pairs": 30, "pairs": 30, "all_allowed": True},
        "IPv6": {"allowed_pairs": 15, "pairs": 30, "all_allowed": False}}
    assert [a["expr"] for a in res["assertions"] if a["step"] == 9] == [
        "matrix IPv4 TCP/80 all-allowed", "matrix IPv6 TCP/80 denied"]
    pod = next(p for p in res["pods"] if p["key"] == "y/c")
    assert ":" in pod["ip"] and [":" in ip for ip in pod["ips"]] == [True, False]
    page = (tmp_path / "out" / "report.html").read_text()
    assert '<section id="families">' in page
    assert "reachability IPv6 TCP/80" in page and "reachability IPv4 TCP/80" in page
    assert "TCP/80: IPv4 and IPv6 differ on 15 of 30 pairs" in page
    assert "#3 IPv6 y/c" in page and "#4 IPv4 y/c" in page
    assert not {n for n in ours() - before if n.startswith(f"calinet-{res['testbed']}-")}


def test_ipv6_on_an_ipv4_cluster_starts_nothing(tmp_path):
    exp = tmp_path / "bad.yaml"
    exp.write_text(f"name: bad\ntopology: {REPO}/topologies/examples/three-node.yaml\n"
                   f"manifests: [{XY}]\nsteps:\n  - wait: ready\n"
                   "  - ping: {from: x/a, to: x/b, family: 6}\n")
    before = ours()
    r = calinet_run(exp, tmp_path / "out", timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    err = " ".join(r.stderr.split())
    assert "step 2: field ping.family: the pods have no IPv6 addresses" in err, r.stderr
    assert not (tmp_path / "out").exists() and ours() == before
