"""A long-lived `iptables-restore --noflush` in one network namespace, fed a block per write.

Side effects: one iptables-restore process per session (its pid goes to ``on_spawn``, the
ledger), stopped by close(). Why: with the nf_tables backend every iptables-restore process
spends ~16 ms in close() of its nfnetlink socket, whatever it wrote: the kernel flushes the
nf_tables transaction-destroy work (an RCU grace period) on socket release
(nft_rcv_nl_event -> flush_work). That was most of the write of a new pod's rules. A process
that stays commits each `*table ... COMMIT` block as it reads it and never closes the socket:
a small write takes ~0.5 ms.

When is a block committed? iptables-restore reads stdin through stdio and handles each line,
COMMIT included (it waits for the kernel's acks), before it reads again. So once all we wrote
has left the pipe (FIONREAD on our end is 0) and the process is blocked in read(0, ...)
(/proc/<pid>/syscall), every block is committed. A block that fails makes it exit with
"line N failed" on stderr (N counted over the whole session; reported relative to the block),
the kernel keeping the previous rules (each COMMIT is atomic); the next write starts a new
process. Where /proc/<pid>/syscall cannot be read, or the machine's read syscall number is
unknown, or the process is never seen waiting for input, or it hangs, the session is
``disabled`` and write() forks a restore per write as before (a warning says so).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import select
import struct
import subprocess
import tempfile
import threading
import time

from orchestrator.errors import CommandError

log = logging.getLogger(__name__)
ARGV = ["iptables-restore", "--noflush", "-w"]
ARGV6 = ["ip6tables-restore", "--noflush", "-w"]
# read(2)'s number, as /proc/<pid>/syscall prints it first.
READ_SYSCALL = {"x86_64": "0", "aarch64": "63", "riscv64": "63", "i686": "3", "armv7l": "3"}
FIONREAD = 0x541B


class RestoreSession:
    def __init__(self, runner, *, pid: int | None = None, netns: str | None = None,
                 on_spawn=None, timeout: float = 30.0, argv=None):
        """``argv``: the restore command (ARGV; ARGV6 for an ip6tables session)."""
        self.runner, self.where = runner, ({"netns": netns} if netns else {"pid": pid})
        self.argv = list(argv or ARGV)
        self.on_spawn, self.timeout = on_spawn, timeout
        self.read_nr = READ_SYSCALL.get(os.uname().machine)
        self.proc: subprocess.Popen | None = None
        self._stderr = None
        self._lines = 0         # lines fed to the current process
        self._lock = threading.Lock()
        self.spawned = 0        # processes started (1 while nothing failed)
        self.disabled = False   # set when a session cannot work here: writes fork

    @property
    def available(self) -> bool:
        return (not self.disabled and self.read_nr is not None
                and os.access("/proc/self/syscall", os.R_OK))

    def write(self, text: str) -> None:
        """Commit ``text`` (iptables-restore input); CommandError when it is refused.
        Without a usable session (see ``disabled``) the text goes to a forked restore."""
        with self._lock:
            if self.available and (self.proc is None or self.proc.poll() is not None):
                self._start()
            if not self.available:
                self.runner.run(self.argv, **self.where, input=text)
                return
            deadline = time.monotonic() + self.timeout
            self._send(text.encode(), text, deadline)
            offset, self._lines = self._lines, self._lines + text.count("\n")
            self._wait(text, offset, deadline)

    def _start(self) -> None:
        self._close_locked()
        self._stderr = tempfile.TemporaryFile()   # never a full pipe blocking it
        try:
            self.proc = self.runner.spawn(self.argv, **self.where, stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=self._stderr)
        except OSError as exc:
            self._disable(f"cannot start iptables-restore: {exc}")
            return
        self.spawned += 1
        self._lines = 0
        if self.on_spawn is not None:
            self.on_spawn(self.proc.pid)
        os.set_blocking(self.proc.stdin.fileno(), False)
        # It must be seen waiting in read(0) before anything is written, or completion
        # could never be told (no ptrace access to /proc/<pid>/syscall, a libc that reads
        # stdin with another call): then every write forks, as without sessions.
        deadline = time.monotonic() + 2.0
        while not self._reading_stdin(self.proc.pid):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._disable("iptables-restore never seen waiting for input")
                return
            time.sleep(0.0005)

    def _disable(self, why: str) -> None:
        log.warning("restore session %s: %s; forking iptables-restore per write instead",
                    self.where, why)
        self.disabled = True
        self._close_locked()

    def _send(self, data: bytes, text: str, deadline: float) -> None:
        fd, view = self.proc.stdin.fileno(), memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                if self.proc.poll() is not None:
                    return          # it exited (a refused line): _wait reports it
                if time.monotonic() > deadline:
                    self._timed_out(text)
                select.select([], [fd], [], 0.05)
            except (BrokenPipeError, OSError):
                return

    def _wait(self, text: str, offset: int, deadline: float) -> None:
        proc, pause = self.proc, 0.0001
        fd = proc.stdin.fileno()
        while True:
            if proc.poll() is not None:
                self._failed(text, offset)
            if _unread(fd) == 0 and self._reading_stdin(proc.pid):
                if proc.poll() is None:
                    return
                self._failed(text, offset)
            if time.monotonic() > deadline:
                self._timed_out(text)
            time.sleep(pause)
            pause = min(pause * 2, 0.002)

    def _timed_out(self, text: str):
        # Hung, or completion cannot be seen here after all: fork per write from now on.
        self._disable(f"no answer within {self.timeout}s")
        raise CommandError(self.argv, -1, "", f"timed out after {self.timeout}s", stdin=text)

    def _reading_stdin(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            return False
        return len(fields) > 1 and fields[0] == self.read_nr and fields[1] == "0x0"

    def _failed(self, text: str, offset: int):
        self.proc.wait()
        rc = self.proc.returncode
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace")
        # Line numbers count from the process start: make them the block's own.
        err = re.sub(r"line (\d+)", lambda m: f"line {max(int(m.group(1)) - offset, 1)}", err)
        self._close_locked()
        raise CommandError(self.argv, rc or 1, "", err, stdin=text)

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                proc.stdin.close()      # EOF: it exits on its own
            except OSError:
                pass
            try:
                proc.wait(0 if self.disabled else 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def _unread(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, FIONREAD, b"\0\0\0\0"))[0]
