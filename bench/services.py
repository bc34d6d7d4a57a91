"""Services benchmark: load-balancing spread, Ready -> traffic delay, cost of 1000 Services.

Side effects (root): one live 3-node Testbed (Mininet, pods, ExaBGP), removed at exit, and one
throwaway network namespace `calinet-bench-<hex>` (deleted in a finally).

1. Spread: N new connections (default 600) from a client pod to a ClusterIP with 3 agnhost
   backends, each answering GET /hostname with its pod name; counts per backend, Pearson's
   chi-square against uniform and its p-value (regularized upper incomplete gamma, from math).
2. Ready -> traffic: scale 3 -> 4, time from the new pod's Ready condition showing in the store
   to its first answer through the ClusterIP (the client connects back to back, ~1/4 of the
   connections can reach it), p50/p95 over ``--trials`` scale-ups.
3. 1000 Services on one node: the kube-proxy's whole nat table of the node with 1 Service and
   with 1000 (each with the 3 backends) restored into an empty netns (`iptables-restore` time),
   and TCP connect latency client -> ClusterIP p50/p95 with 1 Service against 1000, same run.
Usage: sudo .venv/bin/python bench/services.py [--connections 600] [--trials 10]
       [--services 1000] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import write_json  # noqa: E402
from orchestrator.controllers.common import pod_ready  # noqa: E402
from orchestrator.errors import CalinetError  # noqa: E402
from orchestrator.host import netns as netns_mod  # noqa: E402
from orchestrator.testbed import Testbed  # noqa: E402

TOPOLOGY = REPO / "topologies" / "examples" / "three-node.yaml"
NS = "bench"
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: bench}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: agnhost, ports: [{containerPort: 8080}]}]
"""
MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: bench}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: bench}
spec:
  containers: [{name: c, image: agnhost}]
---
""" + DEPLOYMENT.replace("REPLICAS", "3")


# -- statistics ------------------------------------------------------------------------

def gamma_q(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a): a series for
    x < a + 1, Lentz's continued fraction otherwise (Numerical Recipes 6.2)."""
    if x <= 0:
        return 1.0
    lg = math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(1000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return 1.0 - total * math.exp(-x + a * math.log(x) - lg)
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - lg) * h


def chi_square_uniform(counts: list[int]) -> tuple[float, float]:
    """(statistic, p-value) of Pearson's test of ``counts`` against a uniform spread."""
    n, k = sum(counts), len(counts)
    expected = n / k
    stat = sum((c - expected) ** 2 / expected for c in counts)
    return stat, gamma_q((k - 1) / 2, stat / 2)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# -- requests from the client pod --------------------------------------------------------

def get_hostname(exe: netns_mod.NetnsExecutor, ip: str, timeout: float = 1.0) -> str:
    """GET /hostname on a new connection made inside the client's netns (no process)."""
    def one():
        with socket.create_connection((ip, 80), timeout=timeout) as s:
            s.sendall(b"GET /hostname HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1].decode().strip()
    try:
        return exe.call(one, timeout=timeout + 5)
    except (OSError, CalinetError):
        return "-"


def connect_ms(exe: netns_mod.NetnsExecutor, ip: str) -> float:
    def one():
        t = time.perf_counter()
        with socket.create_connection((ip, 80), timeout=1.0):
            return (time.perf_counter() - t) * 1e3
    return exe.call(one)


def web_pods(tb) -> list[dict]:
    return [p for p in tb.list("Pod", NS) if p["metadata"]["name"].startswith("web-")
            and not p["metadata"].get("deletionTimestamp")]


# -- the three measurements --------------------------------------------------------------

def spread(tb, exe, ip: str, n: int) -> dict:
    names = sorted(p["metadata"]["name"] for p in web_pods(tb))
    answers = [get_hostname(exe, ip) for _ in range(n)]
    counts = [answers.count(b) for b in names]
    stat, p = chi_square_uniform(counts)
    return {"connections": n, "backends": dict(zip(names, counts)),
            "failed": answers.count("-"), "chi_square": round(stat, 3), "df": len(names) - 1,
            "p_value": round(p, 4)}


def ready_to_traffic(tb, exe, ip: str, trials: int) -> dict:
    delays = []
    for _ in range(trials):
        old = {p["metadata"]["name"] for p in web_pods(tb)}
        tb.apply(DEPLOYMENT.replace("REPLICAS", "4"))
        ready_at = new = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ready_at is None:
                fresh = [p for p in web_pods(tb) if p["metadata"]["name"] not in old]
                if fresh and pod_ready(fresh[0]):
                    ready_at, new = time.monotonic(), fresh[0]["metadata"]["name"]
            if get_hostname(exe, ip) == new and new is not None:
                delays.append((time.monotonic() - ready_at) * 1e3)
                break
        tb.apply(DEPLOYMENT.replace("REPLICAS", "3"))
        tb.wait_ready(timeout=60)
        while len(web_pods(tb)) != 3 or len(tb.list("Pod", NS)) != 4:
            time.sleep(0.05)
        time.sleep(0.3)
    return {"trials": trials, "measured": len(delays),
            "p50_ms": round(pct(delays, 0.5), 1), "p95_ms": round(pct(delays, 0.95), 1),
            "max_ms": round(max(delays), 1)}


def restore_seconds(text: str, reps: int = 3) -> float:
    """Best of ``reps`` `iptables-restore -t nat` of a whole nat table into an empty netns."""
    name = f"calinet-bench-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        best = math.inf
        for _ in range(reps):
            t = time.perf_counter()
            subprocess.run(["ip", "netns", "exec", name, "iptables-restore", "-w"],
                           input=text, text=True, check=True, capture_output=True)
            best = min(best, time.perf_counter() - t)
        return best
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def nat_table(tb, node: str) -> tuple[str, int]:
    text = tb.node_exec(node, ["iptables-save", "-t", "nat"]).stdout
    return text, sum(1 for line in text.splitlines() if line.startswith("-A "))


def latency(exe, ip: str, n: int = 200) -> dict:
    xs = [connect_ms(exe, ip) for _ in range(n)]
    return {"p50_ms": round(pct(xs, 0.5), 3), "p95_ms": round(pct(xs, 0.95), 3)}


def many_services(tb, exe, ip: str, count: int) -> dict:
    node = tb.pod_node(f"{NS}/client")
    text1, rules1 = nat_table(tb, node)
    lat1 = latency(exe, ip)
    docs = [f"apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: {NS}}}\n"
            f"spec:\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: 8080}}]\n"
            for i in range(count - 1)]
    t = time.monotonic()
    tb.apply("---\n".join(docs))
    last = tb.service_ip(f"{NS}/s{count - 2}")
    while get_hostname(exe, last, timeout=0.5) == "-":
        if time.monotonic() - t > 300:
            raise RuntimeError("the last Service never answered")
    programmed = time.monotonic() - t
    textn, rulesn = nat_table(tb, node)
    latn, latn_last = latency(exe, ip), latency(exe, last)
    r1, rn = restore_seconds(text1), restore_seconds(textn)
    return {"services": count, "node": node,
            "apply_to_last_service_answering_s": round(programmed, 2),
            "nat_rules": {"1": rules1, str(count): rulesn},
            "restore_s": {"1": round(r1, 4), str(count): round(rn, 4),
                          "ratio": round(rn / r1, 1)},
            "connect_latency": {"1": lat1, str(count): latn, f"{count}_last_service": latn_last,
                                "p50_ratio": round(latn["p50_ms"] / lat1["p50_ms"], 2)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=600)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--json")
    args = ap.parse_args()
    import tempfile
    with tempfile.TemporaryDirectory(prefix="calinet-bench-svc-") as state:
        tb = Testbed(str(TOPOLOGY), state_dir=state, keep_state=False)
        tb.start()
        try:
            tb.apply(MANIFEST)
            tb.wait_ready(timeout=120)
            ip = tb.service_ip(f"{NS}/web")
            with netns_mod.NetnsExecutor(tb.pod_netns(f"{NS}/client")) as exe:
                out = {"spread": spread(tb, exe, ip, args.connections)}
                print("spread:", json.dumps(out["spread"]), flush=True)
                out["ready_to_traffic"] = ready_to_traffic(tb, exe, ip, args.trials)
                print("ready->traffic:", json.dumps(out["ready_to_traffic"]), flush=True)
                out["many_services"] = many_services(tb, exe, ip, args.services)
                print("many services:", json.dumps(out["many_services"]), flush=True)
        finally:
            tb.stop()
    write_json(args.json, [out])


if __name__ == "__main__":
    main()
