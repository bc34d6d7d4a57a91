"""Container runtime of a kubelet: container processes inside pod namespaces, restarts, logs.

Side effects: starts each container in its pod's named netns in a session of its own:
built-in servers (ImageProgram.serve_args) are forked by one zygote per runtime
(images/forkserver.py: a fork instead of nsenter + an interpreter start, ~1.5 ms instead of
~10 ms), everything else is exec'd through Runner.spawn (nsenter). It appends output to
<state_dir>/logs/<namespace>_<pod>_<container>.log, signals process groups it started,
reads /proc/<pid>/net/{tcp,udp}* for readiness. Nothing here sleeps except the bounded wait
of a graceful stop; the kubelet loop calls poll(now) to reap exits and restart per
restartPolicy with Kubernetes' CrashLoopBackOff (10 s doubling to 5 min). ``now`` is a
time.monotonic() reading (it only schedules restarts); timestamps shown use the wall clock.
A <log>.idx beside a log records where its last two instances start, so read_logs() serves
`logs --previous` from disk, from any process; a log without one holds one instance.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.errors import (
    CalinetError,
    CommandError,
    NotFound,
    SupervisorTimeout,
    ValidationError,
)
from orchestrator.host import sockdiag
from orchestrator.host.runner import DEFAULT, NETNS_DIR, Runner
from orchestrator.images import ImageProgram
from orchestrator.images.forkserver import ForkServer, ZygoteChild

log = logging.getLogger(__name__)

RESTART_POLICIES = ("Always", "OnFailure", "Never")
BACKOFF_BASE = 10.0
BACKOFF_MAX = 300.0
# How long a batch's start waits for its built-in servers to say they listen (a few ms each
# when the machine is not saturated); past it readiness is found by the later checks.
LISTEN_WAIT = 0.5
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root"}
# Socket states in /proc/net/{tcp,udp}: LISTEN for TCP, unconnected (CLOSE) for bound UDP.
_BOUND_STATE = {"TCP": "0A", "UDP": "07"}


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@dataclass
class ContainerState:
    pod_key: str
    name: str
    netns: str
    image: str
    restart_policy: str
    log_path: str
    program: ImageProgram | None            # None: never startable (fail() recorded why)
    proc: subprocess.Popen | ZygoteChild | None = None
    started_wall: float | None = None        # time.time() of the current/last start
    restart_count: int = 0
    backoff: float = 0.0                    # current CrashLoopBackOff delay (0: none yet)
    last_restart: float | None = None
    next_start: float | None = None         # waiting in CrashLoopBackOff until then
    waiting: tuple[str, str] | None = None  # (reason, message)
    terminated: dict | None = None          # final state: exited and will not restart
    last_terminated: dict | None = None
    ready: bool = False
    netns_ino: int = 0
    last_pid: int | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class ContainerRuntime:
    def __init__(self, state_dir: str, runner: Runner = DEFAULT, *,
                 backoff_base: float = BACKOFF_BASE, backoff_max: float = BACKOFF_MAX,
                 netns_dir: str = NETNS_DIR, on_spawn: Callable[[int], None] | None = None,
                 zygote: bool = True, resolv_conf: Callable[[str], str | None] | None = None):
        self.state_dir = str(state_dir)
        # pod key -> the pod's resolv.conf (cluster DNS on): commands run with it mounted
        # over /etc/resolv.conf in a mount namespace of their own (orchestrator.dns).
        self.resolv_conf = resolv_conf
        # Told every pid this runtime starts, restarts included (the ownership ledger).
        self.on_spawn = on_spawn
        self.netns_dir = netns_dir          # where named netns live (tests substitute it)
        self.runner = runner
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._pods: dict[str, dict[str, ContainerState]] = {}
        # pod key -> a counter bumped by every change of its containers' state, so a
        # kubelet can tell that a pod's statuses cannot have changed without asking for
        # them (statuses() takes the lock every kubelet and the manager's poll() share).
        self._gens: dict[str, int] = {}
        self._lock = threading.RLock()
        # Built-in servers are forked from one warm interpreter (a fork instead of an
        # nsenter + interpreter start each); ``zygote=False`` execs their argv instead.
        self.forkserver = (ForkServer(runner, stderr_path=os.path.join(self.state_dir,
                                                                       "zygote.log"),
                                      on_spawn=on_spawn) if zygote else None)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, pod_key: str, netns: str, container_name: str, program: ImageProgram,
              restart_policy: str = "Always", *, image: str | None = None,
              now: float | None = None) -> ContainerState:
        """Start a container (idempotent: a known container is returned as it is)."""
        return self.start_many([(pod_key, netns, container_name, program, restart_policy,
                                 image)], now=now)[0]

    def start_many(self, specs, *, now: float | None = None) -> list[ContainerState]:
        """start() for many (pod_key, netns, container_name, program[, restart_policy[,
        image]]) at once: built-in servers' forks are all requested before any is awaited,
        so the zygote forks while this thread prepares the next ones. Every spec is
        validated before anything starts."""
        now = time.monotonic() if now is None else now
        checked = [self._check(*spec) for spec in specs]
        out, batch = [], []
        try:
            with self._lock:
                for pod_key, netns, name, program, policy, image, logfile, ino in checked:
                    pod = self._pods.setdefault(pod_key, {})
                    st = pod.get(name)
                    if st is None or st.program is None:
                        st = ContainerState(pod_key, name, netns, image or program.image,
                                            policy, logfile, program, netns_ino=ino)
                        pod[name] = st
                        self._launch(st, now, batch)
                    out.append(st)
        finally:
            # The zygote's answers are awaited without the runtime's lock: held, it made
            # every other kubelet's statuses() and the manager's poll() wait for this
            # batch's forks (up to ~0.1 s a batch at 500 pods).
            self._collect(batch)
        return out

    def _check(self, pod_key: str, netns: str, container_name: str, program: ImageProgram,
               restart_policy: str = "Always", image: str | None = None) -> tuple:
        if restart_policy not in RESTART_POLICIES:
            raise ValidationError(f"restartPolicy must be one of {', '.join(RESTART_POLICIES)}, "
                                  f"not {restart_policy!r}", obj=f"Pod {pod_key}",
                                  field="spec.restartPolicy")
        if not program.argv:
            raise ValidationError("empty argv", obj=f"Pod {pod_key} container {container_name}",
                                  field="command")
        path = os.path.join(self.netns_dir, netns)
        if "/" in netns or not os.path.exists(path):
            raise NotFound(f"network namespace {netns!r} of pod {pod_key} does not exist")
        logfile = log_path(self.state_dir, pod_key, container_name)
        return (pod_key, netns, container_name, program, restart_policy, image, logfile,
                os.stat(path).st_ino)

    def fail(self, pod_key: str, container_name: str, image: str, reason: str,
             message: str) -> None:
        """Record a container that cannot start (e.g. ErrImagePull) so statuses() shows it."""
        logfile = log_path(self.state_dir, pod_key, container_name)
        with self._lock:
            pod = self._pods.setdefault(pod_key, {})
            st = pod.get(container_name)
            if st is not None and st.proc is not None:
                return
            pod[container_name] = ContainerState(pod_key, container_name, "", image, "Never",
                                                 logfile, None, waiting=(reason, message))
            self._touch(pod_key)

    def poll(self, now: float | None = None) -> set[str]:
        """Reap exits, restart per restartPolicy/backoff, refresh readiness.

        Returns the pod keys whose container statuses changed.
        """
        now = time.monotonic() if now is None else now
        changed = set()
        with self._lock:
            for st in [s for pod in self._pods.values() for s in pod.values()]:
                if st.proc is not None:
                    rc = st.proc.poll()
                    if rc is None:
                        if not st.ready and self._check_ready(st):
                            changed.add(st.pod_key)
                        continue
                    _kill_group(st.proc.pid, signal.SIGKILL)   # the container's other processes
                    self._exited(st, rc, now)
                    changed.add(st.pod_key)
                elif st.next_start is not None and now >= st.next_start:
                    self._restart(st, now)
                    changed.add(st.pod_key)
        return changed

    def stop_pod(self, pod_key: str, grace: float = 30.0) -> list[dict]:
        """SIGTERM every container's process group, SIGKILL what is left after ``grace``
        seconds, reap, forget the pod. Returns the containers' final statuses."""
        with self._lock:
            pod = self._pods.pop(pod_key, {})
        return self._stop(list(pod.values()), grace)

    def stop_pods(self, pod_keys, grace: float = 30.0) -> None:
        """stop_pod for several pods with one grace period for all of them."""
        with self._lock:
            states = [s for k in pod_keys for s in self._pods.pop(k, {}).values()]
        self._stop(states, grace)

    def stop_all(self, grace: float = 30.0) -> None:
        """Stop every pod at once (one grace period for all, not one per pod)."""
        with self._lock:
            states = [s for pod in self._pods.values() for s in pod.values()]
            self._pods.clear()
        self._stop(states, grace)
        if self.forkserver is not None:
            self.forkserver.close()     # nothing of it runs any more; restarted on demand

    # -- queries -------------------------------------------------------------------------

    def generation(self, pod_key: str) -> int:
        """Changes whenever anything statuses(pod_key) shows may have changed (lock-free:
        a stale read only means one more statuses() call)."""
        return self._gens.get(pod_key, 0)

    def _touch(self, pod_key: str) -> None:
        self._gens[pod_key] = self._gens.get(pod_key, 0) + 1

    def statuses(self, pod_key: str) -> list[dict]:
        """containerStatuses in Kubernetes' shape, in start order."""
        with self._lock:
            return [_status(st) for st in self._refreshed(pod_key)]

    def ready(self, pod_key: str) -> bool:
        """True when the pod has containers and all of them are running and ready."""
        with self._lock:
            states = self._refreshed(pod_key)
            return bool(states) and all(s.proc is not None and s.ready for s in states)

    def pids(self) -> list[int]:
        """Pids of the running container processes (each leads its own process group)."""
        with self._lock:
            return sorted(s.proc.pid for pod in self._pods.values() for s in pod.values()
                          if s.proc is not None)

    def pods(self) -> list[str]:
        with self._lock:
            return sorted(self._pods)

    def logs(self, pod_key: str, container: str, previous: bool = False) -> str:
        """The current (or with ``previous`` the last terminated) instance's output."""
        return read_logs(self.state_dir, pod_key, container, previous)

    def exec(self, netns: str, argv: list[str], timeout: float = 30.0) -> tuple[int, str, str]:
        """Run argv to completion inside ``netns`` -> (returncode, stdout, stderr)."""
        try:
            r = self.runner.run(argv, netns=netns, timeout=timeout, check=False)
        except CommandError as exc:
            if exc.returncode == -1:
                raise SupervisorTimeout(f"exec {' '.join(map(str, argv))!r} in netns {netns} "
                                        f"did not finish within {timeout}s") from None
            raise
        return r.returncode, r.stdout, r.stderr

    # -- internals -----------------------------------------------------------------------

    def _refreshed(self, pod_key: str) -> list[ContainerState]:
        states = list(self._pods.get(pod_key, {}).values())
        for st in states:
            if st.proc is not None and not st.ready:
                self._check_ready(st)
        return states

    def _launch(self, st: ContainerState, now: float, batch: list | None = None) -> None:
        """Start st's next instance; with ``batch`` a zygote fork is only requested and
        (st, ticket, now) appended, for _collect() to finish."""
        assert st.program is not None
        self._touch(st.pod_key)
        env = {**BASE_ENV, **st.program.env}
        argv = [str(a) for a in st.program.argv]
        st.waiting = st.terminated = st.next_start = None
        os.makedirs(os.path.dirname(st.log_path), exist_ok=True)
        if self.forkserver is not None and st.program.serve_args is not None:
            # The child opens the log itself: no file to open here.
            try:
                offset = os.stat(st.log_path).st_size
            except FileNotFoundError:
                offset = 0
            _write_index(st.log_path, offset, fresh=st.restart_count == 0)
            try:
                ticket = self.forkserver.submit(
                    [str(a) for a in st.program.serve_args], log=st.log_path, env=env,
                    netns_path=os.path.join(self.netns_dir, st.netns),
                    mode=st.program.serve_mode)
            except OSError as exc:
                self._start_failed(st, now, exc)
                return
            if batch is not None:
                batch.append((st, ticket, now))
            else:
                self._collect([(st, ticket, now)])
            return
        with open(st.log_path, "ab") as f:
            _write_index(st.log_path, f.seek(0, os.SEEK_END), fresh=st.restart_count == 0)
            # Checked here, not left to nsenter: the status then reads like a runtime's
            # StartError instead of a generic exit 127.
            if shutil.which(argv[0], path=env["PATH"]) is None:
                st.started_wall = time.time()
                self._exited(st, 128, now, "StartError",
                             f'exec: "{argv[0]}": executable file not found in $PATH')
                return
            resolv = self.resolv_conf(st.pod_key) if self.resolv_conf else None
            if resolv:
                from orchestrator.dns.resolvconf import wrap
                argv = wrap(list(argv), resolv)
            try:
                proc = self.runner.spawn(argv, netns=st.netns, stdout=f,
                                         stderr=subprocess.STDOUT, env=env, new_session=True)
            except OSError as exc:
                self._start_failed(st, now, exc)
                return
        self._started(st, proc)

    def _collect(self, batch: list) -> None:
        """Await the zygote's forks of ``batch`` (the lock is taken for each answer only),
        then, for up to LISTEN_WAIT in all, their servers' word that they listen: a
        container recorded as started and listening is Ready in the kubelet's first status
        write instead of one pass later (500 status writes fewer at 500 pods)."""
        got = []
        for st, ticket, now in batch:
            try:
                got.append((st, now, self.forkserver.result(ticket), None))
            except OSError as exc:
                got.append((st, now, None, exc))
        deadline = time.monotonic() + LISTEN_WAIT
        for st, now, proc, failed in got:
            if proc is not None and st.program.ready_socket is not None:
                proc.listening.wait(max(0.0, deadline - time.monotonic()))
            with self._lock:
                if self._pods.get(st.pod_key, {}).get(st.name) is not st:
                    # Stopped while its fork was on the way: nothing else would reap it.
                    if proc is not None:
                        _kill_group(proc.pid, signal.SIGKILL)
                        proc.wait(timeout=5.0)
                    continue
                if failed is not None:
                    self._start_failed(st, now, failed)
                else:
                    self._started(st, proc)

    def _start_failed(self, st: ContainerState, now: float, exc: OSError) -> None:
        st.started_wall = time.time()
        self._exited(st, 128, now, "StartError", f"spawn failed: {exc}")

    def _started(self, st: ContainerState, proc) -> None:
        self._touch(st.pod_key)
        st.proc = proc
        st.started_wall = time.time()
        st.last_pid = proc.pid
        if self.on_spawn is not None:
            self.on_spawn(proc.pid)
        st.ready = st.program.ready_socket is None or _said_listening(proc)
        log.debug("container %s/%s started pid %d", st.pod_key, st.name, proc.pid)

    def _exited(self, st: ContainerState, rc: int, now: float, reason: str | None = None,
                message: str | None = None) -> None:
        code = rc if rc >= 0 else 128 - rc             # killed by signal N -> 128+N
        self._touch(st.pod_key)
        wall = time.time()
        term = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error"),
                "startedAt": rfc3339(st.started_wall or wall), "finishedAt": rfc3339(wall)}
        if message:
            term["message"] = message
        if st.last_pid:
            term["containerID"] = f"calinet://{st.last_pid}"
        st.proc = None
        st.ready = False
        restart = st.restart_policy == "Always" or (st.restart_policy == "OnFailure" and code)
        if not restart:
            st.terminated = term
            return
        st.last_terminated = term
        self._restart(st, now)

    def _restart(self, st: ContainerState, now: float) -> None:
        """Kubelet's backoff: a restart within the current delay of the previous restart
        waits in CrashLoopBackOff; each restart doubles the delay; a delay left unused for
        twice the maximum starts over."""
        self._touch(st.pod_key)
        if st.last_restart is not None and now - st.last_restart > 2 * self.backoff_max:
            st.backoff = 0.0
        if st.backoff and st.last_restart is not None and now < st.last_restart + st.backoff:
            st.next_start = st.last_restart + st.backoff
            st.waiting = ("CrashLoopBackOff",
                          f"back-off {st.backoff:g}s restarting failed container={st.name} "
                          f"pod={st.pod_key}")
            return
        st.backoff = min(self.backoff_max, st.backoff * 2) if st.backoff else self.backoff_base
        st.last_restart = now
        st.restart_count += 1
        self._launch(st, now)

    def _check_ready(self, st: ContainerState) -> bool:
        sock = st.program.ready_socket if st.program else None
        if not st.ready and (sock is None or _said_listening(st.proc) or (
                st.proc is not None and _bound(st.proc.pid, sock, st.netns_ino))):
            st.ready = True
            self._touch(st.pod_key)
        return st.ready

    def _stop(self, states: list[ContainerState], grace: float) -> list[dict]:
        for s in states:
            self._touch(s.pod_key)
        running = [s for s in states if s.proc is not None]
        for s in running:
            _kill_group(s.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + max(0.0, grace)
        while any(s.proc.poll() is None for s in running) and time.monotonic() < deadline:
            time.sleep(0.02)
        for s in running:
            # Also the stragglers of a leader that already exited on SIGTERM.
            _kill_group(s.proc.pid, signal.SIGKILL)
        now = time.monotonic()
        for s in running:
            try:
                rc = s.proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                raise SupervisorTimeout(f"container {s.name} of pod {s.pod_key} (pid "
                                        f"{s.proc.pid}) survived SIGKILL for 5s") from None
            s.restart_policy = "Never"          # it is being stopped, not crashing
            self._exited(s, rc, now)
        for s in states:
            s.next_start = None
        return [_status(s) for s in states]


def log_path(state_dir: str, pod_key: str, container: str) -> str:
    """<state_dir>/logs/<namespace>_<pod>_<container>.log: every instance, appended.

    One flat directory, like the kubelet's /var/log/containers/<pod>_<namespace>_<container>
    links (no name part can hold "_"): a directory per pod was one more inode to create per
    pod, and on a well-used ext4 each costs ~0.5 ms of kernel time (recently_deleted())."""
    ns, _, name = pod_key.partition("/")
    for part in (ns, name, container):
        if not part or part.startswith(".") or "/" in part:
            raise ValidationError(f"pod key {pod_key!r} / container {container!r} must be "
                                  "<namespace>/<name> and a container name", obj="container")
    return os.path.join(str(state_dir), "logs", f"{ns}_{name}_{container}.log")


def read_logs(state_dir: str, pod_key: str, container: str, previous: bool = False) -> str:
    """The output of a container's current instance, or with ``previous`` of the one before
    (like `kubectl logs [--previous]`); works for stopped pods and from other processes."""
    path = log_path(state_dir, pod_key, container)
    try:
        with open(path + ".idx") as f:
            offsets = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        offsets = []
    if previous:
        if len(offsets) < 2:
            raise NotFound(f"previous terminated container {container!r} in pod "
                           f"{pod_key!r} not found")
        start, end = offsets[-2], offsets[-1]
    else:
        start, end = (offsets[-1] if offsets else 0), None
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read() if end is None else f.read(end - start)
    except FileNotFoundError:
        raise NotFound(f"container {container!r} in pod {pod_key!r} has no logs") from None
    return data.decode(errors="replace")


def _write_index(path: str, offset: int, fresh: bool) -> None:
    """Keep the start offsets of the last two instances (previous, current); a ``fresh``
    container (a new pod reusing a name) has no previous instance."""
    idx = path + ".idx"
    if fresh and offset == 0:
        # The common case, a new pod's first instance: no index means "one instance, from
        # 0" (read_logs), so no file to create for it.
        try:
            os.unlink(idx)
        except FileNotFoundError:
            pass
        return
    last = []
    if not fresh:
        try:
            with open(idx) as f:
                last = f.read().split()[-1:]
        except FileNotFoundError:
            last = ["0"]      # the first instance, which needed no index
    with open(idx + ".tmp", "w") as f:
        f.write(" ".join(last + [str(offset)]) + "\n")
    os.replace(idx + ".tmp", idx)


def _said_listening(proc) -> bool:
    """A zygote child whose server said its sockets listen (others are asked the kernel)."""
    listening = getattr(proc, "listening", None)
    return listening is not None and listening.is_set()


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _bound(pid: int, sock: tuple[str, int], netns_ino: int) -> bool:
    """Whether ``pid``'s network namespace has a listening TCP / bound UDP socket on the port.

    TCP asks sock_diag for the namespace's LISTEN sockets (orchestrator.host.sockdiag: ~0.5 ms,
    where reading /proc/<pid>/net/tcp and tcp6 walks the machine-wide established table,
    ~9 ms here); UDP reads /proc/<pid>/net/udp*. The inode check skips the instant before
    nsenter has switched namespaces (the host's sockets).
    """
    proto, port = sock
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino != netns_ino:
            return False
        if proto == "TCP":
            return sockdiag.tcp_listening(f"/proc/{pid}/ns/net", port)
        for name in (proto.lower(), proto.lower() + "6"):
            with open(f"/proc/{pid}/net/{name}") as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if (len(fields) > 3 and fields[3] == _BOUND_STATE[proto]
                            and int(fields[1].rsplit(":", 1)[1], 16) == port):
                        return True
    except (OSError, CalinetError):     # gone, or its namespace could not be entered
        return False
    return False


def _status(st: ContainerState) -> dict:
    if st.proc is not None:
        state = {"running": {"startedAt": rfc3339(st.started_wall or 0)}}
    elif st.terminated is not None:
        state = {"terminated": dict(st.terminated)}
    elif st.waiting is not None:
        reason, message = st.waiting
        state = {"waiting": {"reason": reason, "message": message} if message
                 else {"reason": reason}}
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    out = {"name": st.name, "image": st.image, "imageID": "", "ready": st.ready,
           "started": st.proc is not None, "restartCount": st.restart_count,
           "state": state, "lastState": ({"terminated": dict(st.last_terminated)}
                                         if st.last_terminated else {})}
    if st.last_pid:
        out["containerID"] = f"calinet://{st.last_pid}"
    return out


def exec_environment(pod: dict, container: str | None = None) -> dict[str, str]:
    """The environment a container of ``pod`` runs with (BASE_ENV, HOSTNAME, its env with the
    downward API), for `exec` to run commands as the container's own processes see it."""
    from orchestrator.images import resolve
    containers = (pod.get("spec") or {}).get("containers") or []
    c = next((c for c in containers if container in (None, c.get("name"))), None)
    if c is None:
        raise NotFound(f"container {container!r} is not in the pod")
    try:
        program = resolve(c, pod)
    except CalinetError as exc:     # an image that never started: the base env
        log.debug("exec env of %s: %s", c.get("name"), exc)
        return {**BASE_ENV, "HOSTNAME": (pod.get("metadata") or {}).get("name", "")}
    return {**BASE_ENV, **program.env}


def exec_argv(argv: list[str], env: dict[str, str], resolv_conf: str | None) -> list[str]:
    """``argv`` as a container's process runs: only ``env``, and (cluster DNS) in a mount
    namespace of its own with the pod's resolv.conf over /etc/resolv.conf, as _launch does."""
    out = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]
    if resolv_conf:
        from orchestrator.dns.resolvconf import wrap
        out = wrap(out, resolv_conf)
    return out
