"""Readiness probes of a kubelet: exec, tcpSocket and httpGet, with Kubernetes' thresholds.

parse() and ProbeState are pure (the decision: when a probe is due, what a result does to the
container's readiness). Prober runs due probes on a small thread pool and reads their results
on the next kubelet pass, so a slow probe never holds up a sync. Side effects of Prober: exec
probes run a process in the pod's netns (through the container runtime); tcpSocket and httpGet
probes open a socket inside the pod's netns (orchestrator.host.netns, no process) and connect to the
pod IP, as the kubelet's prober reaches the pod's own address.
"""

from __future__ import annotations

import http.client
import logging
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from orchestrator.errors import ValidationError
from orchestrator.host import netns as netns_mod

log = logging.getLogger(__name__)

# Kubernetes' defaults (core/v1 Probe).
DEFAULT_PERIOD = 10
DEFAULT_TIMEOUT = 1
DEFAULT_SUCCESS = 1
DEFAULT_FAILURE = 3
HANDLERS = ("exec", "tcpSocket", "httpGet")
USER_AGENT = "kube-probe/1.30"


@dataclass(frozen=True)
class ProbeSpec:
    handler: str                     # one of HANDLERS
    command: tuple[str, ...] = ()    # exec
    port: int = 0                    # tcpSocket / httpGet (named ports already resolved)
    host: str = ""                   # "" = the pod IP
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    initial_delay: int = 0
    period: int = DEFAULT_PERIOD
    timeout: int = DEFAULT_TIMEOUT
    success_threshold: int = DEFAULT_SUCCESS
    failure_threshold: int = DEFAULT_FAILURE


def _int(probe: dict, key: str, default: int, minimum: int, obj: str, field: str) -> int:
    v = probe.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValidationError(f"must be an integer >= {minimum}, not {v!r}", obj=obj,
                              field=f"{field}.{key}")
    return v


def _port(handler: dict, container: dict, obj: str, field: str) -> int:
    port = handler.get("port")
    if isinstance(port, str) and not port.isdigit():
        # A named port: the container's own port of that name.
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValidationError(f"container has no port named {port!r}", obj=obj,
                              field=f"{field}.port")
    if isinstance(port, bool) or not isinstance(port, (int, str)) or not 0 < int(port) < 65536:
        raise ValidationError(f"must be a port number (1-65535) or a port name, not {port!r}",
                              obj=obj, field=f"{field}.port")
    return int(port)


def parse(probe: dict, container: dict, *, obj: str = "Pod",
          field: str = "readinessProbe") -> ProbeSpec:
    """The ProbeSpec of a container's probe object; ValidationError naming the field."""
    if not isinstance(probe, dict):
        raise ValidationError("must be an object", obj=obj, field=field)
    present = [h for h in HANDLERS if probe.get(h) is not None]
    if len(present) != 1:
        raise ValidationError(f"must have exactly one handler of {', '.join(HANDLERS)}",
                              obj=obj, field=field)
    kw = dict(
        initial_delay=_int(probe, "initialDelaySeconds", 0, 0, obj, field),
        period=_int(probe, "periodSeconds", DEFAULT_PERIOD, 1, obj, field),
        timeout=_int(probe, "timeoutSeconds", DEFAULT_TIMEOUT, 1, obj, field),
        success_threshold=_int(probe, "successThreshold", DEFAULT_SUCCESS, 1, obj, field),
        failure_threshold=_int(probe, "failureThreshold", DEFAULT_FAILURE, 1, obj, field))
    h = present[0]
    body = probe[h]
    hf = f"{field}.{h}"
    if not isinstance(body, dict):
        raise ValidationError("must be an object", obj=obj, field=hf)
    if h == "exec":
        cmd = body.get("command")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd):
            raise ValidationError("must be a non-empty list of strings", obj=obj,
                                  field=f"{hf}.command")
        return ProbeSpec("exec", command=tuple(cmd), **kw)
    port = _port(body, container, obj, hf)
    host = body.get("host") or ""
    if h == "tcpSocket":
        return ProbeSpec("tcpSocket", port=port, host=host, **kw)
    scheme = body.get("scheme", "HTTP")
    if scheme != "HTTP":
        # No TLS server exists among the testbed's images; say so rather than probe wrong.
        raise ValidationError(f"only scheme HTTP is supported, not {scheme!r}", obj=obj,
                              field=f"{hf}.scheme")
    headers = tuple((x["name"], x["value"]) for x in body.get("httpHeaders") or [])
    return ProbeSpec("httpGet", port=port, host=host, path=body.get("path") or "/",
                     headers=headers, **kw)


@dataclass
class ProbeState:
    """One container instance's probe: readiness starts False (Kubernetes: a container with a
    readiness probe is not ready until the probe has succeeded successThreshold times)."""

    spec: ProbeSpec
    started: float                   # when the container instance was first seen running
    ready: bool = False
    successes: int = 0               # consecutive
    failures: int = 0                # consecutive
    next_at: float | None = None     # next probe time; None: initialDelay not yet counted

    def due(self, now: float) -> bool:
        if self.next_at is None:
            self.next_at = self.started + self.spec.initial_delay
        return now >= self.next_at

    def record(self, ok: bool, now: float) -> bool:
        """Account one result; the next probe is a period later. True if readiness changed."""
        self.next_at = now + self.spec.period
        before = self.ready
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.spec.success_threshold:
                self.ready = True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= self.spec.failure_threshold:
                self.ready = False
        return self.ready != before


def run_probe(spec: ProbeSpec, netns: str, pod_ip: str, runtime) -> tuple[bool, str]:
    """Run one probe to completion -> (success, detail). Never raises for a failed probe."""
    try:
        if spec.handler == "exec":
            rc, out, err = runtime.exec(netns, list(spec.command), timeout=spec.timeout)
            return rc == 0, f"exit {rc}: {(out + err).strip()[:200]}"
        host = spec.host or pod_ip
        sock = netns_mod.socket_in(netns, socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            sock.settimeout(spec.timeout)
            sock.connect((spec.host or pod_ip, spec.port))
            if spec.handler == "tcpSocket":
                return True, "connected"
            conn = http.client.HTTPConnection(spec.host or pod_ip, spec.port,
                                              timeout=spec.timeout)
            conn.sock = sock    # already connected from inside the netns
            headers = {"User-Agent": USER_AGENT, "Accept": "*/*", **dict(spec.headers)}
            conn.request("GET", spec.path, headers=headers)
            resp = conn.getresponse()
            resp.read(10240)
            # Kubernetes: 200 <= code < 400 is success.
            return 200 <= resp.status < 400, f"HTTP {resp.status}"
        finally:
            sock.close()
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - a probe's failure is a result, not a crash
        return False, f"{type(exc).__name__}: {exc}"


class Prober:
    """Readiness of a kubelet's probed containers, from probes run in the background."""

    def __init__(self, runtime, *, workers: int = 8, clock=time.monotonic, run=run_probe):
        self.runtime = runtime
        self.clock = clock
        self.run = run
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None   # made on the first probe
        # (pod key, container) -> (container ID, ProbeState, Future | None)
        self._states: dict[tuple[str, str], list] = {}

    def readiness(self, key: str, pod: dict, netns: str, pod_ip: str,
                  statuses: list[dict]) -> dict[str, bool]:
        """Container name -> probe readiness for this pod's containers that have a readiness
        probe. Collects finished probes, starts the due ones; a container not running is not
        ready and its probe state starts over with its next instance."""
        now = self.clock()
        out: dict[str, bool] = {}
        by_name = {s["name"]: s for s in statuses}
        for i, c in enumerate(pod["spec"].get("containers") or []):
            if not c.get("readinessProbe"):
                continue
            name = c["name"]
            st = by_name.get(name) or {}
            running = "running" in (st.get("state") or {})
            if not running:
                self._states.pop((key, name), None)
                out[name] = False
                continue
            cid = st.get("containerID", "")
            entry = self._states.get((key, name))
            if entry is None or entry[0] != cid:
                try:
                    spec = parse(c["readinessProbe"], c, obj=f"Pod {key}",
                                 field=f"spec.containers[{i}].readinessProbe")
                except ValidationError as exc:
                    log.warning("%s", exc)
                    out[name] = False
                    continue
                entry = [cid, ProbeState(spec, now), None]
                self._states[(key, name)] = entry
            state, fut = entry[1], entry[2]
            if fut is not None and fut.done():
                ok, detail = fut.result()
                if state.record(ok, self.clock()):
                    log.info("readiness probe of %s/%s: %s (%s)", key, name,
                             "ready" if state.ready else "not ready", detail)
                entry[2] = fut = None
            if fut is None and state.due(now):
                entry[2] = self._submit(state.spec, netns, pod_ip)
            out[name] = state.ready
        return out

    def _submit(self, spec: ProbeSpec, netns: str, pod_ip: str) -> Future:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="calinet-probe")
        return self._pool.submit(self.run, spec, netns, pod_ip, self.runtime)

    def forget(self, key: str) -> None:
        for k in [k for k in self._states if k[0] == key]:
            del self._states[k]
