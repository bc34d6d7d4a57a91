"""Experiment runner benchmark: its own overhead, and the quickstart end to end, each against
the same work done directly through the Python API, side by side in one run.

Side effects: real testbeds (root), removed at exit; a temporary output directory.

  overhead:   an experiment of N steps with nothing to do (`wait: converged` on a converged
              cluster) through the runner, against N direct calls of the same check on a
              Testbed: per step, runner vs direct.
  quickstart: `calinet run experiments/quickstart.yaml` in-process (testbed up, steps,
              results.json, report.html, teardown), against a script doing the same steps
              with the Testbed API and writing nothing. Goal: under 15 s.
Usage: sudo .venv/bin/python bench/experiments.py [--steps 200] [--reps 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.append(str(Path(__file__).resolve().parent))

from common import write_json  # noqa: E402

from orchestrator.experiment import runner, schema  # noqa: E402
from orchestrator.testbed import Testbed  # noqa: E402

TOPO = REPO / "topologies" / "examples" / "three-node.yaml"
QUICKSTART = REPO / "experiments" / "quickstart.yaml"


def overhead(n: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "noop.yaml"
        path.write_text(f"name: noop\ntopology: {TOPO}\nsteps:\n" +
                        "".join("  - wait: converged\n" for _ in range(n)))
        exp = schema.load(path)
        t0 = time.monotonic()
        res = runner.run(exp, str(Path(d) / "out"))
        total = time.monotonic() - t0
        steps_wall = res["steps"][-1]["t"] + res["steps"][-1]["seconds"] - res["steps"][0]["t"]
    with Testbed(str(TOPO)) as tb:
        t = time.monotonic()
        for _ in range(n):
            assert not tb._dataplane_problems()
        direct = time.monotonic() - t
    return {"steps": n, "runner_steps_s": steps_wall, "runner_total_s": total,
            "direct_s": direct, "per_step_runner_ms": steps_wall / n * 1000,
            "per_step_direct_ms": direct / n * 1000, "passed": res["passed"]}


def quickstart_runner() -> tuple[float, bool]:
    with tempfile.TemporaryDirectory() as d:
        t = time.monotonic()
        res = runner.run(schema.load(QUICKSTART), d)
        return time.monotonic() - t, res["passed"]


def quickstart_direct() -> float:
    """The quickstart's steps with the Python API, nothing written."""
    import random

    from orchestrator.experiment import steps as S
    exp = schema.load(QUICKSTART)
    t = time.monotonic()
    with Testbed(exp.topology, manifests=exp.manifests) as tb:
        tb.wait_ready(60)
        pods = sorted(tb.pods("demo"))
        assert all(tb.matrix(80, "TCP", pods=pods, timeout=0.5).values())
        ctx = S.Context(tb, random.Random(1), tempfile.gettempdir(), t)
        for step in exp.steps[2:]:
            S.EXECUTORS[step.type](ctx, step.params)
    return time.monotonic() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/experiments.py needs root (sudo make bench)")
        return 2
    o = overhead(args.steps)
    print(f"runner overhead: {o['steps']} no-op steps {o['per_step_runner_ms']:.3f} ms/step "
          f"through the runner vs {o['per_step_direct_ms']:.3f} ms/step direct "
          f"(ratio {o['per_step_runner_ms'] / o['per_step_direct_ms']:.2f}); whole run "
          f"{o['runner_total_s']:.2f}s incl. testbed up/down and report", flush=True)
    run_t, direct_t, ok = [], [], True
    for _ in range(args.reps):
        t, passed = quickstart_runner()
        run_t.append(t)
        ok &= passed
        direct_t.append(quickstart_direct())
    q = {"runner_s": run_t, "direct_s": direct_t, "passed": ok,
         "runner_median_s": statistics.median(run_t),
         "direct_median_s": statistics.median(direct_t)}
    print(f"quickstart end to end: {q['runner_median_s']:.2f}s median via `calinet run` "
          f"(runs {', '.join(f'{x:.2f}' for x in run_t)}) vs {q['direct_median_s']:.2f}s doing "
          f"the same with the API (ratio {q['runner_median_s'] / q['direct_median_s']:.2f}); "
          f"goal < 15 s: {'met' if q['runner_median_s'] < 15 else 'NOT met'}; passed: {ok}",
          flush=True)
    write_json(args.json, [{"overhead": o, "quickstart": q}])
    return 0


if __name__ == "__main__":
    sys.exit(main())
