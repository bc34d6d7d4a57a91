"""The state directory's lock: refused while its testbed runs, waited out for a moment when
the testbed it names is gone (a process it was starting still holds the lock), and an error
that names the holders when that moment passes. No root: only the lock file is touched."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import testbed as testbed_mod
from orchestrator.errors import CalinetError
from orchestrator.testbed import Testbed

TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "examples" / "three-node.yaml"
HOLD = ("import fcntl, sys, time\n"
        "f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
        "print('held', flush=True); time.sleep(float(sys.argv[2]))\n")


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def holder(lock: Path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), str(seconds)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_running_testbed_s_lock_is_refused_at_once(tmp_path):
    lock = tmp_path / "lock"
    lock.write_text(f"{os.getpid()}\n")           # this process: alive
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        tb = Testbed(str(TOPOLOGY), state_dir=str(tmp_path))
        with pytest.raises(CalinetError, match=rf"in use by a running testbed \(pid {os.getpid()}\)"):
            tb._lock_state_dir()
        assert tb._lockfile is None


def test_a_gone_testbed_s_lock_is_waited_out_and_then_names_our_pid(tmp_path):
    lock = tmp_path / "lock"
    lock.write_text(f"{dead_pid()}\n")
    p = holder(lock, 0.3)                         # lets go after 0.3 s
    try:
        tb = Testbed(str(TOPOLOGY), state_dir=str(tmp_path))
        tb._lock_state_dir()
        assert lock.read_text() == f"{os.getpid()}\n"
        tb._lockfile.close()
    finally:
        p.kill()
        p.wait()


def test_a_gone_testbed_s_lock_held_on_names_the_holders(tmp_path, monkeypatch):
    monkeypatch.setattr(testbed_mod, "LOCK_WAIT", 0.2)
    lock = tmp_path / "lock"
    gone = dead_pid()
    lock.write_text(f"{gone}\n")
    p = holder(lock, 30)
    try:
        tb = Testbed(str(TOPOLOGY), state_dir=str(tmp_path))
        with pytest.raises(CalinetError, match=rf"testbed {gone}, which is gone: {p.pid} \(python"):
            tb._lock_state_dir()
        assert lock.read_text() == f"{gone}\n"     # nothing changed
    finally:
        p.kill()
        p.wait()


def test_a_testbeds_own_state_dir_goes_on_the_memory_filesystem_when_there_is_room(
        tmp_path, monkeypatch):
    from orchestrator import testbed
    monkeypatch.setattr(testbed, "SCRATCH", str(tmp_path))
    monkeypatch.setattr(testbed, "SCRATCH_MIN", 1)
    assert testbed._scratch_dir() == str(tmp_path)
    monkeypatch.setattr(testbed, "SCRATCH_MIN", 2**62)           # no room: the system's tmp
    assert testbed._scratch_dir() is None
    monkeypatch.setattr(testbed, "SCRATCH", str(tmp_path / "missing"))
    assert testbed._scratch_dir() is None
