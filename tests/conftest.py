"""Shared pytest setup: tests marked `root` (or living in integration/, e2e/, packets/) skip
with a clear reason unless run as root on a machine where network namespaces work."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

_ROOT_DIRS = ("integration", "e2e", "packets")

# Every test (and the testbeds and CLIs it starts, which inherit the environment) checks
# that nobody modifies an object the store shares between readers (Store.list(shared=True)).
os.environ.setdefault("CALINET_CHECK_SHARED", "1")


def _root_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables, Mininet): run `sudo make test`"
    for tool in ("ip", "nsenter", "mnexec"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` on PATH: run `sudo make setup`"
    probe = f"calinet-probe-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"`ip netns add` does not work here: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


_PROBLEM: list = []


def pytest_collection_modifyitems(config, items):
    # Browser tests live in integration/ but need no root (they skip without a browser).
    needs_root = [it for it in items
                  if it.get_closest_marker("root")
                  or (any(f"/tests/{d}/" in str(it.fspath) for d in _ROOT_DIRS)
                      and not it.get_closest_marker("browser"))]
    if not needs_root:
        return
    if not _PROBLEM:
        _PROBLEM.append(_root_problem())
    reason = _PROBLEM[0]
    if reason and os.environ.get("CALINET_REQUIRE_ROOT") == "1":
        # CI runs as root: a root tier that silently skipped would be a green run that
        # tested nothing of the dataplane.
        raise pytest.UsageError(f"CALINET_REQUIRE_ROOT=1 but root tests cannot run: {reason}")
    for it in needs_root:
        it.add_marker(pytest.mark.root)
        if reason:
            it.add_marker(pytest.mark.skip(reason=reason))
