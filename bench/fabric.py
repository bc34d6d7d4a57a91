"""Routed-fabric benchmark (issue 14): each part measured side by side with its baseline in
one run on this machine.

Side effects: real Mininet clusters with BIRD 2 routers and ExaBGP speakers (root), removed
at exit.

  throughput  cross-rack pod-to-pod iperf3 on the leaf-spine example: native routing vs
              VXLAN (Always; new pods with the VXLAN MTU) vs a bare veth pair between two
              namespaces (the machine's ceiling). Goal: VXLAN >= 0.8 x native.
  blocks      a new block on a node -> a route for it on every other node, through the
              fabric (50 nodes in 5 racks, AS per rack, each node peering with its ToR),
              p50/p95 over N trials, against the same on a flat 50-node full mesh. Goal p50
              under 0.5 s.
  reroute     tor-a's cable to spine-1 fails: (a) the cable is pulled (carrier lost: BIRD's
              `check link`), (b) it silently drops everything (carrier stays up) without BFD:
              the ToR waits for the hold time, (c) the same with BFD (100 ms x 3). Time until
              tor-a stops routing the remote block over the dead cable. Goals: under the hold
              time, and under 1 s with BFD.
  bringup     the leaf-spine example (9 nodes, 5 routers) against a flat 9-node cluster.
Usage: sudo .venv/bin/python bench/fabric.py [--parts throughput,blocks,reroute,bringup]
       [--trials 10] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import installed_everywhere, withdrawn_somewhere_not, write_json  # noqa: E402

from orchestrator.experiment import steps  # noqa: E402
from orchestrator.experiment.schema import PodRef  # noqa: E402
from orchestrator.testbed import Testbed  # noqa: E402

EXAMPLES = REPO / "topologies" / "examples"
IPERF_S = 5


def _pod(name: str, node: str, ns: str = "bench") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": [
                {"name": "c", "image": "agnhost", "ports": [{"containerPort": 80}]}]}}


NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}


def _pool(mode: str) -> dict:
    return {"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": "default-ipv4-ippool"},
            "spec": {"cidr": "10.244.0.0/16", "blockSize": 26, "vxlanMode": mode,
                     "natOutgoing": True}}


def _iperf(ctx, src: str, dst: str) -> float:
    m = steps.iperf(ctx, {"from": PodRef(key=src), "to": PodRef(key=dst), "protocol": "TCP",
                          "duration": IPERF_S, "parallel": 1, "port": 5201, "bitrate": "0"})
    return m["gbps"]


def throughput(rounds: int = 3) -> dict:
    """Interleaved: the pool flips between no encapsulation and VXLAN Always each round, so
    both modes meet the machine in the same minutes. Native pods were made unencapsulated
    (MTU 1500), VXLAN pods after the flip (MTU 1450), as Calico's CNI gives them."""
    with Testbed(str(EXAMPLES / "leaf-spine.yaml"), dns=False) as tb:
        ctx = steps.Context(tb, random.Random(1), tempfile.mkdtemp(), time.monotonic())
        tb.apply([NS, _pod("n-a1", "node-a1"), _pod("n-c1", "node-c1")])
        tb.wait_ready(timeout=60)
        tb.apply([_pool("Always")])
        tb.wait_ready(timeout=60)
        tb.apply([_pod("v-a1", "node-a1"), _pod("v-c1", "node-c1")])
        tb.wait_ready(timeout=60)
        native, vxlan, raw = [], [], []
        for _ in range(rounds):
            tb.apply([_pool("Never")])
            tb.wait_ready(timeout=60)
            native.append(_iperf(ctx, "bench/n-a1", "bench/n-c1"))
            tb.apply([_pool("Always")])
            tb.wait_ready(timeout=60)
            vxlan.append(_iperf(ctx, "bench/v-a1", "bench/v-c1"))
            raw.append(steps.iperf_baseline(ctx, {"duration": IPERF_S, "parallel": 1})["gbps"])
    n, v = statistics.median(native), statistics.median(vxlan)
    return {"rounds": rounds, "native_gbps": native, "vxlan_gbps": vxlan, "raw_veth_gbps": raw,
            "native_median_gbps": n, "vxlan_median_gbps": v,
            "vxlan_over_native": round(v / n, 3) if n else None,
            "vxlan_over_native_per_round": [round(b / a, 3) for a, b in zip(native, vxlan)],
            "native_over_raw": round(n / statistics.median(raw), 3)}


def fabric_topology(racks: int, per_rack: int) -> str:
    letters = "abcdefghij"
    topo = {"name": f"fabric-{racks * per_rack}", "fabric": {"spines": {"count": 2}},
            "racks": [], "nodes": [], "manifests": [
                {"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
                 "metadata": {"name": "default"}, "spec": {"nodeToNodeMeshEnabled": False}}]}
    for i in range(racks):
        r = letters[i]
        names = [f"node-{r}{k}" for k in range(1, per_rack + 1)]
        topo["racks"].append({"name": f"rack-{r}", "tor": {"name": f"tor-{r}",
                                                           "asNumber": 65001 + i},
                              "nodes": names})
        topo["nodes"] += [{"name": n, "asNumber": 65001 + i, "labels": {"rack": f"rack-{r}"},
                           "capacity": {"pods": 110, "cpu": "64", "memory": "64Gi"}}
                          for n in names]
        topo["manifests"].append({"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
                                  "metadata": {"name": f"rack-{r}-tor"},
                                  "spec": {"nodeSelector": f"rack == 'rack-{r}'",
                                           "peerIP": f"172.18.{i + 1}.1",
                                           "asNumber": 65001 + i}})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(topo, f)
    return f.name


def flat_topology(nodes: int) -> str:
    topo = {"name": f"flat-{nodes}", "nodes": [
        {"name": f"node-{i + 1}", "capacity": {"pods": 110, "cpu": "64", "memory": "64Gi"}}
        for i in range(nodes)]}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(topo, f)
    return f.name


def _block_trials(path: str, trials: int) -> dict:
    times, failures = [], 0
    with Testbed(path, dns=False) as tb:
        tb.wait_ready(timeout=300)
        names = tb.nodes()
        for i in range(trials):
            origin = names[(i * 7) % len(names)]
            block = f"10.{200 + i // 250}.{i % 250}.0/26"  # outside every pool: no clash
            t = time.monotonic()
            tb.routing.announce(origin, [block], [])
            deadline = t + 10
            while not installed_everywhere(tb, origin, block):
                if time.monotonic() > deadline:
                    failures += 1
                    break
                time.sleep(0.005)
            else:
                times.append(time.monotonic() - t)
            tb.routing.announce(origin, [], [])
            settle = time.monotonic() + 10
            while withdrawn_somewhere_not(tb, origin, block) and time.monotonic() < settle:
                time.sleep(0.01)
    times.sort()
    return {"trials": trials, "failed": failures,
            "p50_s": round(statistics.median(times), 4) if times else None,
            "p95_s": round(times[int(0.95 * (len(times) - 1))], 4) if times else None}


def blocks(trials: int) -> dict:
    fab, flat = fabric_topology(5, 10), flat_topology(50)
    try:
        fabric = _block_trials(fab, trials)
        mesh = _block_trials(flat, trials)
    finally:
        os.unlink(fab)
        os.unlink(flat)
    return {"fabric_50_in_5_racks": fabric, "flat_mesh_50": mesh,
            "ratio_p50": round(fabric["p50_s"] / mesh["p50_s"], 3)
            if fabric["p50_s"] and mesh["p50_s"] else None}


def _reroute(bfd: bool, silent: bool) -> dict:
    text = (EXAMPLES / "leaf-spine.yaml").read_text()
    if bfd:
        text = text.replace("fabric:\n", "fabric:\n  bfd: true\n", 1)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        with Testbed(f.name, dns=False) as tb:
            tb.apply([NS, _pod("c1", "node-c1")])
            tb.wait_ready(timeout=60)
            ctx = steps.Context(tb, random.Random(1), tempfile.mkdtemp(), time.monotonic())
            block = steps._block_of(ctx, tb.pod_ip("bench/c1"), "node-c1")
            before = steps._nexthops(ctx, "tor-a", block)
            dead = "172.18.255.1"         # spine-1's end of tor-a's eth1
            t0 = time.monotonic()
            if silent:
                # The cable stays up but carries nothing (a grey failure): only BGP's hold
                # timer, or BFD, can tell.
                tb.router_exec("tor-a", ["iptables", "-I", "INPUT", "-i", "eth1", "-j",
                                         "DROP"])
                tb.router_exec("tor-a", ["iptables", "-I", "OUTPUT", "-o", "eth1", "-j",
                                         "DROP"])
                t0 = time.monotonic()
            else:
                tb.fabric_link_down("tor-a", "spine-1")
                t0 = time.monotonic()
            took = None
            while time.monotonic() - t0 < 30:
                if dead not in steps._nexthops(ctx, "tor-a", block):
                    took = time.monotonic() - t0
                    break
                time.sleep(0.005)
            hold = tb.spec.fabric.hold_time
    finally:
        os.unlink(f.name)
    return {"bfd": bfd, "failure": "silent drop" if silent else "carrier lost",
            "nexthops_before": before, "reroute_s": round(took, 3) if took else None,
            "hold_time_s": hold}


def reroute() -> list[dict]:
    return [_reroute(False, False), _reroute(False, True), _reroute(True, True)]


def bringup() -> dict:
    flat = flat_topology(9)
    out = {}
    try:
        for name, path in (("flat_9", flat), ("leaf_spine_9", str(EXAMPLES / "leaf-spine.yaml")),
                           ("flat_9_again", flat)):
            t = time.monotonic()
            with Testbed(path, dns=False) as tb:
                tb.wait_ready(timeout=60)
                out[name] = round(time.monotonic() - t, 3)
    finally:
        os.unlink(flat)
    base = statistics.mean([out["flat_9"], out["flat_9_again"]])
    out["ratio"] = round(out["leaf_spine_9"] / base, 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="throughput,blocks,reroute,bringup")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/fabric.py needs root (sudo make bench)")
        return 2
    res: dict = {}
    parts = args.parts.split(",")
    if "throughput" in parts:
        r = res["throughput"] = throughput()
        print(f"throughput cross-rack, median of {r['rounds']} interleaved rounds: native "
              f"{r['native_median_gbps']:.2f} Gbit/s, VXLAN {r['vxlan_median_gbps']:.2f} Gbit/s "
              f"({r['vxlan_over_native']:.2f} x native, goal >= 0.8; per round "
              f"{r['vxlan_over_native_per_round']}), raw veth {r['raw_veth_gbps']} (native = "
              f"{r['native_over_raw']:.2f} x raw)", flush=True)
    if "blocks" in parts:
        r = res["blocks"] = blocks(args.trials)
        f, m = r["fabric_50_in_5_racks"], r["flat_mesh_50"]
        print(f"new block -> every node: fabric 50/5 racks p50 {f['p50_s']} s p95 {f['p95_s']} "
              f"s (failed {f['failed']}/{f['trials']}; goal p50 < 0.5 s); flat mesh 50 p50 "
              f"{m['p50_s']} s p95 {m['p95_s']} s; ratio {r['ratio_p50']}", flush=True)
    if "reroute" in parts:
        rows = res["reroute"] = reroute()
        for r in rows:
            print(f"reroute after a spine cable failure ({r['failure']}, BFD "
                  f"{'on' if r['bfd'] else 'off'}): {r['reroute_s']} s (hold time "
                  f"{r['hold_time_s']} s)", flush=True)
    if "bringup" in parts:
        r = res["bringup"] = bringup()
        print(f"bring-up: leaf-spine (9 nodes, 5 routers) {r['leaf_spine_9']} s vs flat 9 "
              f"nodes {r['flat_9']}/{r['flat_9_again']} s: {r['ratio']} x", flush=True)
    write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
