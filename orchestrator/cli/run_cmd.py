"""`calinet run EXPERIMENT [--out DIR]`: run an experiment file with a live progress display.

Side effects: those of the experiment (a testbed of its own, torn down at the end, also on
failure or Ctrl-C) and the output directory (results.json, report.html, pcaps/). Exit 0 when
every step ran and every expectation held, 1 otherwise, 2 when the file is invalid (then
nothing was started).
"""

from __future__ import annotations

import os
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.errors import ValidationError
from orchestrator.experiment import runner, schema


def run_experiment(args) -> int:
    out = Console(soft_wrap=True)
    err = Console(stderr=True)
    try:
        exp = schema.load(args.experiment)
    except ValidationError as exc:
        # escape: field paths such as limits[cpu] or labels[app] are not rich markup
        err.print(f"[red]invalid experiment:[/red] {escape(str(exc))}")
        return 2
    if os.geteuid() != 0:
        err.print("[red]error:[/red] `calinet run` needs root (network namespaces): "
                  "the file is valid; run it with sudo")
        return 1
    out_dir = args.out or os.path.join("results", f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.print(f"[bold]experiment[/bold] {exp.name}: {len(exp.steps)} steps, seed {exp.seed}; "
              f"output {out_dir}")
    status = err.status("bringing up the testbed...")
    status.start()

    def on_step(step, state, rec=None, checks=None):
        if state == "start":
            status.update(f"step {step.index}/{len(exp.steps)}: {step.type} {step.name}")
            return
        mark = "[green]ok[/green]" if state == "ok" else "[red]FAILED[/red]"
        detail = _summary(rec)
        out.print(f"  {step.index:>2}. {step.type:<13} {step.name[:40]:<40} {rec['seconds']:7.2f}s "
                  f"{mark} {detail}")
        for c in checks or []:
            if not c["ok"]:
                out.print(f"      [red]expectation failed[/red] {c['expr']}: {c['message']}")
        if rec and rec.get("error"):
            out.print(f"      [red]{rec['error']}[/red]")

    try:
        results = runner.run(exp, out_dir, on_step=on_step,
                             on_progress=lambda m: status.update(m))
    except KeyboardInterrupt:
        status.stop()
        err.print("[yellow]interrupted: the testbed was torn down[/yellow]")
        return 130
    finally:
        status.stop()
    t = Table(title="expectations", show_lines=False)
    for col in ("step", "expectation", "result"):
        t.add_column(col)
    for a in results["assertions"]:
        t.add_row(str(a["step"]), a["expr"], "[green]holds[/green]" if a["ok"]
                  else f"[red]fails[/red] {a['message']}")
    if results["assertions"]:
        out.print(t)
    for note in results["host"]["notes"]:
        out.print(f"[yellow]note:[/yellow] {note}")
    if results.get("error"):
        out.print(f"[red]error:[/red] {results['error']}")
    verdict = "[green]PASSED[/green]" if results["passed"] else "[red]FAILED[/red]"
    files = ", ".join(f for f in ("results.json", "report.html")
                      if os.path.exists(os.path.join(out_dir, f)))
    out.print(f"{verdict} in {results['seconds']:.1f}s; {files} in {out_dir}")
    return 0 if results["passed"] else 1


def _summary(rec) -> str:
    if not rec:
        return ""
    m = rec.get("measurements") or {}
    if rec["type"] == "probe-matrix" and m:
        by = m.get("by_family") or {}
        if len(by) > 1:   # one count per family: IPv4 and IPv6 may differ (policy per family)
            return ", ".join(f"{fam} {c['allowed_pairs']}/{c['pairs']}"
                             for fam, c in by.items()) + " pairs allowed"
        return f"{m['allowed_pairs']}/{m['pairs']} pairs allowed"
    if rec["type"] == "ping" and m.get("rtt_ms"):
        return f"rtt avg {m['rtt_ms']['avg']:.3f} ms, loss {m['loss'] * 100:.0f}%"
    if rec["type"] == "iperf" and m:
        return f"{m['gbps']:.2f} Gbit/s"
    if rec["type"] == "http" and m:
        return f"{m['ok']}/{m['requests']} ok"
    if rec["type"] == "fabric-link-failure" and m:
        rr = "never" if m.get("reroute_s") is None else f"{m['reroute_s'] * 1000:.0f} ms"
        return f"rerouted in {rr}, {m['lost']} lost ({m['loss_window_s'] * 1000:.0f} ms window)"
    if rec["type"] == "wait" and m:
        return f"{m['what']} after {m['seconds']:.2f}s"
    if m.get("skipped"):
        return f"[yellow]{m['skipped']}[/yellow]"
    return ""
