"""`calinet` entry point: parses arguments and dispatches to the verbs in commands.py.

Side effects: those of the verbs. Errors a user can fix print one line and exit 1; bad usage
exits 2 (argparse).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from orchestrator.errors import CalinetError


class _Parser(argparse.ArgumentParser):
    """Verbs take their flags anywhere among their positionals, as kubectl does
    (`get pods -n dev web`): a verb's parser parses intermixed."""
    _inner = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inner or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="calinet", description=(
        "A Mininet testbed of a Kubernetes cluster networked the way Calico does it."))
    p.add_argument("--state-dir", help="state directory of the testbed to talk to "
                   "(default: $CALINET_STATE_DIR, else the only running testbed)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    up = sub.add_parser("up", help="bring a cluster up and open the interactive shell "
                        "(--detach: leave it running in the background)")
    up.add_argument("topology")
    up.add_argument("-f", "--filename", action="append", default=[], help="manifest(s) to apply")
    up.add_argument("--fresh", action="store_true", help="discard the state of a previous run")
    up.add_argument("--no-shell", action="store_true", help="apply, show, tear down (no shell)")
    up.add_argument("-d", "--detach", action="store_true",
                    help="leave the cluster running in a background process and return "
                    "(as `kind create cluster`); use it from any shell, stop it with "
                    "`calinet down`")
    up.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    up.add_argument("--timeout", type=float, default=120, help="seconds to wait for pods")
    up.add_argument("--dns", action=argparse.BooleanOptionalAction, default=True,
                    help="cluster DNS (default on, as in kubeadm/kind clusters): "
                    "kube-system/coredns behind kube-dns (10.96.0.10), commands in pods "
                    "resolve Service names; --no-dns: none")
    up.add_argument("--no-bgp", action="store_true",
                    help="do not start the BGP speakers (pods on other nodes stay unreachable)")

    sub.add_parser("down", help="stop the cluster `calinet up --detach` left running and "
                   "clean up after it (as `kind delete cluster`)")

    g = sub.add_parser("get", help="list objects (kubectl get)")
    g.add_argument("kind")
    g.add_argument("name", nargs="?")
    _ns(g)
    g.add_argument("-A", "--all-namespaces", action="store_true")
    g.add_argument("-o", "--output", choices=["wide", "yaml", "json"])
    g.add_argument("-l", "--selector")

    d = sub.add_parser("describe", help="show one object in detail")
    d.add_argument("kind")
    d.add_argument("name")
    _ns(d)

    a = sub.add_parser("apply", help="create or update objects from manifests")
    a.add_argument("-f", "--filename", action="append", required=True)

    dl = sub.add_parser("delete", help="delete objects")
    dl.add_argument("kind", nargs="?")
    dl.add_argument("names", nargs="*")
    dl.add_argument("-f", "--filename", action="append", default=[])
    _ns(dl)

    lb = sub.add_parser("label", help="set (key=value) or remove (key-) labels")
    lb.add_argument("kind")
    lb.add_argument("name")
    lb.add_argument("labels", nargs="+")
    _ns(lb)

    lg = sub.add_parser("logs", help="container logs of a pod")
    lg.add_argument("pod")
    lg.add_argument("container", nargs="?")
    lg.add_argument("-p", "--previous", action="store_true")
    _ns(lg)

    ex = sub.add_parser("exec", help="run a command in a pod, as its container's processes "
                        "run (network and mount namespace, env, resolv.conf)",
                        usage="calinet exec [-n NS] [-c CONTAINER] POD -- COMMAND [ARG...]",
                        description="Flags go anywhere before `--`; everything after `--` is "
                        "the command, verbatim (as in kubectl exec).")
    ex.add_argument("pod")
    ex.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
    ex.add_argument("-c", "--container", help="container (default: the first)")
    _ns(ex)

    pr = sub.add_parser("probe", help="can SRC connect to DST on PORT[/PROTO]?")
    pr.add_argument("src")
    pr.add_argument("dst")
    pr.add_argument("port")
    pr.add_argument("--timeout", type=float, default=1.0)
    _ns(pr)

    ip = sub.add_parser("ipam", help="IP address management (calicoctl ipam)")
    ipsub = ip.add_subparsers(dest="ipam_verb", required=True)
    show = ipsub.add_parser("show")
    show.add_argument("--show-blocks", action="store_true")
    show.add_argument("--show-borrowed", action="store_true")
    show.add_argument("--show-configuration", action="store_true")
    show.add_argument("--ip")
    ipsub.add_parser("check")

    nd = sub.add_parser("node", help="node commands (calicoctl node status)")
    ndsub = nd.add_subparsers(dest="node_verb", required=True)
    ns_ = ndsub.add_parser("status", help="BGP sessions of a node, in calicoctl's shape")
    ns_.add_argument("node", nargs="?")

    rt = sub.add_parser("routes", help="a node's BGP-programmed routes and where each came "
                        "from, or a fabric router's BIRD tables (calinet routes tor-a)")
    rt.add_argument("node")

    v = sub.add_parser("validate", help="validate manifests without applying them")
    v.add_argument("-f", "--filename", action="append", required=True)

    c = sub.add_parser("clean", help="remove everything calinet created (also after a crash)")
    c.add_argument("--all", action="store_true",
                   help="also testbeds whose owner process is still running")

    sub.add_parser("demo", help="the `make demo` tour: 3 nodes, a web app, pods, probes")

    pc = sub.add_parser("policy", help="network policy tools")
    pcsub = pc.add_subparsers(dest="policy_verb", required=True, metavar="VERB")
    comp = pcsub.add_parser("compile", help="print the iptables-restore and ipset text policies "
                            "compile to on a node (no root)")
    comp.add_argument("-f", "--filename", action="append", required=True)
    comp.add_argument("--node", help="the node to compile for (default: the first with pods)")
    comp.add_argument("--family", type=int, choices=(4, 6), default=4,
                      help="IP family: 4 the iptables dataplane (default), 6 the ip6tables one "
                      "(cali60 sets of the pods' IPv6 addresses)")

    plog = pcsub.add_parser("log", help="packets the policies' Log rules recorded")
    plog.add_argument("node", nargs="?")

    xp = sub.add_parser("explain", help="which policy and rule allow or deny SRC -> DST "
                        "PORT/PROTO, on the egress and the ingress side")
    xp.add_argument("src", help="pod (name in -n, or ns/name) or IPv4 / IPv6 address")
    xp.add_argument("dst", help="pod (name in -n, or ns/name) or IPv4 / IPv6 address")
    xp.add_argument("port", metavar="PORT/PROTO", help="e.g. 80/TCP (protocol default TCP)")
    xp.add_argument("--family", type=int, choices=(4, 6), default=None,
                    help="IP family of the flow between pods: 6 uses their IPv6 addresses and "
                    "the ip6tables rules (default: the family of an address given, else 4 "
                    "when both pods have an IPv4 address, else 6)")
    _ns(xp)

    ro = sub.add_parser("rollout", help="status, undo or history of a Deployment's rollout")
    ro.add_argument("action", choices=["status", "undo", "history"])
    ro.add_argument("target", help="deploy/NAME")
    ro.add_argument("--to-revision", type=int, default=None, help="undo: revision to go back to")
    ro.add_argument("--timeout", type=float, default=300, help="status: seconds to wait")
    ro.add_argument("--no-watch", action="store_true", help="status: print once, do not wait")
    _ns(ro)

    sc = sub.add_parser("scale", help="set the replicas of a deployment, replicaset or "
                        "statefulset (kubectl scale)")
    sc.add_argument("kind", help="KIND, or KIND/NAME")
    sc.add_argument("name", nargs="?")
    sc.add_argument("--replicas", type=int, required=True)
    _ns(sc)

    for verb, text in (("cordon", "mark a node unschedulable"),
                       ("uncordon", "mark a node schedulable again"),
                       ("drain", "cordon a node and evict its pods (DaemonSet pods stay)")):
        nc = sub.add_parser(verb, help=text)
        nc.add_argument("node")
        if verb == "drain":
            nc.add_argument("--timeout", type=float, default=120,
                            help="seconds to wait for the pods to go")

    rn = sub.add_parser("run", help="run an experiment file: steps, measurements, "
                        "results.json and report.html")
    rn.add_argument("experiment")
    rn.add_argument("--out", help="output directory (default: results/<name>-<time>)")

    cf = sub.add_parser("conformance", help="run NetworkPolicy case files (netpol-cases schema) "
                        "on a testbed of their own")
    cf.add_argument("directory")
    cf.add_argument("--json", help="write per-case results (expected and observed) here")
    cf.add_argument("--topology", help="topology file (default: three-node)")
    cf.add_argument("--timeout", type=float, default=0.5,
                    help="seconds a probe waits before calling the pair denied")
    cf.add_argument("-k", help="only cases whose name or file name contains this")
    cf.add_argument("--family", type=int, choices=(4, 6), default=4,
                    help="IP family of the probes and placeholders: 6 probes the pods' IPv6 "
                         "addresses, {{ip ns/pod}} and {{podcidr}} in IPv6 (default topology "
                         "dual-stack)")
    return p


def _ns(p) -> None:
    p.add_argument("-n", "--namespace", default="default")


def parse_args(argv=None) -> argparse.Namespace:
    """argv -> Namespace. For exec, flags go anywhere before the first `--` and everything
    after it is the command verbatim (kubectl's rule), so `exec test -n dev -- sh` works."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = None
    if "--" in argv and "exec" in argv[:argv.index("--")]:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    args = _parser().parse_args(argv)
    if command is not None and args.verb == "exec":
        args.argv = list(args.argv) + command
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except CalinetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _need_root(verb: str) -> None:
    if os.geteuid() != 0:
        raise CalinetError(f"`calinet {verb}` needs root (network namespaces): run it with sudo")


def _dispatch(args) -> int:
    from orchestrator.cli import commands
    from orchestrator.cli.context import open_context

    verb = args.verb
    if verb == "up":
        _need_root(verb)
        from orchestrator.cli.up import run_up
        return run_up(args)
    if verb == "down":
        _need_root(verb)
        from orchestrator.cli.detach import down
        return down(args.state_dir or os.environ.get("CALINET_STATE_DIR"))
    if verb == "demo":
        _need_root(verb)
        from orchestrator.cli.up import run_demo
        return run_demo(args)
    if verb == "run":
        from orchestrator.cli.run_cmd import run_experiment
        return run_experiment(args)
    if verb == "conformance":
        _need_root(verb)
        from orchestrator.cli.conformance_cmd import run_conformance
        return run_conformance(args)
    if verb == "validate":
        print(commands.validate(args.filename))
        return 0
    if verb == "clean":
        _need_root(verb)
        from orchestrator.host.cleanup import clean_all
        reports = clean_all(include_live=args.all)
        for r in reports:
            print(r.summary())
        if not reports:
            print("nothing to clean")
        return 0
    if verb == "policy" and args.policy_verb == "log":
        from orchestrator.cli.policy_cmd import log_text
        print(log_text(open_context(args.state_dir), args.node), end="")
        return 0
    if verb == "policy":
        from orchestrator.cli.policy_cmd import compile_text
        try:
            pctx = open_context(args.state_dir)
        except CalinetError:
            pctx = None      # no testbed: the conformance model
        print(compile_text(args.filename, node=args.node, ctx=pctx, family=args.family),
              end="")
        return 0
    ctx = open_context(args.state_dir)
    if verb == "explain":
        from orchestrator.cli.policy_cmd import explain_text
        print(explain_text(ctx, args.src, args.dst, args.port, args.namespace,
                           family=args.family))
        return 0
    if verb == "get":
        print(commands.get(ctx, args.kind, args.name, namespace=args.namespace,
                           all_namespaces=args.all_namespaces, output=args.output,
                           selector=args.selector))
    elif verb == "describe":
        print(commands.describe(ctx, args.kind, args.name, namespace=args.namespace))
    elif verb == "apply":
        print(commands.apply(ctx, args.filename))
    elif verb == "delete":
        print(commands.delete(ctx, args.kind, args.names, namespace=args.namespace,
                              files=args.filename))
    elif verb == "label":
        print(commands.label(ctx, args.kind, args.name, args.labels, namespace=args.namespace))
    elif verb == "logs":
        sys.stdout.write(commands.logs(ctx, args.pod, args.container, namespace=args.namespace,
                                       previous=args.previous))
    elif verb == "exec":
        _need_root(verb)
        r = commands.exec_(ctx, args.pod, args.argv, namespace=args.namespace,
                           container=args.container)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        return r.returncode
    elif verb == "probe":
        _need_root(verb)
        print(commands.probe_(ctx, args.src, args.dst, args.port, namespace=args.namespace,
                              timeout=args.timeout))
    elif verb in ("rollout", "scale"):
        from orchestrator.cli import workloads_cmd as wl
        if verb == "scale":
            print(wl.scale(ctx, args.kind, args.name, args.replicas, namespace=args.namespace))
        elif args.action == "status":
            return wl.rollout_status(ctx, args.target, namespace=args.namespace,
                                     timeout=args.timeout, watch=not args.no_watch)
        elif args.action == "undo":
            print(wl.rollout_undo(ctx, args.target, namespace=args.namespace,
                                  to_revision=args.to_revision))
        else:
            print(wl.rollout_history(ctx, args.target, namespace=args.namespace), end="")
    elif verb in ("cordon", "uncordon", "drain"):
        from orchestrator.cli import nodes_cmd
        if verb == "drain":
            return nodes_cmd.drain(ctx, args.node, timeout=args.timeout)
        print(getattr(nodes_cmd, verb)(ctx, args.node))
    elif verb == "node":
        print(commands.node_status(ctx, args.node))
    elif verb == "routes":
        print(commands.routes(ctx, args.node))
    elif verb == "ipam":
        if args.ipam_verb == "check":
            text, problems = commands.ipam_check(ctx)
            print(text)
            return 1 if problems else 0
        print(commands.ipam_show(ctx, show_blocks=args.show_blocks,
                                 show_borrowed=args.show_borrowed,
                                 show_config=args.show_configuration, ip=args.ip))
    return 0


if __name__ == "__main__":
    sys.exit(main())
