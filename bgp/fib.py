"""Applier of a node's `proto bird` (12) routes: read what the kernel has, write the difference.

Side effects: runs `ip -j route show table all proto 12` (both families in one fork; the main
table's routes are those naming no table) and `ip -batch -` in the calling process's
network namespace (the agent lives inside its node's netns, so no nsenter). Every proto-12
route in the main table is ours: whatever is not desired is deleted. One read and at most
one batch per call, so a burst of BGP updates costs two forks.

Next hops are resolved as BIRD's `gateway recursive` (Calico's bgp_template sets it): a BGP
next hop on one of the node's own subnets is used as it is; one beyond them (a node in another
routed rack, reached through the node-to-node mesh) is installed via the node's default
gateway, its ToR (per family: an IPv6 next hop via the IPv6 default gateway, on a
dual-stack fabric). The node's connected subnets and gateway of a family are read once, and
only once a batch has met such a next hop (the kernel refuses it: "Nexthop has invalid
gateway", in IPv6 "No route to host"): on an L2 underlay every next hop is on-link, and
nothing extra is ever read. A `dev tunl0 onlink` route (IPIP) keeps its next hop: that is
the outer destination, which the kernel routes itself.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import replace

from bgp.rib import UNICAST, Route, parse_current, render_batch
from orchestrator.errors import ApplyError, CommandError
from orchestrator.host.naming import RTPROT_BIRD
from orchestrator.host.runner import DEFAULT, Runner

# What the kernel answers a route whose next hop is on none of the node's links: IPv4 says
# "Nexthop has invalid gateway", IPv6 "No route to host".
REFUSED_NEXT_HOP = ("invalid gateway", "No route to host")


class Fib:
    """The node's proto-12 routes. ``runner`` runs `ip` here (tests pass a RecordingRunner)."""

    def __init__(self, runner: Runner = DEFAULT, *, recursive: bool = False):
        self.runner = runner
        self.applied = 0      # batches written (for logs and benchmarks)
        self.recursive = recursive   # resolve next hops (set once the kernel refused one)
        # family -> (connected nets, gateway)
        self._links: dict[int, tuple[list, str | None]] = {}

    def _link_facts(self, version: int = 4) -> tuple[list, str | None]:
        if version not in self._links:
            nets, gateway = [], None
            flag = ["-6"] if version == 6 else []
            try:
                conn = json.loads(self.runner.run(
                    ["ip", *flag, "-j", "route", "show", "table", "main", "proto",
                     "kernel"]).stdout or "[]")
                dflt = json.loads(self.runner.run(
                    ["ip", *flag, "-j", "route", "show", "table", "main", "default"]).stdout
                    or "[]")
            except (CommandError, ValueError):
                return [], None   # unresolved: next hops are written as they came
            for r in conn:
                try:
                    net = ipaddress.ip_network(r.get("dst", ""))
                except ValueError:
                    continue
                if net.version == version and not net.is_link_local:
                    nets.append(net)
            gateway = next((r["gateway"] for r in dflt if r.get("gateway")), None)
            self._links[version] = (nets, gateway)
        return self._links[version]

    def resolve(self, routes: list[Route]) -> list[Route]:
        """Recursive next hops: an off-subnet next hop becomes its family's default
        gateway."""
        if not self.recursive or not any(r.type == UNICAST and r.via and not r.dev
                                         for r in routes):
            return routes
        out = []
        for r in routes:
            if r.type == UNICAST and r.via and not r.dev:
                addr = ipaddress.ip_address(r.via)
                nets, gateway = self._link_facts(addr.version)
                if gateway and not addr.is_link_local and not any(addr in n for n in nets):
                    r = replace(r, via=gateway)
            out.append(r)
        return out

    def current(self) -> list[Route]:
        """Our routes as the kernel has them (all types: unicast and blackhole)."""
        try:
            out = self.runner.run(["ip", "-j", "route", "show", "table", "all", "proto",
                                   str(RTPROT_BIRD)]).stdout
        except CommandError as exc:
            raise ApplyError(f"reading proto {RTPROT_BIRD} routes: {exc}") from exc
        try:
            return parse_current([r for r in json.loads(out or "[]")
                                  if r.get("table", "main") == "main"])
        except (ValueError, TypeError) as exc:
            raise ApplyError(f"unreadable `ip -j route` output: {out[:200]!r}") from exc

    def apply(self, desired: Iterable[Route]) -> str:
        """Make the proto-12 routes exactly ``desired``; returns the batch written ("" when
        nothing changed). A failing batch raises ApplyError carrying it; `-force` lets the
        other lines apply, and the next call retries what is still missing."""
        desired = list(desired)
        text = render_batch(self.current(), self.resolve(desired))
        if not text:
            return ""
        try:
            self.runner.run(["ip", "-force", "-batch", "-"], input=text)
        except CommandError as exc:
            said = f"{exc.stderr}{exc.stdout}"
            if self.recursive or not any(m in said for m in REFUSED_NEXT_HOP):
                raise ApplyError(f"programming proto {RTPROT_BIRD} routes: {exc}",
                                 text) from exc
            # A next hop beyond our subnets (a meshed node in another routed rack): from now
            # on resolve as BIRD's `gateway recursive` does, and write the rest again.
            self.recursive = True
            return self.apply(desired)
        self.applied += 1
        return text
