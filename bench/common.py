"""Helpers shared by the benchmarks: memory readings and result files. Reads /proc."""

from __future__ import annotations

import json


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
