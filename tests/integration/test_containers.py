"""Root tests of the container runtime and the built-in images inside a real named netns.

Each test gets its own namespace ("cnitest-<random>", with lo and a veth pair carrying
10.250.0.1/24, both ends inside the namespace: this kernel has no dummy interfaces) and runtime state dir; teardown stops every
container and deletes the namespace, pass or fail.
"""

from __future__ import annotations

import os
import secrets
import socket
import time

import pytest

from orchestrator.errors import SupervisorTimeout
from orchestrator.host.netns import socket_in
from orchestrator.host.runner import DEFAULT
from orchestrator.images import ImageProgram, resolve
from orchestrator.node.containers import ContainerRuntime

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: named netns, raw sockets")]

IP = "10.250.0.1"
KEY = "default/web-0"


@pytest.fixture
def netns(make_netns):
    return make_netns("cnitest", IP)


@pytest.fixture
def rt(tmp_path, netns):
    # Depends on netns so its teardown (stop every container) runs before the netns goes.
    r = ContainerRuntime(str(tmp_path), backoff_base=0.2, backoff_max=0.8)
    yield r
    r.stop_all(grace=2.0)
    assert r.pids() == []


def pod(*containers, name="web-0", restart="Always"):
    return {"metadata": {"name": name, "namespace": "default", "uid": "u"},
            "spec": {"containers": list(containers), "restartPolicy": restart}}


def start_pod(rt, netns, p):
    for c in p["spec"]["containers"]:
        rt.start(f"default/{p['metadata']['name']}", netns, c["name"], resolve(c, p),
                 p["spec"]["restartPolicy"], image=c["image"])


def wait_for(cond, timeout=5.0, rt=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if rt is not None:
            rt.poll()
        if cond():
            return True
        time.sleep(0.01)
    return False


def status(rt, name, key=KEY):
    return next(s for s in rt.statuses(key) if s["name"] == name)


def test_agnhost_serves_tcp_udp_http_and_sctp(rt, netns):
    start_pod(rt, netns, pod({"name": "srv", "image": "registry.k8s.io/e2e-test-images/agnhost:2.45",
                              "ports": [{"containerPort": 80}, {"containerPort": 81, "protocol": "UDP"},
                                        {"containerPort": 82, "protocol": "SCTP"}]}))
    assert wait_for(lambda: rt.ready(KEY), rt=rt), rt.statuses(KEY)
    assert status(rt, "srv")["ready"] is True

    with socket_in(netns) as s:                         # TCP: greeting, then echo
        s.settimeout(3)
        s.connect((IP, 80))
        assert s.recv(100) == b"web-0\n"
        s.sendall(b"abc")
        assert s.recv(100) == b"abc"
    with socket_in(netns) as s:                         # HTTP on the same port
        s.settimeout(3)
        s.connect((IP, 80))
        s.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"\r\n\r\nweb-0")
    with socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(3)
        u.sendto(b"hostname", (IP, 81))
        assert u.recvfrom(100)[0] == b"web-0"
        u.sendto(b"payload", (IP, 81))
        assert u.recvfrom(100)[0] == b"payload"

    assert sctp_handshake(netns, 82) is True
    assert sctp_handshake(netns, 83, wait=0.5) is False  # unserved ports stay silent
    assert "serving 80/TCP 81/UDP 82/SCTP as web-0" in rt.logs(KEY, "srv")


def sctp_handshake(netns: str, port: int, wait: float = 3.0) -> bool:
    """Send an INIT built by scapy from a raw socket in ``netns``; True on a matching INIT-ACK."""
    from scapy.layers.inet import IP as IPLayer
    from scapy.layers.sctp import SCTP, SCTPChunkInit, SCTPChunkInitAck
    tag = secrets.randbits(31) | 1
    sport = 40000 + secrets.randbelow(20000)
    init = SCTP(sport=sport, dport=port, tag=0) / SCTPChunkInit(
        init_tag=tag, a_rwnd=65535, n_out_streams=1, n_in_streams=1, init_tsn=tag)
    with socket_in(netns, socket.AF_INET, socket.SOCK_RAW, 132) as raw:
        raw.sendto(bytes(init), (IP, 0))
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:
            raw.settimeout(left)
            try:
                data = raw.recv(65535)
            except socket.timeout:
                return False
            pkt = IPLayer(data)
            if SCTP in pkt and pkt[SCTP].dport == sport and SCTPChunkInitAck in pkt:
                assert pkt[SCTP].tag == tag and pkt[SCTP].sport == port
                return True
    return False


def test_probe_module_sees_the_served_ports(rt, netns):
    probe = pytest.importorskip("orchestrator.traffic.probe").probe
    start_pod(rt, netns, pod({"name": "srv", "image": "agnhost",
                              "ports": [{"containerPort": 80}, {"containerPort": 81, "protocol": "UDP"},
                                        {"containerPort": 82, "protocol": "SCTP"}]}))
    assert wait_for(lambda: rt.ready(KEY), rt=rt)
    assert probe(netns, IP, 80, "TCP", timeout=1.0).ok
    assert probe(netns, IP, 81, "UDP", timeout=1.0).ok
    assert probe(netns, IP, 82, "SCTP", timeout=1.0).ok
    assert not probe(netns, IP, 90, "TCP", timeout=0.5).ok


def test_nginx_image_serves_a_page_naming_the_pod(rt, netns):
    start_pod(rt, netns, pod({"name": "web", "image": "nginx:1.25",
                              "ports": [{"containerPort": 8080, "name": "http"}]}))
    assert wait_for(lambda: rt.ready(KEY), rt=rt)
    with socket_in(netns) as s:
        s.settimeout(3)
        s.connect((IP, 8080))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert b"Server: nginx" in reply and b"web-0" in reply


def test_not_ready_until_listening(rt, netns):
    # A ready socket nobody opens keeps the container unready though it runs...
    rt.start(KEY, netns, "slow", ImageProgram(["sleep", "60"], {}, ready_socket=("TCP", 80)))
    time.sleep(0.2)
    rt.poll()
    assert status(rt, "slow")["state"].get("running") and not rt.ready(KEY)
    # ...and a listener on that port in another namespace (here: the host's) does not count.
    with socket.socket() as host_listener:
        host_listener.bind(("127.0.0.1", 0))
        host_listener.listen()
        port = host_listener.getsockname()[1]
        rt.start("default/other", netns, "c",
                 ImageProgram(["sleep", "60"], {}, ready_socket=("TCP", port)))
        time.sleep(0.2)
        assert not rt.ready("default/other")
    # A command run as given (no built-in server) is ready once it runs, like Kubernetes
    # without a readinessProbe.
    start_pod(rt, netns, pod({"name": "cmd", "image": "agnhost", "command": ["sleep", "60"],
                              "ports": [{"containerPort": 80}]}, name="cmd"))
    assert rt.ready("default/cmd")
    start_pod(rt, netns, pod({"name": "iperf", "image": "networkstatic/iperf3"}, name="perf"))
    assert wait_for(lambda: rt.ready("default/perf"), rt=rt)


def test_crash_restarts_with_crashloop_backoff(rt, netns):
    # "$$$$": Kubernetes turns "$$" into "$", so the shell sees $$ (its pid).
    start_pod(rt, netns, pod({"name": "crash", "image": "busybox",
                              "command": ["sh", "-c", "echo run $$$$; exit 3"]}))
    seen_backoff = wait_for(lambda: "waiting" in status(rt, "crash")["state"], rt=rt)
    assert seen_backoff
    s = status(rt, "crash")
    assert s["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert s["lastState"]["terminated"]["exitCode"] == 3
    assert wait_for(lambda: status(rt, "crash")["restartCount"] >= 3, timeout=5, rt=rt)
    # backoff (0.2, 0.4, 0.8, 0.8 s...) keeps restarts few: without it there would be hundreds
    time.sleep(1.0)
    rt.poll()
    assert status(rt, "crash")["restartCount"] < 10
    previous = rt.logs(KEY, "crash", previous=True)
    assert previous.startswith("run ") and previous != rt.logs(KEY, "crash")


def test_on_failure_and_never(rt, netns):
    start_pod(rt, netns, pod({"name": "ok", "image": "busybox", "command": ["true"]},
                             {"name": "bad", "image": "busybox", "command": ["sh", "-c", "exit 2"]},
                             restart="OnFailure"))
    assert wait_for(lambda: status(rt, "bad")["restartCount"] >= 1, rt=rt)
    # Both exits race: "bad" may be restarted in a poll before the one that reaps "ok".
    assert wait_for(lambda: "terminated" in status(rt, "ok")["state"], rt=rt)
    assert status(rt, "ok")["state"]["terminated"]["reason"] == "Completed"
    assert status(rt, "ok")["restartCount"] == 0
    start_pod(rt, netns, pod({"name": "bad", "image": "busybox", "command": ["sh", "-c", "exit 2"]},
                             name="once", restart="Never"))
    assert wait_for(lambda: "terminated" in status(rt, "bad", "default/once")["state"], rt=rt)
    s = status(rt, "bad", "default/once")
    assert s["state"]["terminated"]["exitCode"] == 2 and s["restartCount"] == 0
    time.sleep(0.5)
    rt.poll()
    assert status(rt, "bad", "default/once")["restartCount"] == 0


def test_agnhost_exit_endpoint_restarts_the_server(rt, netns):
    start_pod(rt, netns, pod({"name": "srv", "image": "agnhost", "args": ["netexec"]}))
    assert wait_for(lambda: rt.ready(KEY), rt=rt)
    first = rt.pids()
    with socket_in(netns) as s:
        s.settimeout(3)
        s.connect((IP, 8080))
        s.sendall(b"GET /exit?code=9 HTTP/1.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")
    assert wait_for(lambda: status(rt, "srv")["restartCount"] == 1 and rt.ready(KEY), rt=rt)
    assert status(rt, "srv")["lastState"]["terminated"]["exitCode"] == 9
    assert rt.pids() != first
    assert rt.logs(KEY, "srv", previous=True).count("serving 8080/TCP 8081/UDP") == 1


def test_stop_kills_everything_in_the_pod(rt, netns):
    start_pod(rt, netns, pod({"name": "bg", "image": "busybox",
                              "command": ["sh", "-c", "sleep 1000 & sleep 1000"]},
                             {"name": "srv", "image": "agnhost", "ports": [{"containerPort": 80}]}))
    assert wait_for(lambda: rt.ready(KEY), rt=rt)
    inside = DEFAULT.run(["ip", "netns", "pids", netns]).stdout.split()
    assert len(inside) >= 3
    final = rt.stop_pod(KEY, grace=2.0)
    assert {s["name"]: s["state"]["terminated"]["exitCode"] for s in final} == \
        {"bg": 143, "srv": 0}
    assert DEFAULT.run(["ip", "netns", "pids", netns]).stdout.split() == []
    assert rt.pids() == []


def test_exec_in_the_pod_namespace(rt, netns):
    rc, out, err = rt.exec(netns, ["ip", "-br", "addr", "show", "x0"])
    assert rc == 0 and IP in out
    rc, _, _ = rt.exec(netns, ["sh", "-c", "exit 4"])
    assert rc == 4
    with pytest.raises(SupervisorTimeout, match="did not finish within"):
        rt.exec(netns, ["sleep", "5"], timeout=0.3)
