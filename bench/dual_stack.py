"""Dual-stack bring-up benchmark: the same cluster IPv4-only and dual stack, side by side.

Side effects: real Mininet clusters, ExaBGP speakers and namespaces (root), all removed
before exit.

For each size (default 3 nodes / 30 pods and 50 / 500 in a full mesh, 50 / 500 with two
route reflectors) it brings the cluster up with BGP (Testbed
defaults, cluster DNS off: its own cost is bench/bringup.py's) and a Deployment of P agnhost
pods until every pod is Running with its addresses and every node routes every block, once
with an IPv4 underlay and once with `underlay.cidr6` (dual stack: IPv6 pools, IPv6 BGP
sessions, ip6tables), alternating, ``--runs`` rounds each; prints both medians and the
ratio dual / IPv4 (issue 15's goal: at most 1.3x); ``--no-bgp-sizes`` again with bgp=False,
which separates the second set of BGP sessions from the pods' own IPv6 work. Then the time from a new IPv6 block's
announcement to its route on every other node of a ``--block-nodes`` dual-stack cluster
(default 50, full mesh; p50 over ``--blocks`` blocks; goal under 0.5 s), IPv4 blocks
alternating with them as the baseline.
Usage: sudo .venv/bin/python bench/dual_stack.py [--sizes 3x30,50x500,50x500:rr]
       [--no-bgp-sizes
       50x500] [--runs 3]
       [--blocks 10] [--block-nodes 50] [--json OUT]
"""

from __future__ import annotations

import argparse
import ipaddress
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

from common import DEPLOY, installed_everywhere, withdrawn_somewhere_not, write_json  # noqa: E402,E501

from orchestrator.testbed import Testbed  # noqa: E402

RR_MANIFEST = REPO / "experiments" / "manifests" / "route-reflectors-bgp.yaml"


def topology(nodes: int, dual: bool, rr: bool = False) -> str:
    topo = {"name": f"bench-{'dual' if dual else 'v4'}-{nodes}",
            "underlay": {"cidr": "172.18.0.0/16",
                         **({"cidr6": "fd00:172:18::/64"} if dual else {})},
            "nodes": [{"name": f"node-{i + 1}",
                       "capacity": {"pods": 500, "cpu": "64", "memory": "64Gi"}}
                      for i in range(nodes)]}
    if rr:  # node-1 and node-2 reflect for everyone (as bench/bgp_convergence.py)
        for n in topo["nodes"][:2]:
            n["labels"] = {"route-reflector": "true"}
            n["routeReflectorClusterID"] = "224.0.0.1"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(topo, f)
    return f.name


def bringup(nodes: int, pods: int, dual: bool, bgp: bool = True, rr: bool = False) -> float:
    path = topology(nodes, dual, rr)
    t0 = time.monotonic()
    tb = Testbed(path, dns=False, keep_state=False, bgp=bgp,
                 manifests=[str(RR_MANIFEST)] if rr else [])
    try:
        tb.start()
        tb.apply(DEPLOY % pods)
        tb.wait_ready(timeout=600)
        total = time.monotonic() - t0
        if dual:   # sanity: the pods really are dual stack and reach each other over IPv6
            some = tb.pods()[:3]
            assert all(len(tb.get("Pod", k)["status"]["podIPs"]) == 2 for k in some)
            if not bgp:   # without BGP only pods on one node reach each other
                node = tb.pod_node(some[0])
                some = [k for k in tb.pods() if tb.pod_node(k) == node][:3]
            assert all(tb.matrix(80, pods=some, family=6).values())
    finally:
        tb.stop()
        os.unlink(path)
    return total


def block_convergence(trials: int, nodes: int) -> dict[int, list[float]]:
    """Seconds from a node's announcement of a newly claimed block to its route on every
    other node (as bench/bgp_convergence.py measures it), IPv4 and IPv6 blocks alternating in
    one dual-stack cluster: {4: [...], 6: [...]}."""
    path = topology(nodes, True)
    out: dict[int, list[float]] = {4: [], 6: []}
    tb = Testbed(path, dns=False, keep_state=False)
    try:
        tb.start()
        tb.wait_ready(timeout=300)
        names = tb.nodes()
        for i in range(2 * trials):
            family = 6 if i % 2 else 4
            origin = names[i % len(names)]
            # outside every pool and the underlay: no clash with real blocks
            block = str(ipaddress.ip_network(f"fd00:99:{i // 2:x}::/122" if family == 6
                                             else f"10.{200 + i // 500}.{(i // 2) % 250}.0/26"))
            t = time.monotonic()
            tb.routing.announce(origin, [block], [])
            while not installed_everywhere(tb, origin, block):
                if time.monotonic() - t > 30:
                    raise RuntimeError(f"{block} not routed everywhere after 30 s")
                time.sleep(0.005)
            out[family].append(time.monotonic() - t)
            tb.routing.announce(origin, [], [])
            settle = time.monotonic() + 10
            while withdrawn_somewhere_not(tb, origin, block) and time.monotonic() < settle:
                time.sleep(0.01)
    finally:
        tb.stop()
        os.unlink(path)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="3x30,50x500,50x500:rr",
                    help="NODESxPODS[:rr] (rr: mesh off, two route reflectors)")
    ap.add_argument("--no-bgp-sizes", default="50x500",
                    help="sizes measured again without BGP (pods, CNI and policy only)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--block-nodes", type=int, default=50)
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    plan = [(size, True) for size in args.sizes.split(",") if size] + \
        [(size, False) for size in args.no_bgp_sizes.split(",") if size]
    for size, bgp in plan:
        size, _, shape = size.partition(":")
        rr = shape == "rr"
        nodes, pods = (int(x) for x in size.split("x"))
        v4, dual = [], []
        for _ in range(args.runs):
            v4.append(bringup(nodes, pods, False, bgp, rr))
            dual.append(bringup(nodes, pods, True, bgp, rr))
        m4, m6 = statistics.median(v4), statistics.median(dual)
        kind = ("bringup-rr" if rr else "bringup") if bgp else "bringup-no-bgp"
        row = {"kind": kind, "nodes": nodes, "pods": pods,
               "runs": args.runs, "ipv4_s": v4, "dual_s": dual, "ipv4_median_s": m4,
               "dual_median_s": m6, "ratio": m6 / m4}
        rows.append(row)
        write_json(args.json, rows)      # a later size failing keeps what was measured
        print(f"{nodes} nodes / {pods} pods{'' if bgp else ' (no BGP)'}"
              f"{' (2 route reflectors)' if rr else ''}: IPv4 median "
              f"{m4:.2f}s, dual stack median {m6:.2f}s, ratio {m6 / m4:.2f}x (goal <= 1.3x); "
              f"runs IPv4 {[round(x, 2) for x in v4]} dual {[round(x, 2) for x in dual]}",
              flush=True)
    if args.blocks:
        times = block_convergence(args.blocks, args.block_nodes)
        p4, p6 = statistics.median(times[4]), statistics.median(times[6])
        rows.append({"kind": "block-convergence", "nodes": args.block_nodes,
                     "ipv4_s": times[4], "ipv6_s": times[6], "ipv4_p50_s": p4,
                     "ipv6_p50_s": p6})
        print(f"new block routed on every node of {args.block_nodes} (dual stack, full mesh): "
              f"IPv6 p50 {p6 * 1000:.0f} ms (max {max(times[6]) * 1000:.0f} ms; goal < 500 ms)"
              f", IPv4 p50 {p4 * 1000:.0f} ms, over {args.blocks} blocks each", flush=True)
    write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
