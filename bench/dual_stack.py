"""Dual-stack bring-up benchmark: the same cluster IPv4-only and dual stack, side by side.

Side effects: real Mininet clusters, ExaBGP speakers and namespaces (root), all removed
before exit.

For each size (default 3 nodes / 30 pods and 50 / 500) it brings the cluster up with BGP (Testbed
defaults, cluster DNS off: its own cost is bench/bringup.py's) and a Deployment of P agnhost
pods until every pod is Running with its addresses and every node routes every block, once
with an IPv4 underlay and once with `underlay.cidr6` (dual stack: IPv6 pools, IPv6 BGP
sessions, ip6tables), alternating, ``--runs`` rounds each; prints both medians and the
ratio dual / IPv4 (issue 15's goal: at most 1.3x). Then the time from a new IPv6 block's
allocation to its route on every other node of a ``--block-nodes`` cluster (default 50;
p50 over ``--blocks`` blocks; goal under 0.5 s).
Usage: sudo .venv/bin/python bench/dual_stack.py [--sizes 3x30,50x500] [--runs 3]
       [--blocks 5] [--block-nodes 50] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEPLOY, installed_everywhere, write_json  # noqa: E402

from orchestrator.testbed import Testbed  # noqa: E402


def topology(nodes: int, dual: bool) -> str:
    topo = {"name": f"bench-{'dual' if dual else 'v4'}-{nodes}",
            "underlay": {"cidr": "172.18.0.0/16",
                         **({"cidr6": "fd00:172:18::/64"} if dual else {})},
            "nodes": [{"name": f"node-{i + 1}",
                       "capacity": {"pods": 500, "cpu": "64", "memory": "64Gi"}}
                      for i in range(nodes)]}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(topo, f)
    return f.name


def bringup(nodes: int, pods: int, dual: bool) -> float:
    path = topology(nodes, dual)
    t0 = time.monotonic()
    tb = Testbed(path, dns=False, keep_state=False)
    try:
        tb.start()
        tb.apply(DEPLOY % pods)
        tb.wait_ready(timeout=600)
        total = time.monotonic() - t0
        if dual:   # sanity: the pods really are dual stack and reach each other over IPv6
            some = tb.pods()[:3]
            assert all(len(tb.get("Pod", k)["status"]["podIPs"]) == 2 for k in some)
            assert all(tb.matrix(80, pods=some, family=6).values())
    finally:
        tb.stop()
        os.unlink(path)
    return total


def v6_block_convergence(blocks: int, nodes: int) -> list[float]:
    """Seconds from a new IPv6 block's allocation on node-1 to its route on every other
    node: node-1 gets pods one by one beyond its blocks (a /122 holds 64 addresses), so each
    64th pod claims a new block."""
    path = topology(nodes, True)
    out = []
    tb = Testbed(path, dns=False, keep_state=False)
    try:
        tb.start()
        have = set(tb.ipam.blocks_for_node("node-1"))
        n = 0
        while len(out) < blocks:
            batch = [{"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": f"p{n + i}", "namespace": "default"},
                      "spec": {"nodeName": "node-1", "containers": [
                          {"name": "c", "image": "agnhost"}]}} for i in range(64)]
            n += 64
            tb.apply(batch)
            deadline = time.monotonic() + 60
            new = []
            while not new and time.monotonic() < deadline:
                new = [b for b in tb.ipam.blocks_for_node("node-1")
                       if ":" in b and b not in have]
                time.sleep(0.005)
            t0 = time.monotonic()
            if not new:
                raise RuntimeError("no new IPv6 block was claimed")
            block = new[0]
            have.add(block)
            while not installed_everywhere(tb, "node-1", block):
                if time.monotonic() - t0 > 30:
                    raise RuntimeError(f"{block} not routed everywhere after 30 s")
                time.sleep(0.005)
            out.append(time.monotonic() - t0)
            have |= set(tb.ipam.blocks_for_node("node-1"))
            tb.wait_ready(timeout=120)
    finally:
        tb.stop()
        os.unlink(path)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="3x30,50x500")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--block-nodes", type=int, default=50)
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    for size in args.sizes.split(","):
        nodes, pods = (int(x) for x in size.split("x"))
        v4, dual = [], []
        for _ in range(args.runs):
            v4.append(bringup(nodes, pods, False))
            dual.append(bringup(nodes, pods, True))
        m4, m6 = statistics.median(v4), statistics.median(dual)
        row = {"kind": "bringup", "nodes": nodes, "pods": pods, "runs": args.runs,
               "ipv4_s": v4, "dual_s": dual, "ipv4_median_s": m4, "dual_median_s": m6,
               "ratio": m6 / m4}
        rows.append(row)
        print(f"{nodes} nodes / {pods} pods: IPv4 median {m4:.2f}s, dual stack median "
              f"{m6:.2f}s, ratio {m6 / m4:.2f}x (goal <= 1.3x); runs IPv4 "
              f"{[round(x, 2) for x in v4]} dual {[round(x, 2) for x in dual]}", flush=True)
    if args.blocks:
        times = v6_block_convergence(args.blocks, args.block_nodes)
        p50 = statistics.median(times)
        rows.append({"kind": "v6-block", "nodes": args.block_nodes, "times_s": times,
                     "p50_s": p50})
        print(f"new IPv6 block routed on every node of {args.block_nodes}: p50 {p50 * 1000:.0f} ms over "
              f"{len(times)} blocks (max {max(times) * 1000:.0f} ms; goal p50 < 500 ms)")
    write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
