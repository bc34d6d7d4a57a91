"""Experiment files are rejected before anything is built, with file, step and field; and
the expectations' evaluation (pure)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import ValidationError
from orchestrator.experiment.runner import check_expect
from orchestrator.experiment.schema import STEP_TYPES, load

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
SHIPPED = ["quickstart", "policy-isolation", "node-failure", "bgp-convergence", "throughput",
           "fabric-failover", "encapsulation", "encapsulation-ipip", "dual-stack"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_experiments_are_valid(name):
    exp = load(EXPERIMENTS / f"{name}.yaml")
    assert exp.name == name and exp.steps and exp.description
    assert all(s.type in STEP_TYPES for s in exp.steps)


def write(tmp_path, body: str) -> Path:
    topo = REPO / "topologies" / "examples" / "three-node.yaml"
    p = tmp_path / "exp.yaml"
    p.write_text(f"name: t\ntopology: {topo}\n" + textwrap.dedent(body))
    return p


POD = """
  - apply:
      - {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: default},
         spec: {containers: [{name: c, image: agnhost}]}}
"""


@pytest.mark.parametrize("body, step, field, words", [
    ("steps:\n  - teleport: {}\n", 1, "teleport", "unknown step field or step type"),
    ("steps:\n  - ping: {from: default/a, to: default/b}\n", 1, "ping.from",
     "pod default/a is not created"),
    ("steps:" + POD + "  - ping: {from: default/a, to: default/nope}\n", 2, "ping.to",
     "pod default/nope is not created"),
    ("steps:" + POD + "  - ping: {from: default/a, to: default/a}\n    expect: {loss: 0}\n",
     2, "expect.loss", "mapping of comparisons"),
    ("steps:" + POD + "  - ping: {from: default/a, to: default/a}\n    expect: {loss: {'~': 0}}\n",
     2, "expect.loss.~", "unknown comparison"),
    ("steps:\n  - probe-matrix: {ports: [80]}\n    expect: {TCP/80: [a]}\n", 1, "expect.TCP/80",
     "all-allowed"),
    ("steps:\n  - probe-matrix: {ports: [80]}\n    expect: {HTTP/80: all-allowed}\n", 1,
     "expect.HTTP/80", "PROTO/PORT"),
    ("steps:\n  - probe-matrix: {ports: [0]}\n", 1, "probe-matrix.ports", "1..65535"),
    ("steps:\n  - link-down: node-9\n", 1, "link-down", "not a node of the topology"),
    ("steps:\n  - wait: soon\n", 1, "wait.for", "ready, converged or duration"),
    ("steps:\n  - bandwidth: {node: node-1, rate: fast}\n", 1, "bandwidth.rate", "100mbit"),
    ("steps:\n  - capture: {interfaces: [eth0]}\n", 1, "capture.interfaces[0]", "NODE:IFACE"),
    ("steps:\n  - ping: {from: default/a}\n", 1, "ping.to", "required"),
    ("steps:\n  - apply: [{apiVersion: v1, kind: Pod, metadata: {name: X}}]\n", 1, "apply[0]",
     "invalid manifest"),
    ("steps:\n  - wait: ready\n    ping: {from: default/a, to: default/a}\n", 1, "",
     "exactly one step key"),
    ("steps: []\n", None, "steps", "non-empty list"),
    ("colour: blue\nsteps:\n  - wait: ready\n", None, "colour", "unknown field"),
    ("steps:\n  - fail-router: spine-1\n", 1, "fail-router", "no fabric routers"),
])
def test_bad_experiments_name_file_step_and_field(tmp_path, body, step, field, words):
    path = write(tmp_path, body)
    with pytest.raises(ValidationError) as err:
        load(path)
    e = err.value
    assert e.source == str(path)
    assert e.obj == (f"step {step}" if step else None), str(e)
    assert e.field == field, str(e)
    assert words in str(e), str(e)


def test_missing_topology_and_bad_yaml(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text("name: t\ntopology: nowhere.yaml\nsteps: [{wait: ready}]\n")
    with pytest.raises(ValidationError, match="no such topology file"):
        load(p)
    p.write_text("name: [\n")
    with pytest.raises(ValidationError, match="not valid YAML"):
        load(p)
    with pytest.raises(ValidationError, match="no such experiment file"):
        load(tmp_path / "absent.yaml")


class _Step:
    def __init__(self, kind, expect):
        self.type, self.expect, self.index, self.name = kind, expect, 3, "s"


def test_expectations_on_values_and_matrices():
    m = {"gbps": 9.5, "rtt_ms": {"avg": 0.1}, "via": {"node-3": 0}}
    out = check_expect(_Step("iperf", {"gbps": {">": 1, "<": 5}, "rtt_ms.avg": {"<": 1},
                                       "via.node-3": {"==": 0}, "nope": {"==": 1}}), m)
    assert [(o["expr"], o["ok"]) for o in out] == [
        ("gbps > 1", True), ("gbps < 5", False), ("rtt_ms.avg < 1", True),
        ("via.node-3 == 0", True), ("nope == 1", False)]
    assert out[1]["message"] == "gbps is 9.5" and "no measurement" in out[4]["message"]
    matrix = {"matrices": [{"port": 80, "protocol": "TCP", "pods": ["x/a", "x/b", "x/c"],
                            "allowed": [[None, True, False], [True, None, True],
                                        [True, True, None]]}]}
    ok = check_expect(_Step("probe-matrix", {"TCP/80": {"denied": ["x/a -> x/c"]}}), matrix)
    assert ok[0]["ok"], ok
    bad = check_expect(_Step("probe-matrix", {"TCP/80": "all-allowed"}), matrix)[0]
    assert not bad["ok"] and "x/a -> x/c (denied)" in bad["message"]
    missing = check_expect(_Step("probe-matrix", {"UDP/80": "all-allowed"}), matrix)[0]
    assert not missing["ok"] and "did not probe UDP/80" in missing["message"]
    unknown = check_expect(_Step("probe-matrix", {"TCP/80": {"allowed": ["x/q -> x/a"]}}),
                           matrix)[0]
    assert not unknown["ok"] and "not probed" in unknown["message"]


def write_fabric(tmp_path, body: str) -> Path:
    topo = REPO / "topologies" / "examples" / "leaf-spine.yaml"
    p = tmp_path / "exp.yaml"
    p.write_text(f"name: t\ntopology: {topo}\n" + textwrap.dedent(body))
    return p


@pytest.mark.parametrize("body, field, words", [
    ("steps:\n  - fail-router: spine-9\n", "fail-router", "not a router of the topology"),
    ("steps:\n  - fabric-link-down: {a: tor-a, b: tor-b}\n", "fabric-link-down",
     "no fabric link joins tor-a and tor-b"),
    ("steps:\n  - fabric-link-up: {a: tor-a}\n", "fabric-link-up.b", "not a router"),
    ("steps:\n  - fabric-link-failure: {a: tor-a, b: spine-1, from: fab/x}\n",
     "fabric-link-failure.to", "required"),
    ("steps:\n  - fabric-link-failure: {a: tor-a, b: spine-1, from: fab/x, to: fab/y}\n",
     "fabric-link-failure.from", "is not created"),
    ("steps:\n  - fabric-link-down: {a: tor-a, b: spine-1, mtu: 9000}\n",
     "fabric-link-down.mtu", "unknown field"),
])
def test_bad_fabric_steps_name_the_field(tmp_path, body, field, words):
    with pytest.raises(ValidationError) as err:
        load(write_fabric(tmp_path, body))
    assert err.value.field == field and words in err.value.message, str(err.value)


def test_fabric_steps_parse(tmp_path):
    exp = load(write_fabric(tmp_path, """
        manifests: [%s]
        steps:
          - fabric-link-down: {a: spine-1, b: tor-c}
          - fail-router: {router: tor-b}
          - fabric-link-failure: {a: tor-a, b: spine-2, from: fab/a1, to: fab/c1}
        """ % (REPO / "experiments" / "manifests" / "fabric-pods.yaml")))
    assert [s.params for s in exp.steps][:2] == [{"a": "spine-1", "b": "tor-c"},
                                                  {"router": "tor-b"}]
    assert exp.steps[2].params["interval"] == 0.01 and exp.steps[2].params["after"] == 3.0
