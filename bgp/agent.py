"""The node's BGP agent: the ExaBGP API process (Calico's BIRD route logic + Felix routes).

Side effects: reads ExaBGP's JSON lines on stdin and writes text API commands on stdout;
polls <state>/announce.json (written atomically by the orchestrator); programs the node's
proto-12 routes through bgp.fib (it runs inside the node's netns); writes
<state>/status.json atomically and logs to <state>/agent.log. Exits when stdin closes.

Usage (from the `process` block of exabgp.conf, see bgp.supervisor.agent_argv):
    python3 -m bgp.agent --node NAME --node-ip IP --state DIR [--cluster-id X] [--router-id IP]

The neighbors (type, passive side, RR clients, graceful-restart time) are read from
<state>/exabgp.conf, the file the speaker runs, so there is one source of truth.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import re
import selectors
import sys
import time
from dataclasses import dataclass

from bgp import codec
from bgp import rib as ribmod
from bgp.dirwatch import DirWatch
from bgp.fib import Fib
from bgp.peering import GLOBAL, MESH, NODE_SPECIFIC, Neighbor
from orchestrator.errors import ApplyError, ValidationError

log = logging.getLogger("bgp.agent")

POLL = 0.05          # announce.json mtime poll period without inotify
POLL_WITH_INOTIFY = 1.0   # with it, polling is only the safety net
COALESCE = 0.005     # updates arriving within this window go to the kernel in one batch
EOR_SETTLE = 1.0     # a restarted peer's routes may follow its end-of-RIB by ~100 ms
RETRY = 1.0          # after a failed route batch
_TYPES = {"Mesh": MESH, "Global": GLOBAL, "Node": NODE_SPECIFIC}


@dataclass(frozen=True)
class SpeakerConfig:
    neighbors: tuple[Neighbor, ...] = ()
    restart_time: int = 120
    hold_time: int = 240
    local_as: int | None = None


def parse_config(text: str) -> SpeakerConfig:
    """Pure: neighbors and timers from an exabgp.conf rendered by bgp.config.render."""
    neighbors, restart, hold, local_as = [], 120, 240, None
    for m in re.finditer(r"^neighbor (\S+) \{\n(.*?)^\}", text, re.M | re.S):
        ip, body = m.group(1), m.group(2)
        desc = (re.search(r'description "([^"]*)"', body) or [None, ""])[1].split()
        asn = re.search(r"peer-as (\d+);", body)
        if asn is None:
            raise ValidationError(f"neighbor {ip} has no peer-as", field="exabgp.conf")
        rr = len(desc) >= 3 and desc[1] == "rr-client"
        kind = _TYPES.get(desc[0].split("_")[0], NODE_SPECIFIC) if desc else NODE_SPECIFIC
        rid = desc[desc.index("peer-id") + 1] if "peer-id" in desc[:-1] else None
        neighbors.append(Neighbor(ip, int(asn.group(1)), kind, rr_client=rr,
                                  passive="passive true;" in body,
                                  cluster_id=desc[2] if rr else None, router_id=rid))
        if (g := re.search(r"graceful-restart (\d+);", body)):
            restart = int(g.group(1))
        if (h := re.search(r"hold-time (\d+);", body)):
            hold = int(h.group(1))
        if (la := re.search(r"local-as (\d+);", body)):
            local_as = int(la.group(1))
    return SpeakerConfig(tuple(neighbors), restart, hold, local_as)


def parse_announce(doc) -> tuple[list[str], list[str], int | None]:
    """Pure: (blocks, borrowed IPs, generation) from announce.json, validated. (Its
    "unprogrammed" list is read by parse_unprogrammed.)"""
    if not isinstance(doc, dict):
        raise ValidationError("must be a JSON object", field="announce.json")
    try:
        blocks = [str(ipaddress.ip_network(b)) for b in doc.get("blocks") or []]
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"bad block: {exc}", field="announce.json blocks") from None
    try:
        borrowed = [str(ipaddress.ip_address(str(ip).split("/")[0]))
                    for ip in doc.get("borrowed") or []]
    except ValueError as exc:
        raise ValidationError(f"bad IP: {exc}", field="announce.json borrowed") from None
    return blocks, borrowed, doc.get("generation")


def parse_unprogrammed(doc, key: str = "unprogrammed") -> list[str]:
    """Pure: a CIDR list of announce.json: "unprogrammed" (pools whose routes another agent
    programs: VXLAN) or "services" (Service ranges advertised, never programmed)."""
    try:
        return [str(ipaddress.ip_network(c)) for c in (doc or {}).get(key) or []]
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValidationError(f"bad CIDR: {exc}", field=f"announce.json {key}") from None


def parse_ipip(doc) -> tuple[list[ribmod.IpipPool], str | None]:
    """Pure: (IPIP pools, the node's own subnet) of announce.json: "ipip" is a list of
    {"cidr", "mode": "Always" | "CrossSubnet"}, "subnet" the node's underlay subnet."""
    doc = doc or {}
    try:
        pools = [ribmod.IpipPool(str(ipaddress.IPv4Network(p["cidr"])), p.get("mode") or
                                 ribmod.ALWAYS) for p in doc.get("ipip") or []]
        subnet = doc.get("subnet")
        subnet = str(ipaddress.IPv4Network(subnet, strict=False)) if subnet else None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValidationError(f"bad IPIP pool or subnet: {exc}",
                              field="announce.json ipip") from None
    for p in pools:
        if p.mode not in (ribmod.ALWAYS, ribmod.CROSS_SUBNET):
            raise ValidationError(f"bad IPIP mode {p.mode!r} for {p.cidr}",
                                  field="announce.json ipip")
    return pools, subnet


def _info(state: str, reason: str, passive: bool) -> tuple[str, str]:
    """(BIRD state, BIRD info) as `birdc show protocols` / calicoctl print them."""
    if state == "up":
        return "up", "Established"
    if state == "connected":
        return "start", "OpenSent"
    idle = "Passive" if passive else "Active"
    if state == "down":
        if "(4,0)" in reason:
            return "start", f"{idle} BGP Error: Hold timer expired"
        if reason.startswith("notification"):
            return "start", f"{idle} BGP Error: {reason}"
        return "start", f"{idle} Socket: Connection closed"
    return "start", idle


class Agent:
    """The agent's state and decisions; I/O only through ``out`` (ExaBGP's stdin), ``fib``
    (.current() / .apply(routes)) and the status file. Times: ``now`` is monotonic."""

    def __init__(self, node: str, node_ip: str, state_dir: str, *, config: SpeakerConfig,
                 fib, out, cluster_id: str | None = None, router_id: str | None = None,
                 wall=time.time, node_ip6: str | None = None):
        self.node, self.node_ip, self.state_dir = node, node_ip, state_dir
        self.node_ip6 = node_ip6     # next hop of what we announce over IPv6 sessions
        self.config, self.fib, self.out, self.wall = config, fib, out, wall
        cid = cluster_id or next((nb.cluster_id for nb in config.neighbors if nb.cluster_id),
                                 None)
        self.rib = ribmod.RIB(router_id or node_ip, cid, config.local_as)
        self.neighbors = {nb.ip: nb for nb in config.neighbors}
        self.since = wall()
        self.peers = {ip: {"state": "start", "info": _info("", "", nb.passive)[1],
                           "since": self.since} for ip, nb in self.neighbors.items()}
        self.blocks: list[str] = []
        self.borrowed: list[str] = []
        self.unprogrammed: list[str] = []
        self.ipip: list[ribmod.IpipPool] = []    # pools routed through tunl0
        self.subnet: str | None = None           # our underlay subnet (IPIP CrossSubnet)
        self.services: list[str] = []   # service CIDRs advertised (Calico serviceClusterIPs)
        self.generation = None
        self.announced: list[str] = []
        self.reflected: dict = {}
        self.stale_until: dict[str, float] = {}   # peer -> when its stale routes go
        self.eor: set[str] = set()
        self.kept: dict[str, ribmod.Route] = {}   # kernel routes kept across our restart
        self.hold_until: float | None = None
        self.settling = False
        self.flush_at: float | None = None
        self.routes: list[ribmod.Route] = []
        self.error: str | None = None             # last route batch failure
        self.announce_error: str | None = None    # last unusable announce.json

    # -- inputs --------------------------------------------------------------------------

    def adopt_kernel_routes(self, now: float) -> None:
        """At start: keep the routes a previous agent programmed until the peers have told
        us everything again (graceful restart of this node: forwarding goes on)."""
        try:
            current = self.fib.current()
        except ApplyError as exc:
            log.error("cannot read the kernel's routes at start: %s", exc)
            current = []
        self.kept = {r.prefix: r for r in current if r.type == ribmod.UNICAST}
        if self.kept:
            self.hold_until = now + self.config.restart_time
        self._dirty(now)

    def feed(self, line: str, now: float) -> None:
        """One JSON line from ExaBGP."""
        try:
            events = codec.parse(line)
        except ValidationError as exc:
            log.warning("skipped: %s", exc)
            return
        for ev in events:
            self._event(ev, now)

    def _event(self, ev, now: float) -> None:
        if isinstance(ev, codec.PeerState):
            nb = self.neighbors.get(ev.peer)
            retain = ribmod.restart_expected(ev) and self.config.restart_time > 0
            self.rib.apply(ev, retain_stale=retain)
            if ev.state == "down":
                self.eor.discard(ev.peer)
                if ev.peer in self.rib.stale:
                    self.stale_until.setdefault(ev.peer, now + self.config.restart_time)
                else:
                    self.stale_until.pop(ev.peer, None)
            state, info = _info(ev.state, ev.reason, nb.passive if nb else False)
            old = self.peers.get(ev.peer, {})
            if (old.get("state"), old.get("info")) != (state, info):
                log.info("peer %s %s %s", ev.peer, ev.state, ev.reason)
                self.peers[ev.peer] = {"state": state, "info": info, "since": self.wall()}
                self._dirty(now)
        elif isinstance(ev, codec.EOR):
            self.eor.add(ev.peer)
            if ev.peer in self.rib.stale:
                self.stale_until[ev.peer] = min(self.stale_until.get(ev.peer, now + EOR_SETTLE),
                                                now + EOR_SETTLE)
            self._dirty(now)
        elif isinstance(ev, codec.RouteUpdate):
            self.rib.apply(ev)
            self._dirty(now)
        elif isinstance(ev, codec.Notification):
            log.warning("notification from %s: %s/%s %s", ev.peer, ev.code, ev.subcode, ev.data)

    def set_announce(self, doc, now: float) -> None:
        """A new announce.json: announce/withdraw the difference at once."""
        try:
            blocks, borrowed, generation = parse_announce(doc)
            unprogrammed = parse_unprogrammed(doc)
            services = parse_unprogrammed(doc, key="services")
            ipip, subnet = parse_ipip(doc)
        except ValidationError as exc:   # all or nothing: the previous document stays
            log.error("%s", exc)
            self.announce_error = str(exc)
            self._dirty(now)
            return
        self.unprogrammed, self.services, self.ipip, self.subnet = (unprogrammed, services,
                                                                    ipip, subnet)
        self.blocks, self.borrowed, self.generation = blocks, borrowed, generation
        self.announce_error = None
        want = sorted(set(ribmod.advertised(blocks, borrowed)) | set(self.services),
                      key=ribmod._sort_key)
        if self.node_ip6 is None and any(":" in p for p in want):
            log.error("IPv6 prefixes to announce but this node has no IPv6 address: %s",
                      ", ".join(p for p in want if ":" in p))
            want = [p for p in want if ":" not in p]
        cmds = [codec.withdraw(p) for p in self.announced if p not in want]
        cmds += [codec.announce(p, self.node_ip6 if ":" in p else self.node_ip)
                 for p in want if p not in self.announced]
        self.announced = want
        self._send(cmds)
        self._dirty(now, at_once=True)

    # -- timers and output ---------------------------------------------------------------

    def _dirty(self, now: float, at_once: bool = False) -> None:
        at = now if at_once else now + COALESCE
        self.flush_at = at if self.flush_at is None else min(self.flush_at, at)

    def next_deadline(self) -> float | None:
        times = [t for t in (self.flush_at, self.hold_until, *self.stale_until.values())
                 if t is not None]
        return min(times) if times else None

    def tick(self, now: float) -> None:
        """Expire timers and, when due, reflect + program routes + write status."""
        for peer, until in list(self.stale_until.items()):
            if now >= until:
                del self.stale_until[peer]
                self.rib.expire_stale(peer)
                self._dirty(now, at_once=True)
        if self.hold_until is not None:
            if not self.settling and self._all_resynced():
                # their routes can trail the end-of-RIB a little: one settle period more
                self.settling = True
                self.hold_until = min(self.hold_until, now + EOR_SETTLE)
            if now >= self.hold_until:
                self.hold_until, self.kept = None, {}
                self._dirty(now, at_once=True)
        self._maybe_flush(now)

    def _all_resynced(self) -> bool:
        return bool(self.neighbors) and all(ip in self.eor for ip in self.neighbors)

    def _maybe_flush(self, now: float) -> None:
        if self.flush_at is not None and now >= self.flush_at:
            self.flush_at = None
            self.flush(now)

    def desired(self) -> list[ribmod.Route]:
        routes = ribmod.desired_routes(self.rib, self.blocks, self.borrowed, self.node_ip,
                                       unprogrammed=self.unprogrammed + self.services,
                                       ipip=self.ipip, subnet=self.subnet,
                                       node_ip6=self.node_ip6)
        taken = {r.prefix for r in routes} | {ribmod.host_prefix(ip) for ip in self.borrowed}
        kept = [r for p, r in self.kept.items() if p not in taken]
        return sorted(routes + kept, key=lambda r: ribmod._sort_key(r.prefix))

    def flush(self, now: float) -> None:
        if self.rib.cluster_id is not None:
            new = ribmod.reflected(self.rib, list(self.neighbors.values()))
            self._send(ribmod.reflection_commands(self.reflected, new))
            self.reflected = new
        self.routes = self.desired()
        try:
            batch = self.fib.apply(self.routes)
            if batch:
                log.info("routes programmed:\n%s", batch.rstrip())
            self.error = None
        except ApplyError as exc:
            log.error("%s\nbatch:\n%s", exc, exc.rendered_input)
            self.error = str(exc)
            self._dirty(now + RETRY, at_once=True)
        self.write_status()

    def _send(self, cmds: list[str]) -> None:
        if cmds:
            self.out.write("".join(c + "\n" for c in cmds))
            self.out.flush()
            log.info("sent:\n%s", "\n".join(cmds))

    def status(self) -> dict:
        best = self.rib.best()
        routes = []
        for r in self.routes:
            if r.type == ribmod.BLACKHOLE:
                source = "local"
            elif r.prefix in best:
                source = best[r.prefix][0]
            else:
                source = "kernel (restart)"
            routes.append({"prefix": r.prefix, "type": r.type, "via": r.via, "source": source,
                           **({"dev": r.dev} if r.dev else {})})
        peers = [{"ip": ip, "type": self.neighbors[ip].type if ip in self.neighbors
                  else NODE_SPECIFIC, **self.peers[ip]}
                 for ip in sorted(self.peers, key=ribmod.ip_key)]
        return {"node": self.node, "node_ip": self.node_ip, "running": True,
                **({"node_ip6": self.node_ip6} if self.node_ip6 else {}),
                "since": self.since, "agent_pid": os.getpid(), "speaker_pid": os.getppid(),
                "peers": peers, "routes": routes, "announced": list(self.announced),
                "generation": self.generation,
                "error": "; ".join(e for e in (self.announce_error, self.error) if e) or None, "updated": self.wall()}

    def write_status(self, **overrides) -> None:
        path = os.path.join(self.state_dir, "status.json")
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({**self.status(), **overrides}, f, indent=1)
        os.replace(tmp, path)


class Watcher:
    """announce.json by (inode, mtime, size): an atomic rename changes the inode."""

    def __init__(self, path: str):
        self.path, self.key = path, None

    def poll(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == self.key:
            return None
        self.key = key
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError) as exc:
            log.error("unreadable %s: %s", self.path, exc)
            return None


def run(agent: Agent, stdin_fd: int, watcher: Watcher, clock=time.monotonic,
        dirwatch=None) -> None:
    """The loop: stdin lines, announce.json (on inotify events from ``dirwatch``, and polled
    as a fallback), timers; returns when stdin closes."""
    os.set_blocking(stdin_fd, False)
    sel = selectors.DefaultSelector()
    sel.register(stdin_fd, selectors.EVENT_READ, "stdin")
    if dirwatch is not None:
        sel.register(dirwatch.fileno(), selectors.EVENT_READ, "dir")
    period = POLL if dirwatch is None else POLL_WITH_INOTIFY
    buf, next_poll = b"", clock()
    agent.adopt_kernel_routes(clock())
    try:
        while True:
            now = clock()
            deadline = min(t for t in (next_poll, agent.next_deadline()) if t is not None)
            for key, _ in sel.select(max(0.0, deadline - now)):
                if key.data == "dir":
                    # our own status.json lands here too: only announce.json matters
                    if os.path.basename(watcher.path) in dirwatch.drain():
                        next_poll = clock()
                    continue
                chunk = _read_all(stdin_fd)
                if chunk is None:
                    return
                buf += chunk
                *lines, buf = buf.split(b"\n")
                now = clock()
                for line in lines:
                    if line.strip():
                        agent.feed(line.decode(errors="replace"), now)
            now = clock()
            if now >= next_poll:
                doc = watcher.poll()
                if doc is not None:
                    agent.set_announce(doc, now)
                next_poll = now + period
            agent.tick(now)
    finally:
        sel.close()


def _read_all(fd: int) -> bytes | None:
    """Everything readable now; None at end of file."""
    out = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return out
        if not chunk:
            return out or None
        out += chunk


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bgp.agent", description=__doc__.splitlines()[0])
    p.add_argument("--node", required=True)
    p.add_argument("--node-ip", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--cluster-id")
    p.add_argument("--router-id")
    p.add_argument("--node-ip6")
    args = p.parse_args(argv)
    logging.basicConfig(filename=os.path.join(args.state, "agent.log"), level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    with open(os.path.join(args.state, "exabgp.conf")) as f:
        config = parse_config(f.read())
    agent = Agent(args.node, args.node_ip, args.state, config=config, fib=Fib(),
                  out=sys.stdout, cluster_id=args.cluster_id, router_id=args.router_id,
                  node_ip6=args.node_ip6)
    log.info("agent of %s (%s) started, %d neighbors", args.node, args.node_ip,
             len(config.neighbors))
    try:
        dirwatch = DirWatch(args.state)
    except OSError as exc:
        log.warning("no inotify (%s): polling announce.json every %.0f ms", exc, POLL * 1000)
        dirwatch = None
    try:
        run(agent, sys.stdin.fileno(), Watcher(os.path.join(args.state, "announce.json")),
            dirwatch=dirwatch)
    except BrokenPipeError:
        log.warning("speaker closed our stdout")
    log.info("stdin closed: exiting")
    agent.write_status(running=False, updated=time.time())
    return 0


if __name__ == "__main__":
    sys.exit(main())
