"""One ExaBGP speaker per node: validate, start in the node's netns, readiness, restarts, stop.

Side effects: writes <state>/exabgp.conf, appends the speaker's output to <state>/exabgp.log,
runs `exabgp validate -n`, spawns `exabgp server` inside the node's network namespace
(Runner.spawn with the node's pid; its own session, so its process group is ours), reads
<state>/status.json (written by the agent, bgp.agent), signals the speaker and its agent by
pid. Nothing here sleeps except the bounded waits of wait_ready() and stop(); the caller's
loop calls poll(now) to restart a dead speaker with exponential backoff (``now`` is
time.monotonic()).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bgp.agent import parse_config
from orchestrator.errors import CommandError, SupervisorTimeout, ValidationError
from orchestrator.host.runner import DEFAULT, Runner

log = logging.getLogger(__name__)

EXABGP = str(Path(sys.executable).parent / "exabgp")
REPO_ROOT = str(Path(__file__).resolve().parents[1])
RUNNING, BACKOFF, FAILED, STOPPED = "running", "backoff", "failed", "stopped"


def agent_argv(node: str, node_ip: str, state_dir: str, *, cluster_id: str | None = None,
               python: str = sys.executable, node_ip6: str | None = None) -> list[str]:
    """The `run` line of the speaker's `process` block (for bgp.config.render)."""
    argv = [python, "-m", "bgp.agent", "--node", node, "--node-ip", node_ip,
            "--state", str(state_dir)]
    return (argv + (["--cluster-id", cluster_id] if cluster_id else [])
            + (["--node-ip6", node_ip6] if node_ip6 else []))


def validate_all(items: Sequence[tuple["Speaker", str]]) -> None:
    """Validate the configs of several speakers with one `exabgp validate -n` (one Python
    start-up for all); ValidationError names the first node whose config ExaBGP rejects."""
    if not items:
        return
    paths = []
    for sp, text in items:
        parse_config(text)
        os.makedirs(sp.state_dir, exist_ok=True)
        path = os.path.join(sp.state_dir, "exabgp.conf.check")
        Path(path).write_text(text)
        paths.append(path)
    first = items[0][0]
    try:
        first.runner.run([first.exabgp, "validate", "-n", *paths], timeout=120)
    except CommandError as exc:
        output = f"{exc.stdout}\n{exc.stderr}"
        bad = next((sp for (sp, _t), path in zip(items, paths)
                    if f"{path} is not a valid" in output), first)
        detail = [line for line in exc.stderr.splitlines() if line.strip()
                  and not line.startswith("error:")] or [exc.stderr.strip()]
        raise ValidationError("ExaBGP rejects the configuration: " + " ".join(detail),
                              obj=f"Node {bad.node}", field="exabgp.conf") from None
    finally:
        for path in paths:
            if os.path.exists(path):
                os.unlink(path)


def read_status(state_dir: str) -> dict | None:
    """The agent's status.json, or None when there is none (yet)."""
    try:
        with open(os.path.join(state_dir, "status.json")) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


class Speaker:
    """One node's exabgp (and, as its child, the agent). ``env`` is merged over os.environ;
    PYTHONPATH gets the repository root so `python -m bgp.agent` imports."""

    def __init__(self, node: str, node_pid: int, node_ip: str, state_dir: str,
                 config_text: str, env: Mapping[str, str], runner: Runner = DEFAULT, *,
                 exabgp: str = EXABGP, on_spawn: Callable[[int], None] | None = None,
                 max_restarts: int = 5, window: float = 300.0, backoff_base: float = 0.5,
                 backoff_max: float = 30.0):
        self.node, self.node_pid, self.node_ip = node, node_pid, node_ip
        self.state_dir, self.config_text, self.runner = str(state_dir), config_text, runner
        self.env = dict(env)
        self.exabgp, self.on_spawn = exabgp, on_spawn
        self.max_restarts, self.window = max_restarts, window
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.proc: subprocess.Popen | None = None
        self.state = STOPPED
        self.error: str | None = None
        self.restarts: list[float] = []     # monotonic times of restarts (within window)
        self.next_start: float | None = None
        self.agent_pids: set[int] = set()

    @property
    def conf_path(self) -> str:
        return os.path.join(self.state_dir, "exabgp.conf")

    @property
    def expected_peers(self) -> list[str]:
        return [nb.ip for nb in parse_config(self.config_text).neighbors]

    # -- lifecycle -----------------------------------------------------------------------

    def validate(self, config_text: str | None = None) -> None:
        """`exabgp validate -n` on the text (written beside the live config, which stays)."""
        validate_all([(self, self.config_text if config_text is None else config_text)])

    def start(self, now: float | None = None) -> None:
        """Validate, then spawn exabgp in the node's netns (no-op when running)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.validate()
        self._spawn()

    def _spawn(self) -> None:
        Path(self.conf_path).write_text(self.config_text)
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH"))
                                            if p)
        with open(os.path.join(self.state_dir, "exabgp.log"), "ab") as logf:
            logf.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting speaker of "
                       f"{self.node}\n".encode())
            logf.flush()
            self.proc = self.runner.spawn([self.exabgp, "server", self.conf_path],
                                          pid=self.node_pid, stdout=logf,
                                          stderr=subprocess.STDOUT, env=env)
        self.state, self.next_start, self.error = RUNNING, None, None
        log.info("speaker of %s started, pid %d", self.node, self.proc.pid)
        if self.on_spawn:
            self.on_spawn(self.proc.pid)

    def status(self) -> dict | None:
        """The agent's status.json if it belongs to the running speaker, else None."""
        st = read_status(self.state_dir)
        if st is None or self.proc is None or st.get("speaker_pid") != self.proc.pid:
            return None
        pid = st.get("agent_pid")
        if isinstance(pid, int) and pid not in self.agent_pids:
            self.agent_pids.add(pid)
            if self.on_spawn:
                self.on_spawn(pid)
        return st

    def peers_down(self) -> list[str]:
        """Expected peers not Established (all of them when the agent has not reported)."""
        st = self.status()
        up = {p["ip"] for p in (st or {}).get("peers", []) if p.get("state") == "up"}
        return [ip for ip in self.expected_peers if ip not in up]

    def ready(self) -> bool:
        return self.state == RUNNING and self.proc is not None and self.proc.poll() is None \
            and self.status() is not None and not self.peers_down()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every expected peer is Established; SupervisorTimeout names the others."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            if self.proc is None or self.proc.poll() is not None:
                raise SupervisorTimeout(f"speaker of {self.node} exited "
                                        f"(see {self.state_dir}/exabgp.log)")
            time.sleep(0.02)
        raise SupervisorTimeout(f"speaker of {self.node}: BGP not established with "
                                f"{', '.join(self.peers_down())} after {timeout}s")

    def poll(self, now: float | None = None) -> bool:
        """Restart a dead speaker after its backoff; True when it (re)started now."""
        now = time.monotonic() if now is None else now
        if self.state == RUNNING and self.proc is not None and self.proc.poll() is not None:
            rc = self.proc.returncode
            self._kill_rest()
            self.restarts = [t for t in self.restarts if now - t < self.window]
            if len(self.restarts) >= self.max_restarts:
                self.state = FAILED
                self.error = (f"speaker of {self.node} exited ({rc}) {len(self.restarts) + 1} "
                              f"times within {self.window:.0f}s: gave up "
                              f"(see {self.state_dir}/exabgp.log)")
                log.error("%s", self.error)
                return False
            delay = min(self.backoff_max, self.backoff_base * 2 ** len(self.restarts))
            self.state, self.next_start = BACKOFF, now + delay
            log.warning("speaker of %s exited %s, restart in %.1fs", self.node, rc, delay)
        if self.state == BACKOFF and self.next_start is not None and now >= self.next_start:
            self.restarts.append(now)
            self._spawn()
            return True
        return False

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the speaker, SIGKILL what is left after ``grace``: its process group and
        its agent (which ExaBGP puts in a group of its own)."""
        self.state, self.next_start = STOPPED, None
        if self.proc is None:
            return
        agents = self._children()
        if self.proc.poll() is None:
            _signal(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _killpg(self.proc.pid)
                self.proc.wait(timeout=5)
        self._kill_rest(agents)
        self.proc = None

    def reload(self, config_text: str) -> None:
        """A new configuration: validated first (the running speaker keeps going when it is
        rejected), then a restart with it."""
        self.validate(config_text)
        self.stop()
        self.config_text = config_text
        self.restarts = []
        self._spawn()

    def pids(self) -> list[int]:
        """Live pids of this speaker: exabgp and its agent (the ownership ledger)."""
        out = []
        if self.proc is not None and self.proc.poll() is None:
            out = [self.proc.pid, *self._children()]
        return sorted(set(out))

    # -- helpers -------------------------------------------------------------------------

    def _children(self) -> list[int]:
        if self.proc is None:
            return []
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(x) for x in text.split()]

    def _kill_rest(self, extra: Sequence[int] = ()) -> None:
        """After exabgp is gone: its group and the agents it had (they exit on stdin EOF
        anyway; this makes sure nothing survives)."""
        if self.proc is not None:
            _killpg(self.proc.pid)
        for pid in {*extra, *self.agent_pids}:
            if _is_agent(pid):
                _signal(pid, signal.SIGKILL)
        self.agent_pids.clear()


def _stop_many(speakers: Sequence[Speaker], grace: float) -> None:
    """SIGTERM every running speaker at once (one grace period for all), then stop each."""
    for sp in speakers:
        if sp.proc is not None and sp.proc.poll() is None:
            sp.agent_pids.update(p for p in sp._children() if _is_agent(p))
            _signal(sp.proc.pid, signal.SIGTERM)
    for sp in speakers:
        sp.stop(grace)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _is_agent(pid: int) -> bool:
    """Guard against pid reuse: only signal a process that is still a bgp.agent."""
    try:
        return b"bgp.agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class Supervisor:
    """All speakers of a testbed, by node name."""

    def __init__(self):
        self.speakers: dict[str, Speaker] = {}

    def add(self, speaker: Speaker) -> Speaker:
        if speaker.node in self.speakers:
            raise ValidationError("speaker already supervised", obj=f"Node {speaker.node}")
        self.speakers[speaker.node] = speaker
        return speaker

    def speaker(self, node: str) -> Speaker:
        return self.speakers[node]

    def start_all(self, timeout: float = 30.0) -> None:
        """Validate every config before anything starts, start all, wait until all ready."""
        validate_all([(sp, sp.config_text) for sp in self.speakers.values()])
        for sp in self.speakers.values():
            if sp.proc is None or sp.proc.poll() is not None:
                sp._spawn()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for sp in self.speakers.values():
            sp.wait_ready(max(0.0, deadline - time.monotonic()))

    def poll(self, now: float | None = None) -> list[str]:
        """Nodes whose speaker was restarted now."""
        now = time.monotonic() if now is None else now
        return [name for name, sp in self.speakers.items() if sp.poll(now)]

    def failed(self) -> dict[str, str]:
        return {n: sp.error or "" for n, sp in self.speakers.items() if sp.state == FAILED}

    def stop_all(self, grace: float = 5.0) -> None:
        _stop_many(list(self.speakers.values()), grace)

    def restart(self, changes: Mapping[str, tuple[str, Mapping[str, str]]],
                grace: float = 5.0) -> None:
        """New (already validated) config text and environment for some speakers: all of
        them are stopped together, then all started together. One by one, a 50-node switch
        from mesh to route reflectors took ~20 s, and the speakers still on the old peerings
        kept refusing the new ones' sessions (each refusal pushes ExaBGP's reconnect back)."""
        speakers = [self.speakers[n] for n in changes]
        _stop_many(speakers, grace)
        for sp in speakers:
            text, env = changes[sp.node]
            sp.config_text, sp.env, sp.restarts, sp.error = text, dict(env), [], None
            sp._spawn()

    def pids(self) -> list[int]:
        return sorted(pid for sp in self.speakers.values() for pid in sp.pids())
