"""The agent's logic with a fake speaker pipe and a fake kernel: announcements, coalescing,
graceful restart, reflection, status.json, the stdin/announce.json loop; and the config
parser, fib applier and supervisor helpers that need no root."""

from __future__ import annotations

import io
import json
import os
import struct
import threading
import time
from pathlib import Path

import pytest

from bgp import agent as agentmod
from bgp import codec, config, model, peering
from bgp.agent import COALESCE, EOR_SETTLE, Agent, SpeakerConfig, Watcher, parse_announce
from bgp.dirwatch import DirWatch, parse_events
from bgp.fib import Fib
from bgp.peering import MESH, NODE_SPECIFIC, Neighbor
from bgp.rib import BLACKHOLE, UNICAST, Route
from bgp.supervisor import Speaker, agent_argv
from orchestrator.errors import ApplyError, CommandError, ValidationError
from orchestrator.host.runner import RecordingRunner, Result

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "bgp"
ME, A, B = "10.0.0.1", "10.0.0.2", "10.0.0.3"
CID = "224.0.0.1"


class FakeFib:
    def __init__(self, routes=()):
        self.routes = list(routes)
        self.calls: list[list[Route]] = []
        self.fail = False

    def current(self):
        return list(self.routes)

    def apply(self, desired):
        desired = list(desired)
        self.calls.append(desired)
        if self.fail:
            raise ApplyError("boom", "route replace ...\n")
        changed = desired != self.routes
        self.routes = desired
        return "batch\n" if changed else ""


def mesh(*ips, restart=120):
    return SpeakerConfig(tuple(Neighbor(ip, 64512, MESH) for ip in ips), restart, 9)


def make(tmp_path, cfg=None, fib=None, **kw):
    out = io.StringIO()
    ag = Agent("n1", ME, str(tmp_path), config=cfg or mesh(A, B), fib=fib or FakeFib(),
               out=out, **kw)
    return ag, out


def line(kind, peer, **neighbor):
    return json.dumps({"type": kind, "neighbor": {"address": {"local": ME, "peer": peer},
                                                  **neighbor}})


def up(peer):
    return line("state", peer, state="up")


def down(peer, reason="closing connection"):
    return line("state", peer, state="down", reason=reason)


def update(peer, *prefixes, nh=None, withdraw=()):
    upd = {"attribute": {"origin": "igp", "local-preference": 100}}
    if prefixes:
        upd["announce"] = {"ipv4 unicast": {nh or peer: [{"nlri": p} for p in prefixes]}}
    if withdraw:
        upd["withdraw"] = {"ipv4 unicast": [{"nlri": p} for p in withdraw]}
    return line("update", peer, message={"update": upd})


def eor(peer):
    return line("update", peer, message={"eor": {"afi": "ipv4", "safi": "unicast"}})


def commands(out):
    return [c for c in out.getvalue().splitlines() if c]


# -- config and announce.json parsing ----------------------------------------------------

def test_parse_config_reads_rendered_neighbors_roles_and_timers():
    nodes = [model.node_bgp("a", A), model.node_bgp("b", B),
             model.node_bgp("rr", ME, labels={"rr": "true"}, routeReflectorClusterID=CID)]
    cfg = model.BGPConfiguration(nodeToNodeMeshEnabled=False, holdTime=9, keepaliveTime=3,
                                 nodeMeshMaxRestartTime=30)
    peers = [model.BGPPeer("to-rr", nodeSelector="all()", peerSelector="rr == 'true'")]
    table = peering.peerings(nodes, cfg, peers)
    text = config.render(nodes[2], table["rr"], cfg, ["/usr/bin/python3", "-m", "bgp.agent"])
    got = agentmod.parse_config(text)
    assert got.restart_time == 30 and got.hold_time == 9
    assert [(n.ip, n.type, n.rr_client, n.cluster_id, n.asNumber) for n in got.neighbors] == [
        (A, NODE_SPECIFIC, True, CID, 64512), (B, NODE_SPECIFIC, True, CID, 64512)]
    assert [(n.ip, n.passive) for n in got.neighbors] == [(nb.ip, nb.passive)
                                                           for nb in table["rr"]]


def test_parse_config_golden_mesh_file():
    got = agentmod.parse_config((FIX / "exabgp_mesh_n1.conf").read_text())
    assert [(n.ip, n.type, n.passive) for n in got.neighbors] == [
        ("172.18.0.3", MESH, True), ("172.18.0.10", MESH, False), ("172.18.0.11", MESH, False)]


@pytest.mark.parametrize("doc,field", [
    ({"blocks": ["10.244.0.0/33"]}, "announce.json blocks"),
    ({"blocks": ["10.244.0.1/26"]}, "announce.json blocks"),   # host bits set
    ({"borrowed": ["nope"]}, "announce.json borrowed"),
    (["10.244.0.0/26"], "announce.json"),
])
def test_parse_announce_rejects_bad_documents(doc, field):
    with pytest.raises(ValidationError) as err:
        parse_announce(doc)
    assert err.value.field == field


# -- announcements -------------------------------------------------------------------------

def test_announce_diff_announces_new_and_withdraws_released(tmp_path):
    ag, out = make(tmp_path)
    ag.set_announce({"blocks": ["10.244.0.0/26"], "borrowed": ["10.244.9.5"],
                     "generation": 1}, 0.0)
    assert commands(out) == ["announce route 10.244.0.0/26 next-hop 10.0.0.1",
                             "announce route 10.244.9.5/32 next-hop 10.0.0.1"]
    out.truncate(0), out.seek(0)
    ag.set_announce({"blocks": ["10.244.0.0/26"], "borrowed": ["10.244.9.5"],
                     "generation": 2}, 0.1)
    assert commands(out) == []          # same content, new generation: nothing to say
    ag.set_announce({"blocks": ["10.244.0.0/26", "10.244.0.64/26"], "borrowed": [],
                     "generation": 3}, 0.2)
    assert commands(out) == ["withdraw route 10.244.9.5/32",
                             "announce route 10.244.0.64/26 next-hop 10.0.0.1"]
    assert ag.announced == ["10.244.0.0/26", "10.244.0.64/26"]


def test_bad_announce_keeps_previous_and_reports_error(tmp_path):
    ag, out = make(tmp_path)
    ag.set_announce({"blocks": ["10.244.0.0/26"]}, 0.0)
    ag.set_announce({"blocks": ["bogus"]}, 0.1)
    ag.tick(0.1)
    assert ag.announced == ["10.244.0.0/26"]
    st = json.loads((tmp_path / "status.json").read_text())
    assert "announce.json blocks" in st["error"]


# -- routes: coalescing, borrowed /32 vs blackhole -------------------------------------------

def test_updates_are_coalesced_into_one_kernel_batch(tmp_path):
    fib = FakeFib()
    ag, _ = make(tmp_path, fib=fib)
    ag.set_announce({"blocks": ["10.244.0.0/26"]}, 0.0)
    ag.tick(0.0)
    assert fib.calls == [[Route("10.244.0.0/26", BLACKHOLE)]]
    t = 1.0
    for ln in (up(A), update(A, "10.244.1.0/26"), up(B), update(B, "10.244.2.0/26"),
               update(B, "10.244.0.9/32")):
        ag.feed(ln, t)
    ag.tick(t + COALESCE / 2)
    assert len(fib.calls) == 1                      # still inside the window
    assert ag.next_deadline() == pytest.approx(t + COALESCE)
    ag.tick(t + COALESCE)
    assert len(fib.calls) == 2
    assert fib.calls[-1] == [Route("10.244.0.0/26", BLACKHOLE),
                             Route("10.244.0.9/32", UNICAST, B),   # beats our blackhole
                             Route("10.244.1.0/26", UNICAST, A),
                             Route("10.244.2.0/26", UNICAST, B)]


def test_withdraw_removes_route(tmp_path):
    fib = FakeFib()
    ag, _ = make(tmp_path, fib=fib)
    for ln in (up(A), update(A, "10.244.1.0/26", "10.244.1.64/26")):
        ag.feed(ln, 0.0)
    ag.tick(1.0)
    ag.feed(update(A, withdraw=["10.244.1.0/26"]), 2.0)
    ag.tick(2.0 + COALESCE)
    assert fib.routes == [Route("10.244.1.64/26", UNICAST, A)]


def test_failed_batch_is_retried_and_reported(tmp_path):
    fib = FakeFib()
    ag, _ = make(tmp_path, fib=fib)
    fib.fail = True
    ag.set_announce({"blocks": ["10.244.0.0/26"]}, 0.0)
    ag.tick(0.0)
    assert "boom" in json.loads((tmp_path / "status.json").read_text())["error"]
    assert ag.next_deadline() == pytest.approx(agentmod.RETRY)
    fib.fail = False
    ag.tick(agentmod.RETRY)
    assert fib.routes == [Route("10.244.0.0/26", BLACKHOLE)]
    assert json.loads((tmp_path / "status.json").read_text())["error"] is None


# -- graceful restart ------------------------------------------------------------------------

def test_speaker_death_keeps_routes_until_restart_time(tmp_path):
    fib = FakeFib()
    ag, _ = make(tmp_path, cfg=mesh(A, B, restart=10), fib=fib)
    for ln in (up(A), update(A, "10.244.1.0/26")):
        ag.feed(ln, 0.0)
    ag.tick(1.0)
    ag.feed(down(A), 2.0)
    ag.tick(3.0)
    assert Route("10.244.1.0/26", UNICAST, A) in fib.routes       # stale, still forwarding
    ag.feed(down(A), 5.0)                                           # reconnect attempts
    assert ag.next_deadline() == pytest.approx(12.0)               # not extended
    ag.tick(12.0)
    assert fib.routes == []


def test_restarted_peer_eor_expires_what_it_did_not_resend_after_settle(tmp_path):
    fib = FakeFib()
    ag, _ = make(tmp_path, fib=fib)
    for ln in (up(A), update(A, "10.244.1.0/26", "10.244.1.64/26")):
        ag.feed(ln, 0.0)
    ag.feed(down(A), 1.0)
    for ln in (up(A), eor(A)):
        ag.feed(ln, 2.0)
    ag.tick(2.0 + COALESCE)
    assert len(fib.routes) == 2           # EOR can come before the queued routes
    ag.feed(update(A, "10.244.1.0/26"), 2.1)
    ag.tick(2.0 + EOR_SETTLE)
    assert fib.routes == [Route("10.244.1.0/26", UNICAST, A)]


def test_hold_timer_expiry_drops_routes_at_once(tmp_path):
    fib = FakeFib()
    ag, _ = make(tmp_path, fib=fib)
    for ln in (up(A), update(A, "10.244.1.0/26")):
        ag.feed(ln, 0.0)
    ag.tick(1.0)
    ag.feed(down(A, "notification sent (4,0)"), 2.0)
    ag.tick(2.0 + COALESCE)
    assert fib.routes == []
    peer = json.loads((tmp_path / "status.json").read_text())["peers"][0]
    assert (peer["state"], peer["info"]) == ("start", "Active BGP Error: Hold timer expired")


def test_own_restart_keeps_kernel_routes_until_peers_resynced(tmp_path):
    old = [Route("10.244.1.0/26", UNICAST, A), Route("10.244.2.0/26", UNICAST, B)]
    fib = FakeFib(old)
    ag, _ = make(tmp_path, fib=fib)
    ag.adopt_kernel_routes(0.0)
    ag.set_announce({"blocks": ["10.244.0.0/26"]}, 0.0)
    ag.tick(0.0)
    assert fib.routes == [Route("10.244.0.0/26", BLACKHOLE), *old]
    for ln in (up(A), eor(A), update(A, "10.244.1.0/26"), up(B), eor(B)):
        ag.feed(ln, 0.5)
    ag.tick(0.5)                     # all peers resynced: a settle period starts
    assert Route("10.244.2.0/26", UNICAST, B) in fib.routes
    ag.tick(0.5 + EOR_SETTLE)
    assert fib.routes == [Route("10.244.0.0/26", BLACKHOLE), old[0]]


# -- route reflection ------------------------------------------------------------------------

def test_route_reflector_reflects_client_routes_with_originator_and_cluster(tmp_path):
    cfg = SpeakerConfig((Neighbor(A, 64512, NODE_SPECIFIC, rr_client=True, cluster_id=CID),
                         Neighbor(B, 64512, NODE_SPECIFIC, rr_client=True, cluster_id=CID)))
    fib = FakeFib()
    ag, out = make(tmp_path, cfg=cfg, fib=fib)
    assert ag.rib.cluster_id == CID                    # taken from the config
    for ln in (up(A), up(B), update(A, "10.244.1.0/26")):
        ag.feed(ln, 0.0)
    ag.tick(COALESCE)
    assert commands(out) == [codec.announce("10.244.1.0/26", A, neighbors=[B],
                                            originator_id=A, cluster_list=[CID],
                                            local_preference=100)]
    assert fib.routes == [Route("10.244.1.0/26", UNICAST, A)]
    out.truncate(0), out.seek(0)
    ag.feed(update(A, withdraw=["10.244.1.0/26"]), 1.0)
    ag.tick(1.0 + COALESCE)
    assert commands(out) == ["neighbor 10.0.0.3 withdraw route 10.244.1.0/26"]


# -- status.json -----------------------------------------------------------------------------

def test_status_json_peers_routes_announced(tmp_path):
    cfg = SpeakerConfig((Neighbor(A, 64512, MESH), Neighbor(B, 64512, MESH, passive=True)))
    clock = iter(range(100, 200))
    ag, _ = make(tmp_path, cfg=cfg, wall=lambda: float(next(clock)))
    ag.set_announce({"blocks": ["10.244.0.0/26"], "generation": 7}, 0.0)
    for ln in (up(A), update(A, "10.244.1.0/26")):
        ag.feed(ln, 0.0)
    ag.tick(1.0)
    st = json.loads((tmp_path / "status.json").read_text())
    assert st["node"] == "n1" and st["since"] == 100.0 and st["generation"] == 7
    assert st["speaker_pid"] == os.getppid() and st["running"] is True
    assert st["peers"] == [
        {"ip": A, "type": MESH, "state": "up", "info": "Established", "since": 101.0},
        {"ip": B, "type": MESH, "state": "start", "info": "Passive", "since": 100.0}]
    assert st["routes"] == [
        {"prefix": "10.244.0.0/26", "type": "blackhole", "via": None, "source": "local"},
        {"prefix": "10.244.1.0/26", "type": "unicast", "via": A, "source": A}]
    assert st["announced"] == ["10.244.0.0/26"]
    assert not list(tmp_path.glob("*.tmp"))


# -- the loop: stdin pipe + announce.json ----------------------------------------------------

def test_run_loop_reads_stdin_polls_announce_and_exits_on_eof(tmp_path):
    fib = FakeFib()
    ag, out = make(tmp_path, fib=fib)
    ann = tmp_path / "announce.json"
    ann.write_text(json.dumps({"blocks": ["10.244.0.0/26"], "generation": 1}))
    rfd, wfd = os.pipe()

    def speaker():
        os.write(wfd, (up(A) + "\n" + update(A, "10.244.1.0/26")[:40]).encode())
        time.sleep(0.05)
        os.write(wfd, (update(A, "10.244.1.0/26")[40:] + "\n").encode())  # split line
        time.sleep(0.1)
        tmp = tmp_path / "announce.tmp"
        tmp.write_text(json.dumps({"blocks": ["10.244.0.0/26", "10.244.0.64/26"]}))
        os.replace(tmp, ann)
        time.sleep(0.3)
        os.close(wfd)

    th = threading.Thread(target=speaker)
    th.start()
    started = time.monotonic()
    agentmod.run(ag, rfd, Watcher(str(ann)))
    th.join()
    os.close(rfd)
    assert time.monotonic() - started < 5
    assert commands(out) == ["announce route 10.244.0.0/26 next-hop 10.0.0.1",
                             "announce route 10.244.0.64/26 next-hop 10.0.0.1"]
    assert fib.routes == [Route("10.244.0.0/26", BLACKHOLE), Route("10.244.0.64/26", BLACKHOLE),
                          Route("10.244.1.0/26", UNICAST, A)]


def test_run_loop_reads_announce_on_inotify_without_waiting_for_the_poll(tmp_path):
    """With a DirWatch the 1 s safety-net poll is not what picks up a new announce.json:
    the rename at ~0.15 s is announced before stdin closes at ~0.45 s."""
    ag, out = make(tmp_path, fib=FakeFib())
    ann = tmp_path / "announce.json"
    ann.write_text(json.dumps({"blocks": [], "generation": 1}))
    rfd, wfd = os.pipe()
    seen = {}

    def speaker():
        time.sleep(0.15)
        (tmp_path / "status.json.x.tmp").write_text("{}")   # other files: ignored
        tmp = tmp_path / "announce.tmp"
        tmp.write_text(json.dumps({"blocks": ["10.244.0.64/26"], "generation": 2}))
        seen["renamed"] = time.monotonic()
        os.replace(tmp, ann)
        time.sleep(0.3)
        os.close(wfd)

    watch = DirWatch(str(tmp_path))
    th = threading.Thread(target=speaker)
    th.start()
    try:
        agentmod.run(ag, rfd, Watcher(str(ann)), dirwatch=watch)
    finally:
        th.join()
        os.close(rfd)
        watch.close()
    assert agentmod.POLL_WITH_INOTIFY >= 1.0
    assert commands(out) == ["announce route 10.244.0.64/26 next-hop 10.0.0.1"]
    assert ag.generation == 2


def test_dirwatch_parses_event_names():
    ev = struct.pack("=iIII", 1, 0x80, 0, 16) + b"announce.json\0\0\0"
    ev += struct.pack("=iIII", 1, 0x8, 0, 0)
    assert parse_events(ev) == {"announce.json", ""}
    assert parse_events(b"") == set()


# -- fib applier (recorded commands) ---------------------------------------------------------

LINK_FACTS = {  # the node's connected subnet and its (on-link) default route
    ("ip", "-j", "route", "show", "table", "main", "proto", "kernel"): Result(0, json.dumps([
        {"dst": "10.0.0.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link"}]), ""),
    ("ip", "-j", "route", "show", "table", "main", "default"): Result(0, json.dumps([
        {"dst": "default", "dev": "eth0"}]), ""),
}


def test_fib_applies_only_the_difference_in_one_batch():
    runner = RecordingRunner(responses={**LINK_FACTS, ("ip", "-j"): Result(0, json.dumps([
        {"type": "blackhole", "dst": "10.244.0.0/26", "flags": []},
        {"dst": "10.244.3.0/26", "gateway": B, "dev": "eth0", "flags": []}]), "")})
    fib = Fib(runner)
    batch = fib.apply([Route("10.244.0.0/26", BLACKHOLE), Route("10.244.1.0/26", UNICAST, A)])
    assert batch == ("route del 10.244.3.0/26 proto 12\n"
                     "route replace 10.244.1.0/26 via 10.0.0.2 proto 12\n")
    assert runner.calls[-1]["argv"] == ["ip", "-force", "-batch", "-"]
    assert runner.calls[-1]["input"] == batch and runner.calls[-1]["pid"] is None
    runner.calls.clear()
    assert fib.apply([Route("10.244.0.0/26", BLACKHOLE),
                      Route("10.244.3.0/26", UNICAST, B)]) == ""
    assert len(runner.calls) == 1                        # read only: nothing to write


def test_fib_resolves_off_subnet_next_hops_via_the_gateway():
    """BIRD's `gateway recursive`: a meshed node in another routed rack (10.0.1.2) is not on
    this node's subnet, so its block goes via the node's default gateway (its ToR); an
    on-subnet next hop stays as it is. The link facts are read once."""
    runner = RecordingRunner(responses={
        ("ip", "-j", "route", "show", "table", "main", "proto", "kernel"): Result(0, json.dumps([
            {"dst": "10.0.0.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link"}]), ""),
        ("ip", "-j", "route", "show", "table", "main", "default"): Result(0, json.dumps([
            {"dst": "default", "gateway": "10.0.0.1", "dev": "eth0"}]), "")})
    fib = Fib(runner, recursive=True)
    batch = fib.apply([Route("10.244.1.0/26", UNICAST, "10.0.1.2"),
                       Route("10.244.2.0/26", UNICAST, "10.0.0.3")])
    assert batch == ("route replace 10.244.1.0/26 via 10.0.0.1 proto 12\n"
                     "route replace 10.244.2.0/26 via 10.0.0.3 proto 12\n")
    fib.apply([Route("10.244.1.0/26", UNICAST, "10.0.1.2")])
    reads = [c for c in runner.calls if "kernel" in c["argv"] or "default" in c["argv"]]
    assert len(reads) == 2


def test_fib_error_carries_the_batch():
    runner = RecordingRunner(responses={("ip", "-force"): Result(2, "", "RTNETLINK: Nexthop")})
    with pytest.raises(ApplyError) as err:
        Fib(runner).apply([Route("10.244.1.0/26", UNICAST, A)])
    assert err.value.rendered_input == "route replace 10.244.1.0/26 via 10.0.0.2 proto 12\n"


# -- supervisor pieces that need no root -----------------------------------------------------

def test_agent_argv_fits_exabgp_run_line(tmp_path):
    argv = agent_argv("n1", ME, str(tmp_path), cluster_id=CID)
    node = model.node_bgp("n1", ME)
    text = config.render(node, [], model.BGPConfiguration(), argv)
    assert f"run {' '.join(argv)};" in text
    assert argv[1:4] == ["-m", "bgp.agent", "--node"] and argv[-2:] == ["--cluster-id", CID]


def test_speaker_validation_error_is_clear_and_starts_nothing(tmp_path):
    runner = RecordingRunner(responses={("/x/exabgp", "validate"): Result(
        1, "", "configuration   line 6: bogus 1 ;\nerror: x is not a valid config file:\n")})
    sp = Speaker("n1", 1, ME, str(tmp_path), "neighbor 10.0.0.2 {\n    peer-as 1;\n}\n", {},
                 runner, exabgp="/x/exabgp")
    with pytest.raises(ValidationError) as err:
        sp.start()
    assert "ExaBGP rejects" in str(err.value) and "Node n1" in str(err.value)
    assert sp.proc is None and not (tmp_path / "exabgp.conf").exists()
    assert sp.expected_peers == ["10.0.0.2"]


class FakeProc:
    _next = 2 ** 30           # above pid_max: a stray signal can reach no real process

    def __init__(self):
        FakeProc._next += 1
        self.pid, self.returncode = FakeProc._next, None

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        return self.returncode


class SpawnRunner(RecordingRunner):
    def spawn(self, argv, **kw):
        self.calls.append({"argv": [str(a) for a in argv], "spawn": kw})
        return FakeProc()


def test_speaker_restarts_with_exponential_backoff_then_gives_up(tmp_path):
    runner, seen = SpawnRunner(), []
    text = "neighbor 10.0.0.2 {\n    peer-as 1;\n}\n"
    sp = Speaker("n1", 4242, ME, str(tmp_path), text, {"exabgp.tcp.bind": ME}, runner,
                 exabgp="/x/exabgp", on_spawn=seen.append, max_restarts=3, window=100,
                 backoff_base=0.5)
    sp.start()
    spawn = runner.calls[-1]
    assert spawn["argv"] == ["/x/exabgp", "server", str(tmp_path / "exabgp.conf")]
    assert spawn["spawn"]["pid"] == 4242 and spawn["spawn"]["env"]["exabgp.tcp.bind"] == ME
    assert spawn["spawn"]["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(FIX.parents[2])
    assert (tmp_path / "exabgp.conf").read_text() == text and seen == [sp.proc.pid]
    now, delays = 10.0, []
    for _ in range(3):
        sp.proc.returncode = -9
        assert sp.poll(now) is False and sp.state == "backoff"
        delays.append(sp.next_start - now)
        assert sp.poll(sp.next_start - 0.01) is False
        now = sp.next_start
        assert sp.poll(now) is True and sp.state == "running"
    assert delays == [0.5, 1.0, 2.0] and len(seen) == 4
    sp.proc.returncode = 1
    assert sp.poll(now + 1) is False
    assert sp.state == "failed" and "gave up" in sp.error and sp.pids() == []


def test_fib_turns_recursive_only_once_the_kernel_refuses_a_next_hop():
    """On an L2 underlay nothing extra is read; the first "invalid gateway" switches the Fib
    to recursive next hops and writes the batch again."""
    class Runner(RecordingRunner):
        fails = 1

        def run(self, argv, **kw):
            if argv[:2] == ["ip", "-force"] and self.fails:
                self.calls.append({"argv": list(argv), "input": kw.get("input")})
                self.fails -= 1
                raise CommandError(argv, 2, "", "Error: Nexthop has invalid gateway.")
            return super().run(argv, **kw)
    runner = Runner(responses={**LINK_FACTS, **{
        ("ip", "-j", "route", "show", "table", "main", "default"): Result(0, json.dumps([
            {"dst": "default", "gateway": "10.0.0.1", "dev": "eth0"}]), "")}})
    plain = Fib(RecordingRunner())
    plain.apply([Route("10.244.1.0/26", UNICAST, A)])
    assert not plain.recursive
    fib = Fib(runner)
    batch = fib.apply([Route("10.244.1.0/26", UNICAST, "10.0.1.2")])
    assert fib.recursive and batch == "route replace 10.244.1.0/26 via 10.0.0.1 proto 12\n"


def test_ipip_pools_in_announce_json_send_their_routes_through_tunl0(tmp_path):
    """CrossSubnet: a next hop on our subnet stays native, one beyond goes `dev tunl0
    onlink`; status.json and `calinet routes` show the device."""
    from bgp.status import render_routes
    far = "10.1.0.9"
    fib = FakeFib()
    ag, _ = make(tmp_path, cfg=mesh(A, far), fib=fib)
    ag.set_announce({"blocks": ["10.244.0.0/26"],
                     "ipip": [{"cidr": "10.244.0.0/16", "mode": "CrossSubnet"}],
                     "subnet": "10.0.0.0/24"}, 0.0)
    for ln in (up(A), update(A, "10.244.1.0/26"), up(far), update(far, "10.244.2.0/26")):
        ag.feed(ln, 0.0)
    ag.tick(1.0)
    assert fib.calls[-1] == [Route("10.244.0.0/26", BLACKHOLE),
                             Route("10.244.1.0/26", UNICAST, A),
                             Route("10.244.2.0/26", UNICAST, far, "tunl0", True)]
    st = json.loads((tmp_path / "status.json").read_text())
    assert st["routes"][2] == {"prefix": "10.244.2.0/26", "type": "unicast", "via": far,
                               "source": far, "dev": "tunl0"}
    assert f"{far} dev tunl0" in render_routes(st)
    # The pool turns Always: the same-subnet route moves into the tunnel too.
    ag.set_announce({"blocks": ["10.244.0.0/26"],
                     "ipip": [{"cidr": "10.244.0.0/16", "mode": "Always"}],
                     "subnet": "10.0.0.0/24"}, 2.0)
    ag.tick(2.0)
    assert fib.calls[-1][1] == Route("10.244.1.0/26", UNICAST, A, "tunl0", True)
    # A bad IPIP entry is an announce error: the previous state is kept.
    ag.set_announce({"blocks": ["10.244.0.0/26"], "ipip": [{"cidr": "x"}]}, 3.0)
    ag.tick(4.0)
    assert fib.calls[-1][1] == Route("10.244.1.0/26", UNICAST, A, "tunl0", True)
    assert "announce.json ipip" in json.loads((tmp_path / "status.json").read_text())["error"]
