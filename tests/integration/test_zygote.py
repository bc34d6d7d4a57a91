"""Root tests of built-in containers forked by the zygote inside a real named netns.

Each test gets its own namespace ("zygtest-<random>", lo plus a veth pair carrying
10.251.0.1/24 inside it) and state dir; teardown stops every container, checks nothing is
left in the namespace and deletes it, pass or fail.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from orchestrator.host.netns import socket_in
from orchestrator.host.runner import DEFAULT
from orchestrator.images import resolve
from orchestrator.images.forkserver import ZygoteChild
from orchestrator.node.containers import ContainerRuntime

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: named netns, setns")]

IP = "10.251.0.1"
KEY = "default/web-0"


@pytest.fixture
def netns(make_netns):
    return make_netns("zygtest", IP)


@pytest.fixture
def rt(tmp_path, netns):
    spawned = []
    r = ContainerRuntime(str(tmp_path), backoff_base=0.2, backoff_max=0.8,
                         on_spawn=spawned.append)
    r.spawned = spawned
    yield r
    r.stop_all(grace=2.0)
    assert r.pids() == []
    assert r.forkserver.pid is None


def agnhost(rt, netns, args=(), ports=(80,), restart="Always", name="srv"):
    c = {"name": name, "image": "agnhost", "args": list(args),
         "ports": [{"containerPort": p} for p in ports]}
    p = {"metadata": {"name": "web-0", "namespace": "default"},
         "spec": {"containers": [c], "restartPolicy": restart}}
    return rt.start(KEY, netns, name, resolve(c, p), restart, image="agnhost")


def wait_for(cond, rt, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rt.poll()
        if cond():
            return True
        time.sleep(0.01)
    return False


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for its (new) parent to reap it."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" in f.read()
    except FileNotFoundError:
        return True


def http(netns, port, path):
    with socket_in(netns) as s:
        s.settimeout(3)
        s.connect((IP, port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    return reply


def test_forked_container_is_a_process_of_its_own_in_the_pod_netns(rt, netns):
    st = agnhost(rt, netns)
    assert isinstance(st.proc, ZygoteChild)
    zygote = rt.forkserver.pid
    assert zygote is not None and st.pid != zygote
    assert rt.spawned == [zygote, st.pid]           # both in the ownership ledger
    assert wait_for(lambda: rt.ready(KEY), rt)
    pid = st.pid
    assert os.getpgid(pid) == pid and os.getsid(pid) == pid
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/var/run/netns/{netns}").st_ino
    assert os.stat(f"/proc/{zygote}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    with open(f"/proc/{pid}/status") as f:
        assert f"PPid:\t{zygote}\n" in f.read()
    assert str(pid) in DEFAULT.run(["ip", "netns", "pids", netns]).stdout.split()
    assert http(netns, 80, "/hostname").endswith(b"\r\n\r\nweb-0")
    assert "serving 80/TCP as web-0" in rt.logs(KEY, "srv")


def test_exit_code_is_reported_and_the_container_restarts(rt, netns):
    st = agnhost(rt, netns, ["netexec", "--http-port=8080", "--udp-port=-1"], ports=())
    assert wait_for(lambda: rt.ready(KEY), rt)
    first = st.pid
    assert http(netns, 8080, "/exit?code=9").startswith(b"HTTP/1.1 200")
    s = lambda: rt.statuses(KEY)[0]  # noqa: E731
    assert wait_for(lambda: s()["restartCount"] == 1 and rt.ready(KEY), rt)
    assert s()["lastState"]["terminated"]["exitCode"] == 9
    assert st.pid != first and rt.spawned[-1] == st.pid
    assert rt.logs(KEY, "srv", previous=True).count("serving 8080/TCP") == 1


def test_environment_reaches_the_server(rt, netns):
    c = {"name": "srv", "image": "agnhost", "ports": [{"containerPort": 80}]}
    prog = resolve(c, {"metadata": {"name": "web-0"}, "spec": {"containers": [c]}})
    prog.serve_args = ["--port", "80/TCP/hostname"]     # no --hostname: $HOSTNAME is used
    prog.env["HOSTNAME"] = "from-env"
    rt.start(KEY, netns, "srv", prog, "Always")
    assert wait_for(lambda: rt.ready(KEY), rt)
    with socket_in(netns) as s:
        s.settimeout(3)
        s.connect((IP, 80))
        assert s.recv(100) == b"from-env\n"


def test_signal_exit_and_never_policy(rt, netns):
    st = agnhost(rt, netns, restart="Never")
    assert wait_for(lambda: rt.ready(KEY), rt)
    os.kill(st.pid, signal.SIGKILL)
    assert wait_for(lambda: "terminated" in rt.statuses(KEY)[0]["state"], rt)
    assert rt.statuses(KEY)[0]["state"]["terminated"]["exitCode"] == 137


def test_bad_arguments_crash_into_backoff_with_the_error_logged(rt, netns):
    c = {"name": "srv", "image": "agnhost", "ports": [{"containerPort": 80}]}
    prog = resolve(c, {"metadata": {"name": "web-0"}, "spec": {"containers": [c]}})
    prog.serve_args = ["--port", "99999"]
    rt.start(KEY, netns, "srv", prog, "Always")
    assert wait_for(lambda: "waiting" in rt.statuses(KEY)[0]["state"], rt)
    st = rt.statuses(KEY)[0]
    assert st["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert st["lastState"]["terminated"]["exitCode"] == 2
    assert "port must be 1..65535" in rt.logs(KEY, "srv", previous=True)


def test_killed_zygote_is_noticed_and_replaced(rt, netns):
    st = agnhost(rt, netns)
    assert wait_for(lambda: rt.ready(KEY), rt)
    old_zygote, old_pid = rt.forkserver.pid, st.pid
    os.kill(old_zygote, signal.SIGKILL)
    # Its container cannot be watched any more: killed, reported, restarted by a new zygote.
    assert wait_for(lambda: rt.statuses(KEY)[0]["restartCount"] == 1 and rt.ready(KEY), rt)
    assert rt.statuses(KEY)[0]["lastState"]["terminated"]["exitCode"] == 137
    assert rt.forkserver.pid not in (None, old_zygote)
    assert wait_for(lambda: gone(old_pid) and gone(old_zygote), rt)
    assert http(netns, 80, "/hostname").endswith(b"web-0")
    assert DEFAULT.run(["ip", "netns", "pids", netns]).stdout.split() == [str(st.pid)]


def test_stop_leaves_nothing_and_many_start_fast(rt, netns):
    for i in range(20):
        agnhost(rt, netns, ports=(9000 + i,), name=f"c{i}")
    assert wait_for(lambda: rt.ready(KEY), rt)
    inside = DEFAULT.run(["ip", "netns", "pids", netns]).stdout.split()
    assert sorted(map(int, inside)) == rt.pids()
    t0 = time.monotonic()
    final = rt.stop_pod(KEY, grace=2.0)
    assert time.monotonic() - t0 < 1.5                 # one SIGTERM round, not 20 waits
    assert {s["state"]["terminated"]["exitCode"] for s in final} == {0}
    assert DEFAULT.run(["ip", "netns", "pids", netns]).stdout.split() == []
    assert rt.forkserver.pid is not None               # stop_pod keeps the zygote warm
