"""Probe engine without root: namespace entry is replaced by "stay here", traffic is loopback."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from orchestrator.errors import NotFound, ValidationError
from orchestrator.host import netns
from orchestrator.traffic import probe


@pytest.mark.parametrize("kw,field", [({"protocol": "ICMP"}, "protocol"),
                                      ({"port": 0}, "port"), ({"port": 70000}, "port"),
                                      ({"timeout": 0}, "timeout"),
                                      ({"dst_ip": "10.0.0"}, "dst_ip")])
def test_bad_arguments_name_the_field(kw, field):
    args = {"src_netns": "x", "dst_ip": "10.0.0.1", "port": 80, "protocol": "TCP",
            "timeout": 0.1, **kw}
    with pytest.raises(ValidationError) as exc:
        probe.probe(**args)
    assert exc.value.field == field


def test_missing_source_namespace_is_a_failed_probe_not_a_crash():
    r = probe.probe("calinet-does-not-exist-0000", "10.0.0.1", 80, "tcp", 0.1)
    assert not r.ok and "does not exist" in r.detail


def test_netns_path():
    assert netns.netns_path("a") == "/var/run/netns/a"
    assert netns.netns_path(pid=12) == "/proc/12/ns/net"
    for bad in ("", "../x", ".."):
        with pytest.raises(NotFound):
            netns.netns_path(bad)
    with pytest.raises(ValueError):
        netns.netns_path("a", 1)


@pytest.fixture
def here(monkeypatch):
    """Make every "namespace" the current one (no setns, so no root needed)."""
    monkeypatch.setattr(probe.netns_mod, "run_in",
                        lambda path, fn, *a, **kw: fn(*a, **{k: v for k, v in kw.items()
                                                            if k != "timeout"}))


@pytest.fixture
def servers():
    """A TCP listener, a UDP echo server and a silent UDP socket on loopback."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(128)
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    echo.settimeout(0.1)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data, peer = echo.recvfrom(2048)
            except TimeoutError:
                continue
            echo.sendto(data, peer)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield {"tcp": tcp.getsockname()[1], "echo": echo.getsockname()[1],
           "silent": silent.getsockname()[1]}
    stop.set()
    t.join(2)
    for s in (tcp, echo, silent):
        s.close()


def test_tcp_connect_and_refused(here, servers):
    ok = probe.probe("a", "127.0.0.1", servers["tcp"], "TCP", 1.0)
    assert ok.ok and ok.detail == "connected" and ok.elapsed < 1.0
    closed = probe.probe("a", "127.0.0.1", servers["echo"], "TCP", 1.0)   # no TCP there
    assert not closed.ok and "refused" in closed.detail


def test_udp_echo_refused_and_timeout(here, servers):
    ok = probe.probe("a", "127.0.0.1", servers["echo"], "UDP", 1.0)
    assert ok.ok and ok.detail == f"reply of {len(probe.UDP_PAYLOAD)} bytes"
    refused = probe.probe("a", "127.0.0.1", servers["tcp"], "UDP", 1.0)   # no UDP there
    assert not refused.ok and "refused" in refused.detail
    quiet = probe.probe("a", "127.0.0.1", servers["silent"], "UDP", 0.2)
    assert not quiet.ok and quiet.detail.startswith("timeout") and quiet.elapsed >= 0.2


def test_many_silent_probes_cost_one_timeout(here, servers, monkeypatch):
    # 72 pairs (9 sources x 8 destinations-ish), most of them unanswered, waves of 40.
    monkeypatch.setattr(probe, "MAX_IN_FLIGHT", 40)
    pairs = [(f"ns{i}", f"127.0.0.{j + 1}") for i in range(9) for j in range(8)]
    t0 = time.monotonic()
    res = probe.probe_many(pairs, servers["silent"], "UDP", timeout=0.3, workers=4)
    took = time.monotonic() - t0
    assert list(res) == pairs and not any(r.ok for r in res.values())
    assert took < 2 * 0.3 + 0.4   # two waves of one timeout each, not 72 timeouts


def test_matrix_mixed_results_and_dedup(here, servers):
    pairs = [("a", "127.0.0.1"), ("b", "127.0.0.1"), ("a", "127.0.0.1")]
    assert probe.matrix(pairs, servers["tcp"], "TCP", 0.5) == {("a", "127.0.0.1"): True,
                                                               ("b", "127.0.0.1"): True}
    assert probe.matrix(pairs[:1], servers["silent"], "UDP", 0.1) == {("a", "127.0.0.1"): False}
