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


def write_json(path: str | None, rows: list) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(rows, f, indent=2)
