"""Helpers shared by the benchmarks: memory readings and result files. Reads /proc."""

from __future__ import annotations

import json

# A Deployment of %d agnhost pods (bench/bringup.py, bench/dual_stack.py).
DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench, namespace: default}
spec:
  replicas: %d
  selector: {matchLabels: {app: bench}}
  template:
    metadata: {labels: {app: bench}}
    spec:
      containers: [{name: c, image: agnhost, ports: [{containerPort: 80}]}]
"""

def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (the zygote's, the interpreter's) counted once."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids) -> float:
    """User + system CPU time consumed so far by the given processes (gone ones count 0)."""
    import os
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def write_json(path: str | None, rows: list) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(rows, f, indent=2)


def installed_everywhere(tb, origin: str, block: str) -> bool:
    """Every node but ``origin`` has a BGP route for ``block`` (agents' status files)."""
    for node in tb.nodes():
        if node == origin:
            continue
        st = tb.routing.status(node) or {}
        if not any(r.get("prefix") == block for r in st.get("routes", [])):
            return False
    return True


def withdrawn_somewhere_not(tb, origin: str, block: str) -> bool:
    """True while some other node still has a route for ``block``."""
    return any(any(r.get("prefix") == block for r in (tb.routing.status(n) or {}).get(
        "routes", [])) for n in tb.nodes() if n != origin)
