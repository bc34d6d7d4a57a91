"""What each experiment step does on a running Testbed, and what it measures.

Side effects: those of the step (applies, probes, ping/iperf3/http from inside pods, faults on
nodes and links, tc on a node's underlay interface, tcpdump captures). Each executor returns
the step's measurements as a JSON-ready dict (docs/EXPERIMENTS.md lists them per type).
The traffic steps record the IP family they used (`family`, 4 or 6; a probe matrix per
family), resolved by the schema, so IPv4 and IPv6 results of one run stay apart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import time

from orchestrator.errors import CalinetError
from orchestrator.experiment.schema import FAMILY_NAMES, PodRef

_PING_RTT = re.compile(r"rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")
_PING_TIME = re.compile(r"time=([\d.]+) ms")
_PING_TX = re.compile(r"(\d+) packets transmitted, (\d+) received")


class StepError(CalinetError):
    """A step could not do its job (a missing pod, a failed command): the step fails."""


class Context:
    """What the executors share: the testbed, the seeded RNG, output dir, notes, captures."""

    def __init__(self, tb, rng, out_dir: str, t0: float):
        self.tb, self.rng, self.out_dir, self.t0 = tb, rng, out_dir, t0
        self.notes: list[str] = []
        self.captures: list[tuple[subprocess.Popen, dict]] = []
        self.failed_nodes: dict[str, list[int]] = {}
        self.shaped: set[str] = set()
        self.cut_links: set[frozenset] = set()            # fabric cables we cut
        self.router_intfs_down: dict[str, list[str]] = {}  # failed router -> other ports
        self.frozen_routers: dict[str, int] = {}          # router -> its stopped BIRD pid

    def pods(self, ref: PodRef) -> list[str]:
        tb = self.tb
        if ref.key:
            if ref.key not in tb.pods():
                raise StepError(f"pod {ref.key} does not exist")
            return [ref.key]
        want = dict(ref.labels)
        keys = sorted(k for k in tb.pods(ref.namespace)
                      if all((tb.get("Pod", k)["metadata"].get("labels") or {}).get(a) == b
                             for a, b in want.items())
                      and (tb.get("Pod", k).get("status") or {}).get("podIP"))
        if not keys:
            raise StepError(f"no running pod matches {ref.describe()}")
        if ref.pick == "all":
            return keys
        if ref.pick == "random":
            return [self.rng.choice(keys)]
        return keys[:1]

    def pod(self, ref: PodRef) -> str:
        return self.pods(ref)[0]

    def target(self, key: str, p: dict) -> tuple[str, int]:
        """(address, family) of pod ``key`` for a traffic step: its address of the step's
        family. Without one (a caller building params by hand, as bench/ does): the pod's
        primary address, and the family it is of."""
        ip = self.tb.pod_ip(key, p.get("family"))
        return ip, 6 if ":" in ip else 4


# -- control -----------------------------------------------------------------------------

def apply(ctx: Context, p: dict) -> dict:
    lines = []
    for src in p["sources"]:
        lines += ctx.tb.apply(src)
    return {"applied": lines}


def delete(ctx: Context, p: dict) -> dict:
    lines = []
    for src in p["sources"]:
        if isinstance(src, dict) and "kind" in src and "apiVersion" not in src:
            key = f"{src['namespace']}/{src['name']}" if src.get("namespace") else src["name"]
            lines += ctx.tb.delete(src["kind"], key)
        else:
            lines += ctx.tb.delete(src)
    return {"deleted": lines}


def label(ctx: Context, p: dict) -> dict:
    key = p["name"] if "/" in p["name"] or not p.get("namespace") else \
        f"{p['namespace']}/{p['name']}"
    return {"result": ctx.tb.label(p["kind"], key, p["labels"])}


def wait(ctx: Context, p: dict) -> dict:
    t = time.monotonic()
    if p["for"] == "duration":
        time.sleep(p["seconds"])
    elif p["for"] == "ready":
        ctx.tb.wait_ready(timeout=p["timeout"])
    else:   # converged: routes everywhere and every node's policy rules written
        deadline = t + p["timeout"]
        while True:
            problems = ctx.tb._dataplane_problems()
            if not problems:
                break
            if time.monotonic() > deadline:
                raise StepError(f"not converged after {p['timeout']}s: {'; '.join(problems[:5])}")
            time.sleep(0.02)
    return {"what": p["for"], "seconds": round(time.monotonic() - t, 4)}


# -- traffic -----------------------------------------------------------------------------

def probe_matrix(ctx: Context, p: dict) -> dict:
    tb = ctx.tb
    if p["pods"]:
        pods = sorted({k for ref in p["pods"] for k in ctx.pods(ref)})
    else:
        # every running pod but the cluster add-ons' (kube-system: coredns)
        pods = sorted(k for k in tb.workload_pods()
                      if (tb.get("Pod", k).get("status") or {}).get("podIP"))
    matrices = []
    # Families innermost: a port's IPv4 and IPv6 matrices sit side by side in the report.
    for proto in p["protocols"]:
        for port in p["ports"]:
            for fam in p.get("families") or [tb.spec.families[0]]:
                t = time.monotonic()
                res = tb.matrix(port, proto, pods=pods, timeout=p["timeout"], family=fam)
                matrices.append({"port": port, "protocol": proto, "family": fam, "pods": pods,
                                 "allowed": [[None if s == d else res[(s, d)] for d in pods]
                                             for s in pods],
                                 "seconds": round(time.monotonic() - t, 4)})
    fams = list(dict.fromkeys(m["family"] for m in matrices))
    out = {"families": fams, **_pair_counts(matrices), "by_family": {
        FAMILY_NAMES[f]: _pair_counts([m for m in matrices if m["family"] == f]) for f in fams}}
    return {"matrices": matrices, **out}


def _pair_counts(matrices: list[dict]) -> dict:
    allowed = sum(v for m in matrices for row in m["allowed"] for v in row if v)
    total = sum(1 for m in matrices for row in m["allowed"] for v in row if v is not None)
    return {"allowed_pairs": allowed, "pairs": total, "all_allowed": allowed == total}


def ping(ctx: Context, p: dict) -> dict:
    src, dst = ctx.pod(p["from"]), ctx.pod(p["to"])
    ip, fam = ctx.target(dst, p)
    r = ctx.tb.exec(src, ["ping", "-n", f"-{fam}", "-c", str(p["count"]), "-i",
                          str(p["interval"]), "-W", "1", ip],
                    timeout=p["count"] * (p["interval"] + 1) + 5)
    sent, received = 0, 0
    if (m := _PING_TX.search(r.stdout)):
        sent, received = int(m.group(1)), int(m.group(2))
    samples = [float(x) for x in _PING_TIME.findall(r.stdout)]
    out = {"src": src, "dst": dst, "dst_ip": ip, "family": fam, "count": p["count"],
           "sent": sent, "received": received,
           "loss": round(1 - received / sent, 4) if sent else 1.0, "samples_ms": samples}
    if (m := _PING_RTT.search(r.stdout)):
        out["rtt_ms"] = dict(zip(("min", "avg", "max", "mdev"), map(float, m.groups())))
    else:
        out["rtt_ms"] = None
    return out


def iperf(ctx: Context, p: dict) -> dict:
    """iperf3 from one pod to another: a server started for the step in the destination pod's
    netns (so any pod works), the client in the source pod's; JSON output parsed."""
    tb = ctx.tb
    src, dst = ctx.pod(p["from"]), ctx.pod(p["to"])
    ip, fam = ctx.target(dst, p)
    server = tb.runner.spawn(["iperf3", "-s", "-1", "-p", str(p["port"])],
                             netns=tb.pod_netns(dst), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        tb.ledger.pids([server.pid])
        argv = ["iperf3", "-c", ip, "-p", str(p["port"]), "-J", "-t", str(p["duration"]),
                "-P", str(p["parallel"])]
        if p["protocol"] == "UDP":
            argv += ["-u", "-b", p["bitrate"]]
        deadline = time.monotonic() + 3.0
        while True:   # the server needs a moment to listen
            r = tb.exec(src, argv, timeout=p["duration"] + 15)
            try:
                data = json.loads(r.stdout)
            except ValueError:
                raise StepError(f"iperf3 failed: {(r.stderr or r.stdout).strip()[:300]}") \
                    from None
            refused = "Connection refused" in str(data.get("error", ""))
            if not refused or time.monotonic() > deadline or server.poll() is not None:
                break
            time.sleep(0.05)
        if "error" in data:
            raise StepError(f"iperf3: {data['error']}")
        end = data["end"]
        summary = end.get("sum_received") or end.get("sum")
        intervals = [{"t": round(iv["sum"]["end"], 3),
                      "gbps": round(iv["sum"]["bits_per_second"] / 1e9, 4)}
                     for iv in data.get("intervals", [])]
        out = {"src": src, "dst": dst, "dst_ip": ip, "family": fam,
               "protocol": p["protocol"], "duration": p["duration"],
               "parallel": p["parallel"], "gbps": round(summary["bits_per_second"] / 1e9, 4),
               "intervals": intervals}
        if "sum_sent" in end:
            out["retransmits"] = end["sum_sent"].get("retransmits", 0)
        if p["protocol"] == "UDP":
            out["lost_percent"] = end["sum"].get("lost_percent")
            out["jitter_ms"] = end["sum"].get("jitter_ms")
        return out
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(5)


def http(ctx: Context, p: dict) -> dict:
    """HTTP GETs from a pod (sockets made inside its netns), to the destination pod's port."""
    import http.client

    from orchestrator.host.netns import netns_path, run_in
    src, dst = ctx.pod(p["from"]), ctx.pod(p["to"])
    ip, fam = ctx.target(dst, p)

    def requests():
        codes, lat, errors = {}, [], []
        for _ in range(p["requests"]):
            t = time.monotonic()
            try:
                c = http.client.HTTPConnection(ip, p["port"], timeout=p["timeout"])
                c.request("GET", p["path"])
                resp = c.getresponse()
                resp.read()
                c.close()
                codes[str(resp.status)] = codes.get(str(resp.status), 0) + 1
                lat.append((time.monotonic() - t) * 1000)
            except OSError as exc:
                errors.append(str(exc))
        return codes, lat, errors

    codes, lat, errors = run_in(netns_path(netns=ctx.tb.pod_netns(src)), requests,
                                timeout=p["requests"] * (p["timeout"] + 1) + 5)
    lat.sort()
    ok = sum(n for c, n in codes.items() if c.startswith("2"))
    host = f"[{ip}]" if ":" in ip else ip     # an IPv6 literal in a URL is bracketed
    return {"src": src, "dst": dst, "family": fam,
            "url": f"http://{host}:{p['port']}{p['path']}",
            "requests": p["requests"], "ok": ok, "codes": codes, "errors": len(errors),
            "first_error": errors[0] if errors else None,
            "latency_ms": {"p50": round(statistics.median(lat), 3),
                           "p95": round(lat[int(0.95 * (len(lat) - 1))], 3),
                           "max": round(lat[-1], 3)} if lat else None}


# -- faults ------------------------------------------------------------------------------

def _speaker_pids(ctx: Context, node: str) -> list[int]:
    if ctx.tb.routing is None:
        return []
    return ctx.tb.routing.supervisor.speaker(node).pids()


def fail_node(ctx: Context, p: dict) -> dict:
    """The node goes dark: its underlay link goes down and its BGP speaker is frozen (SIGSTOP,
    a hung machine), so its peers' hold timers expire as they would for a dead node."""
    node = p["node"]
    pids = _speaker_pids(ctx, node)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
    ctx.failed_nodes[node] = pids
    ctx.tb.link_down(node)
    return {"node": node, "frozen_pids": len(pids)}


def restore_node(ctx: Context, p: dict) -> dict:
    node = p["node"]
    ctx.tb.link_up(node)
    for pid in ctx.failed_nodes.pop(node, []):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    return {"node": node}


def link_down(ctx: Context, p: dict) -> dict:
    ctx.tb.link_down(p["node"])
    return {"node": p["node"]}


def link_up(ctx: Context, p: dict) -> dict:
    ctx.tb.link_up(p["node"])
    return {"node": p["node"]}


def kill_speaker(ctx: Context, p: dict) -> dict:
    return {"node": p["node"], "killed_pid": ctx.tb.kill_speaker(p["node"])}


def netem_available(ctx: Context, node: str) -> bool:
    """Try a netem qdisc on the node's own loopback (inside its netns, removed at once)."""
    r = ctx.tb.node_exec(node, ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
                                "1ms"])
    if r.returncode == 0:
        ctx.tb.node_exec(node, ["tc", "qdisc", "del", "dev", "lo", "root"])
        return True
    return False


def _tc(ctx: Context, node: str, side: str, args: list[str]):
    """tc on one end of the node's underlay link: "node" = its eth0 (inside the node's netns,
    what the node sends), "switch" = the switch's port facing it (ours, in the root
    namespace, named after the testbed: what the node receives)."""
    if side == "node":
        return ctx.tb.node_exec(node, ["tc", *args[:3], "eth0", *args[3:]])
    port = ctx.tb.cluster.nodes[node].switch_port
    return ctx.tb.runner.run(["tc", *args[:3], port, *args[3:]], check=False)


def bandwidth(ctx: Context, p: dict) -> dict:
    """Shape both directions of a node's link: tbf for a rate, netem for delay/loss where the
    kernel has it (said in the results where it does not)."""
    node = p["node"]
    for side in ("node", "switch"):
        _tc(ctx, node, side, ["qdisc", "del", "dev", "root"])
    if p["clear"]:
        ctx.shaped.discard(node)
        return {"node": node, "cleared": True}
    out = {"node": node, "applied": []}
    wants_netem = "delay" in p or "loss" in p
    netem = wants_netem and netem_available(ctx, node)
    if wants_netem and not netem:
        note = (f"netem is not available in this kernel: delay/loss on {node} were not "
                "applied (the Vagrant VM has it)")
        ctx.notes.append(note)
        out["skipped"] = note
    if netem:
        args = ["qdisc", "add", "dev", "root", "handle", "1:", "netem"]
        for key in ("delay", "loss", "rate"):
            if key in p:
                args += [key, p[key]]
        what = "netem " + " ".join(args[7:])
    elif "rate" in p:
        args = ["qdisc", "add", "dev", "root", "tbf", "rate", p["rate"], "burst", "256kb",
                "latency", "50ms"]
        what = f"tbf rate {p['rate']}"
    else:
        return out
    ctx.shaped.add(node)   # before the calls: a half-applied shaping is still undone
    for side in ("node", "switch"):
        r = _tc(ctx, node, side, args)
        if r.returncode != 0:
            raise StepError(f"tc on {node} ({side} side): {r.stderr.strip()}")
    out["applied"].append(what)
    return out


def capture(ctx: Context, p: dict) -> dict:
    """tcpdump on each interface for ``seconds`` (in the background: the next steps run
    meanwhile); files under <out>/pcaps/."""
    tb = ctx.tb
    os.makedirs(os.path.join(ctx.out_dir, "pcaps"), exist_ok=True)
    files = []
    for owner, iface in p["interfaces"]:
        name = f"step-{owner.replace('/', '_')}-{iface}.pcap"
        path = os.path.join(ctx.out_dir, "pcaps", name)
        argv = ["tcpdump", "-i", iface, "-w", path, "-U", "-n"]
        if p["count"]:
            argv += ["-c", str(p["count"])]
        if p["filter"]:
            argv += str(p["filter"]).split()
        where = ({"netns": tb.pod_netns(owner)} if "/" in owner
                 else {"pid": tb.cluster.nodes[owner].pid})
        proc = tb.runner.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               **where)
        tb.ledger.pids([proc.pid])
        info = {"interface": f"{owner}:{iface}", "file": os.path.join("pcaps", name),
                "until": time.monotonic() + p["seconds"], "path": path}
        ctx.captures.append((proc, info))
        files.append(info["file"])
    return {"files": files, "seconds": p["seconds"]}


def finish_captures(ctx: Context, wait: bool = True) -> list[dict]:
    """Stop every capture (after its time, when ``wait``), count packets per file."""
    out = []
    for proc, info in ctx.captures:
        if wait:
            left = info["until"] - time.monotonic()
            if left > 0:
                try:
                    proc.wait(left)
                except subprocess.TimeoutExpired:
                    pass
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(3)
        packets = pcap_count(info["path"])
        out.append({"interface": info["interface"], "file": info["file"], "packets": packets})
    ctx.captures = []
    return out


def pcap_count(path: str) -> int:
    """Records in a pcap file (its 24-byte header, then a 16-byte header per packet)."""
    import struct
    try:
        with open(path, "rb") as f:
            head = f.read(24)
            if len(head) < 24:
                return 0
            order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
            n = 0
            while (rec := f.read(16)) and len(rec) == 16:
                f.seek(struct.unpack(order + "IIII", rec)[2], 1)
                n += 1
            return n
    except OSError:
        return 0


def undo_faults(ctx: Context) -> None:
    """At the end (pass or fail): frozen speakers resumed, shaped links cleared."""
    for node in list(ctx.failed_nodes):
        try:
            restore_node(ctx, {"node": node})
        except CalinetError:
            pass
    for node in list(ctx.shaped):
        for side in ("node", "switch"):
            _tc(ctx, node, side, ["qdisc", "del", "dev", "root"])
    ctx.shaped.clear()
    for router in list(ctx.frozen_routers):
        try:
            restore_router(ctx, {"router": router})
        except CalinetError:
            pass
    for pair in list(ctx.cut_links):
        a, b = sorted(pair)
        try:
            fabric_link_up(ctx, {"a": a, "b": b})
        except CalinetError:
            pass


# -- fabric faults -----------------------------------------------------------------------

_PING_SEQ = re.compile(r"icmp_seq=(\d+)")


def fabric_link_down(ctx: Context, p: dict) -> dict:
    ctx.tb.fabric_link_down(p["a"], p["b"])
    ctx.cut_links.add(frozenset((p["a"], p["b"])))
    return {"a": p["a"], "b": p["b"]}


def fabric_link_up(ctx: Context, p: dict) -> dict:
    ctx.tb.fabric_link_up(p["a"], p["b"])
    ctx.cut_links.discard(frozenset((p["a"], p["b"])))
    return {"a": p["a"], "b": p["b"]}


def _router_links(ctx: Context, router: str) -> list[tuple[str, str]]:
    fabric = ctx.tb.spec.fabric
    return [(router, ln.b if ln.a == router else ln.a) for ln in fabric.links
            if router in (ln.a, ln.b)]


def fail_router(ctx: Context, p: dict) -> dict:
    """The router dies: every one of its fabric cables goes down (its neighbours see carrier
    loss) and its BIRD is frozen, so nothing it held is announced any more."""
    router = p["router"]
    for a, b in _router_links(ctx, router):
        ctx.tb.fabric_link_down(a, b)
        ctx.cut_links.add(frozenset((a, b)))
    # Its other cables too: a ToR's rack port, the external host's link.
    spec = ctx.tb.spec
    others = [i.name for i in spec.fabric.router(router).interfaces
              if not any(i.peer == r for r in spec.fabric.router_names)]
    for intf in others:
        ctx.tb.router_exec(router, ["ip", "link", "set", "dev", intf, "down"])
    ctx.router_intfs_down[router] = others
    pid = ctx.tb.fabric.procs[router].pid
    os.kill(pid, signal.SIGSTOP)
    ctx.frozen_routers[router] = pid
    return {"router": router, "links_down": len(_router_links(ctx, router)) + len(others)}


def restore_router(ctx: Context, p: dict) -> dict:
    router = p["router"]
    pid = ctx.frozen_routers.pop(router, None)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    for a, b in _router_links(ctx, router):
        ctx.tb.fabric_link_up(a, b)
        ctx.cut_links.discard(frozenset((a, b)))
    for intf in ctx.router_intfs_down.pop(router, []):
        ctx.tb.router_exec(router, ["ip", "link", "set", "dev", intf, "up"])
    return {"router": router}


def _nexthops(ctx: Context, router: str, prefix: str) -> list[str]:
    out = ctx.tb.router_exec(router, ["ip", "route", "show", prefix]).stdout
    return sorted(w for ln in out.splitlines() for i, w in enumerate(ln.split())
                  if i > 0 and ln.split()[i - 1] == "via")


def _block_of(ctx: Context, ip: str, node: str) -> str | None:
    import ipaddress
    out = ctx.tb.node_exec(node, ["ip", "-o", "route", "show", "type", "blackhole"]).stdout
    for ln in out.splitlines():
        net = ipaddress.ip_network(ln.split()[1])
        if ipaddress.ip_address(ip) in net:
            return str(net)
    return None


def fabric_link_failure(ctx: Context, p: dict) -> dict:
    """A fabric cable cut under traffic: ping every ``interval`` from one pod to another,
    cut the a-b cable after ``before`` s, restore it ``after`` s later. Measures the loss
    window (the longest run of lost echoes, in seconds), and the reroute time: from the cut
    until router ``a`` no longer routes the destination's block over the cut cable."""
    import threading
    tb = ctx.tb
    src, dst = ctx.pod(p["from"]), ctx.pod(p["to"])
    ip = tb.pod_ip(dst)
    block = _block_of(ctx, ip, tb.pod_node(dst)) or f"{ip}/32"
    link = next(ln for ln in tb.spec.fabric.links if {ln.a, ln.b} == {p["a"], p["b"]})
    cut_hop = link.b_ip if link.a == p["a"] else link.a_ip
    total = p["before"] + p["after"] + 1.0
    count = int(total / p["interval"])
    got: dict = {}

    def pinger():
        got["r"] = tb.exec(src, ["ping", "-n", "-c", str(count), "-i", str(p["interval"]),
                                 "-W", "1", ip], timeout=total * 3 + 10)
    t = threading.Thread(target=pinger)
    t.start()
    time.sleep(p["before"])
    hops_before = _nexthops(ctx, p["a"], block)
    t_cut = time.monotonic()
    tb.fabric_link_down(p["a"], p["b"])
    ctx.cut_links.add(frozenset((p["a"], p["b"])))
    reroute = None
    while time.monotonic() - t_cut < p["after"]:
        if cut_hop not in _nexthops(ctx, p["a"], block):
            reroute = time.monotonic() - t_cut
            break
        time.sleep(0.005)
    time.sleep(max(0.0, p["after"] - (time.monotonic() - t_cut)))
    hops_during = _nexthops(ctx, p["a"], block)
    tb.fabric_link_up(p["a"], p["b"])
    ctx.cut_links.discard(frozenset((p["a"], p["b"])))
    t.join()
    out = got["r"].stdout
    seqs = sorted({int(s) for s in _PING_SEQ.findall(out)})
    sent = received = 0
    if (m := _PING_TX.search(out)):
        sent, received = int(m.group(1)), int(m.group(2))
    gaps = [b - a - 1 for a, b in zip(seqs, seqs[1:])]
    longest = max(gaps, default=0)
    return {"src": src, "dst": dst, "dst_ip": ip, "block": block, "cut": [p["a"], p["b"]],
            "nexthops_before": hops_before, "nexthops_during": hops_during,
            "reroute_s": round(reroute, 4) if reroute is not None else None,
            "sent": sent, "received": received, "lost": sent - received,
            "loss_window_s": round(longest * p["interval"], 4),
            "hold_time_s": tb.spec.fabric.hold_time}


def routes(ctx: Context, p: dict) -> dict:
    """A node's BGP routes now, counted by the node they point to (`via.<node>`)."""
    tb, node = ctx.tb, p["node"]
    if tb.routing is None:
        raise StepError("no BGP in this experiment (bgp: false)")
    st = tb.routing.status(node) or {}
    by_ip = {tb.node_ip(n): n for n in tb.nodes()}
    via: dict[str, int] = {n: 0 for n in tb.nodes() if n != node}
    prefixes = []
    for r in st.get("routes", []):
        if r.get("type") == "unicast":
            owner = by_ip.get(r.get("via"), r.get("via"))
            via[owner] = via.get(owner, 0) + 1
            prefixes.append({"prefix": r["prefix"], "via": owner})
    return {"node": node, "routes": len(prefixes), "via": via, "prefixes": prefixes}


def iperf_baseline(ctx: Context, p: dict) -> dict:
    """iperf3 over a bare veth pair between two fresh namespaces (no bridge, no routing, no
    iptables): the machine's ceiling for one flow, in the same run as the pod measurements."""
    import secrets
    tb = ctx.tb
    tag = secrets.token_hex(3)
    a, b = f"calinet-{tb.id}-vb{tag}a", f"calinet-{tb.id}-vb{tag}b"
    va, vb = f"cn{tb.id}vb{tag}"[:15], f"cn{tb.id}vc{tag}"[:15]
    tb.ledger.netns([a, b])
    run = tb.runner.run
    try:
        run(["ip", "netns", "add", a])
        run(["ip", "netns", "add", b])
        run(["ip", "-n", a, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b])
        run(["ip", "-n", a, "-batch", "-"], input=f"addr add 192.168.77.1/30 dev {va}\n"
            f"link set {va} up\nlink set lo up\n")
        run(["ip", "-n", b, "-batch", "-"], input=f"addr add 192.168.77.2/30 dev {vb}\n"
            f"link set {vb} up\nlink set lo up\n")
        server = tb.runner.spawn(["iperf3", "-s", "-1", "-p", "5201"], netns=b,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 3
            while True:
                r = run(["iperf3", "-c", "192.168.77.2", "-J", "-t", str(p["duration"]), "-P",
                         str(p["parallel"])], netns=a, check=False,
                        timeout=p["duration"] + 15)
                data = json.loads(r.stdout or "{}")
                if "Connection refused" not in str(data.get("error", "")) or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if "error" in data or "end" not in data:
                raise StepError(f"iperf3 baseline: {data.get('error') or r.stderr.strip()}")
            bps = data["end"]["sum_received"]["bits_per_second"]
            return {"what": "veth pair between two namespaces", "duration": p["duration"],
                    "parallel": p["parallel"], "gbps": round(bps / 1e9, 4),
                    "intervals": [{"t": round(iv["sum"]["end"], 3),
                                   "gbps": round(iv["sum"]["bits_per_second"] / 1e9, 4)}
                                  for iv in data.get("intervals", [])]}
        finally:
            if server.poll() is None:
                server.kill()
            server.wait(5)
    finally:
        for ns in (a, b):
            run(["ip", "netns", "del", ns], check=False)


EXECUTORS = {
    "apply": apply, "delete": delete, "label": label, "wait": wait,
    "probe-matrix": probe_matrix, "ping": ping, "iperf": iperf, "http": http,
    "fail-node": fail_node, "restore-node": restore_node, "link-down": link_down,
    "link-up": link_up, "kill-speaker": kill_speaker, "bandwidth": bandwidth,
    "capture": capture, "routes": routes, "iperf-baseline": iperf_baseline,
    "fabric-link-down": fabric_link_down, "fabric-link-up": fabric_link_up,
    "fail-router": fail_router, "restore-router": restore_router,
    "fabric-link-failure": fabric_link_failure,
}
