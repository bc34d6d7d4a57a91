"""The traffic steps' IP family: a bad value or a family the topology's pods do not have is
refused at load, naming the step and the field, and nothing runs; the default is the
experiment's `family`, else the pods' primary one; matrix expectations per family; the
executors probe and measure the family asked for and record it (pure: a fake testbed)."""

from __future__ import annotations

import argparse
import random
import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import ValidationError
from orchestrator.experiment import runner, steps
from orchestrator.experiment.schema import PodRef, load

REPO = Path(__file__).resolve().parents[2]
DUAL = REPO / "topologies" / "examples" / "dual-stack.yaml"
V4 = REPO / "topologies" / "examples" / "three-node.yaml"
XY = REPO / "experiments" / "manifests" / "xy-pods.yaml"


def write(tmp_path, body: str, topo: Path = DUAL, name: str = "exp.yaml") -> Path:
    p = tmp_path / name
    p.write_text(f"name: t\ntopology: {topo}\nmanifests: [{XY}]\n" + textwrap.dedent(body))
    return p


def v6_first(tmp_path) -> Path:
    """The dual-stack example with IPv6 as the pods' primary family."""
    p = tmp_path / "v6-first.yaml"
    p.write_text(DUAL.read_text().replace("ipFamilies: [IPv4, IPv6]", "ipFamilies: [IPv6, IPv4]"))
    return p


def v6_only(tmp_path) -> Path:
    p = tmp_path / "v6-only.yaml"
    p.write_text(DUAL.read_text().replace("ipFamilies: [IPv4, IPv6]", "ipFamilies: [IPv6]"))
    return p


def refused(path) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        load(path)
    return err.value


# -- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("step, field, words", [
    ("ping: {from: x/a, to: x/b, family: 5}", "ping.family", "5 is not an IP family"),
    ("ping: {from: x/a, to: x/b, family: ipv7}", "ping.family", "'ipv7' is not an IP family"),
    ("ping: {from: x/a, to: x/b, family: true}", "ping.family", "True is not an IP family"),
    ("ping: {from: x/a, to: x/b, family: '6'}", "ping.family", "'6' is not an IP family"),
    ("iperf: {from: x/a, to: x/b, family: 46}", "iperf.family", "use 4 or 6 (or IPv4, IPv6)"),
    ("http: {from: x/a, to: x/b, family: [4]}", "http.family", "is not an IP family"),
    ("probe-matrix: {family: 7}", "probe-matrix.family", "7 is not an IP family"),
    ("probe-matrix: {family: [IPv4, ipv7]}", "probe-matrix.family[1]", "'ipv7' is not"),
    ("probe-matrix: {family: []}", "probe-matrix.family", "non-empty list"),
    ("probe-matrix: {family: [6, IPv6]}", "probe-matrix.family[1]", "IPv6 is listed twice"),
    ("probe-matrix: {protocols: [TCP, SCTP], family: [4, 6]}", "probe-matrix.protocols[1]",
     "SCTP probes are IPv4 only"),
    ("probe-matrix: {family: 4}\n    expect: {IPv6 TCP/80: all-allowed}",
     "expect.IPv6 TCP/80", "the step probes IPv4 only"),
    ("probe-matrix: {family: 4}\n    expect: {IPv5 TCP/80: all-allowed}",
     "expect.IPv5 TCP/80", "FAMILY PROTO/PORT"),
])
def test_a_bad_family_names_the_step_and_field(tmp_path, step, field, words):
    path = write(tmp_path, f"steps:\n  - wait: ready\n  - {step}\n")
    e = refused(path)
    assert (e.source, e.obj, e.field) == (str(path), "step 2", field), str(e)
    assert words in e.message, str(e)
    assert f"step 2: field {field}: " in str(e)


def test_a_bad_experiment_level_family_names_the_field(tmp_path):
    e = refused(write(tmp_path, "family: ipv7\nsteps:\n  - wait: ready\n"))
    assert (e.obj, e.field) == (None, "family") and "'ipv7' is not an IP family" in e.message


@pytest.mark.parametrize("step, field", [
    ("ping: {from: x/a, to: x/b, family: 6}", "ping.family"),
    ("iperf: {from: x/a, to: x/b, family: IPv6}", "iperf.family"),
    ("http: {from: x/a, to: x/b, family: 6}", "http.family"),
    ("probe-matrix: {family: [4, 6]}", "probe-matrix.family[1]"),
])
def test_ipv6_on_an_ipv4_only_cluster_is_refused(tmp_path, step, field):
    e = refused(write(tmp_path, f"steps:\n  - {step}\n", topo=V4))
    assert (e.obj, e.field) == ("step 1", field), str(e)
    assert "the pods have no IPv6 addresses: the topology's ipFamilies are [IPv4]" in e.message
    assert "underlay.cidr6" in e.message          # and how to get IPv6 pods


def test_a_family_default_the_pods_lack_is_refused_at_the_top(tmp_path):
    e = refused(write(tmp_path, "family: 6\nsteps:\n  - wait: ready\n", topo=V4))
    assert (e.obj, e.field) == (None, "family") and "no IPv6 addresses" in e.message
    e = refused(write(tmp_path, "steps:\n  - ping: {from: x/a, to: x/b, family: 4}\n",
                      topo=v6_only(tmp_path)))
    assert e.field == "ping.family" and "no IPv4 addresses" in e.message
    assert "ipFamilies are [IPv6]" in e.message


def test_an_invalid_family_runs_nothing(tmp_path, monkeypatch):
    """`calinet run` on such a file: exit 2, the error on stderr, no testbed, no output."""
    from orchestrator.cli import run_cmd

    def never(*a, **kw):
        raise AssertionError("the experiment ran")
    monkeypatch.setattr(runner, "run", never)
    monkeypatch.setattr("orchestrator.testbed.Testbed.__init__", never)
    path = write(tmp_path, "steps:\n  - wait: ready\n  - ping: {from: x/a, to: x/b}\n"
                           "  - ping: {from: x/a, to: x/c, family: 5}\n")
    out = tmp_path / "out"
    args = argparse.Namespace(experiment=str(path), out=str(out))
    assert run_cmd.run_experiment(args) == 2
    assert not out.exists()


# -- defaults ------------------------------------------------------------------------------

STEPS = """
steps:
  - probe-matrix: {}
  - probe-matrix: {family: [IPv6, 4]}
  - ping: {from: x/a, to: x/b}
  - ping: {from: x/a, to: x/b, family: 4}
  - iperf: {from: x/a, to: x/b}
  - http: {from: x/a, to: x/b, family: ipv6}
"""


def families(exp) -> list:
    return [s.params.get("families", s.params.get("family")) for s in exp.steps]


def test_the_default_family_is_the_pods_primary_one(tmp_path):
    exp = load(write(tmp_path, STEPS))
    assert (exp.family, exp.families) == (4, (4, 6))
    assert families(exp) == [[4], [6, 4], 4, 4, 4, 6]
    exp = load(write(tmp_path, STEPS, topo=v6_first(tmp_path)))
    assert (exp.family, exp.families) == (6, (6, 4))
    assert families(exp) == [[6], [6, 4], 6, 4, 6, 6]
    exp = load(write(tmp_path, "steps:\n  - probe-matrix: {}\n", topo=V4))
    assert (exp.family, exp.families, families(exp)) == (4, (4,), [[4]])


def test_the_experiment_family_is_the_steps_default(tmp_path):
    exp = load(write(tmp_path, "family: IPv6\n" + STEPS))
    assert exp.family == 6
    assert families(exp) == [[6], [6, 4], 6, 4, 6, 6]    # a step's own family still wins


def test_the_shipped_dual_stack_experiment_measures_both_families():
    exp = load(REPO / "experiments" / "dual-stack.yaml")
    assert exp.families == (4, 6)
    used = families(exp)
    assert {f for u in used if u is not None for f in (u if isinstance(u, list) else [u])} == {4, 6}
    assert sum(1 for u in used if u == [4, 6]) == 2       # two matrices in both families
    for kind in ("ping", "http", "iperf"):                # each measured in each family
        assert sorted(s.params["family"] for s in exp.steps if s.type == kind) == [4, 6]


# -- matrix expectations per family ---------------------------------------------------------

class _Step:
    def __init__(self, expect):
        self.type, self.expect, self.index, self.name = "probe-matrix", expect, 4, "m"


def _matrix(family, allowed):
    return {"port": 80, "protocol": "TCP", "family": family, "pods": ["x/a", "x/b"],
            "allowed": [[None, allowed[0]], [allowed[1], None]]}


MEASURED = {"matrices": [_matrix(4, [False, True]), _matrix(6, [True, True])]}


def test_an_unqualified_key_holds_in_every_family_probed():
    out = runner.check_expect(_Step({"TCP/80": "all-allowed"}), MEASURED)
    assert [(a["expr"], a["family"], a["ok"]) for a in out] == [
        ("matrix IPv4 TCP/80 all-allowed", 4, False),
        ("matrix IPv6 TCP/80 all-allowed", 6, True)]
    assert out[0]["message"] == "1 pair(s) differ: x/a -> x/b (denied)"


def test_a_family_key_checks_that_family_only():
    out = runner.check_expect(_Step({"IPv4 TCP/80": {"denied": ["x/a -> x/b"]},
                                     "IPv6 TCP/80": "all-allowed"}), MEASURED)
    assert [(a["expr"], a["ok"]) for a in out] == [
        ("matrix IPv4 TCP/80 denied", True), ("matrix IPv6 TCP/80 all-allowed", True)]
    only4 = {"matrices": MEASURED["matrices"][:1]}
    (miss,) = runner.check_expect(_Step({"IPv6 TCP/80": "all-allowed"}), only4)
    assert not miss["ok"] and miss["message"] == "the step did not probe IPv6 TCP/80"


# -- executors on a fake testbed ------------------------------------------------------------

class Spec:
    families = (4, 6)


class FakeTestbed:
    """Pods x/a and x/b with an address of each family; records what it was asked."""
    spec = Spec()
    IPS = {"x/a": {4: "10.244.0.1", 6: "fd00:10:244::1"},
           "x/b": {4: "10.244.0.2", 6: "fd00:10:244::2"}}

    def __init__(self):
        self.calls = []

    def pods(self, namespace=None):
        return list(self.IPS)

    def workload_pods(self):
        return list(self.IPS)

    def get(self, kind, key):
        return {"metadata": {"labels": {}}, "status": {"podIP": self.IPS[key][4]}}

    def pod_ip(self, key, family=None):
        return self.IPS[key][family or 4]

    def matrix(self, port, protocol, pods, timeout, family=None):
        self.calls.append(("matrix", port, protocol, family))
        # IPv4 denies a -> b, IPv6 allows everything
        return {(s, d): family == 6 or (s, d) != ("x/a", "x/b")
                for s in pods for d in pods if s != d}

    def exec(self, key, argv, timeout=None):
        self.calls.append(("exec", key, argv))
        ip = argv[-1]
        out = (f"64 bytes from {ip}: icmp_seq=1 ttl=63 time=0.101 ms\n"
               "1 packets transmitted, 1 received, 0% packet loss, time 0ms\n"
               "rtt min/avg/max/mdev = 0.101/0.101/0.101/0.000 ms\n")
        return type("R", (), {"stdout": out, "stderr": "", "returncode": 0})()


def ctx():
    return steps.Context(FakeTestbed(), random.Random(0), "/nonexistent", 0.0)


def test_probe_matrix_probes_each_family_and_records_it():
    c = ctx()
    m = steps.probe_matrix(c, {"ports": [80, 81], "protocols": ["TCP"], "pods": None,
                               "timeout": 0.5, "families": [4, 6]})
    assert [x for x in c.tb.calls] == [("matrix", 80, "TCP", 4), ("matrix", 80, "TCP", 6),
                                      ("matrix", 81, "TCP", 4), ("matrix", 81, "TCP", 6)]
    assert [(x["port"], x["family"]) for x in m["matrices"]] == [(80, 4), (80, 6), (81, 4),
                                                                 (81, 6)]
    assert m["families"] == [4, 6]
    assert (m["allowed_pairs"], m["pairs"], m["all_allowed"]) == (6, 8, False)
    assert m["by_family"] == {"IPv4": {"allowed_pairs": 2, "pairs": 4, "all_allowed": False},
                              "IPv6": {"allowed_pairs": 4, "pairs": 4, "all_allowed": True}}


def test_probe_matrix_without_families_probes_the_primary_one():
    c = ctx()           # params built by hand (as bench/ does): no "families"
    m = steps.probe_matrix(c, {"ports": [80], "protocols": ["TCP"], "pods": None,
                               "timeout": 0.5})
    assert c.tb.calls == [("matrix", 80, "TCP", 4)] and m["families"] == [4]


@pytest.mark.parametrize("family, ip, flag", [(6, "fd00:10:244::2", "-6"),
                                              (4, "10.244.0.2", "-4"),
                                              (None, "10.244.0.2", "-4")])
def test_ping_goes_to_the_address_of_its_family(family, ip, flag):
    c = ctx()
    p = {"from": PodRef(key="x/a"), "to": PodRef(key="x/b"), "count": 1, "interval": 0.2}
    if family:
        p["family"] = family
    m = steps.ping(c, p)
    (_, src, argv), = c.tb.calls
    assert src == "x/a" and argv[-1] == ip and flag in argv
    assert (m["family"], m["dst_ip"], m["loss"]) == (family or 4, ip, 0.0)
