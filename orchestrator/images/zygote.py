"""Fork server of the built-in container servers: one warm interpreter, one fork per container.

Run as `python3 -S -E zygote.py` in the root network namespace by orchestrator.node.containers
(stdlib only plus the sibling serve.py, pre-imported so a container costs a fork instead of
an interpreter start). Protocol, one JSON object per line:
  stdin  {"id": n, "netns": "/var/run/netns/x", "log": path, "argv": [...], "mode": "",
          "env": {...}}            ("netns": "" stays in the zygote's namespace)
  stdout {"id": n, "pid": p} | {"id": n, "error": "..."}, and later for every child
         {"exit": p, "status": rc}   (rc like Popen.returncode: -N when killed by signal N)
Each child is a container: its own session and process group, the pod's netns, stdout and
stderr appended to its log, /dev/null on stdin, then serve.main(argv). The zygote exits when
stdin closes (its runtime went away) and never signals its children: the runtime stops them
by process group. Touches: fork/setns/waitpid, the log files it is told to open.
"""

import ctypes
import gc
import json
import os
import selectors
import signal
import sys
import traceback

import serve  # the script's own directory is sys.path[0]

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
try:                        # shared by every SCTP-serving child instead of loaded by each
    serve.load_sctp_codec()
except ImportError:
    pass


def setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def child(req: dict, keep: list[int]) -> None:
    """Become the container; never returns."""
    rc = 1
    notify = None
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        # What a fresh `python3` has: SIGINT -> KeyboardInterrupt, SIGPIPE ignored.
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        for fd in keep:                 # the zygote's pipes and selector are not ours
            try:
                os.close(fd)
            except OSError:
                pass
        # The reply pipe, kept past the dup2 below: the server says on it when its sockets
        # listen, so the runtime knows the container is ready without polling the kernel.
        notify = os.dup(1)
        logfd = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(logfd, 1)
        os.dup2(logfd, 2)
        os.close(null)
        os.close(logfd)
        # sys.stdin/stdout/stderr are the zygote's unused wrappers of fds 0-2 (Zygote()),
        # now the container's: line-buffered, empty.
        if req.get("netns"):
            setns(req["netns"])
        os.environ.clear()      # already empty (Zygote()): only the container's own env
        os.environ.update(req.get("env") or {})
        sys.argv = ["serve"] + list(req["argv"])
        def listening() -> None:
            nonlocal notify
            if notify is not None:
                # One write under PIPE_BUF: atomic beside the zygote's own lines.
                try:
                    os.write(notify, (json.dumps({"listening": os.getpid()}) + "\n").encode())
                except OSError:
                    # EPIPE: the runtime went away before we listened. Nobody waits for
                    # the line, and the container outlives its runtime, as it would in CRI.
                    pass
                os.close(notify)
                notify = None

        rc = serve.main(list(req["argv"]), req.get("mode") or "", on_listening=listening)
    except SystemExit as exc:
        code = exc.code
        rc = code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException:       # noqa: BLE001 - the container's crash goes to its log
        try:
            traceback.print_exc()
        except BaseException:   # noqa: BLE001 - nothing left to report to
            pass
        rc = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(rc if isinstance(rc, int) and 0 <= rc < 256 else 1)


def status(wstatus: int) -> int:
    if os.WIFSIGNALED(wstatus):
        return -os.WTERMSIG(wstatus)
    return os.WEXITSTATUS(wstatus)


class Zygote:
    def __init__(self) -> None:
        self.out = 1
        self.buf = b""
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)   # a handler, so the wakeup fd fires
        signal.signal(signal.SIGINT, signal.SIG_IGN)     # stopped by stdin EOF only
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.sel = selectors.DefaultSelector()
        self.sel.register(0, selectors.EVENT_READ, "in")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        # What every child needs, made once here instead of in each: its stdio wrappers
        # (of fds 0-2, which the child points at /dev/null and its log; the zygote itself
        # writes with os.write and reads with os.read, never through them) and an empty
        # environment (the container's is set on it). Made in each child they were ~130
        # copy-on-write page faults, a third of a container's start.
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        sys.stdin = open(0, closefd=False)
        os.environ.clear()
        gc.freeze()     # keep the collector off the shared pages: children stay copy-on-write

    def emit(self, msg: dict) -> None:
        data = (json.dumps(msg) + "\n").encode()
        while data:
            data = data[os.write(self.out, data):]

    def spawn(self, req: dict) -> None:
        rid = req.get("id")
        try:
            pid = os.fork()
        except OSError as exc:
            self.emit({"id": rid, "error": f"fork: {exc}"})
            return
        if pid == 0:
            child(req, [self.wake_r, self.wake_w, self.sel.fileno()])
        self.emit({"id": rid, "pid": pid})

    def reap(self) -> None:
        while True:
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.emit({"exit": pid, "status": status(wstatus)})

    def lines(self, data: bytes) -> None:
        self.buf += data
        *complete, self.buf = self.buf.split(b"\n")
        for line in complete:
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except ValueError as exc:
                self.emit({"id": None, "error": f"bad request: {exc}"})
                continue
            if not isinstance(req, dict) or not isinstance(req.get("argv"), list) \
                    or not req.get("log"):
                rid = req.get("id") if isinstance(req, dict) else None
                self.emit({"id": rid, "error": "bad request: needs argv (a list) and log"})
                continue
            self.spawn(req)

    def run(self) -> int:
        while True:
            # The timeout is a backstop for a lost wakeup; SIGCHLD normally wakes us.
            for key, _ in self.sel.select(timeout=1.0):
                if key.data == "wake":
                    try:
                        while os.read(self.wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    data = os.read(0, 65536)
                    if not data:
                        self.reap()
                        return 0
                    self.lines(data)
            self.reap()


if __name__ == "__main__":
    sys.exit(Zygote().run())
