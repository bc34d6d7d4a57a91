"""Every shipped experiment runs with `calinet run` and its expectations hold; a failing
expectation fails the run; Ctrl-C tears everything down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.root, pytest.mark.mininet]
SHIPPED = ["quickstart", "policy-isolation", "node-failure", "bgp-convergence", "throughput",
           "fabric-failover", "encapsulation", "encapsulation-ipip", "dual-stack"]
NEEDS = {"encapsulation-ipip": "ipip"}    # kernel features (encap.features) an experiment needs


def calinet_run(path, out, timeout=300):
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "run", str(path),
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def ours() -> set[str]:
    return {n for n in os.listdir("/var/run/netns") if n.startswith("calinet-")} \
        if os.path.isdir("/var/run/netns") else set()


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_experiment_passes(name, tmp_path):
    before = ours()
    t = time.monotonic()
    r = calinet_run(REPO / "experiments" / f"{name}.yaml", tmp_path / "out")
    took = time.monotonic() - t
    from encap.features import available
    if name in NEEDS and not available(NEEDS[name])[0]:
        # Refused before a node exists, saying what is missing and where it is not.
        assert r.returncode != 0 and f"{NEEDS[name]} module" in r.stdout + r.stderr, (
            r.stdout + r.stderr)
        assert took < 30 and not ours() - before
        return
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["passed"] and res["assertions"] and all(a["ok"] for a in res["assertions"])
    assert res["topology"]["nodes"] and res["pods"] and res["versions"]["python"]
    assert all(s["ok"] for s in res["steps"]) and len(res["steps"]) >= 5
    if (REPO / "orchestrator" / "report" / "html.py").exists():
        assert (tmp_path / "out" / "report.html").stat().st_size > 1000
    if name == "quickstart":
        assert took < 15, f"quickstart took {took:.1f}s (goal: under 15 s)"
        from orchestrator.report import browser
        if browser.unavailable_reason() is None:   # the real report, in a real browser
            html = tmp_path / "out" / "report.html"
            with browser.open_browser(1400, 900) as drv:
                drv.get(browser.file_url(html))
                assert browser.severe_console_entries(drv) == []
                assert drv.find_elements("css selector", "svg")
            png = browser.screenshot(html, tmp_path / "report.png")
            assert png.stat().st_size > 10_000
    if name == "node-failure":
        kinds = {e["kind"] for e in res["bgp_timeline"]}
        assert {"fault", "peer-down", "routes"} <= kinds
    # by ownership: other testbeds may run on this machine meanwhile
    assert not {n for n in ours() - before if n.startswith(f"calinet-{res['testbed']}-")}, \
        "the run left namespaces behind"


def test_failed_expectation_fails_the_run_and_reports_it(tmp_path):
    exp = tmp_path / "fail.yaml"
    exp.write_text(
        f"name: failing\ntopology: {REPO}/topologies/examples/three-node.yaml\n"
        "manifests: [" + str(REPO / "experiments/manifests/xy-pods.yaml") + "]\nsteps:\n"
        "  - wait: ready\n"
        "  - probe-matrix: {ports: [80], pods: [x/a, x/b]}\n"
        "    expect: {TCP/80: all-denied}\n"
        "  - probe-matrix: {ports: [80], pods: [x/a, x/b]}\n"
        "    expect: {TCP/80: all-allowed}\n")
    r = calinet_run(exp, tmp_path / "out")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "expectation failed" in r.stdout and "FAILED" in r.stdout
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [a["ok"] for a in res["assertions"]] == [False, True]
    assert res["passed"] is False


def test_invalid_experiment_starts_nothing(tmp_path):
    exp = tmp_path / "bad.yaml"
    exp.write_text(f"name: bad\ntopology: {REPO}/topologies/examples/three-node.yaml\n"
                   "steps:\n  - ping: {from: demo/ghost, to: demo/ghost}\n")
    before = ours()
    r = calinet_run(exp, tmp_path / "out", timeout=60)
    assert r.returncode == 2 and "step 1" in r.stderr and "ping.from" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists() and ours() == before


def test_ctrl_c_tears_the_testbed_down(tmp_path):
    before = ours()
    p = subprocess.Popen([sys.executable, "-m", "orchestrator.cli.main", "run",
                          str(REPO / "experiments" / "throughput.yaml"), "--out",
                          str(tmp_path / "out")], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (ours() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.5)                    # inside the steps (an iperf3 run)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, out + err
    assert "interrupted" in err
    assert ours() - before == set(), "namespaces left after Ctrl-C"


def test_capture_bandwidth_and_netem_detection(tmp_path):
    """tc rate limiting on a node's link shows in iperf3; netem's absence is said, not hidden;
    tcpdump captures a pod's and a node's interfaces into pcaps with packets in them."""
    exp = tmp_path / "shaping.yaml"
    exp.write_text(
        f"name: shaping\ntopology: {REPO}/topologies/examples/three-node.yaml\n"
        f"manifests: [{REPO}/experiments/manifests/throughput-pods.yaml]\nsteps:\n"
        "  - wait: ready\n"
        "  - capture: {interfaces: [node-2:eth0, perf/c:eth0], seconds: 3}\n"
        "  - bandwidth: {node: node-2, rate: 100mbit, delay: 5ms}\n"
        "  - name: across the shaped link\n"
        "    iperf: {from: perf/a, to: perf/c, duration: 1}\n"
        "    expect: {gbps: {'<': 0.2}}\n"
        "  - bandwidth: {node: node-2, clear: true}\n"
        "  - name: unshaped again\n"
        "    iperf: {from: perf/a, to: perf/c, duration: 1}\n"
        "    expect: {gbps: {'>': 1}}\n")
    r = calinet_run(exp, tmp_path / "out")
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    shaped = res["steps"][2]["measurements"]
    assert shaped["applied"] == ["tbf rate 100mbit"]
    netem = any("netem" in n for n in res["host"]["notes"])
    assert netem == ("skipped" in shaped)      # said exactly when netem is missing
    pcaps = {p["interface"]: p for p in res["pcaps"]}
    assert set(pcaps) == {"node-2:eth0", "perf/c:eth0"}
    for p in pcaps.values():
        assert p["packets"] > 10 and (tmp_path / "out" / p["file"]).stat().st_size > 0
