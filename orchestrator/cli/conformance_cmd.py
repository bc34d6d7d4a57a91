"""`calinet conformance DIR`: run every NetworkPolicy case file of a directory on a testbed.

Side effects: brings up its own testbed (three-node by default, BGP included so cross-node
pairs are probed), runs the cases, tears it down; optionally writes a JSON report. Exit code 0
when every case passed, 1 when any did not, 2 for unusable case files (nothing is started).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rich.console import Console

from orchestrator.testbed import Testbed
from orchestrator.traffic.conformance import Runner, truth_table
from policy.cases import load_dir

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TOPOLOGY = REPO / "topologies" / "examples" / "three-node.yaml"


def run_conformance(args) -> int:
    out = Console(soft_wrap=True)
    err = Console(stderr=True)
    cases = load_dir(args.directory)          # ValidationError (exit 1) names file/step/field
    if args.k:
        cases = [c for c in cases if args.k in c.name or args.k in Path(c.path).name]
    if not cases:
        err.print(f"no case files matched in {args.directory}")
        return 2
    t0 = time.monotonic()
    results = []
    with Testbed(args.topology or str(DEFAULT_TOPOLOGY),
                 progress=lambda m: err.log(m)) as tb:
        runner = Runner(tb, timeout=args.timeout)
        with err.status("building the x/y/z model (9 pods)..."):
            runner.setup()
        spread = {}
        for key in runner.ips:
            spread.setdefault(tb.pod_node(key), []).append(key)
        err.log("pods per node: " + "; ".join(f"{n}: {' '.join(sorted(ps))}"
                                               for n, ps in sorted(spread.items())))
        for i, case in enumerate(cases, 1):
            with err.status(f"[{i}/{len(cases)}] {case.name}"):
                r = runner.run_case(case)
            results.append(r)
            mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
            out.print(f"{mark} {case.name}  ({r.seconds:.2f}s, {len(r.steps)} step(s))")
            if r.error:
                out.print(f"  error: {r.error}")
            for n, desc, outs in r.steps:
                for o in outs:
                    if o.mismatches:
                        out.print(f"  step {n} {desc!r}:")
                        out.print("  " + truth_table(o).replace("\n", "\n  "), markup=False)
    failed = [r for r in results if not r.passed]
    out.print(f"{len(results) - len(failed)}/{len(results)} cases passed in "
              f"{time.monotonic() - t0:.1f}s")
    if args.json:
        Path(args.json).write_text(json.dumps([r.as_dict() for r in results], indent=1))
    sys.stdout.flush()
    return 1 if failed else 0
