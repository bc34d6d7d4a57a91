"""`calinet conformance DIR [--family 4|6]`: run every NetworkPolicy case file of a directory
on a testbed.

Side effects: brings up its own testbed (three-node by default, dual-stack for --family 6;
BGP included so cross-node pairs are probed), runs the cases, tears it down; optionally writes
a JSON report. --family 6 probes the pods' IPv6 addresses with IPv6 placeholders; probes the
prober refuses in IPv6 (SCTP) are reported as skipped. Exit code 0 when every case passed or
was skipped, 1 when any did not pass or for unusable case files or a topology without pods of
the family (nothing is started), 2 when no case file matched.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rich.console import Console

from orchestrator.testbed import Testbed
from orchestrator.traffic.conformance import Runner, check_family, truth_table
from policy.cases import load_dir
from topologies.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "topologies" / "examples"
DEFAULT_TOPOLOGY = {4: EXAMPLES / "three-node.yaml", 6: EXAMPLES / "dual-stack.yaml"}


def run_conformance(args) -> int:
    out = Console(soft_wrap=True)
    err = Console(stderr=True)
    cases = load_dir(args.directory)          # ValidationError (exit 1) names file/step/field
    if args.k:
        cases = [c for c in cases if args.k in c.name or args.k in Path(c.path).name]
    if not cases:
        err.print(f"no case files matched in {args.directory}")
        return 2
    family = getattr(args, "family", 4)
    topology = args.topology or str(DEFAULT_TOPOLOGY[family])
    # Before anything starts: the topology's pods must have addresses of the family.
    check_family(family, load_spec(topology).families, topology)
    t0 = time.monotonic()
    results = []
    with Testbed(topology, progress=lambda m: err.log(m)) as tb:
        runner = Runner(tb, timeout=args.timeout, family=family)
        with err.status("building the x/y/z model (9 pods)..."):
            runner.setup()
        spread = {}
        for key in runner.ips:
            spread.setdefault(tb.pod_node(key), []).append(key)
        err.log("pods per node: " + "; ".join(f"{n}: {' '.join(sorted(ps))}"
                                               for n, ps in sorted(spread.items())))
        err.log(f"IPv{family}: probes to the pods' IPv{family} addresses, {{{{podcidr}}}} = "
                f"{runner.podcidr}", markup=False)
        for i, case in enumerate(cases, 1):
            with err.status(f"[{i}/{len(cases)}] {case.name}"):
                r = runner.run_case(case)
            results.append(r)
            mark = ("[yellow]SKIP[/yellow]" if r.skipped else
                    "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]")
            out.print(f"{mark} {case.name}  ({r.seconds:.2f}s, {len(r.steps)} step(s))")
            if r.error:
                out.print(f"  error: {r.error}")
            if r.skipped_probes:
                out.print("  skipped in IPv{}: {}".format(family, ", ".join(
                    dict.fromkeys(o.key for o in r.skipped_probes))))
            for n, desc, outs in r.steps:
                for o in outs:
                    if o.mismatches:
                        out.print(f"  step {n} {desc!r}:")
                        out.print("  " + truth_table(o).replace("\n", "\n  "), markup=False)
    skipped_cases = [r for r in results if r.skipped]
    failed = [r for r in results if not r.passed and not r.skipped]
    run = len(results) - len(skipped_cases)
    probes_skipped = sum(len(r.skipped_probes) for r in results)
    out.print(f"{run - len(failed)}/{run} cases passed"
              + (f", {len(skipped_cases)} skipped" if skipped_cases else "")
              + (f" ({probes_skipped} probe(s) skipped in IPv{family})" if probes_skipped
                 else "")
              + f" in {time.monotonic() - t0:.1f}s")
    for proto, why in runner.refused.items():
        out.print(f"{proto} probes skipped: {why}", markup=False)
    if args.json:
        Path(args.json).write_text(json.dumps([r.as_dict() for r in results], indent=1))
    sys.stdout.flush()
    return 1 if failed else 0
