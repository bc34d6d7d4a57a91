"""Runtime side of the zygote (zygote.py): start it, ask it for containers, track their exits.

Side effects: spawns `python3 -S -E zygote.py` through the Runner in the root namespace
(lazily, again after it died), writes requests to its stdin, and runs one daemon thread
reading its stdout. When the zygote is lost its children can no longer be reaped or
watched, so their process groups are SIGKILLed and they report exit -9 (the runtime then
restarts them per restartPolicy through a fresh zygote).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

from orchestrator.host.runner import DEFAULT, Runner
from orchestrator.images.programs import ZYGOTE

log = logging.getLogger(__name__)

REPLY_TIMEOUT = 10.0        # seconds a fork may take before the zygote counts as hung
ZYGOTE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


class ZygoteChild:
    """Popen-like handle of a container forked by the zygote (pid, poll, wait, returncode);
    the exit status arrives from the zygote's reader thread."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._done = threading.Event()
        # Set when the server said its sockets listen (the child writes that line itself).
        self.listening = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(f"zygote child {self.pid}", timeout)
        return self.returncode  # type: ignore[return-value]

    def _exited(self, status: int) -> None:
        if self.returncode is None:
            self.returncode = status
            self._done.set()

    def __repr__(self) -> str:
        return f"<ZygoteChild pid={self.pid} returncode={self.returncode}>"


class Ticket:
    """A fork request in flight."""

    def __init__(self, inst: _Instance, rid: int):
        self.inst = inst
        self.rid = rid
        self.done = threading.Event()
        self.reply: dict | None = None


class _Instance:
    """One running zygote process and what it owes us."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.children: dict[int, ZygoteChild] = {}
        self.pending: dict[int, Ticket] = {}
        # A child can say it listens before the zygote's line with its pid is read.
        self.listening_early: set[int] = set()
        self.alive = True


class ForkServer:
    def __init__(self, runner: Runner = DEFAULT, *, stderr_path: str | None = None,
                 on_spawn: Callable[[int], None] | None = None):
        self.runner = runner
        self.stderr_path = stderr_path      # the zygote's own stderr (its crashes)
        self.on_spawn = on_spawn
        self._lock = threading.Lock()       # one writer of requests, one zygote start
        self._state = threading.Lock()      # guards _Instance dicts between the two threads
        self._inst: _Instance | None = None
        self._next_id = 0

    @property
    def pid(self) -> int | None:
        inst = self._inst
        return inst.proc.pid if inst is not None and inst.alive else None

    def spawn(self, argv: list[str], *, netns_path: str, log: str, env: dict[str, str],
              mode: str = "", timeout: float = REPLY_TIMEOUT) -> ZygoteChild:
        """Fork a container running serve.main(argv, mode); raises OSError when the zygote
        cannot be started or refuses/fails the fork."""
        return self.result(self.submit(argv, netns_path=netns_path, log=log, env=env,
                                       mode=mode), timeout)

    def submit(self, argv: list[str], *, netns_path: str, log: str, env: dict[str, str],
               mode: str = "") -> Ticket:
        """Send a fork request without waiting for it (many in flight overlap the zygote's
        forks with the caller's own work); result() gives its child."""
        with self._lock:
            inst = self._ensure()
            self._next_id += 1
            ticket = Ticket(inst, self._next_id)
            with self._state:
                inst.pending[ticket.rid] = ticket
            line = json.dumps({"id": ticket.rid, "netns": netns_path, "log": log, "argv": argv,
                               "mode": mode, "env": env}) + "\n"
            try:
                inst.proc.stdin.write(line.encode())
                inst.proc.stdin.flush()
            except (OSError, ValueError) as exc:
                self._lost(inst, f"write: {exc}")
        return ticket

    def result(self, ticket: Ticket, timeout: float = REPLY_TIMEOUT) -> ZygoteChild:
        inst = ticket.inst
        if not ticket.done.wait(timeout):
            self._kill(inst)
            raise OSError(f"zygote (pid {inst.proc.pid}) did not answer within {timeout}s")
        reply = ticket.reply
        if reply is None or "pid" not in reply:
            raise OSError((reply or {}).get("error")
                          or f"zygote (pid {inst.proc.pid}) exited before answering")
        return reply["child"]

    def close(self, timeout: float = 5.0) -> None:
        """Let the zygote go (it exits on stdin EOF). Meant for when its containers are
        stopped: any still running are killed, since nothing could reap them any more."""
        with self._lock:
            inst, self._inst = self._inst, None
        if inst is None:
            return
        try:
            inst.proc.stdin.close()
        except OSError:
            pass
        try:
            inst.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill(inst)
            inst.proc.wait(timeout)

    # -- internals -----------------------------------------------------------------------

    def _ensure(self) -> _Instance:
        inst = self._inst
        if inst is not None and inst.alive:
            return inst
        err = open(self.stderr_path, "ab") if self.stderr_path else subprocess.DEVNULL
        try:
            proc = self.runner.spawn([sys.executable, "-S", "-E", ZYGOTE],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=err, env=dict(ZYGOTE_ENV), new_session=True)
        finally:
            if err is not subprocess.DEVNULL:
                err.close()
        if self.on_spawn is not None:
            self.on_spawn(proc.pid)
        inst = self._inst = _Instance(proc)
        threading.Thread(target=self._read, args=(inst,), name=f"zygote-{proc.pid}",
                         daemon=True).start()
        log.debug("zygote started pid %d", proc.pid)
        return inst

    def _read(self, inst: _Instance) -> None:
        try:
            for raw in inst.proc.stdout:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    log.warning("zygote %d said %r", inst.proc.pid, raw[:200])
                    continue
                if "exit" in msg:
                    with self._state:
                        child = inst.children.pop(msg["exit"], None)
                        inst.listening_early.discard(msg["exit"])
                    if child is not None:
                        child._exited(int(msg["status"]))
                elif "listening" in msg:
                    with self._state:
                        child = inst.children.get(msg["listening"])
                        if child is None:
                            inst.listening_early.add(msg["listening"])
                    if child is not None:
                        child.listening.set()
                elif "id" in msg:
                    with self._state:
                        slot = inst.pending.pop(msg["id"], None)
                        if slot is not None and "pid" in msg:
                            # Registered before any exit line of it can be read.
                            child = inst.children[msg["pid"]] = ZygoteChild(msg["pid"])
                            msg["child"] = child
                            if msg["pid"] in inst.listening_early:
                                inst.listening_early.discard(msg["pid"])
                                child.listening.set()
                    if slot is not None:
                        slot.reply = msg
                        slot.done.set()
        except (OSError, ValueError) as exc:
            log.warning("reading zygote %d: %s", inst.proc.pid, exc)
        self._lost(inst, "stdout closed")

    def _lost(self, inst: _Instance, why: str) -> None:
        """The zygote is gone: nobody can reap or report its children any more."""
        with self._state:
            if not inst.alive:
                return
            inst.alive = False
            children = list(inst.children.values())
            inst.children.clear()
            pending = list(inst.pending.values())
            inst.pending.clear()
        if children:
            log.warning("zygote %d lost (%s): killing its %d containers", inst.proc.pid, why,
                        len(children))
        for child in children:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            child._exited(-signal.SIGKILL)
        for ticket in pending:
            ticket.done.set()
        self._kill(inst)
        try:
            inst.proc.wait(5.0)     # our own child: reap it
        except subprocess.TimeoutExpired:
            log.warning("zygote %d survived SIGKILL for 5s", inst.proc.pid)

    @staticmethod
    def _kill(inst: _Instance) -> None:
        try:
            inst.proc.kill()
        except OSError:
            pass
