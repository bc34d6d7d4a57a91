"""The fabric's routing daemons: one BIRD 2 process per router, inside the router's netns.

Side effects: files under `<state>/fabric/<router>/` (bird.conf, bird.ctl control socket,
bird.log), one `bird -f` process per router started through the Runner (nsenter by the
router shell's pid) and stopped by its pid. Every config is rendered by topologies.bird and
parsed by BIRD itself (`bird -p`) before anything starts, so a bad one names its router and
starts nothing. Queries go through `birdc -s <socket>`: the control socket is a file, so
they need no namespace switch (`calinet routes tor-a`, `calinet fabric status`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import (
    CommandError,
    NotFound,
    SupervisorTimeout,
    Unavailable,
    ValidationError,
)
from orchestrator.host.runner import DEFAULT, Runner
from topologies import bird

BIRD, BIRDC = "bird", "birdc"
START_DEADLINE = 10.0
STOP_GRACE = 5.0
INSTALL_HINT = "install Debian's bird2 (`sudo make setup` does)"


@dataclass(frozen=True)
class Session:
    """One row of `birdc show protocols` for a BGP protocol."""
    router: str
    name: str          # BIRD protocol name (spine_1, node_a1)
    state: str         # up | start | down ...
    since: str
    info: str          # Established, Active, Connect, ... and any error text


def parse_protocols(router: str, text: str) -> list[Session]:
    """Pure: the BGP rows of `birdc show protocols` (BIRD 2 layout:
    Name Proto Table State Since Info; Since may be "2026-12-07 12:00:00" or "12:00:00")."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 5 or words[1] != "BGP":
            continue
        name, _proto, _table, state = words[:4]
        rest = words[4:]
        # Since is one word (time) or two (date time).
        n = 2 if len(rest) >= 2 and rest[0].count("-") == 2 and ":" in rest[1] else 1
        out.append(Session(router, name, state, " ".join(rest[:n]), " ".join(rest[n:])))
    return out


def check_available() -> None:
    for tool in (BIRD, BIRDC):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise Unavailable(f"`{tool}` is not installed: routed fabrics run BIRD 2 on their "
                              f"routers; {INSTALL_HINT}")


def _bin(tool: str) -> str:
    return shutil.which(tool) or f"/usr/sbin/{tool}"


def socket_path(state_dir: str, router: str) -> str:
    return os.path.join(state_dir, "fabric", router, "bird.ctl")


def router_report(state_dir: str, router: str, runner: Runner = DEFAULT) -> str | None:
    """`birdc show route` and `show protocols` of a running router (None when the state dir
    has no such router), for `calinet routes ROUTER`."""
    sock = socket_path(state_dir, router)
    if not os.path.isdir(os.path.dirname(sock)):
        return None
    parts = []
    for cmd in (["show", "route"], ["show", "protocols"]):
        res = runner.run([_bin(BIRDC), "-s", sock, *cmd], timeout=10, check=False)
        if res.returncode != 0:
            return (f"router {router}: BIRD is not running ({(res.stderr or res.stdout).strip()})")
        body = [ln for ln in res.stdout.splitlines() if not ln.startswith("BIRD ")]
        parts.append(f"$ birdc {' '.join(cmd)}\n" + "\n".join(body))
    return "\n\n".join(parts)


class FabricRouters:
    """BIRD on every router of ``cluster`` (a topologies.net.Cluster with a fabric)."""

    def __init__(self, spec, cluster, state_dir: str, runner: Runner = DEFAULT, *,
                 on_spawn=None):
        self.spec, self.cluster, self.runner = spec, cluster, runner
        self.dir = os.path.join(state_dir, "fabric")
        self.on_spawn = on_spawn
        self.procs: dict[str, subprocess.Popen] = {}
        self.texts = {r.name: bird.render(r, spec.fabric, spec) for r in spec.fabric.routers}

    def router_dir(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def socket(self, name: str) -> str:
        if name not in self.texts:
            raise NotFound(f"router {name!r} is not in the fabric (routers: "
                           f"{', '.join(self.texts) or 'none'})")
        return os.path.join(self.router_dir(name), "bird.ctl")

    def validate(self) -> None:
        """Write every config and let BIRD parse it (`bird -p`); the first it rejects raises
        ValidationError naming the router."""
        check_available()
        for name, text in self.texts.items():
            os.makedirs(self.router_dir(name), exist_ok=True)
            path = os.path.join(self.router_dir(name), "bird.conf")
            Path(path).write_text(text)
            try:
                self.runner.run([_bin(BIRD), "-p", "-c", path], timeout=10)
            except CommandError as exc:
                raise ValidationError(f"BIRD rejects the configuration: "
                                      f"{(exc.stderr or exc.stdout).strip()}",
                                      obj=f"router {name}", field="bird.conf") from None

    def start(self, timeout: float = START_DEADLINE) -> None:
        """Validate all, start all, wait until every daemon answers on its socket."""
        self.validate()
        try:
            for name in self.texts:
                self._spawn(name)
            deadline = time.monotonic() + timeout
            for name in self.texts:
                self._wait_socket(name, deadline)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str) -> None:
        d = self.router_dir(name)
        sock = self.socket(name)
        if os.path.exists(sock):
            os.unlink(sock)
        with open(os.path.join(d, "bird.log"), "ab") as logf:
            proc = self.runner.spawn(
                [_bin(BIRD), "-f", "-c", os.path.join(d, "bird.conf"), "-s", sock,
                 "-P", os.path.join(d, "bird.pid")],
                pid=self.cluster.router(name).pid, stdout=logf, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        if self.on_spawn:
            self.on_spawn(proc.pid)

    def _wait_socket(self, name: str, deadline: float) -> None:
        while True:
            proc = self.procs[name]
            if proc.poll() is not None:
                log = Path(self.router_dir(name), "bird.log").read_text(errors="replace")
                raise SupervisorTimeout(f"BIRD on router {name} exited with {proc.returncode}: "
                                        f"{log.strip().splitlines()[-1:] or ['(no output)']}")
            if os.path.exists(self.socket(name)):
                res = self.runner.run([_bin(BIRDC), "-s", self.socket(name), "show", "status"],
                                      timeout=5, check=False)
                if res.returncode == 0 and "Daemon is up" in res.stdout:
                    return
            if time.monotonic() >= deadline:
                raise SupervisorTimeout(f"BIRD on router {name} did not answer on "
                                        f"{self.socket(name)} in time")
            time.sleep(0.02)

    def birdc(self, name: str, *command: str, timeout: float = 10.0) -> str:
        """A `birdc` command on one router; its output without BIRD's banner line."""
        res = self.runner.run([_bin(BIRDC), "-s", self.socket(name), *command],
                              timeout=timeout, check=False)
        if res.returncode != 0:
            raise CommandError([BIRDC, *command], res.returncode, res.stdout, res.stderr)
        lines = res.stdout.splitlines()
        if lines and lines[0].startswith("BIRD "):
            lines = lines[1:]
        return "\n".join(lines) + ("\n" if lines else "")

    def sessions(self, name: str | None = None) -> list[Session]:
        out = []
        for router in [name] if name else list(self.texts):
            out += parse_protocols(router, self.birdc(router, "show", "protocols"))
        return out

    def fabric_sessions_down(self) -> list[str]:
        """Router-to-router sessions (IPv4 and, dual stack, IPv6) not Established (node
        sessions depend on the user's BGPPeers and are waited for by the node speakers)."""
        routers = {bird.protocol_name(r) for r in self.texts}
        if self.spec.fabric.ipv6:
            routers |= {bird.protocol_name6(r) for r in self.texts}
        return [f"{s.router}/{s.name} ({s.info or s.state})" for s in self.sessions()
                if s.name in routers and not s.info.startswith("Established")]

    def wait_fabric(self, timeout: float = 30.0) -> float:
        """Wait until every router-to-router session is Established; seconds waited."""
        t0 = time.monotonic()
        while True:
            down = self.fabric_sessions_down()
            if not down:
                return time.monotonic() - t0
            if time.monotonic() - t0 >= timeout:
                raise SupervisorTimeout(f"fabric BGP sessions not Established after "
                                        f"{timeout:.0f}s: {', '.join(down)}")
            time.sleep(0.05)

    def problems(self) -> list[str]:
        """Routers whose BIRD is no longer running (for wait_ready)."""
        return [f"router {n}: BIRD exited with {p.returncode} (see "
                f"{os.path.join(self.router_dir(n), 'bird.log')})"
                for n, p in self.procs.items() if p.poll() is not None]

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values() if p.poll() is None]

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM every daemon we started, then SIGKILL what is left after ``grace``."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.send_signal(signal.SIGCONT)   # a frozen one (fail-router) must run to exit
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()
