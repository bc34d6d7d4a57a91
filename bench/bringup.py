"""Bring-up benchmark: calinet vs plain Mininet + `ip netns add`, side by side in one run.

Side effects: real Mininet clusters and namespaces (root), all removed before exit.

For each size (3 nodes / 30 pods, 50 nodes / 500 pods) it measures
  baseline: Mininet with N hosts on a Linux bridge, plus `ip netns add` of P namespaces
  calinet:  Testbed up + a Deployment of P agnhost pods until every pod is Running with its IP
            (Testbed's defaults, cluster DNS included; --no-dns for the add-on off)
and prints the ratio calinet / baseline, pods-ready time, and memory per node and per pod.
Then the bring-up cost of cluster DNS: the same 3-node / 30-pod bring-up with dns=True and
dns=False, alternated (--dns-runs each), medians compared (extra seconds and ratio).
Usage: sudo .venv/bin/python bench/bringup.py [--sizes 3x30,50x500] [--no-dns]
       [--dns-runs 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEPLOY, pss_kib, write_json  # noqa: E402
from mininet.log import setLogLevel  # noqa: E402
from mininet.net import Mininet  # noqa: E402
from mininet.nodelib import LinuxBridge  # noqa: E402
from mininet.topo import Topo  # noqa: E402

from orchestrator.testbed import Testbed  # noqa: E402


class FlatTopo(Topo):
    def build(self, n: int, switch: str):
        s = self.addSwitch(switch)
        for i in range(n):
            self.addLink(self.addHost(f"h{i + 1}", ip=f"172.30.{i // 250}.{i % 250 + 1}/16"), s)


def same_work_script(nodes: int, pods: int) -> float:
    """The same kernel objects and processes made the way a shell script would: one command
    per step (netns, veth into it, address, links up, two routes, one process per pod)."""
    sw = f"cnb{secrets.token_hex(1)}s0"
    tag = secrets.token_hex(3)
    names = [f"calinet-bench-{tag}-{i}" for i in range(pods)]
    procs = []
    t0 = time.monotonic()
    net = Mininet(topo=FlatTopo(nodes, sw), switch=LinuxBridge, controller=None,
                  autoSetMacs=False)
    net.start()
    hosts = net.hosts
    try:
        for i, n in enumerate(names):
            host = hosts[i % len(hosts)]
            veth = f"cb{tag[:4]}{i}"
            ip = f"10.99.{i // 250}.{i % 250 + 1}"
            for argv in (["ip", "netns", "add", n],
                         ["ip", "link", "add", veth, "netns", str(host.pid), "type", "veth",
                          "peer", "name", "eth0", "netns", n],
                         ["ip", "-n", n, "addr", "add", f"{ip}/32", "dev", "eth0"],
                         ["ip", "-n", n, "link", "set", "eth0", "up"],
                         ["nsenter", "-t", str(host.pid), "-n", "ip", "link", "set", veth, "up"],
                         ["ip", "-n", n, "route", "add", "169.254.1.1", "dev", "eth0",
                          "scope", "link"],
                         ["nsenter", "-t", str(host.pid), "-n", "ip", "route", "add",
                          f"{ip}/32", "dev", veth]):
                subprocess.run(argv, check=True, capture_output=True)
            procs.append(subprocess.Popen(["ip", "netns", "exec", n, "sleep", "600"]))
        elapsed = time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for n in names:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        net.stop()
        subprocess.run(["ip", "link", "del", sw], capture_output=True)
    return elapsed


def baseline(nodes: int, pods: int) -> float:
    sw = f"cnb{secrets.token_hex(1)}s0"
    names = [f"calinet-bench-{secrets.token_hex(3)}-{i}" for i in range(pods)]
    t0 = time.monotonic()
    net = Mininet(topo=FlatTopo(nodes, sw), switch=LinuxBridge, controller=None,
                  autoSetMacs=False)
    net.start()
    for n in names:
        subprocess.run(["ip", "netns", "add", n], check=True)
    elapsed = time.monotonic() - t0
    for n in names:
        subprocess.run(["ip", "netns", "del", n], check=False)
    net.stop()
    subprocess.run(["ip", "link", "del", sw], capture_output=True)
    return elapsed


def calinet(nodes: int, pods: int, dns: bool = True) -> dict:
    topo = {"name": f"bench-{nodes}", "nodes": [
        {"name": f"node-{i + 1}", "capacity": {"pods": 110, "cpu": "64", "memory": "64Gi"}}
        for i in range(nodes)]}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(topo, f)
    t0 = time.monotonic()
    # Pods only (bench/bgp_convergence.py times BGP); cluster DNS as asked (the default is
    # on: its coredns pod is one more pod to be Ready).
    tb = Testbed(f.name, bgp=False, dns=dns)
    try:
        tb.start()
        t_nodes = time.monotonic() - t0
        t1 = time.monotonic()
        tb.apply(DEPLOY % pods)
        tb.wait_ready(timeout=600)
        t_pods = time.monotonic() - t1
        total = time.monotonic() - t0
        node_pids = tb.cluster.pids()
        pod_pids = tb.runtime.pids()
        mem_node = sum(pss_kib(p) for p in node_pids) / max(1, nodes)
        zygote = tb.runtime.forkserver.pid if tb.runtime.forkserver else None
        mem_pod = (sum(pss_kib(p) for p in pod_pids) + (pss_kib(zygote) if zygote else 0)) / max(1, pods)
    finally:
        tb.stop()
        os.unlink(f.name)
    return {"dns": dns, "total_s": total, "nodes_s": t_nodes, "pods_ready_s": t_pods,
            "pss_per_node_kib": mem_node, "pss_per_pod_kib": mem_pod}


def dns_cost(runs: int, nodes: int = 3, pods: int = 30) -> dict:
    """The same bring-up with cluster DNS on and off, alternated (on first, then off...):
    what the add-on (its coredns pod, the kube-dns Service, each pod's resolv.conf) adds."""
    on, off = [], []
    for _ in range(runs):
        on.append(calinet(nodes, pods, dns=True)["total_s"])
        off.append(calinet(nodes, pods, dns=False)["total_s"])
    med_on, med_off = statistics.median(on), statistics.median(off)
    return {"kind": "dns", "nodes": nodes, "pods": pods, "runs": runs,
            "dns_on_s": on, "dns_off_s": off, "dns_on_median_s": med_on,
            "dns_off_median_s": med_off, "extra_s": med_on - med_off,
            "ratio": med_on / med_off,
            "pair_ratios": [a / b for a, b in zip(on, off)]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="3x30,50x500")
    ap.add_argument("--no-dns", action="store_true",
                    help="bring-up rows without cluster DNS (the default has it on)")
    ap.add_argument("--dns-runs", type=int, default=5,
                    help="runs each of dns on / off at 3 nodes / 30 pods (0: skip)")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/bringup.py needs root (sudo make bench)")
        return 2
    setLogLevel("warning")
    rows = []
    dns = not args.no_dns
    for size in [s for s in args.sizes.split(",") if s]:
        nodes, pods = map(int, size.split("x"))
        base = baseline(nodes, pods)
        script = same_work_script(nodes, pods)
        cal = calinet(nodes, pods, dns=dns)
        row = {"nodes": nodes, "pods": pods, "baseline_s": base, "same_work_script_s": script,
               **cal, "ratio": cal["total_s"] / base, "ratio_same_work": cal["total_s"] / script}
        rows.append(row)
        print(f"{nodes:>3} nodes / {pods:>4} pods (dns {'on' if dns else 'off'}): "
              f"plain Mininet + netns add {base:6.2f}s | "
              f"same work as a script {script:6.2f}s | calinet {cal['total_s']:6.2f}s "
              f"(nodes {cal['nodes_s']:.2f}s + pods ready {cal['pods_ready_s']:.2f}s) | "
              f"calinet/plain {row['ratio']:.2f}x  calinet/script {row['ratio_same_work']:.2f}x | "
              f"PSS/node {cal['pss_per_node_kib'] / 1024:.1f} MiB  "
              f"PSS/pod {cal['pss_per_pod_kib'] / 1024:.1f} MiB", flush=True)
    if args.dns_runs > 0:
        d = dns_cost(args.dns_runs)
        rows.append(d)
        print(f"cluster DNS at {d['nodes']} nodes / {d['pods']} pods, {d['runs']} runs each: "
              f"dns on {d['dns_on_median_s']:.2f}s (median; {min(d['dns_on_s']):.2f}-"
              f"{max(d['dns_on_s']):.2f}) vs off {d['dns_off_median_s']:.2f}s "
              f"({min(d['dns_off_s']):.2f}-{max(d['dns_off_s']):.2f}) | "
              f"+{d['extra_s']:.2f}s, {d['ratio']:.2f}x", flush=True)
    write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
