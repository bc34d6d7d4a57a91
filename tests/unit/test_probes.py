"""Readiness probe decisions (orchestrator.node.probes): parsing, thresholds, timing, Prober.

Golden values from the Kubernetes Probe API: periodSeconds 10, timeoutSeconds 1,
successThreshold 1, failureThreshold 3, initialDelaySeconds 0 by default; a container with a
readiness probe is not ready until the probe succeeds; httpGet succeeds on 200-399.
"""

import pytest

from orchestrator.errors import ValidationError
from orchestrator.node import probes
from orchestrator.node.probes import Prober, ProbeSpec, ProbeState, parse

C = {"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}


def test_defaults_follow_kubernetes():
    s = parse({"tcpSocket": {"port": 80}}, C)
    assert (s.handler, s.port, s.period, s.timeout, s.success_threshold, s.failure_threshold,
            s.initial_delay) == ("tcpSocket", 80, 10, 1, 1, 3, 0)


def test_named_port_and_http_fields():
    s = parse({"httpGet": {"port": "http", "path": "/healthz",
                           "httpHeaders": [{"name": "X-A", "value": "1"}]},
               "periodSeconds": 1}, C)
    assert (s.handler, s.port, s.path, s.headers, s.period) == (
        "httpGet", 8080, "/healthz", (("X-A", "1"),), 1)
    assert parse({"httpGet": {"port": "8080"}}, C).port == 8080
    assert parse({"exec": {"command": ["cat", "/x"]}}, C).command == ("cat", "/x")


@pytest.mark.parametrize("probe,field", [
    ({}, "readinessProbe"),
    ({"exec": {"command": ["true"]}, "tcpSocket": {"port": 1}}, "readinessProbe"),
    ({"exec": {"command": []}}, "readinessProbe.exec.command"),
    ({"tcpSocket": {"port": "nope"}}, "readinessProbe.tcpSocket.port"),
    ({"tcpSocket": {"port": 70000}}, "readinessProbe.tcpSocket.port"),
    ({"httpGet": {"port": 80, "scheme": "HTTPS"}}, "readinessProbe.httpGet.scheme"),
    ({"tcpSocket": {"port": 80}, "periodSeconds": 0}, "readinessProbe.periodSeconds"),
    ({"tcpSocket": {"port": 80}, "failureThreshold": "3"}, "readinessProbe.failureThreshold"),
])
def test_bad_probes_name_the_field(probe, field):
    with pytest.raises(ValidationError) as e:
        parse(probe, C, obj="Pod default/p")
    assert e.value.field == field and e.value.obj == "Pod default/p"


def test_initial_delay_and_period():
    st = ProbeState(ProbeSpec("exec", command=("true",), initial_delay=5, period=2), started=100)
    assert not st.due(104.9)
    assert st.due(105)
    st.record(True, 105)
    assert not st.due(106.9) and st.due(107)


def test_not_ready_until_success_threshold():
    st = ProbeState(ProbeSpec("exec", command=("x",), success_threshold=2), started=0)
    assert st.ready is False
    assert st.record(True, 1) is False and not st.ready
    assert st.record(True, 2) is True and st.ready


def test_failure_threshold_consecutive():
    st = ProbeState(ProbeSpec("exec", command=("x",), failure_threshold=3), started=0)
    st.record(True, 0)
    assert st.ready
    st.record(False, 1)
    st.record(False, 2)
    st.record(True, 3)          # resets the failure count
    st.record(False, 4)
    st.record(False, 5)
    assert st.ready
    assert st.record(False, 6) is True and not st.ready


class _Clock:
    t = 0.0

    def __call__(self):
        return self.t


def _running(cid="calinet://1"):
    return [{"name": "web", "ready": True, "containerID": cid,
             "state": {"running": {"startedAt": "x"}}}]


def _sync_run(results):
    """A run() whose futures complete at once, returning the next of ``results``."""
    calls = []

    def run(spec, netns, ip, runtime):
        calls.append((spec.handler, netns, ip))
        return results.pop(0), "d"
    return run, calls


def _drain(pr):
    for entry in pr._states.values():
        if entry[2] is not None:
            entry[2].result(timeout=5)


def test_prober_follows_results_and_restarts():
    clock = _Clock()
    run, calls = _sync_run([False, True, False])
    pr = Prober(None, clock=clock, run=run)
    pod = {"spec": {"containers": [
        {**C, "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1,
                                 "failureThreshold": 1}},
        {"name": "side"}]}}
    assert pr.readiness("ns/p", pod, "nsx", "10.0.0.5", _running()) == {"web": False}
    _drain(pr)
    assert calls == [("tcpSocket", "nsx", "10.0.0.5")]
    clock.t = 1.0   # failure collected; next probe due at 1.0 + 1
    assert pr.readiness("ns/p", pod, "nsx", "10.0.0.5", _running()) == {"web": False}
    clock.t = 2.0
    pr.readiness("ns/p", pod, "nsx", "10.0.0.5", _running())   # second probe submitted
    _drain(pr)
    clock.t = 2.5
    assert pr.readiness("ns/p", pod, "nsx", "10.0.0.5", _running()) == {"web": True}
    # A new container instance starts over: not ready until its own probe succeeds.
    assert pr.readiness("ns/p", pod, "nsx", "10.0.0.5", _running("calinet://2")) == {
        "web": False}
    # Not running: not ready.
    stopped = [{"name": "web", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
    assert pr.readiness("ns/p", pod, "nsx", "10.0.0.5", stopped) == {"web": False}


def test_run_probe_exec_uses_exit_code():
    class RT:
        def exec(self, netns, argv, timeout):
            assert (netns, argv, timeout) == ("nsx", ["test", "-f", "/x"], 1)
            return self.rc, "", ""
    rt = RT()
    spec = parse({"exec": {"command": ["test", "-f", "/x"]}}, C)
    rt.rc = 0
    assert probes.run_probe(spec, "nsx", "10.0.0.5", rt)[0] is True
    rt.rc = 1
    assert probes.run_probe(spec, "nsx", "10.0.0.5", rt)[0] is False


def test_run_probe_missing_netns_is_a_failure():
    spec = parse({"tcpSocket": {"port": 80}}, C)
    ok, detail = probes.run_probe(spec, "calinet-no-such-netns", "10.0.0.5", None)
    assert ok is False and "does not exist" in detail


def test_ipv6_sctp_probe_is_refused_naming_the_field():
    import pytest as _pytest

    from orchestrator.errors import ValidationError as _VE
    from orchestrator.traffic import probe as _probe
    with _pytest.raises(_VE) as ei:
        _probe.probe_many([("calinet-none", "fd00:10:244::2")], 80, "SCTP")
    assert ei.value.field == "dst_ip" and "IPv4 only" in ei.value.message
    with _pytest.raises(_VE, match="not an IP address"):
        _probe.probe_many([("calinet-none", "fd00::zz")], 80, "TCP")
