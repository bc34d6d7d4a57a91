"""exabgp.conf rendering against golden files, each also accepted by ExaBGP's own parser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_bgp_peering import SCENARIOS

from bgp import config
from bgp.model import BGPConfiguration, node_bgp
from bgp.peering import peerings
from orchestrator.errors import ValidationError

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "bgp"
EXABGP = Path(sys.executable).parent / "exabgp"
AGENT = ["/bin/true", "--node", "n3"]  # must exist: ExaBGP checks the program at parse time
CASES = [("mesh", "n1"), ("rr2", "n3"), ("rr2", "n1"), ("global", "n2"), ("per_node", "n3"),
         ("mesh6", "n1"), ("rr6", "n3")]


def _render(scenario, node_name):
    nodes, cfg, peers = SCENARIOS[scenario]
    node = next(n for n in nodes if n.name == node_name)
    return config.render(node, peerings(nodes, cfg, peers)[node_name], cfg, AGENT)


@pytest.mark.parametrize("scenario,node", CASES)
def test_golden_and_exabgp_accepts_it(scenario, node, tmp_path):
    got = _render(scenario, node)
    path = GOLDEN / f"exabgp_{scenario}_{node}.conf"
    if os.environ.get("CALINET_UPDATE_GOLDEN") == "1":
        path.write_text(got)
    assert got == path.read_text()
    nodes, cfg, _ = SCENARIOS[scenario]
    env = {**os.environ, **config.environment(nodes[0], cfg)}
    res = subprocess.run([str(EXABGP), "validate", "-n", str(path)], capture_output=True,
                         text=True, timeout=60, env=env)
    assert res.returncode == 0, res.stdout + res.stderr


def test_exabgp_validate_rejects_a_broken_config(tmp_path):
    # the check above can fail: a hold time of 2 s is refused by ExaBGP
    bad = tmp_path / "bad.conf"
    bad.write_text(_render("mesh", "n1").replace("hold-time 240;", "hold-time 2;"))
    res = subprocess.run([str(EXABGP), "validate", str(bad)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode != 0


def test_rr_client_role_and_timers_in_text():
    text = _render("rr2", "n3")
    assert 'description "Node_172_18_0_2 rr-client 224.0.0.1";' in text
    assert 'description "Node_172_18_0_11";' in text  # the other RR: no client
    assert text.count("graceful-restart 120;") == 3
    assert "neighbor 172.18.0.10 " not in text  # never itself


def test_short_timers_and_port():
    nodes, _, _ = SCENARIOS["mesh"]
    cfg = BGPConfiguration(holdTime=9, keepaliveTime=3, listenPort=1790,
                           nodeMeshMaxRestartTime=30)
    text = config.render(nodes[1], peerings(nodes, cfg, [])["n2"], cfg, AGENT)
    assert "hold-time 9;" in text and "graceful-restart 30;" in text
    assert "connect 1790;" in text
    assert config.environment(nodes[1], cfg)["exabgp.tcp.port"] == "1790"


def test_environment():
    env = config.environment(node_bgp("n1", "172.18.0.2"),
                             BGPConfiguration(logSeverityScreen="Fatal"))
    assert env == {
        "exabgp.api.ack": "false", "exabgp.api.cli": "false", "exabgp.api.encoder": "json",
        "exabgp.daemon.daemonize": "false", "exabgp.daemon.drop": "false",
        "exabgp.daemon.user": "root", "exabgp.log.destination": "stdout",
        "exabgp.log.level": "CRITICAL", "exabgp.reactor.speed": "25",
        "exabgp.tcp.bind": "172.18.0.2",
        "exabgp.tcp.port": "179"}
    assert list(env) == sorted(env)
    assert not any("delay" in k for k in env)


@pytest.mark.parametrize("argv", [["bin/agent"], ["/bin/agent", "a b"], ["/x", "a;b"], []])
def test_bad_agent_argv(argv):
    nodes, cfg, _ = SCENARIOS["mesh"]
    with pytest.raises(ValidationError, match="agent"):
        config.render(nodes[0], [], cfg, argv)


def test_protocol_names():
    table = peerings(*SCENARIOS["per_node"])
    names = sorted(config.protocol_name(nb) for nb in table["n1"])
    assert names == ["Mesh_172_18_0_10", "Mesh_172_18_0_11", "Mesh_172_18_0_3",
                     "Node_172_18_0_252"]
