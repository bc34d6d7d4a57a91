"""Conformance corpus benchmark: the project's cases in IPv6 against IPv4, side by side.

Side effects (root): real Mininet testbeds (pods, ExaBGP, iptables and ip6tables), removed
before exit.

1. One dual-stack testbed (topologies/examples/dual-stack.yaml) and one x/y/z model; each case
   of conformance/cases runs in IPv4 and in IPv6 right after each other, the order alternating
   from case to case, ``--rounds`` times. Per family: the corpus total, and the total without
   SCTP probes (IPv6 skips them, the prober refuses SCTP over IPv6: the like-for-like figure),
   the median per-case ratio, and the per-probe matrix p50 by protocol. Issue 15's goal: the
   IPv6 corpus within 1.2x of IPv4.
2. Unless --no-ipv4-cluster: the corpus as `calinet conformance` runs it by default (IPv4 on
   the IPv4-only three-node example), against the IPv6 run of (1).
Every case must pass (or be skipped, in IPv6) in every run; a failure is printed and makes the
exit code 1.
Usage: sudo .venv/bin/python bench/conformance_ipv6.py [--rounds 1] [-k TEXT] [--timeout 0.5]
       [--no-ipv4-cluster] [--json OUT]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json  # noqa: E402

from orchestrator.testbed import Testbed  # noqa: E402
from orchestrator.traffic.conformance import Runner  # noqa: E402
from policy.cases import load_dir  # noqa: E402

EXAMPLES = REPO / "topologies" / "examples"
CORPUS = REPO / "conformance" / "cases"


def case_row(res) -> dict:
    outs = res.outcomes
    sctp = sum(o.seconds for o in outs if o.key.startswith("SCTP/"))
    return {"case": res.case.name, "family": res.family, "seconds": res.seconds,
            "sctp_probe_seconds": sctp, "seconds_without_sctp": res.seconds - sctp,
            "passed": res.passed, "skipped": res.skipped, "error": res.error,
            "probes": [(o.key, o.seconds, bool(o.skipped)) for o in outs],
            "mismatches": [o.key for o in outs if o.mismatches]}


def bad(row: dict) -> bool:
    return not row["passed"] and not row["skipped"]


def interleaved(cases, rounds: int, timeout: float) -> dict[int, list[dict]]:
    """Both families on one dual-stack testbed, case by case, alternating which goes first."""
    rows: dict[int, list[dict]] = {4: [], 6: []}
    with Testbed(str(EXAMPLES / "dual-stack.yaml"), keep_state=False) as tb:
        runners = {f: Runner(tb, timeout=timeout, family=f) for f in (4, 6)}
        for r in runners.values():
            r.setup()           # the second finds the nine pods built
        spread = sorted({tb.pod_node(k) for k in runners[6].ips})
        print(f"dual-stack testbed: x/y/z pods on {', '.join(spread)}; IPv6 {{{{podcidr}}}} "
              f"{runners[6].podcidr}, IPv4 {runners[4].podcidr}", flush=True)
        for rnd in range(rounds):
            t = {4: 0.0, 6: 0.0}
            for i, case in enumerate(cases):
                for f in ((4, 6) if (i + rnd) % 2 == 0 else (6, 4)):
                    row = case_row(runners[f].run_case(case))
                    row["round"] = rnd
                    rows[f].append(row)
                    t[f] += row["seconds"]
                    if bad(row):
                        print(f"  FAIL IPv{f} {case.name}: {row['error'] or row['mismatches']}",
                              flush=True)
            print(f"round {rnd + 1}/{rounds}: IPv4 {t[4]:.1f}s, IPv6 {t[6]:.1f}s", flush=True)
    return rows


def ipv4_cluster(cases, timeout: float) -> list[dict]:
    """The corpus as `calinet conformance` runs it by default: IPv4 on three-node.yaml."""
    rows = []
    with Testbed(str(EXAMPLES / "three-node.yaml"), keep_state=False) as tb:
        runner = Runner(tb, timeout=timeout, family=4)
        runner.setup()
        for case in cases:
            row = case_row(runner.run_case(case))
            rows.append(row)
            if bad(row):
                print(f"  FAIL IPv4-only {case.name}: {row['error'] or row['mismatches']}",
                      flush=True)
    return rows


def compact(result: dict) -> dict:
    """The JSON file: the summaries, per-round totals, each case's median IPv6 / IPv4 ratio
    (like for like) and the failed runs; not every probe's time."""
    rows = result["rows"]
    totals = {f"ipv{f}": [round(sum(r["seconds"] for r in rs if r["round"] == n), 2)
                          for n in range(result["rounds"])] for f, rs in rows.items()}
    failures = [{k: r[k] for k in ("case", "family", "round", "error", "mismatches")}
                for rs in rows.values() for r in rs if bad(r)]
    out = {k: v for k, v in result.items() if k not in ("rows", "per_case")}
    out.update(round_totals_s=totals, failures=failures,
               per_case_ratio={c: round(statistics.median(x), 3) if x else None
                               for c, x in result["per_case"].items()})
    return out


def summary(rows: list[dict], rounds: int) -> dict:
    total = sum(r["seconds"] for r in rows) / rounds
    like = sum(r["seconds_without_sctp"] for r in rows) / rounds
    per_proto = {}
    for proto in ("TCP", "UDP", "SCTP"):
        secs = [s for r in rows for key, s, skipped in r["probes"]
                if key.startswith(proto + "/") and not skipped]
        if secs:
            per_proto[proto] = {"probes": len(secs), "p50_s": statistics.median(secs)}
    return {"cases": len(rows) // rounds, "total_s": total, "total_without_sctp_s": like,
            "passed": sum(r["passed"] for r in rows), "skipped": sum(r["skipped"] for r in rows),
            "failed": sum(bad(r) for r in rows), "matrix_p50_by_protocol": per_proto}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1,
                    help="times the corpus runs in each family on the dual-stack testbed")
    ap.add_argument("-k", help="only cases whose name contains this")
    ap.add_argument("--timeout", type=float, default=0.5,
                    help="seconds a probe waits before calling the pair denied")
    ap.add_argument("--no-ipv4-cluster", action="store_true",
                    help="skip part 2 (the corpus on the IPv4-only three-node testbed)")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/conformance_ipv6.py needs root (sudo make bench)")
        return 2
    cases = [c for c in load_dir(CORPUS) if not args.k or args.k in c.name]
    if not cases or args.rounds < 1:
        print("no case to run (check -k and --rounds)")
        return 2
    t0 = time.monotonic()
    rows = interleaved(cases, args.rounds, args.timeout)
    s4, s6 = summary(rows[4], args.rounds), summary(rows[6], args.rounds)
    per_case = {}
    for r4, r6 in zip(rows[4], rows[6]):
        per_case.setdefault(r4["case"], []).append(
            r6["seconds_without_sctp"] / r4["seconds_without_sctp"]
            if r4["seconds_without_sctp"] > 0 else None)
    per_case = {c: [x for x in xs if x is not None] for c, xs in per_case.items()}
    ratios = [x for xs in per_case.values() for x in xs]
    result = {"rounds": args.rounds, "timeout_s": args.timeout, "ipv4_dual_stack": s4,
              "ipv6_dual_stack": s6,
              "ratio_like_for_like": s6["total_without_sctp_s"] / s4["total_without_sctp_s"],
              "ratio_as_run": s6["total_s"] / s4["total_s"],
              "per_case_ratio_median": statistics.median(ratios), "rows": rows,
              "per_case": per_case}
    print(f"corpus of {s4['cases']} cases, {args.rounds} round(s), one dual-stack testbed, "
          f"the families interleaved case by case:")
    for f, s in ((4, s4), (6, s6)):
        p = ", ".join(f"{k} p50 {v['p50_s'] * 1000:.0f} ms x{v['probes']}"
                      for k, v in s["matrix_p50_by_protocol"].items())
        print(f"  IPv{f}: {s['total_s']:.1f}s per corpus ({s['total_without_sctp_s']:.1f}s "
              f"without SCTP probes); passed {s['passed']}, skipped {s['skipped']}, failed "
              f"{s['failed']}; matrices: {p}")
    print(f"  IPv6 / IPv4: {result['ratio_like_for_like']:.3f}x like for like (SCTP probes "
          f"left out of both; goal within 1.2x), {result['ratio_as_run']:.3f}x as run (IPv4 "
          f"also probes SCTP), per-case median {result['per_case_ratio_median']:.3f}x",
          flush=True)
    failed = s4["failed"] + s6["failed"]
    if not args.no_ipv4_cluster:
        only4 = summary(ipv4_cluster(cases, args.timeout), 1)
        result["ipv4_only_cluster"] = only4
        result["ratio_ipv6_vs_ipv4_only_cluster"] = s6["total_s"] / only4["total_s"]
        result["ratio_ipv6_vs_ipv4_only_cluster_like_for_like"] = (
            s6["total_without_sctp_s"] / only4["total_without_sctp_s"])
        failed += only4["failed"]
        print(f"  `calinet conformance` default (IPv4 on three-node): {only4['total_s']:.1f}s "
              f"({only4['total_without_sctp_s']:.1f}s without SCTP probes); `--family 6` "
              f"(dual-stack) / that: {result['ratio_ipv6_vs_ipv4_only_cluster']:.3f}x as run, "
              f"{result['ratio_ipv6_vs_ipv4_only_cluster_like_for_like']:.3f}x like for like",
              flush=True)
    result["wall_s"] = time.monotonic() - t0
    write_json(args.json, compact(result))
    if failed:
        print(f"{failed} case run(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
