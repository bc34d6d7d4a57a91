"""Run Python code and create sockets inside a network namespace without forking.

Side effects: threads that call setns(2) (through ctypes: Python 3.11 has no os.setns) into
/var/run/netns/<name> or /proc/<pid>/ns/net. Only those dedicated threads ever change
namespace; the main thread and every pool thread stay where they are. A socket belongs to the
namespace it was created in for its whole life, so a socket made here can be used anywhere.
"""

from __future__ import annotations

import ctypes
import os
import queue
import socket
import threading
from concurrent.futures import Future

from orchestrator.errors import CalinetError, NotFound, SupervisorTimeout

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)


def netns_path(netns: str | None = None, pid: int | None = None) -> str:
    """The namespace file of a named netns or of a process (a Mininet host)."""
    if (netns is None) == (pid is None):
        raise ValueError("give exactly one of netns= or pid=")
    if netns is not None:
        if not netns or "/" in netns or netns in (".", ".."):
            raise NotFound(f"invalid netns name {netns!r}")
        return os.path.join(NETNS_DIR, netns)
    return f"/proc/{int(pid)}/ns/net"


def _enter(path: str) -> None:
    """setns() the calling thread into ``path``; must only run in a dedicated thread."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"network namespace {path} does not exist") from None
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise CalinetError(f"setns({path}) failed: {os.strerror(err)}")
    finally:
        os.close(fd)


def run_in(path: str, fn, *args, timeout: float = 10.0, **kwargs):
    """Call fn(*args, **kwargs) in a short-lived thread that first enters ``path``."""
    fut: Future = Future()

    def body():
        try:
            _enter(path)
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(exc)

    t = threading.Thread(target=body, name=f"netns:{path}", daemon=True)
    t.start()
    try:
        return fut.result(timeout=timeout)
    except TimeoutError:
        raise SupervisorTimeout(f"call inside {path} did not finish within {timeout}s") from None


def socket_in(netns: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM,
              proto: int = 0, *, pid: int | None = None) -> socket.socket:
    """A socket created inside a named netns (or, with netns=None and pid=, a process's)."""
    path = netns_path(netns, None) if netns is not None else netns_path(None, pid)
    return run_in(path, socket.socket, family, type, proto)


class NetnsExecutor:
    """A thread living in one network namespace that runs submitted callables there.

    Cheaper than socket_in when many sockets are needed in the same namespace: the thread
    enters once. Use as a context manager or call shutdown(); submit() returns a Future.
    """

    def __init__(self, netns: str | None = None, *, pid: int | None = None,
                 start_timeout: float = 5.0):
        self.path = netns_path(netns, pid)
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        started: Future = Future()
        self._thread = threading.Thread(target=self._loop, args=(started,),
                                        name=f"netns-exec:{self.path}", daemon=True)
        self._thread.start()
        try:
            started.result(timeout=start_timeout)
        except TimeoutError:
            raise SupervisorTimeout(f"executor for {self.path} did not start within "
                                    f"{start_timeout}s") from None

    def _loop(self, started: Future) -> None:
        try:
            _enter(self.path)
        except BaseException as exc:  # noqa: BLE001 - reported to the constructor
            started.set_exception(exc)
            return
        started.set_result(None)
        while True:
            item = self._q.get()
            if item is None:
                return
            fut, fn, args, kwargs = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)

    def submit(self, fn, *args, **kwargs) -> Future:
        if not self._thread.is_alive():
            raise CalinetError(f"executor for {self.path} is shut down")
        fut: Future = Future()
        self._q.put((fut, fn, args, kwargs))
        return fut

    def call(self, fn, *args, timeout: float = 10.0, **kwargs):
        """submit() and wait for the result, at most ``timeout`` seconds."""
        try:
            return self.submit(fn, *args, **kwargs).result(timeout=timeout)
        except TimeoutError:
            raise SupervisorTimeout(f"call inside {self.path} did not finish within "
                                    f"{timeout}s") from None

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM,
               proto: int = 0) -> socket.socket:
        return self.call(socket.socket, family, type, proto)

    def shutdown(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join(timeout)

    def __enter__(self) -> "NetnsExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
