"""The zygote and its client without root: children stay in this namespace (netns ""),
serve on loopback (--bind 127.0.0.1), and log to files under tmp_path."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from orchestrator.images.forkserver import ForkServer
from orchestrator.images.programs import ZYGOTE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    end = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=2)
        except ConnectionRefusedError:
            if time.monotonic() > end:
                raise
            time.sleep(0.01)


@pytest.fixture
def fs(tmp_path):
    spawned = []
    f = ForkServer(stderr_path=str(tmp_path / "zygote.log"), on_spawn=spawned.append)
    f.spawned = spawned
    yield f
    f.close()
    assert f.pid is None


def serve(fs, tmp_path, port, name="c", env=None, mode=""):
    return fs.spawn(["--bind", "127.0.0.1", "--hostname", name, "--port", f"{port}/TCP/hostname"],
                    netns_path="", log=str(tmp_path / f"{name}.log"), env=env or {}, mode=mode)


def test_child_serves_logs_and_reports_its_exit_status(fs, tmp_path):
    port = free_port()
    child = serve(fs, tmp_path, port, "web-0")
    assert fs.spawned == [fs.pid] and child.pid != fs.pid
    with connect(port) as s:
        assert s.recv(100) == b"web-0\n"
    assert os.getpgid(child.pid) == child.pid and os.getsid(child.pid) == child.pid
    assert child.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.05)
    os.killpg(child.pid, signal.SIGTERM)
    assert child.wait(5) == 0                   # serve.main: SIGTERM is a clean exit
    assert f"serving {port}/TCP(hostname) as web-0" in (tmp_path / "web-0.log").read_text()
    other = serve(fs, tmp_path, free_port(), "k")
    time.sleep(0.2)                             # past startup: SIGKILL shows as -9
    os.kill(other.pid, signal.SIGKILL)
    assert other.wait(5) == -signal.SIGKILL


def test_usage_error_exits_2_with_the_message_in_the_log(fs, tmp_path):
    child = fs.spawn(["--port", "0"], netns_path="", log=str(tmp_path / "bad.log"), env={})
    assert child.wait(5) == 2
    assert "port must be 1..65535" in (tmp_path / "bad.log").read_text()


def test_a_missing_netns_is_a_crash_with_a_traceback(fs, tmp_path):
    child = fs.spawn(["--port", "80"], netns_path=str(tmp_path / "no-such-ns"),
                     log=str(tmp_path / "ns.log"), env={})
    assert child.wait(5) == 1
    assert "FileNotFoundError" in (tmp_path / "ns.log").read_text()


def test_env_and_mode_reach_serve_main(fs, tmp_path):
    port = free_port()
    child = fs.spawn(["--bind", "127.0.0.1", "--port", str(port)], netns_path="",
                     log=str(tmp_path / "h.log"), env={"HOSTNAME": "envhost"}, mode="http")
    with connect(port) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert b"Server: nginx" in reply and b"envhost" in reply
    os.killpg(child.pid, signal.SIGTERM)
    assert child.wait(5) == 0


def test_lost_zygote_kills_and_reports_its_children_then_restarts(fs, tmp_path):
    child = serve(fs, tmp_path, free_port())
    old = fs.pid
    os.kill(old, signal.SIGKILL)
    assert child.wait(5) == -signal.SIGKILL
    port = free_port()
    serve(fs, tmp_path, port, "again")
    assert fs.pid not in (None, old) and fs.spawned == [old, fs.pid]
    with connect(port) as s:
        assert s.recv(100) == b"again\n"


def test_bad_requests_get_an_error_reply_and_stdin_eof_ends_the_zygote(tmp_path):
    z = subprocess.Popen([sys.executable, "-S", "-E", ZYGOTE], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        z.stdin.write('not json\n{"id": 7, "argv": "x"}\n')
        z.stdin.flush()
        first, second = json.loads(z.stdout.readline()), json.loads(z.stdout.readline())
        assert first["id"] is None and "bad request" in first["error"]
        assert second["id"] == 7 and "argv" in second["error"]
        z.stdin.close()
        assert z.wait(5) == 0
    finally:
        if z.poll() is None:
            z.kill()
            z.wait(5)


def test_zygote_ends_when_its_runtime_process_dies(tmp_path):
    port = free_port()
    script = (
        "import os, sys\n"
        f"sys.path.insert(0, {os.getcwd()!r})\n"
        "from orchestrator.images.forkserver import ForkServer\n"
        "f = ForkServer()\n"
        f"c = f.spawn(['--bind', '127.0.0.1', '--port', '{port}'], netns_path='',"
        f" log={str(tmp_path / 'x.log')!r}, env={{}})\n"
        "print(f.pid, c.pid, flush=True)\n"
        "os._exit(0)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    zygote, child = map(int, out.split())
    try:
        end = time.monotonic() + 5
        while os.path.exists(f"/proc/{zygote}") and time.monotonic() < end:
            with open(f"/proc/{zygote}/status") as f:
                if "\nState:\tZ" in f.read():
                    break
            time.sleep(0.01)
        else:
            assert not os.path.exists(f"/proc/{zygote}"), "zygote outlived its runtime"
        with connect(port) as s:                # the container itself is left alone
            s.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        os.killpg(child, signal.SIGKILL)


def test_child_serves_on_when_its_runtime_is_gone_before_it_listens(tmp_path):
    # The race CI once lost: the runtime exits before the child opens its sockets, so the
    # child's "listening" line meets a pipe nobody reads (EPIPE). It must serve on regardless.
    port = free_port()
    req = {"argv": ["--bind", "127.0.0.1", "--port", f"{port}"], "log": str(tmp_path / "y.log"),
           "netns": "", "env": {}}
    script = (
        "import os, sys\n"
        f"sys.path.insert(0, {os.path.dirname(ZYGOTE)!r})\n"
        "import zygote\n"
        "r, w = os.pipe()\n"
        "os.close(r)\n"                     # the reply pipe's reader is already gone
        "os.dup2(w, 1)\n"
        f"zygote.child({req!r}, [])\n")
    proc = subprocess.Popen([sys.executable, "-S", "-E", "-c", script])
    try:
        with connect(port) as s:
            s.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        assert proc.poll() is None, (tmp_path / "y.log").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def test_child_says_when_it_listens_and_a_failed_bind_never_does(fs, tmp_path):
    port = free_port()
    child = serve(fs, tmp_path, port, "ready-0")
    assert child.listening.wait(5.0)
    # It said so once its socket was open: a connection is accepted at once.
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        assert s.recv(100) == b"ready-0\n"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = serve(fs, tmp_path, taken.getsockname()[1], "busy-0")
        assert busy.wait(5.0) != 0            # the port is in use: it exits...
        assert not busy.listening.is_set()   # ...without having said it listens
    os.killpg(child.pid, signal.SIGTERM)
    assert child.wait(5.0) == 0
