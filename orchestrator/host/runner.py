"""The one module that runs external commands.

Side effects: spawns processes (optionally inside a network namespace, by name or by the pid
of a Mininet node). Tests of pure callers substitute ``RecordingRunner``.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass, field
from typing import NamedTuple

from orchestrator.errors import CommandError

log = logging.getLogger(__name__)

NETNS_DIR = "/var/run/netns"


class Result(NamedTuple):
    """Outcome of a command; unpacks as (returncode, stdout, stderr)."""

    returncode: int
    stdout: str
    stderr: str


def in_netns(argv, *, netns: str | None = None, pid: int | None = None) -> list[str]:
    """Prefix argv so it runs in a named netns or in the network namespace of ``pid``.

    nsenter enters only the network namespace: cheaper than `ip netns exec` (which also
    remounts /sys) and it works for Mininet hosts, whose namespaces are unnamed.
    """
    argv = [str(a) for a in argv]
    if netns is not None:
        return ["nsenter", f"--net={NETNS_DIR}/{netns}", "--"] + argv
    if pid is not None:
        return ["nsenter", "-t", str(pid), "-n", "--"] + argv
    return argv


class Runner:
    """Runs commands for real."""

    def run(self, argv, *, netns: str | None = None, pid: int | None = None,
            input: str | None = None, timeout: float = 30.0, check: bool = True) -> Result:
        full = in_netns(argv, netns=netns, pid=pid)
        try:
            proc = subprocess.run(full, input=input, capture_output=True, text=True,
                                  timeout=timeout, env=_env())
        except subprocess.TimeoutExpired as exc:
            raise CommandError(full, -1, _s(exc.stdout), f"timed out after {timeout}s",
                               stdin=input) from None
        except FileNotFoundError as exc:
            raise CommandError(full, 127, "", str(exc), stdin=input) from None
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise CommandError(full, proc.returncode, proc.stdout, proc.stderr, stdin=input)
        return result

    def spawn(self, argv, *, netns: str | None = None, pid: int | None = None,
              stdout=None, stderr=None, stdin=subprocess.DEVNULL, env=None,
              new_session: bool = True) -> subprocess.Popen:
        """Start a long-running process (for supervisors only); caller tracks its pid."""
        full = in_netns(argv, netns=netns, pid=pid)
        return subprocess.Popen(full, stdout=stdout, stderr=stderr, stdin=stdin,
                                env=env or _env(), start_new_session=new_session)


def _s(v) -> str:
    if v is None:
        return ""
    return v.decode(errors="replace") if isinstance(v, bytes) else v


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    if "/usr/sbin" not in env["PATH"].split(":"):
        env["PATH"] += ":/usr/sbin:/sbin"
    return env


@dataclass
class RecordingRunner(Runner):
    """Test double: records argv/input and returns scripted results (by argv prefix)."""

    calls: list = field(default_factory=list)
    responses: dict = field(default_factory=dict)

    def run(self, argv, *, netns=None, pid=None, input=None, timeout=30.0, check=True) -> Result:
        argv = [str(a) for a in argv]
        self.calls.append({"argv": argv, "netns": netns, "pid": pid, "input": input})
        for prefix, result in self.responses.items():
            if tuple(argv[:len(prefix)]) == tuple(prefix):
                if check and result.returncode != 0:
                    raise CommandError(argv, result.returncode, result.stdout, result.stderr, input)
                return result
        return Result(0, "", "")

    def spawn(self, *a, **kw):  # pragma: no cover - supervisors are tested for real
        raise NotImplementedError("RecordingRunner does not spawn processes")


DEFAULT = Runner()
