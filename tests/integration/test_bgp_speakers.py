"""Supervised ExaBGP speakers with the real agent: kernel routes, convergence, kill -9, RR.

Root. Each test builds its own lab of named netns (a "switch" netns holding a bridge, one
netns per node on it, nothing in the root namespace); a `sleep` in each node netns stands in
for the Mininet node process whose pid the supervisor enters. Speakers are bgp.supervisor
Speakers running `python -m bgp.agent`; the tests only write announce.json and read the
kernel's proto-12 routes. Everything is removed by pid and by name, pass or fail.
Run with -s to see the measurements ([bgp-measure] lines).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lan import build_lan

from bgp import config, model, peering, status
from bgp.supervisor import FAILED, Speaker, Supervisor, agent_argv
from orchestrator.errors import ValidationError
from orchestrator.host.runner import Runner

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: netns + BGP on 179")]

SUBNET = "10.213.9"
CLUSTER = "224.0.0.1"


def block(i: int, k: int = 0) -> str:
    return f"10.244.{i}.{k * 64}/26"


class Lab:
    def __init__(self, tmp: Path, count: int):
        self.tag = secrets.token_hex(3)
        self.tmp = tmp
        self.runner = Runner()
        self.switch = f"cbga-{self.tag}-sw"
        self.netns = [f"cbga-{self.tag}-n{i}" for i in range(count)]
        self.ips = [f"{SUBNET}.{i + 1}" for i in range(count)]
        self.holders: list[subprocess.Popen] = []
        self.sup = Supervisor()
        self.spawned: list[int] = []

    def build(self) -> None:
        build_lan(self.runner, self.switch, self.netns, self.ips)
        for ns in self.netns:
            self.holders.append(self.runner.spawn(["sleep", "3600"], netns=ns))

    def state(self, i: int) -> Path:
        return self.tmp / f"n{i}"

    def announce(self, i: int, blocks, borrowed=(), generation=0) -> None:
        path = self.state(i) / "announce.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"blocks": list(blocks), "borrowed": list(borrowed),
                                   "generation": generation}))
        os.replace(tmp, path)

    def speakers(self, nodes, cfg, peers=()) -> None:
        table = peering.peerings(nodes, cfg, peers)
        for i, node in enumerate(nodes):
            self.state(i).mkdir(exist_ok=True)
            argv = agent_argv(node.name, node.ip, str(self.state(i)),
                              cluster_id=node.routeReflectorClusterID)
            text = config.render(node, table[node.name], cfg, argv)
            self.sup.add(Speaker(node.name, self.holders[i].pid, node.ip, str(self.state(i)),
                                 text, config.environment(node, cfg), self.runner,
                                 on_spawn=self.spawned.append, backoff_base=0.2))

    def routes(self, i: int) -> set[str]:
        out = self.runner.run(["ip", "-j", "route", "show", "proto", "12"],
                              netns=self.netns[i]).stdout
        return {f"blackhole {r['dst']}" if r.get("type") == "blackhole"
                else f"{r['dst']} via {r.get('gateway')}" for r in json.loads(out or "[]")}

    def wait_routes(self, i: int, predicate, what: str, timeout: float = 20.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if predicate(self.routes(i)):
                return time.monotonic() - started
            time.sleep(0.005)
        log = (self.state(i) / "agent.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"node {i}: no {what} within {timeout}s, routes "
                             f"{sorted(self.routes(i))}; agent log:\n{log}")

    def teardown(self) -> None:
        try:
            self.sup.stop_all(grace=3)
        finally:
            for h in self.holders:
                h.kill()
                h.wait(timeout=5)
            for ns in [*self.netns, self.switch]:
                self.runner.run(["ip", "netns", "del", ns], check=False)
        for pid in self.spawned:
            assert not _alive(pid), f"process {pid} survived the supervisor's stop"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def lab_factory(tmp_path):
    labs = []

    def make(count: int) -> Lab:
        lab = Lab(tmp_path, count)
        labs.append(lab)
        lab.build()
        return lab

    yield make
    for lab in labs:
        lab.teardown()


def expected(lab: Lab, i: int, blocks: dict[int, list[str]]) -> set[str]:
    """What Calico's BIRD installs on node i: own blackholes, others' blocks via them."""
    out = {f"blackhole {b}" for b in blocks[i]}
    for j, bs in blocks.items():
        if j != i:
            out |= {f"{b} via {lab.ips[j]}" for b in bs}
    return out


def cells(text: str) -> list[list[str]]:
    """The rows of a boxed table, as stripped cells."""
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| ")]


def measure(what: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    sys.stderr.write(f"\n[bgp-measure] {what}: p50 {statistics.median(ms):.0f} ms, p95 "
                     f"{p95:.0f} ms, n={len(ms)}, all {[round(x) for x in ms]}\n")


def start_mesh(lab: Lab, cfg=None) -> dict[int, list[str]]:
    nodes = [model.node_bgp(f"n{i}", ip) for i, ip in enumerate(lab.ips)]
    lab.speakers(nodes, cfg or model.BGPConfiguration(holdTime=9, keepaliveTime=3))
    blocks = {i: [block(i)] for i in range(len(nodes))}
    for i in blocks:
        lab.announce(i, blocks[i])
    started = time.monotonic()
    lab.sup.start_all(timeout=30)
    sys.stderr.write(f"\n[bgp-measure] {len(nodes)} speakers started, all sessions "
                     f"Established in {(time.monotonic() - started) * 1000:.0f} ms\n")
    return blocks


def test_mesh_routes_convergence_and_status(lab_factory):
    lab = lab_factory(3)
    blocks = start_mesh(lab)
    for i in range(3):
        lab.wait_routes(i, lambda r, i=i: r == expected(lab, i, blocks), "mesh routes")
    # node status in Calico's shape, from the agent's status.json
    text = status.render_node_status(lab.sup.speaker("n0").status(), time.time())
    assert text.startswith("Calico process is running.\n\nIPv4 BGP status\n")
    for ip in lab.ips[1:]:
        assert [ip, "node-to-node mesh", "up"] in [row[:3] for row in cells(text)]
    assert f"via {lab.ips[1]}" not in status.render_routes(lab.sup.speaker("n1").status())
    assert [block(1), "unicast", lab.ips[1], lab.ips[1]] in \
        cells(status.render_routes(lab.sup.speaker("n0").status()))

    # a block claimed while running reaches every other node; then released again
    claim, release = [], []
    for k in range(1, 11):
        new = block(0, k % 3 + 1)
        blocks[0] = [block(0), new]
        t0 = time.monotonic()
        lab.announce(0, blocks[0], generation=k)
        for i in (1, 2):
            lab.wait_routes(i, lambda r, new=new: f"{new} via {lab.ips[0]}" in r, "claimed block")
        claim.append(time.monotonic() - t0)
        blocks[0] = [block(0)]
        t0 = time.monotonic()
        lab.announce(0, blocks[0], generation=k + 100)
        for i in (1, 2):
            lab.wait_routes(i, lambda r, new=new: f"{new} via {lab.ips[0]}" not in r, "released block")
        release.append(time.monotonic() - t0)
    measure("3-node mesh: block claimed -> route on all others", claim)
    measure("3-node mesh: block released -> route gone on all others", release)
    assert statistics.median(claim) < 0.5

    # an IP borrowed by n1 from n0's block beats n0's blackhole there (Calico #3246)
    lab.announce(1, blocks[1], borrowed=["10.244.0.9"])
    lab.wait_routes(0, lambda r: f"10.244.0.9 via {lab.ips[1]}" in r
                    and f"blackhole {block(0)}" in r, "borrowed /32 on the owner")
    lab.wait_routes(2, lambda r: f"10.244.0.9 via {lab.ips[1]}" in r, "borrowed /32")


def test_kill_9_speaker_is_restarted_and_routes_return(lab_factory):
    lab = lab_factory(3)
    blocks = start_mesh(lab)
    for i in range(3):
        lab.wait_routes(i, lambda r, i=i: r == expected(lab, i, blocks), "mesh routes")
    sp = lab.sup.speaker("n2")
    old = sp.proc.pid
    agent_pid = sp.status()["agent_pid"]
    killed = time.monotonic()
    os.kill(old, signal.SIGKILL)
    # graceful restart: the others keep forwarding to n2's block meanwhile
    restarted = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and restarted is None:
        if lab.sup.poll():
            restarted = time.monotonic()
        assert f"{block(2)} via {lab.ips[2]}" in lab.routes(0)
        time.sleep(0.02)
    assert restarted is not None and sp.proc.pid != old
    assert not _alive(agent_pid)             # the old agent went with its speaker
    sp.wait_ready(30)
    ready = time.monotonic()
    # routes survived on n2 itself (its new agent adopted them) and everywhere else
    for i in range(3):
        assert lab.routes(i) == expected(lab, i, blocks)
    blocks[2].append(block(2, 1))
    t0 = time.monotonic()
    lab.announce(2, blocks[2], generation=1)
    for i in (0, 1):
        lab.wait_routes(i, lambda r: f"{block(2, 1)} via {lab.ips[2]}" in r, "new block")
    sys.stderr.write(f"\n[bgp-measure] kill -9: restarted after "
                     f"{(restarted - killed) * 1000:.0f} ms, sessions up again "
                     f"{(ready - killed) * 1000:.0f} ms after the kill, new block everywhere "
                     f"{(time.monotonic() - t0) * 1000:.0f} ms after announce.json\n")
    for i in range(3):
        lab.wait_routes(i, lambda r, i=i: r == expected(lab, i, blocks), "final routes",
                        timeout=5)
    # reload = restart with the new config; a rejected one leaves the speaker running
    sp1 = lab.sup.speaker("n1")
    with pytest.raises(ValidationError, match="ExaBGP rejects"):
        sp1.reload(sp1.config_text.replace("hold-time 9;", "hold-time nine;"))
    assert sp1.ready()
    before = sp1.proc.pid
    sp1.reload(sp1.config_text.replace("hold-time 9;", "hold-time 30;"))
    sp1.wait_ready(30)
    assert sp1.proc.pid != before and not _alive(before)
    for i in range(3):
        assert lab.routes(i) == expected(lab, i, blocks)


def test_route_reflector_with_mesh_off_gives_mesh_routes(lab_factory):
    lab = lab_factory(3)
    nodes = [model.node_bgp("a", lab.ips[0]), model.node_bgp("b", lab.ips[1]),
             model.node_bgp("rr", lab.ips[2], labels={"rr": "true"},
                            routeReflectorClusterID=CLUSTER)]
    cfg = model.BGPConfiguration(nodeToNodeMeshEnabled=False, holdTime=9, keepaliveTime=3)
    peers = [model.BGPPeer("to-rr", nodeSelector="all()", peerSelector="rr == 'true'")]
    lab.speakers(nodes, cfg, peers)
    blocks = {i: [block(i)] for i in range(3)}
    for i in blocks:
        lab.announce(i, blocks[i])
    lab.sup.start_all(timeout=30)
    for i in range(3):
        lab.wait_routes(i, lambda r, i=i: r == expected(lab, i, blocks), "RR routes")
    text = status.render_node_status(lab.sup.speaker("a").status(), time.time())
    assert [row[:3] for row in cells(text)][1:] == [[lab.ips[2], "node specific", "up"]]
    times = []
    for k in range(1, 6):
        new = block(0, k % 3 + 1)
        t0 = time.monotonic()
        lab.announce(0, [block(0), new], generation=k)
        lab.wait_routes(1, lambda r, new=new: f"{new} via {lab.ips[0]}" in r, "reflected block")
        times.append(time.monotonic() - t0)
        lab.announce(0, [block(0)], generation=k + 100)
        lab.wait_routes(1, lambda r, new=new: f"{new} via {lab.ips[0]}" not in r, "reflected withdraw")
    measure("RR: client block claimed -> route on the other client", times)
    assert statistics.median(times) < 0.5


def test_rejected_config_starts_nothing(lab_factory, tmp_path):
    lab = lab_factory(1)
    node = model.node_bgp("n0", lab.ips[0])
    argv = agent_argv("n0", lab.ips[0], str(tmp_path))
    text = config.render(node, [], model.BGPConfiguration(), argv).replace(
        "encoder json;", "encoder json;\n    bogus-keyword 1;")
    sp = lab.sup.add(Speaker("n0", lab.holders[0].pid, lab.ips[0], str(tmp_path), text, {},
                             lab.runner))
    with pytest.raises(ValidationError, match="ExaBGP rejects"):
        lab.sup.start_all(timeout=5)
    assert sp.proc is None and sp.pids() == [] and sp.state != FAILED
