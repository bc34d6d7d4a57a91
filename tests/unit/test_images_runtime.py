"""ContainerRuntime without root: real child processes in this namespace (a runner that drops
the netns), a plain file standing in for the named netns, and a synthetic clock passed to
poll() so CrashLoopBackOff timing is checked exactly."""

from __future__ import annotations

import os
import time

import pytest

from orchestrator.errors import NotFound, ValidationError
from orchestrator.host.runner import Runner
from orchestrator.images import ImageProgram
from orchestrator.node.containers import ContainerRuntime, log_path, read_logs

KEY = "default/job-0"


class LocalRunner(Runner):
    """Runs 'container' processes in the test's own network namespace."""

    def spawn(self, argv, *, netns=None, pid=None, **kw):
        return super().spawn(argv, **kw)


@pytest.fixture
def rt(tmp_path):
    (tmp_path / "ns").mkdir()
    (tmp_path / "ns" / "fake").write_text("")
    r = ContainerRuntime(str(tmp_path / "state"), LocalRunner(), netns_dir=str(tmp_path / "ns"))
    yield r
    r.stop_all(grace=1.0)
    assert r.pids() == []


def sh(script: str) -> ImageProgram:
    return ImageProgram(["sh", "-c", script], {}, "busybox")


def wait_exit(rt, name="c"):
    st = rt._pods[KEY][name]
    if st.proc is not None:
        st.proc.wait(timeout=10)


def state(rt, name="c"):
    return next(s for s in rt.statuses(KEY) if s["name"] == name)


def test_crashloop_backoff_doubles_to_the_cap_exactly(rt):
    t = 1000.0
    rt.start(KEY, "fake", "c", sh("exit 3"), "Always", now=t)
    delays = []
    last_restart = t
    for _ in range(8):
        wait_exit(rt)
        t += 0.1
        rt.poll(t)
        s = state(rt)
        if "running" in s["state"]:        # the first crash restarts at once
            last_restart = t
            continue
        assert s["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert s["lastState"]["terminated"]["exitCode"] == 3
        assert s["lastState"]["terminated"]["reason"] == "Error"
        st = rt._pods[KEY]["c"]
        delay = st.next_start - last_restart
        assert rt.poll(st.next_start - 0.01) == set()    # not a moment early
        assert "waiting" in state(rt)["state"]
        t = st.next_start
        assert rt.poll(t) == {KEY}
        assert "running" in state(rt)["state"]
        delays.append(round(delay, 6))
        last_restart = t
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert state(rt)["restartCount"] == 8


def test_on_spawn_sees_every_pid(tmp_path):
    (tmp_path / "fake").write_text("")
    seen = []
    r = ContainerRuntime(str(tmp_path), LocalRunner(), netns_dir=str(tmp_path),
                         on_spawn=seen.append)
    st = r.start(KEY, "fake", "c", sh("exit 1"), "Always", now=0)
    first = st.pid
    st.proc.wait(timeout=10)
    r.poll(1.0)
    assert seen == [first, st.pid] and st.pid != first
    r.stop_all(grace=1.0)


def test_backoff_message_and_reset_after_long_run(rt):
    rt.start(KEY, "fake", "c", sh("exit 1"), "Always", now=0.0)
    wait_exit(rt)
    rt.poll(0.5)                   # restart 1, immediately
    wait_exit(rt)
    rt.poll(1.0)
    msg = state(rt)["state"]["waiting"]["message"]
    assert msg == f"back-off 10s restarting failed container=c pod={KEY}"
    rt.poll(10.5)                  # restart 2
    wait_exit(rt)
    rt.poll(10_000.0)              # long after: the backoff starts over, restart at once
    assert "running" in state(rt)["state"]
    assert rt._pods[KEY]["c"].backoff == 10


def test_restart_policies(rt):
    rt.start(KEY, "fake", "ok-onfailure", sh("exit 0"), "OnFailure", now=0)
    rt.start(KEY, "fake", "bad-onfailure", sh("exit 2"), "OnFailure", now=0)
    rt.start(KEY, "fake", "bad-never", sh("exit 4"), "Never", now=0)
    rt.start(KEY, "fake", "ok-always", sh("exit 0"), "Always", now=0)
    for name in ("ok-onfailure", "bad-onfailure", "bad-never", "ok-always"):
        wait_exit(rt, name)
    assert rt.poll(1.0) == {KEY}
    for name in ("bad-onfailure", "ok-always"):
        wait_exit(rt, name)
    rt.poll(1.5)
    s = {x["name"]: x for x in rt.statuses(KEY)}
    assert s["ok-onfailure"]["state"]["terminated"]["reason"] == "Completed"
    assert s["ok-onfailure"]["restartCount"] == 0
    assert s["bad-never"]["state"]["terminated"]["exitCode"] == 4
    assert s["bad-never"]["state"]["terminated"]["reason"] == "Error"
    assert s["bad-never"]["restartCount"] == 0
    assert s["bad-onfailure"]["restartCount"] == 1
    assert s["bad-onfailure"]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert s["ok-always"]["restartCount"] == 1
    assert s["ok-always"]["lastState"]["terminated"]["reason"] == "Completed"


def test_missing_executable_is_a_start_error(rt):
    rt.start(KEY, "fake", "c", ImageProgram(["no-such-program-calinet"], {}), "Never", now=0)
    term = state(rt)["state"]["terminated"]
    assert term["exitCode"] == 128 and term["reason"] == "StartError"
    assert "no-such-program-calinet" in term["message"]


def test_logs_per_instance_and_previous(rt):
    rt.start(KEY, "fake", "c", sh('echo "out $$"; echo "err $$" >&2; exit 1'), "Always", now=0)
    wait_exit(rt)
    first = rt.logs(KEY, "c")
    assert first.startswith("out ") and "err " in first
    # One flat file per container; its first instance needs no index (one inode per pod).
    assert os.path.dirname(log_path(rt.state_dir, KEY, "c")) == os.path.join(rt.state_dir, "logs")
    assert not os.path.exists(log_path(rt.state_dir, KEY, "c") + ".idx")
    with pytest.raises(NotFound, match="previous terminated container"):
        rt.logs(KEY, "c", previous=True)
    rt.poll(1.0)                   # restarted
    wait_exit(rt)
    second = rt.logs(KEY, "c")
    assert rt.logs(KEY, "c", previous=True) == first
    assert second != first and second.startswith("out ")
    rt.stop_pod(KEY, grace=1)
    # Files outlive the pod and serve any process: all instances appended, plus the index.
    assert read_logs(rt.state_dir, KEY, "c") == second
    assert read_logs(rt.state_dir, KEY, "c", previous=True) == first
    with open(log_path(rt.state_dir, KEY, "c")) as f:
        assert f.read() == first + second
    # A new pod reusing the name starts a fresh history.
    rt.start(KEY, "fake", "c", sh("echo new"), "Never")
    wait_exit(rt)
    assert rt.logs(KEY, "c") == "new\n"
    with pytest.raises(NotFound):
        rt.logs(KEY, "c", previous=True)


def test_env_path_and_program_env(rt):
    rt.start(KEY, "fake", "c", ImageProgram(["sh", "-c", 'echo "$HOSTNAME $HOME $X"'],
                                            {"HOSTNAME": "job-0", "X": "1"}), "Never")
    wait_exit(rt)
    assert rt.logs(KEY, "c") == "job-0 /root 1\n"


def test_stop_kills_the_whole_group_and_escalates(rt):
    rt.start(KEY, "fake", "c", sh("sleep 1000 & sleep 1000"), "Always")
    rt.start(KEY, "fake", "stubborn", sh("trap '' TERM; while :; do sleep 0.05; done"),
             "Always")
    leaders = rt.pids()
    assert len(leaders) == 2
    time.sleep(0.2)
    group = [p for p in _all_pids() if _pgid(p) in leaders]
    assert len(group) >= 3
    t0 = time.monotonic()
    final = {s["name"]: s for s in rt.stop_pod(KEY, grace=0.5)}
    assert time.monotonic() - t0 >= 0.5
    assert final["stubborn"]["state"]["terminated"]["exitCode"] == 137
    assert final["c"]["state"]["terminated"]["exitCode"] == 143
    assert rt.pids() == [] and rt.statuses(KEY) == []
    assert [p for p in group if _alive(p)] == []


def test_exit_reaps_leftover_group_members(rt):
    rt.start(KEY, "fake", "c", sh("sleep 1000 & exit 5"), "Never", now=0)
    leader = rt.pids()[0]
    wait_exit(rt)
    rt.poll(1.0)
    time.sleep(0.1)
    assert [p for p in _all_pids() if _pgid(p) == leader and _alive(p)] == []


def test_start_is_idempotent_and_fail_is_reported(rt):
    a = rt.start(KEY, "fake", "c", sh("sleep 100"), "Always")
    assert rt.start(KEY, "fake", "c", sh("sleep 100"), "Always") is a
    rt.fail(KEY, "img", "example/x", "ErrImagePull", "image example/x is not a built-in image")
    s = state(rt, "img")
    assert s["state"] == {"waiting": {"reason": "ErrImagePull",
                                      "message": "image example/x is not a built-in image"}}
    assert s["ready"] is False and rt.ready(KEY) is False
    assert state(rt)["ready"] is True          # no ready socket: ready once running


def test_ready_waits_for_the_ready_socket(rt):
    rt.start(KEY, "fake", "c", ImageProgram(["sleep", "100"], {}, ready_socket=("TCP", 1)),
             "Always")
    rt.poll()
    assert rt.ready(KEY) is False and state(rt)["ready"] is False
    assert state(rt)["started"] is True


def test_bad_input(rt):
    with pytest.raises(ValidationError, match="restartPolicy"):
        rt.start(KEY, "fake", "c", sh("true"), "Sometimes")
    with pytest.raises(NotFound, match="network namespace"):
        rt.start(KEY, "missing", "c", sh("true"), "Always")
    with pytest.raises(ValidationError):
        rt.start("no-slash", "fake", "c", sh("true"), "Always")
    with pytest.raises(ValidationError):
        rt.start(KEY, "fake", "c", ImageProgram([], {}), "Always")
    with pytest.raises(NotFound):
        rt.logs(KEY, "never-started")
    assert rt.statuses(KEY) == [] and rt.pods() == []


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _alive(pid: int) -> bool:
    """Running or sleeping; a zombie is dead (orphans wait for pid 1 to reap them, and the
    init of some sandboxes never does)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
