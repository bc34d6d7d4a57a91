"""`calinet up` and `calinet demo`: bring a cluster up, show it, hand over a shell, tear down.

Side effects: a whole Testbed (Mininet, namespaces, processes), always stopped on exit,
Ctrl-C or error (with --detach: by cli/detach.py's background process, when `calinet down`
signals it).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from rich.console import Console

from orchestrator.cli import commands
from orchestrator.cli.context import Context
from orchestrator.errors import CalinetError, SupervisorTimeout
from orchestrator.testbed import DEFAULT_STATE_ROOT, Testbed
from topologies.spec import load_spec

REPO = Path(__file__).resolve().parents[2]


def _context(tb) -> Context:
    return Context(tb.state_dir, tb.store, tb.client, tb.id, True)


def run_up(args) -> int:
    console = Console(stderr=True)
    spec = load_spec(args.topology)
    state_dir = args.state_dir or os.environ.get("CALINET_STATE_DIR") or os.path.join(
        DEFAULT_STATE_ROOT, spec.name)
    if getattr(args, "detach", False):
        from orchestrator.cli.detach import detach
        return detach(args, state_dir)
    # --fresh is done by the Testbed once it holds the state dir's lock and has cleaned up
    # after the previous run (whose ledger lives there).
    tb = Testbed(args.topology, state_dir=state_dir, progress=lambda m: console.log(m),
                 fresh=args.fresh, bgp=not args.no_bgp, manifests=args.filename,
                 dns=args.dns)
    try:
        with console.status(f"bringing up {spec.name} ({len(spec.nodes)} nodes)..."):
            tb.start()
        ctx = _context(tb)
        if tb.applied:
            print("\n".join(tb.applied))
        _wait(tb, console, args.timeout)
        if getattr(args, "serve", False):        # the process behind `up --detach`
            from orchestrator.cli.detach import serve
            serve(tb, state_dir)
            return 0
        print(commands.get(ctx, "nodes", output="wide"))
        print(commands.get(ctx, "pods", all_namespaces=True, output="wide"))
        running = [k for k in tb.pods() if (tb.get("Pod", k).get("status") or {}).get("podIP")]
        if running:
            console.print("[bold]connectivity[/bold] (every pod to every pod serving a TCP port)")
            connectivity(tb, console, running, detail=len(running) <= 12)
        if args.no_shell:
            return 0
        console.print(f"[bold]calinet shell[/bold] (state: {state_dir}). Mininet commands "
                      "plus get/apply/delete/describe/label/logs/exec/probe/matrix/ipam; "
                      "`help`, `exit` tears the cluster down.")
        from orchestrator.cli.shell import CalinetCLI
        CalinetCLI(tb)
        return 0
    finally:
        with console.status("tearing down..."):
            tb.stop()
        console.log("cluster stopped; nothing left behind")


def _wait(tb, console, timeout: float) -> None:
    t0 = time.monotonic()
    with console.status("waiting for pods to be Running...") as status:
        try:
            tb.wait_ready(timeout=timeout, on_progress=lambda ready, total: status.update(
                f"waiting for pods to be Running... {ready}/{total} ready"))
        except SupervisorTimeout as exc:
            console.print(f"[yellow]warning:[/yellow] {exc}")
            return
    if tb.store.list("Pod"):
        console.log(f"all pods ready in {time.monotonic() - t0:.2f}s")


def run_demo(args) -> int:
    """The tour `sudo make demo` shows."""
    console = Console(soft_wrap=True)
    topo = REPO / "topologies" / "examples" / "three-node.yaml"
    manifest = REPO / "experiments" / "manifests" / "web.yaml"
    t0 = time.monotonic()
    tb = Testbed(str(topo), progress=lambda m: console.log(m), bgp=True)
    try:
        with console.status("bringing up a 3-node cluster..."):
            tb.start()
        ctx = _context(tb)
        _section(console, "$ calinet apply -f experiments/manifests/web.yaml")
        print(commands.apply(ctx, [str(manifest)]))
        _wait(tb, console, 60)
        _section(console, "$ calinet get nodes -o wide")
        print(commands.get(ctx, "nodes", output="wide"))
        _section(console, "$ calinet get pods -n demo -o wide")
        print(commands.get(ctx, "pods", namespace="demo", output="wide"))
        _section(console, "$ calinet ipam show --show-blocks")
        print(commands.ipam_show(ctx, show_blocks=True))
        pods = tb.pods("demo")
        first = pods[0]
        node = tb.pod_node(first)
        _section(console, f"$ calinet exec {first} -- ip route     (Calico's pod routing)")
        print(tb.exec(first, ["ip", "route"]).stdout.rstrip())
        _section(console, f"$ {node}: ip route                (node routes: /32 per pod, blackhole per block)")
        print(tb.node_exec(node, ["ip", "route"]).stdout.rstrip())
        _section(console, f"$ calinet node status {node}")
        print(tb.bgp_status(node).rstrip())
        _section(console, "$ matrix   (every pod to every serving pod, across nodes over BGP routes)")
        connectivity(tb, console, pods, detail=True)
        _section(console, "$ calinet ipam check")
        print(commands.ipam_check(ctx)[0])
        console.log(f"demo done in {time.monotonic() - t0:.1f}s")
        return 0
    except CalinetError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        return 1
    finally:
        with console.status("tearing down..."):
            tb.stop()
        console.log("cluster stopped; nothing left behind")


def serving_port(pod: dict) -> int | None:
    """The first TCP containerPort a pod declares (what the connectivity matrix probes)."""
    for c in pod["spec"].get("containers", []):
        for p in c.get("ports") or []:
            if p.get("protocol", "TCP") == "TCP":
                return int(p["containerPort"])
    return None


def connectivity(tb, console, pods: list[str], *, detail: bool) -> int:
    """All-pairs TCP probes from every pod to every pod that serves a port (on that port),
    printed per pair when ``detail`` and always as same-node / cross-node totals."""
    by_port: dict[int, list[str]] = {}
    for key in pods:
        port = serving_port(tb.get("Pod", key))
        if port is not None:
            by_port.setdefault(port, []).append(key)
    results = {}
    for port, servers in sorted(by_port.items()):
        res = tb.matrix(port, "TCP", pods=pods, timeout=0.5)
        results.update({(s, d, port): res[(s, d)] for s in pods for d in servers if s != d})
    if not results:
        console.print("  no pod declares a TCP containerPort: nothing to probe")
        return 0
    totals = {"same node": [0, 0], "cross-node": [0, 0]}
    for (src, dst, port), ok in results.items():
        where = "same node" if tb.pod_node(src) == tb.pod_node(dst) else "cross-node"
        totals[where][0] += ok
        totals[where][1] += 1
        if detail:
            mark = "[green]connected[/green]" if ok else "[red]blocked[/red]"
            console.print(f"  {where:10} {src:28} -> {dst:28} {port}/TCP {mark}")
    console.print("  " + ", ".join(f"{where}: {ok}/{n} connected"
                                   for where, (ok, n) in totals.items() if n))
    return sum(results.values())


def _section(console, title: str) -> None:
    console.print()
    console.print(f"[bold cyan]{title}[/bold cyan]")
    sys.stdout.flush()
