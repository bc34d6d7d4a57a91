"""Blackhole route diffing (pure) and the ownership ledger (a temp directory)."""

from __future__ import annotations

import json
import os

from orchestrator.host.ledger import Ledger, proc_start_time
from orchestrator.host.runner import RecordingRunner, Result
from orchestrator.node import blackholes


def test_render_adds_and_removes_only_the_difference():
    text = blackholes.render({"10.0.0.0/26", "10.0.1.0/26"}, {"10.0.1.0/26", "10.0.2.0/26"})
    assert text == ("route replace blackhole 10.0.2.0/26 proto 12\n"
                    "route del blackhole 10.0.0.0/26 proto 12\n")
    assert blackholes.render({"a"}, {"a"}) == ""


def test_sync_reads_then_writes_one_batch():
    r = RecordingRunner(responses={
        ("ip", "-j", "route"): Result(0, json.dumps([{"dst": "10.0.0.0/26", "type": "blackhole"}]), "")})
    assert blackholes.sync(r, 42, ["10.0.0.0/26", "10.0.0.64/26"])
    assert [c["argv"][:2] for c in r.calls] == [["ip", "-j"], ["ip", "-batch"]]
    assert r.calls[1]["pid"] == 42
    assert r.calls[1]["input"] == "route replace blackhole 10.0.0.64/26 proto 12\n"
    r.calls.clear()
    assert blackholes.sync(r, 42, ["10.0.0.0/26"]) is False  # already exactly that
    assert [c["argv"][:2] for c in r.calls] == [["ip", "-j"]]  # read only, no write


def test_sync_with_what_it_made_last_writes_without_reading():
    r = RecordingRunner()
    assert blackholes.sync(r, 42, ["10.0.0.0/26", "10.0.0.64/26"], known={"10.0.0.0/26"})
    assert [c["argv"][:2] for c in r.calls] == [["ip", "-batch"]]
    assert r.calls[0]["input"] == "route replace blackhole 10.0.0.64/26 proto 12\n"
    r.calls.clear()
    assert blackholes.sync(r, 42, ["10.0.0.0/26"], known={"10.0.0.0/26"}) is False
    assert r.calls == []


def test_ledger_records_and_reads_back(tmp_path):
    import orchestrator.host.ledger as ledger_mod
    led = Ledger(str(tmp_path))
    registry = tmp_path / "registry"
    old = ledger_mod.REGISTRY_DIR
    ledger_mod.REGISTRY_DIR = str(registry)
    try:
        led.begin("ab12")
        entries = ledger_mod.registered_testbeds()
    finally:
        ledger_mod.REGISTRY_DIR = old
    assert [(e["id"], e["alive"]) for e in entries] == [("ab12", True)]
    led.netns(["calinet-ab12-x"])
    led.links(["cnab12s1"])
    led.pids([os.getpid()])
    with open(led.path, "a") as f:
        f.write('{"torn": ')  # a crash mid-write leaves a partial last line
    c = led.read()
    assert c.testbed_id == "ab12" and c.owner_alive()
    assert c.netns == {"calinet-ab12-x"} and c.links == {"cnab12s1"}
    assert c.pids == {os.getpid(): proc_start_time(os.getpid())}


def test_proc_start_time_handles_odd_comm_and_missing_pid():
    assert proc_start_time(os.getpid()).isdigit()
    assert proc_start_time(2 ** 22 + 12345) is None


def test_cleanup_never_sweeps_its_own_namespace(tmp_path, monkeypatch):
    """A recorded node pid that lives in our own netns (a bridge shell, the zygote) must not
    make cleanup kill every process of the machine's namespace."""
    from orchestrator.host import cleanup
    led = Ledger(str(tmp_path))
    with open(led.path, "w") as f:
        f.write(json.dumps({"run": "ab12", "owner": 1, "start": "0"}) + "\n")
    led.node_pids([os.getpid()])  # our own process: its netns is ours
    swept = []
    monkeypatch.setattr(cleanup, "_pids_in_netns", lambda inodes: swept.append(set(inodes)) or [])
    monkeypatch.setattr(cleanup, "stop_pids", lambda pids, grace=2.0: [])
    monkeypatch.setattr(cleanup, "owned_links", lambda tid, runner=None: [])
    monkeypatch.setattr(cleanup, "owned_netns", lambda tid: [])
    cleanup.clean_state_dir(str(tmp_path), RecordingRunner())
    assert swept == [set()]
