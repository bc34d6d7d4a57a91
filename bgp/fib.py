"""Applier of a node's `proto bird` (12) routes: read what the kernel has, write the difference.

Side effects: runs `ip -j route show proto 12` and `ip -batch -` in the calling process's
network namespace (the agent lives inside its node's netns, so no nsenter). Every proto-12
route in the main table is ours: whatever is not desired is deleted. One read and at most
one batch per call, so a burst of BGP updates costs two forks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from bgp.rib import Route, parse_current, render_batch
from orchestrator.errors import ApplyError, CommandError
from orchestrator.host.naming import RTPROT_BIRD
from orchestrator.host.runner import DEFAULT, Runner


class Fib:
    """The node's proto-12 routes. ``runner`` runs `ip` here (tests pass a RecordingRunner)."""

    def __init__(self, runner: Runner = DEFAULT):
        self.runner = runner
        self.applied = 0      # batches written (for logs and benchmarks)

    def current(self) -> list[Route]:
        """Our routes as the kernel has them (all types: unicast and blackhole)."""
        try:
            out = self.runner.run(["ip", "-j", "route", "show", "table", "main", "proto",
                                   str(RTPROT_BIRD)]).stdout
        except CommandError as exc:
            raise ApplyError(f"reading proto {RTPROT_BIRD} routes: {exc}") from exc
        try:
            return parse_current(json.loads(out or "[]"))
        except (ValueError, TypeError) as exc:
            raise ApplyError(f"unreadable `ip -j route` output: {out[:200]!r}") from exc

    def apply(self, desired: Iterable[Route]) -> str:
        """Make the proto-12 routes exactly ``desired``; returns the batch written ("" when
        nothing changed). A failing batch raises ApplyError carrying it; `-force` lets the
        other lines apply, and the next call retries what is still missing."""
        text = render_batch(self.current(), desired)
        if not text:
            return ""
        try:
            self.runner.run(["ip", "-force", "-batch", "-"], input=text)
        except CommandError as exc:
            raise ApplyError(f"programming proto {RTPROT_BIRD} routes: {exc}", text) from exc
        self.applied += 1
        return text
