"""`calinet up --detach` and `calinet down`: a cluster left running in a background process.

Side effects: `up --detach` starts `calinet up --serve` in a session of its own (its output in
<state>/detached.log) and waits until it wrote <state>/detached.json (its pid and start time);
that process owns the Testbed (registry, ledger) and stops it on SIGTERM. `down` signals it,
waits for it to exit, then cleans what the state dir's ledger and the testbed's name prefixes
identify (host/cleanup.py), as `kind delete cluster` does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from orchestrator.errors import CalinetError
from orchestrator.host.ledger import proc_start_time, registered_testbeds

PIDFILE = "detached.json"
LOGFILE = "detached.log"
STOP_GRACE = 90.0


def _owner(state_dir: str) -> dict | None:
    """The live detached owner of state_dir ({pid, start}), or None."""
    try:
        with open(os.path.join(state_dir, PIDFILE)) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    if proc_start_time(int(info.get("pid", 0))) == info.get("start"):
        return info
    return None


def _running_detached(state_dir: str | None) -> list[str]:
    dirs = [state_dir] if state_dir else sorted(
        {e["state_dir"] for e in registered_testbeds() if e.get("state_dir")})
    return [d for d in dirs if _owner(d)]


def detach(args, state_dir: str) -> int:
    """Start the serving process, wait until the cluster is up, print how to use and stop it."""
    if _running_detached(state_dir) or any(
            e["alive"] and e.get("state_dir") == state_dir for e in registered_testbeds()):
        raise CalinetError(f"a cluster is already running on {state_dir}; stop it with "
                           "`calinet down` (or use another --state-dir)")
    os.makedirs(state_dir, exist_ok=True)
    for name in (PIDFILE,):
        try:
            os.unlink(os.path.join(state_dir, name))
        except FileNotFoundError:
            pass
    argv = [sys.executable, "-m", "orchestrator.cli.main", "--state-dir", state_dir, "up",
            args.topology, "--serve", "--timeout", str(args.timeout)]
    argv += [a for f in args.filename for a in ("-f", os.path.abspath(f))]
    argv += ["--fresh"] if args.fresh else []
    argv += [] if args.dns else ["--no-dns"]
    argv += ["--no-bgp"] if args.no_bgp else []
    log_path = os.path.join(state_dir, LOGFILE)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (repo, os.environ.get("PYTHONPATH")) if p)}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    deadline = time.monotonic() + args.timeout + 180
    while _owner(state_dir) is None:
        if proc.poll() is not None:
            tail = _tail(log_path)
            raise CalinetError(f"the cluster did not come up (exit {proc.returncode}); "
                               f"log {log_path}:\n{tail}")
        if time.monotonic() > deadline:
            proc.terminate()
            raise CalinetError(f"the cluster was not up after {deadline:.0f} s; log {log_path}")
        time.sleep(0.2)
    print(f"cluster up in the background (pid {proc.pid}, state {state_dir}, log {log_path})")
    print("use it from any shell:  calinet get pods -A   calinet apply -f FILE   "
          "calinet exec POD -- COMMAND")
    print("stop it:                calinet down" + (
        f" --state-dir {state_dir}" if args.state_dir else ""))
    return 0


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def serve(tb, state_dir: str) -> None:
    """In the serving process, once tb is up: record our pid, wait for SIGTERM/SIGINT/SIGHUP.
    The caller stops tb afterwards (its finally)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    pid = os.getpid()
    tmp = os.path.join(state_dir, PIDFILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"pid": pid, "start": proc_start_time(pid), "testbed": tb.id}, f)
    os.replace(tmp, os.path.join(state_dir, PIDFILE))
    try:
        while not stop.wait(1.0):
            pass
    finally:
        try:
            os.unlink(os.path.join(state_dir, PIDFILE))
        except FileNotFoundError:
            pass


def down(state_dir: str | None) -> int:
    """Stop the detached cluster (of state_dir, else the only one) and clean up after it."""
    from orchestrator.host.cleanup import clean_state_dir
    running = _running_detached(state_dir)
    if not running:
        where = f" on {state_dir}" if state_dir else ""
        raise CalinetError(f"no detached cluster is running{where} "
                           "(start one with `calinet up TOPOLOGY --detach`)")
    if len(running) > 1:
        raise CalinetError(f"several detached clusters are running ({', '.join(running)}); "
                           "choose one with --state-dir")
    sd = running[0]
    info = _owner(sd)
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while proc_start_time(pid) == info["start"] and time.monotonic() < deadline:
        time.sleep(0.2)
    if proc_start_time(pid) == info["start"]:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    # The owner stopped its Testbed; this removes whatever a crash or the kill left.
    report = clean_state_dir(sd)
    print(f"cluster on {sd} stopped" + (f"; cleaned: {report.summary()}"
                                         if report.processes or report.netns or report.links
                                         else ""))
    if report.left:
        print(f"left behind: {', '.join(map(str, report.left))} (try `calinet clean`)",
              file=sys.stderr)
        return 1
    return 0
