"""Blackhole routes for a node's affine IPAM blocks, as Calico's BIRD installs them.

Side effects: reads and writes routes in a node's namespace (`ip -batch`, one fork each way).
A node owns its whole block: addresses of the block that are not (yet) a local pod must not
be forwarded anywhere else, so Calico installs `blackhole <block> proto bird`. The /32 routes of
local pods are more specific and win. Only routes with our protocol tag are touched.
"""

from __future__ import annotations

import json

from orchestrator.errors import ApplyError, CommandError
from orchestrator.host.naming import RTPROT_BIRD


def render(current: set[str], desired: set[str]) -> str:
    """Pure: the `ip -batch` text that turns the current blackholes into the desired ones."""
    lines = [f"route replace blackhole {c} proto {RTPROT_BIRD}" for c in sorted(desired - current)]
    lines += [f"route del blackhole {c} proto {RTPROT_BIRD}" for c in sorted(current - desired)]
    return "".join(line + "\n" for line in lines)


def current(runner, node_pid: int) -> set[str]:
    # `table all`: both families in one fork (the main table's routes name no table).
    out = runner.run(["ip", "-j", "route", "show", "table", "all", "type", "blackhole", "proto",
                      str(RTPROT_BIRD)], pid=node_pid).stdout
    return {r["dst"] for r in json.loads(out or "[]") if r.get("table", "main") == "main"}


def sync(runner, node_pid: int, blocks, known=None) -> bool:
    """Make the node's blackholes exactly `blocks`; returns True if anything changed.
    ``known``: the blackholes this caller last made, which then are not read back (one fork
    instead of two per change; the first sync of a node, with None, reads them)."""
    text = render(current(runner, node_pid) if known is None else set(known), set(blocks))
    if not text:
        return False
    try:
        runner.run(["ip", "-batch", "-"], pid=node_pid, input=text)
    except CommandError as exc:
        raise ApplyError(f"blackhole routes on node pid {node_pid}: {exc}", text) from exc
    return True
