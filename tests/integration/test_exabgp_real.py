"""Real ExaBGP 5.0 speakers in named netns, configured by bgp.config from bgp.peering.

Root. Each test builds its own lab: a "switch" netns holding a bridge, one netns per node
joined to it by a veth (nothing is created in the root namespace), starts one exabgp per node
with tests/fixtures/bgp/api_probe.py as its API process, and removes everything by pid and
by name afterwards, pass or fail. With CALINET_CAPTURE_BGP=1 the JSON lines the probes
received are saved as tests/fixtures/bgp/*.jsonl (the codec goldens).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lan import build_lan

from bgp import codec, config, model, peering
from orchestrator.host.runner import Runner

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: netns + BGP on 179")]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bgp"
PROBE = FIXTURES / "api_probe.py"
EXABGP = Path(sys.executable).parent / "exabgp"
SUBNET = "10.213.7"
RR_LABEL = {"rr": "true"}
CLUSTER = "224.0.0.1"


class Lab:
    """Named netns joined by a bridge living in its own netns; speakers tracked by pid."""

    def __init__(self, tmp: Path, count: int):
        self.tag = secrets.token_hex(3)
        self.tmp = tmp
        self.runner = Runner()
        self.switch = f"cbgp-{self.tag}-sw"
        self.netns = [f"cbgp-{self.tag}-n{i}" for i in range(count)]
        self.ips = [f"{SUBNET}.{i + 1}" for i in range(count)]
        self.procs: dict[int, subprocess.Popen] = {}
        self.started: dict[int, float] = {}

    def build(self) -> None:
        build_lan(self.runner, self.switch, self.netns, self.ips)

    def start(self, i: int, text: str, env: dict, route: tuple[str, str] | None) -> None:
        conf = self.tmp / f"n{i}.conf"
        fifo = self.tmp / f"n{i}.ctl"
        if not fifo.exists():
            os.mkfifo(fifo)
        argv = [str(PROBE), str(self.tmp / f"n{i}.jsonl"), str(fifo), *(route or ())]
        conf.write_text(text.replace("run __AGENT__;", f"run {' '.join(argv)};"))
        log = open(self.tmp / f"n{i}.log", "ab")
        self.started[i] = time.monotonic()
        self.procs[i] = self.runner.spawn([str(EXABGP), "server", str(conf)], netns=self.netns[i],
                                          stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, **env})
        log.close()

    def stop(self, i: int) -> None:
        proc = self.procs.pop(i)
        started = time.monotonic()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        sys.stderr.write(f"\n[bgp-measure] speaker n{i} stopped in "
                         f"{(time.monotonic() - started) * 1000:.0f} ms\n")

    def control(self, i: int, command: str) -> None:
        fd = os.open(self.tmp / f"n{i}.ctl", os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, (command + "\n").encode())
        finally:
            os.close(fd)

    def lines(self, i: int) -> list[dict]:
        path = self.tmp / f"n{i}.jsonl"
        if not path.exists():
            return []
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]

    def wait_for(self, i: int, predicate, what: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.lines(i):
                if predicate(msg):
                    return msg
            time.sleep(0.02)
        log = (self.tmp / f"n{i}.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"node {i}: no {what} within {timeout}s; exabgp log:\n{log}")

    def rss_kib(self, i: int) -> tuple[int, int]:
        """RSS of the speaker, and of its API process (the probe)."""
        pid = self.procs[i].pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return _rss(pid), sum(_rss(int(c)) for c in children)

    def teardown(self) -> None:
        try:
            for i in list(self.procs):
                self.stop(i)
        finally:
            for ns in [*self.netns, self.switch]:
                self.runner.run(["ip", "netns", "del", ns], check=False)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


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


def _up(peer: str):
    return lambda m: (m.get("type") == "state" and m["neighbor"]["state"] == "up"
                      and m["neighbor"]["address"]["peer"] == peer)


def _announces(prefix: str):
    def check(m):
        if m.get("type") != "update":
            return False
        ann = m["neighbor"]["message"].get("update", {}).get("announce", {})
        return any(n["nlri"] == prefix for nhs in ann.get("ipv4 unicast", {}).values()
                   for n in nhs)
    return check


def _render(lab: Lab, nodes, cfg, peers) -> dict[int, tuple[str, dict]]:
    table = peering.peerings(nodes, cfg, peers)
    out = {}
    for i, node in enumerate(nodes):
        text = config.render(node, table[node.name], cfg, ["/__AGENT__"])
        out[i] = (text.replace("run /__AGENT__;", "run __AGENT__;"),
                  config.environment(node, cfg))
    return out


def _capture(lab: Lab, i: int, name: str) -> None:
    if os.environ.get("CALINET_CAPTURE_BGP") == "1":
        shutil.copy(lab.tmp / f"n{i}.jsonl", FIXTURES / name)


def _report(what: str, seconds: list[float], rss: list[tuple[int, int]]) -> None:
    """Session-up time from spawning exabgp, and RSS in MiB as (speaker, probe) pairs."""
    mib = [(round(a / 1024, 1), round(b / 1024, 1)) for a, b in rss]
    sys.stderr.write(f"\n[bgp-measure] {what}: session up {[round(s * 1000) for s in seconds]}"
                     f" ms after spawn, RSS (speaker, probe) {mib} MiB\n")


def test_two_speakers_mesh_session_and_announcement(lab_factory):
    lab = lab_factory(2)
    nodes = [model.node_bgp(f"n{i}", ip) for i, ip in enumerate(lab.ips)]
    cfg = model.BGPConfiguration(holdTime=9, keepaliveTime=3)
    rendered = _render(lab, nodes, cfg, [])
    lab.start(0, *rendered[0], route=("10.244.0.0/26", lab.ips[0]))
    lab.start(1, *rendered[1], route=None)
    up = []
    for i, other in ((0, 1), (1, 0)):
        lab.wait_for(i, _up(lab.ips[other]), "session up")
        up.append(time.monotonic() - lab.started[i])
    msg = lab.wait_for(1, _announces("10.244.0.0/26"), "announcement")
    events = codec.parse(json.dumps(msg))
    assert events == [codec.RouteUpdate(lab.ips[0], (codec.Path("10.244.0.0/26", lab.ips[0]),))]
    # withdraw through the control pipe, then the speaker going away
    lab.control(0, codec.withdraw("10.244.0.0/26"))
    lab.wait_for(1, lambda m: m.get("type") == "update" and "withdraw" in
                 m["neighbor"]["message"].get("update", {}), "withdrawal")
    _report("2-node mesh", up, [lab.rss_kib(0), lab.rss_kib(1)])
    lab.stop(0)
    lab.wait_for(1, lambda m: m.get("type") == "state" and m["neighbor"]["state"] == "down",
                 "peer down")
    _capture(lab, 1, "mesh_receiver.jsonl")


def test_route_reflector_reflects_with_originator_and_cluster_list(lab_factory):
    lab = lab_factory(3)
    nodes = [model.node_bgp("a", lab.ips[0]), model.node_bgp("b", lab.ips[1]),
             model.node_bgp("rr", lab.ips[2], labels=RR_LABEL, routeReflectorClusterID=CLUSTER)]
    cfg = model.BGPConfiguration(nodeToNodeMeshEnabled=False, holdTime=9, keepaliveTime=3)
    peers = [model.BGPPeer("to-rr", nodeSelector="all()", peerSelector="rr == 'true'")]
    table = peering.peerings(nodes, cfg, peers)
    assert [nb.ip for nb in table["a"]] == [lab.ips[2]]
    assert all(nb.rr_client for nb in table["rr"])
    rendered = _render(lab, nodes, cfg, peers)
    lab.start(2, *rendered[2], route=None)
    lab.start(0, *rendered[0], route=("10.244.1.0/26", lab.ips[0]))
    lab.start(1, *rendered[1], route=None)
    up = []
    for i in (0, 1):
        lab.wait_for(i, _up(lab.ips[2]), "session with the RR")
        up.append(time.monotonic() - lab.started[i])
    msg = lab.wait_for(2, _announces("10.244.1.0/26"), "client route at the RR")
    [update] = codec.parse(json.dumps(msg))
    [path] = update.announced
    # What the agent on the RR does: reflect to the other clients, keeping the next hop.
    lab.control(2, codec.announce(path.prefix, path.next_hop, neighbors=[lab.ips[1]],
                                  originator_id=update.peer, cluster_list=[CLUSTER]))
    got = lab.wait_for(1, _announces("10.244.1.0/26"), "reflected route")
    [reflected] = codec.parse(json.dumps(got))
    assert reflected.peer == lab.ips[2]
    assert reflected.announced == (codec.Path("10.244.1.0/26", lab.ips[0], lab.ips[0],
                                              (CLUSTER,)),)
    _report("3-node RR", up, [lab.rss_kib(i) for i in range(3)])
    lab.control(2, codec.withdraw("10.244.1.0/26", neighbors=[lab.ips[1]]))
    lab.wait_for(1, lambda m: m.get("type") == "update" and "withdraw" in
                 m["neighbor"]["message"].get("update", {}), "reflected withdrawal")
    _capture(lab, 1, "rr_client.jsonl")
    _capture(lab, 2, "rr_reflector.jsonl")


def _down(peer: str):
    return lambda m: (m.get("type") == "state" and m["neighbor"]["state"] == "down"
                      and m["neighbor"]["address"]["peer"] == peer)


def test_faults_kill_and_link_down_are_seen_by_the_peer(lab_factory):
    """What the agent sees when a speaker dies (SIGKILL) and when a link dies (hold timer)."""
    lab = lab_factory(3)
    nodes = [model.node_bgp(f"n{i}", ip) for i, ip in enumerate(lab.ips)]
    cfg = model.BGPConfiguration(holdTime=3, keepaliveTime=1)
    rendered = _render(lab, nodes, cfg, [])
    lab.start(0, *rendered[0], route=("10.244.0.0/26", lab.ips[0]))
    lab.start(1, *rendered[1], route=None)
    lab.start(2, *rendered[2], route=("10.244.2.0/26", lab.ips[2]))
    lab.wait_for(1, _announces("10.244.0.0/26"), "n0 block")
    lab.wait_for(1, _announces("10.244.2.0/26"), "n2 block")
    # several prefixes with the same attributes arrive grouped in one update
    for prefix in ("10.244.0.64/26", "10.244.0.128/26", "10.244.2.7/32"):
        lab.control(0, codec.announce(prefix, lab.ips[0]))
    lab.wait_for(1, _announces("10.244.2.7/32"), "borrowed /32")
    # SIGKILL: the kernel closes the socket, the peer notices at once
    killed_at = time.monotonic()
    lab.procs[0].kill()
    lab.procs.pop(0).wait(timeout=5)
    lab.wait_for(1, _down(lab.ips[0]), "down after kill", timeout=10)
    kill_s = time.monotonic() - killed_at
    # link down: nothing is closed, only the hold timer (3 s) notices
    cut_at = time.monotonic()
    lab.runner.run(["ip", "link", "set", "eth0", "down"], netns=lab.netns[2])
    lab.wait_for(1, _down(lab.ips[2]), "down after link cut", timeout=10)
    cut_s = time.monotonic() - cut_at
    sys.stderr.write(f"\n[bgp-measure] peer down seen after SIGKILL {kill_s * 1000:.0f} ms, "
                     f"after link down {cut_s * 1000:.0f} ms (hold 3 s)\n")
    assert cut_s < 3 + 1.5
    _capture(lab, 1, "faults_receiver.jsonl")
