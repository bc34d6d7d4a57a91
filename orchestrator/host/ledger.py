"""Ownership ledger: a write-ahead record of every kernel object and process a testbed makes.

Side effects: appends to `<state_dir>/ledger.jsonl` and writes `/run/calinet/<id>.json` (the
registry of live testbeds that `calinet clean` and read-only CLI commands consult).

An entry is written *before* the object is created, so a kill -9 at any point leaves a ledger
that names everything that may exist. Processes are recorded with their start time
(/proc/<pid>/stat field 22) so cleanup never signals a recycled pid that is not ours.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field

REGISTRY_DIR = "/run/calinet"


def proc_start_time(pid: int) -> str | None:
    """Kernel start time of pid (clock ticks since boot), or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data.rsplit(")", 1)[1].split()
    return rest[19]


@dataclass
class LedgerContents:
    testbed_id: str | None = None
    owner_pid: int | None = None
    owner_start: str | None = None
    netns: set = field(default_factory=set)
    links: set = field(default_factory=set)
    pids: dict = field(default_factory=dict)  # pid -> start time
    node_pids: dict = field(default_factory=dict)  # Mininet node shells: pid -> start time

    def owner_alive(self) -> bool:
        return (self.owner_pid is not None
                and proc_start_time(self.owner_pid) == self.owner_start)


class Ledger:
    """Append-only JSON-lines ledger of one state directory."""

    def __init__(self, state_dir: str):
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, "ledger.jsonl")
        self._lock = threading.Lock()

    def _append(self, entries: list[dict]) -> None:
        if not entries:
            return
        text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
        # No fsync: once write() returns the entry survives a kill -9 of this process (the
        # kernel has it); an OS crash takes the namespaces and processes with it anyway.
        with self._lock, open(self.path, "a") as f:
            f.write(text)

    def begin(self, testbed_id: str) -> None:
        """Start a new run: the previous run's contents must have been cleaned first."""
        pid = os.getpid()
        with self._lock, open(self.path, "w") as f:
            f.write(json.dumps({"run": testbed_id, "owner": pid,
                                "start": proc_start_time(pid)}) + "\n")
        os.makedirs(REGISTRY_DIR, exist_ok=True)
        with open(os.path.join(REGISTRY_DIR, f"{testbed_id}.json"), "w") as f:
            json.dump({"id": testbed_id, "state_dir": os.path.abspath(self.state_dir),
                       "owner": pid, "start": proc_start_time(pid)}, f)

    def netns(self, names) -> None:
        self._append([{"netns": n} for n in names])

    def links(self, names) -> None:
        self._append([{"link": n} for n in names])

    def pids(self, pids) -> None:
        self._append([{"pid": p, "start": proc_start_time(p)} for p in pids])

    def node_pids(self, pids) -> None:
        """Pids whose network namespace is a node's: everything in it is ours at cleanup."""
        self._append([{"pid": p, "start": proc_start_time(p), "node": True} for p in pids])

    def read(self) -> LedgerContents:
        out = LedgerContents()
        try:
            with open(self.path) as f:
                lines = f.readlines()
        except FileNotFoundError:
            return out
        for line in lines:
            try:
                e = json.loads(line)
            except ValueError:
                continue  # a torn last line after a crash mid-write
            if "run" in e:
                out.testbed_id, out.owner_pid, out.owner_start = e["run"], e["owner"], e["start"]
            elif "netns" in e:
                out.netns.add(e["netns"])
            elif "link" in e:
                out.links.add(e["link"])
            elif "pid" in e and e.get("start"):
                out.pids[int(e["pid"])] = e["start"]
                if e.get("node"):
                    out.node_pids[int(e["pid"])] = e["start"]
        return out

    def finish(self, testbed_id: str | None) -> None:
        """Everything recorded is gone: empty the ledger and drop the registry entry."""
        with self._lock:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        if testbed_id:
            try:
                os.remove(os.path.join(REGISTRY_DIR, f"{testbed_id}.json"))
            except FileNotFoundError:
                pass


def registered_testbeds() -> list[dict]:
    """Entries of /run/calinet: {id, state_dir, owner, start, alive}."""
    out = []
    try:
        names = sorted(os.listdir(REGISTRY_DIR))
    except FileNotFoundError:
        return out
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(REGISTRY_DIR, name)) as f:
                e = json.load(f)
        except (OSError, ValueError):
            continue
        e["alive"] = proc_start_time(int(e.get("owner", 0))) == e.get("start")
        out.append(e)
    return out
