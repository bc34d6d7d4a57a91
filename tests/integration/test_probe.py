"""Probes and netns helpers against real pod sandboxes on a fake node (root only).

Servers are tiny in-test listeners whose sockets are created inside the pod namespaces with
orchestrator.host.netns (TCP listen, UDP echo thread, raw-socket SCTP INIT -> INIT-ACK responder).
Denied paths use an iptables DROP inside the destination pod's own namespace.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
import time

import pytest

from orchestrator.host import naming, netns
from orchestrator.node.cni import CNI, SandboxSpec
from orchestrator.traffic import probe, sctp

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces")]

PODS = 9


def run(*argv):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def cluster():
    """One fake node (a process in its own netns, default route on an underlay veth) with 9 pods."""
    tb = secrets.token_hex(2)
    node = subprocess.Popen(["unshare", "--net", "sleep", "3600"])
    specs: list[SandboxSpec] = []
    stop = threading.Event()
    socks: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 5
        while os.stat(f"/proc/{node.pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
            assert time.monotonic() < deadline, "unshare did not enter a new netns"
            time.sleep(0.01)
        run("nsenter", "-t", node.pid, "-n", "sh", "-c",
            "ip link set lo up && ip link add up0 type veth peer name up1 && "
            "ip link set up0 up && ip link set up1 up && ip addr add 192.0.2.1/24 dev up0 && "
            "ip route add default via 192.0.2.254 dev up0 onlink")
        specs = [SandboxSpec.for_pod(tb, "probe", f"p{i}", f"10.244.5.{i + 2}", node.pid)
                 for i in range(PODS)]
        CNI().add_many(specs)
        threads = []
        for s in specs:
            tcp = netns.socket_in(s.netns, socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind(("0.0.0.0", 8080))
            tcp.listen(256)   # the kernel completes handshakes; nobody needs to accept()
            udp = netns.socket_in(s.netns, socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("0.0.0.0", 8081))
            raw = netns.socket_in(s.netns, socket.AF_INET, socket.SOCK_RAW, sctp.IPPROTO_SCTP)
            socks += [tcp, udp, raw]
            threads += [threading.Thread(target=_udp_echo, args=(udp, stop), daemon=True),
                        threading.Thread(target=_sctp_responder, args=(raw, 8082, stop),
                                         daemon=True)]
        for t in threads:
            t.start()
        yield specs
    finally:
        stop.set()
        for s in socks:
            s.close()
        if specs:
            CNI().delete_many(specs)
        node.kill()
        node.wait(5)
        for name in os.listdir("/var/run/netns"):
            if name.startswith(f"{naming.NETNS_PREFIX}{tb}-"):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _udp_echo(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(2048)
        except TimeoutError:
            continue
        except OSError:
            return
        sock.sendto(data, peer)


def _sctp_responder(raw: socket.socket, port: int, stop: threading.Event) -> None:
    raw.settimeout(0.2)
    while not stop.is_set():
        try:
            datagram = raw.recv(65535)
        except TimeoutError:
            continue
        except OSError:
            return
        src_ip, _, payload = sctp.strip_ipv4(datagram)
        sport, dport, _, chunks = sctp.parse(payload)
        if dport == port and chunks and chunks[0].type == sctp.INIT:
            peer_tag = sctp.parse_init(chunks[0]).initiate_tag
            raw.sendto(sctp.build_init_ack(dport, sport, peer_tag, 0x5EED), (src_ip, 0))


@pytest.fixture
def drop_rules(cluster):
    """Add `iptables -I INPUT ... -j DROP` rules inside pod namespaces; removed afterwards."""
    added = []

    def add(spec: SandboxSpec, *match):
        run("ip", "netns", "exec", spec.netns, "iptables", "-I", "INPUT", *match, "-j", "DROP")
        added.append((spec, match))
    yield add
    for spec, match in added:
        subprocess.run(["ip", "netns", "exec", spec.netns, "iptables", "-D", "INPUT", *match,
                        "-j", "DROP"], capture_output=True)


@pytest.mark.parametrize("protocol,port", [("TCP", 8080), ("UDP", 8081), ("SCTP", 8082)])
def test_allowed_probe(cluster, protocol, port):
    a, b = cluster[0], cluster[1]
    r = probe.probe(a.netns, b.ip, port, protocol, timeout=2.0)
    assert r.ok, r
    assert r.elapsed < 1.0


@pytest.mark.parametrize("protocol,port,detail", [("TCP", 9999, "refused"),
                                                  ("UDP", 9999, "refused")])
def test_closed_port_fails_fast(cluster, protocol, port, detail):
    r = probe.probe(cluster[0].netns, cluster[1].ip, port, protocol, timeout=2.0)
    assert not r.ok and detail in r.detail and r.elapsed < 1.0


@pytest.mark.parametrize("protocol,port", [("TCP", 8080), ("UDP", 8081), ("SCTP", 8082)])
def test_dropped_probe_times_out(cluster, drop_rules, protocol, port):
    a, b = cluster[0], cluster[2]
    drop_rules(b, "-p", protocol.lower(), "--dport", str(port))
    r = probe.probe(a.netns, b.ip, port, protocol, timeout=0.3)
    assert not r.ok and r.detail.startswith("timeout") and 0.3 <= r.elapsed < 1.0
    assert probe.probe(a.netns, cluster[3].ip, port, protocol, timeout=2.0).ok


@pytest.mark.parametrize("protocol,port", [("TCP", 8080), ("SCTP", 8082)])
def test_matrix_of_72_pairs_with_a_denied_subset_costs_about_one_timeout(
        cluster, drop_rules, protocol, port):
    denied_dst = cluster[:6]                    # 6 x 8 = 48 denied pairs, more than 32 workers
    for s in denied_dst:
        drop_rules(s, "-p", protocol.lower(), "--dport", str(port))
    pairs = [(a.netns, b.ip) for a in cluster for b in cluster if a is not b]
    assert len(pairs) == 72
    timeout = 0.5
    t0 = time.monotonic()
    got = probe.matrix(pairs, port, protocol, timeout=timeout)
    took = time.monotonic() - t0
    denied_ips = {s.ip for s in denied_dst}
    assert got == {(src, dst): dst not in denied_ips for src, dst in pairs}
    assert took < timeout + 0.5, f"72 probes took {took:.2f}s"


def test_netns_executor_runs_inside_the_pod_only(cluster):
    own = os.readlink("/proc/thread-self/ns/net")
    s = cluster[0]
    with netns.NetnsExecutor(s.netns) as ex:
        names = ex.call(lambda: sorted(n for _, n in socket.if_nameindex()))
        inode = ex.call(lambda: os.stat("/proc/thread-self/ns/net").st_ino)
    assert names == ["eth0", "lo"]
    assert inode == os.stat(f"/var/run/netns/{s.netns}").st_ino
    assert os.readlink("/proc/thread-self/ns/net") == own   # caller never moved
    sock = netns.socket_in(s.netns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect((cluster[1].ip, 8081))
        assert sock.getsockname()[0] == s.ip   # source address chosen by the pod's routing
    finally:
        sock.close()
    with pytest.raises(Exception, match="does not exist"):
        netns.NetnsExecutor("calinet-no-such-netns")


def _full_listener(ns: str, ip: str, port: int):
    """A listener whose accept queue is full (backlog 0, one connection waiting): the kernel
    drops the next SYN, as python3 -m http.server's backlog of 5 does under a burst."""
    srv = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ip, port))
    srv.listen(0)
    filler = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    filler.settimeout(2)
    filler.connect((ip, port))
    return srv, filler


def _accept_later(srv: socket.socket, delay: float, stop: threading.Event) -> threading.Thread:
    def loop():
        time.sleep(delay)
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                srv.accept()[0].close()
            except OSError:
                pass
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("resend", [True, False], ids=["resent-syn", "tcp-retransmit-only"])
def test_a_syn_dropped_by_a_full_accept_queue_is_resent_within_the_timeout(
        make_netns, monkeypatch, resend):
    ns = make_netns("calinet-probe", "10.9.3.1")
    if not resend:   # the control: TCP's own retransmission comes at 1 s, past the timeout
        monkeypatch.setattr(probe, "RESEND_AFTER", 99.0)
    srv, filler = _full_listener(ns, "10.9.3.1", 8081)
    stop = threading.Event()
    t = _accept_later(srv, 0.15, stop)    # the queue drains before the resend at 0.3 s
    try:
        r = probe.probe(ns, "10.9.3.1", 8081, "TCP", timeout=0.9)
    finally:
        stop.set()
        t.join()
        filler.close()
        srv.close()
    if resend:
        assert r.ok and r.detail == "connected after a resent SYN", r
        assert probe.RESEND_AFTER <= r.elapsed < 0.9, r
    else:
        assert not r.ok and r.detail == "timeout after 0.9s", r


def test_sock_diag_sees_listening_tcp_sockets_of_the_namespace_only(make_netns):
    from orchestrator.host import sockdiag
    ns = make_netns("calinet-diag", "10.9.4.1")
    path = netns.netns_path(ns)
    v4 = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    v6 = netns.socket_in(ns, socket.AF_INET6, socket.SOCK_STREAM)
    bound_only = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    try:
        v4.bind(("10.9.4.1", 18080))
        v4.listen()
        v6.bind(("::", 19090))
        v6.listen()
        bound_only.bind(("10.9.4.1", 17070))      # bound, not listening: not ready
        assert sockdiag.tcp_listening(path, 18080)
        assert sockdiag.tcp_listening(path, 19090)
        assert not sockdiag.tcp_listening(path, 17070)
        host = socket.socket()
        try:                # a listener in the machine's namespace is not the pod's
            host.bind(("127.0.0.1", 0))
            host.listen()
            assert not sockdiag.tcp_listening(path, host.getsockname()[1])
        finally:
            host.close()
    finally:
        for s in (v4, v6, bound_only):
            s.close()
