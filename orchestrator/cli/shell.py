"""Interactive shell of `calinet up`: Mininet's CLI plus kubectl/calicoctl-like verbs.

Side effects: those of the verbs (store writes, exec/probe in pod namespaces) and Mininet's
own commands on the nodes (`node-1 ip route`, `pingall` over the underlay).
"""

from __future__ import annotations

import cmd
import shlex

from mininet.cli import CLI
from mininet.log import lg, setLogLevel

from orchestrator.cli import commands
from orchestrator.cli.context import Context
from orchestrator.errors import CalinetError


class CalinetCLI(CLI):
    prompt = "calinet> "
    # Node names like "node-1" must parse as one word for Mininet's `<node> <command>`.
    identchars = cmd.Cmd.identchars + "-."

    def __init__(self, testbed, **kw):
        # Mininet's CLI prints through its logger at level "output"; calinet keeps Mininet
        # at "warning" while building, so lower it for the shell.
        setLogLevel("output")
        lg.propagate = False  # Mininet has its own handler; do not print twice via root
        self.tb = testbed
        self.ctx = Context(testbed.state_dir, testbed.store, testbed.client, testbed.id, True)
        super().__init__(testbed.cluster.net, **kw)

    def _run(self, fn, line: str) -> None:
        try:
            out = fn(shlex.split(line))
        except (CalinetError, ValueError) as exc:
            self.stdout.write(f"error: {exc}\n")
            return
        if out:
            self.stdout.write(out.rstrip("\n") + "\n")

    def do_get(self, line):
        """get KIND [NAME] [-n NS | -A] [-o wide|yaml|json] [-l SELECTOR]"""
        self._run(lambda a: _with_parsed(a, lambda o: commands.get(
            self.ctx, o.kind, o.name, namespace=o.namespace, all_namespaces=o.all_namespaces,
            output=o.output, selector=o.selector)), line)

    def do_describe(self, line):
        """describe KIND NAME [-n NS]"""
        self._run(lambda a: _with_parsed(a, lambda o: commands.describe(
            self.ctx, o.kind, o.name, namespace=o.namespace)), line)

    def do_apply(self, line):
        """apply -f FILE [-f FILE...]"""
        self._run(lambda a: commands.apply(self.ctx, [x for x in a if x != "-f"]), line)

    def do_delete(self, line):
        """delete KIND NAME... [-n NS] | delete -f FILE"""
        def run(a):
            if a and a[0] == "-f":
                return commands.delete(self.ctx, None, [], files=a[1:])
            ns, rest = _take_ns(a)
            return commands.delete(self.ctx, rest[0] if rest else None, rest[1:], namespace=ns)
        self._run(run, line)

    def do_label(self, line):
        """label KIND NAME key=value [key-] [-n NS]"""
        def run(a):
            ns, rest = _take_ns(a)
            return commands.label(self.ctx, rest[0], rest[1], rest[2:], namespace=ns)
        self._run(run, line)

    def do_logs(self, line):
        """logs POD [CONTAINER] [-n NS] [--previous]"""
        def run(a):
            prev = "--previous" in a or "-p" in a
            a = [x for x in a if x not in ("--previous", "-p")]
            ns, rest = _take_ns(a)
            return commands.logs(self.ctx, rest[0], rest[1] if len(rest) > 1 else None,
                                 namespace=ns, previous=prev)
        self._run(run, line)

    def do_exec(self, line):
        """exec POD [-n NS] -- COMMAND..."""
        def run(a):
            if "--" in a:
                i = a.index("--")
                head, argv = a[:i], a[i + 1:]
            else:
                head, argv = a[:1], a[1:]
            ns, rest = _take_ns(head)
            r = commands.exec_(self.ctx, rest[0], argv, namespace=ns)
            return r.stdout + r.stderr
        self._run(run, line)

    def do_probe(self, line):
        """probe SRC DST PORT[/PROTO] [-n NS]"""
        def run(a):
            ns, rest = _take_ns(a)
            return commands.probe_(self.ctx, rest[0], rest[1], rest[2], namespace=ns)
        self._run(run, line)

    def do_ipam(self, line):
        """ipam show [--show-blocks] [--show-borrowed] | ipam check"""
        def run(a):
            if a[:1] == ["check"]:
                return commands.ipam_check(self.ctx)[0]
            return commands.ipam_show(self.ctx, show_blocks="--show-blocks" in a,
                                      show_borrowed="--show-borrowed" in a)
        self._run(run, line)

    def do_routes(self, line):
        """routes NODE: the node's BGP routes and where each came from"""
        self._run(lambda a: commands.routes(self.ctx, a[0]), line)

    def do_node(self, line):
        """node status [NODE]: BGP sessions, as calicoctl node status"""
        def run(a):
            if a[:1] != ["status"]:
                raise CalinetError("usage: node status [NODE]")
            return commands.node_status(self.ctx, a[1] if len(a) > 1 else None)
        self._run(run, line)

    def do_matrix(self, line):
        """matrix [PORT[/PROTO]]: probe every pair of running pods"""
        def run(a):
            port, _, proto = (a[0] if a else "80").partition("/")
            res = self.tb.matrix(int(port), proto or "TCP")
            return format_matrix(res)
        self._run(run, line)


def format_matrix(res: dict) -> str:
    pods = sorted({s for s, _ in res} | {d for _, d in res})
    short = {p: p for p in pods}
    width = max([len(p) for p in pods] + [4])
    lines = [" " * width + "  " + " ".join(f"{i:>2}" for i in range(len(pods)))]
    for i, s in enumerate(pods):
        cells = []
        for d in pods:
            cells.append(" ." if s == d else (" ✓" if res.get((s, d)) else " ✗"))
        lines.append(f"{short[s]:<{width}}  " + " ".join(cells) + f"   {i}")
    ok = sum(res.values())
    lines.append(f"{ok}/{len(res)} pairs connected")
    return "\n".join(lines)


def _take_ns(args: list[str]) -> tuple[str, list[str]]:
    ns, rest, i = "default", [], 0
    while i < len(args):
        if args[i] in ("-n", "--namespace") and i + 1 < len(args):
            ns = args[i + 1]
            i += 2
            continue
        rest.append(args[i])
        i += 1
    return ns, rest


def _with_parsed(argv: list[str], fn):
    import argparse
    p = argparse.ArgumentParser(prog="get", add_help=False, exit_on_error=False)
    p.add_argument("kind")
    p.add_argument("name", nargs="?")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-o", "--output", choices=["wide", "yaml", "json"])
    p.add_argument("-l", "--selector")
    try:
        opts = p.parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as exc:
        raise CalinetError(f"usage: {p.format_usage().strip()} ({exc})") from None
    return fn(opts)
