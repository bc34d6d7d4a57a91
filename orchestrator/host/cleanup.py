"""Remove what a testbed created, found by ownership only, also after a kill -9.

Side effects: signals processes, deletes network namespaces and root-namespace links.

What counts as ours: pids in the ledger whose start time still matches; processes whose network
namespace is one of ours (a pod netns, or the unnamed netns of a recorded Mininet node shell);
netns named `calinet-<id>-*`; links named `cn<id>s*` (our bridges and their ports). Nothing is
matched by a broad pattern: no pkill -f, no "delete every bridge" (see DESIGN.md, Safety).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field

from orchestrator.host import naming
from orchestrator.host.ledger import Ledger, proc_start_time, registered_testbeds
from orchestrator.host.runner import DEFAULT, NETNS_DIR, Runner

log = logging.getLogger(__name__)


@dataclass
class CleanReport:
    testbed_id: str | None
    processes: list = field(default_factory=list)
    netns: list = field(default_factory=list)
    links: list = field(default_factory=list)
    left: list = field(default_factory=list)

    def summary(self) -> str:
        text = (f"testbed {self.testbed_id}: stopped {len(self.processes)} process(es), "
                f"removed {len(self.netns)} namespace(s), {len(self.links)} link(s)")
        if self.left:
            text += f"; could not remove: {', '.join(map(str, self.left))}"
        return text


def _netns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _pids_in_netns(inodes: set[int]) -> list[int]:
    found = []
    if not inodes:
        return found
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                found.append(int(entry))
        except OSError:
            continue
    return found


def stop_pids(pids: dict[int, str], grace: float = 2.0) -> list[int]:
    """terminate -> wait -> kill, only pids whose start time is the recorded one."""
    live = {p: s for p, s in pids.items() if s and proc_start_time(p) == s}
    for p in live:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(proc_start_time(p) == s for p, s in live.items()):
        _reap()
        time.sleep(0.02)
    for p, s in live.items():
        if proc_start_time(p) == s:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    _reap()
    return sorted(live)


def _reap() -> None:
    # Our own children become zombies until reaped; a zombie still has a /proc entry.
    try:
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
    except ChildProcessError:
        pass


def owned_netns(testbed_id: str) -> list[str]:
    prefix = f"{naming.NETNS_PREFIX}{testbed_id}-"
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def owned_links(testbed_id: str, runner: Runner = DEFAULT) -> list[str]:
    prefix = naming.switch_name(testbed_id, 0)[:-1]  # "cn<id>s"
    res = runner.run(["ip", "-o", "link", "show"], check=False)
    names = []
    for line in res.stdout.splitlines():
        parts = line.split(": ")
        if len(parts) > 1:
            name = parts[1].split("@")[0]
            if name.startswith(prefix):
                names.append(name)
    return sorted(names)


def clean_state_dir(state_dir: str, runner: Runner = DEFAULT) -> CleanReport:
    """Clean the run recorded in state_dir's ledger (the store and IPAM state are kept)."""
    ledger = Ledger(state_dir)
    contents = ledger.read()
    tid = contents.testbed_id
    report = CleanReport(tid)
    if tid is None:
        return report
    netns = sorted(set(contents.netns) | set(owned_netns(tid)))
    inodes = {i for i in (_netns_inode(f"{NETNS_DIR}/{n}") for n in netns) if i}
    # Mininet node shells hold unnamed namespaces: anything living in them is ours too.
    # Only node shells count (not every recorded pid: the zygote lives in our own netns).
    for pid, start in contents.node_pids.items():
        if proc_start_time(pid) == start:
            ino = _netns_inode(f"/proc/{pid}/ns/net")
            if ino:
                inodes.add(ino)
    # Never sweep the namespace calinet itself runs in (the machine's own processes live
    # there); if it cannot be identified, sweep nothing by namespace at all.
    own = _netns_inode("/proc/self/ns/net")
    if own is None:
        inodes = set()
    inodes.discard(own)
    victims = dict(contents.pids)
    for p in _pids_in_netns(inodes):
        victims.setdefault(p, proc_start_time(p))
    report.processes = stop_pids(victims)
    for n in netns:
        r = runner.run(["ip", "netns", "delete", n], check=False)
        if r.returncode == 0:
            report.netns.append(n)
    links = sorted(set(contents.links) | set(owned_links(tid, runner)))
    for name in links:
        # Deleting a bridge's port first is not needed: deleting one end of a veth removes both.
        r = runner.run(["ip", "link", "delete", name], check=False)
        if r.returncode == 0:
            report.links.append(name)
    # The kernel removes a dead node's namespace (and with it our bridge ports) a moment after
    # its last process exits: give it a few seconds before calling anything a leftover.
    deadline = time.monotonic() + 5.0
    while True:
        left = owned_netns(tid) + owned_links(tid, runner) + [
            p for p, st in victims.items() if st and proc_start_time(p) == st]
        if not left or time.monotonic() > deadline:
            break
        for name in owned_links(tid, runner):
            runner.run(["ip", "link", "delete", name], check=False)
        time.sleep(0.05)
    if left:
        # Keep the ledger: a later `calinet clean` must still find what could not go now.
        log.warning("testbed %s: could not remove %s", tid, ", ".join(map(str, left)))
        report.left = left
        return report
    ledger.finish(tid)
    return report


def clean_all(runner: Runner = DEFAULT, include_live: bool = False) -> list[CleanReport]:
    """`calinet clean`: every registered testbed whose owner process is gone (or all)."""
    reports = []
    for entry in registered_testbeds():
        if entry["alive"] and not include_live:
            continue
        state_dir = entry.get("state_dir")
        if state_dir and os.path.isdir(state_dir):
            reports.append(clean_state_dir(state_dir, runner))
        else:
            # State dir gone: still remove what our names identify.
            tid = entry["id"]
            rep = CleanReport(tid)
            for n in owned_netns(tid):
                runner.run(["ip", "netns", "delete", n], check=False)
                rep.netns.append(n)
            for name in owned_links(tid, runner):
                runner.run(["ip", "link", "delete", name], check=False)
                rep.links.append(name)
            Ledger("/nonexistent").finish(tid)
            reports.append(rep)
    return reports
