"""restore_session without a kernel: when no session can be started it forks per write."""

from __future__ import annotations

from orchestrator.host.runner import RecordingRunner
from orchestrator.node.restore_session import ARGV, RestoreSession


class _NoSpawn(RecordingRunner):
    def spawn(self, *a, **kw):
        raise FileNotFoundError("iptables-restore: not found")


def test_a_session_that_cannot_start_falls_back_to_one_fork_per_write():
    runner = _NoSpawn()
    s = RestoreSession(runner, pid=4242)
    s.write("*filter\n:cali-x - [0:0]\nCOMMIT\n")
    s.write("*filter\n:cali-y - [0:0]\nCOMMIT\n")
    assert s.disabled and not s.available and s.proc is None
    assert [c["argv"] for c in runner.calls] == [ARGV, ARGV]
    assert all(c["pid"] == 4242 and ":cali-" in c["input"] for c in runner.calls)
    s.close()
