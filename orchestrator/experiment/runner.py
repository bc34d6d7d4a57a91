"""Run an experiment: bring the testbed up, do the steps, check expectations, write results.

Side effects: a Testbed (its own temporary state dir), the steps' effects, a BGP watcher
thread reading the speakers' status files, and in the output directory: results.json,
report.html (when the report renderer is available) and pcaps/. The testbed is torn down
whatever happens (a failed step, an exception, Ctrl-C); faults the experiment injected are
undone first. Expectations that do not hold fail the run, not the step: every step still runs,
so one report shows everything.
"""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import threading
import time
from datetime import datetime, timezone

from orchestrator.errors import CalinetError
from orchestrator.experiment import steps as S
from orchestrator.experiment.schema import FAMILY_NAMES, MATRIX_KEY, OPS, TRAFFIC_STEPS, Experiment

_COMPARE = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
assert set(_COMPARE) == set(OPS)


def _lookup(measurements: dict, dotted: str):
    cur = measurements
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(dotted)
        cur = cur[part]
    return cur


def check_expect(step, measurements: dict) -> list[dict]:
    """Each expectation of a step as {step, expr, ok, actual, expected, message}."""
    out = []
    for key, cond in (step.expect or {}).items():
        if step.type == "probe-matrix":
            out += _check_matrices(step, measurements, key, cond)
            continue
        for op, want in cond.items():
            expr = f"{key} {op} {want}"
            try:
                have = _lookup(measurements, key)
                ok = bool(_COMPARE[op](have, want))
                msg = "" if ok else f"{key} is {have}"
            except KeyError:
                have, ok, msg = None, False, f"no measurement {key!r} in this step"
            except TypeError:
                ok, msg = False, f"{key} is {have!r}: cannot compare with {want!r}"
            out.append({"step": step.index, "name": step.name, "expr": expr, "ok": ok,
                        "actual": have, "expected": want, "message": msg})
    return out


def _check_matrices(step, measurements: dict, key: str, cond) -> list[dict]:
    """One assertion per matrix the key names: "TCP/80" holds in every family the step
    probed (one assertion each), "IPv6 TCP/80" in that family's matrix only."""
    fam_name, proto, port = MATRIX_KEY.match(key).groups()
    fam = int(fam_name[-1]) if fam_name else None
    found = [m for m in measurements.get("matrices", [])
             if m["protocol"] == proto and m["port"] == int(port)
             and (fam is None or m.get("family") == fam)]
    if not found:
        return [{"step": step.index, "name": step.name, "family": fam,
                 "expr": f"matrix {key} {_cond_word(cond)}", "ok": False, "actual": None,
                 "expected": cond, "message": f"the step did not probe {key}"}]
    return [_check_matrix(step, m, cond) for m in found]


def _cond_word(cond) -> str:
    return cond if isinstance(cond, str) else next(iter(cond))


def _check_matrix(step, m: dict, cond) -> dict:
    fam = m.get("family")
    what = f"{m['protocol']}/{m['port']}"
    if fam in FAMILY_NAMES:
        what = f"{FAMILY_NAMES[fam]} {what}"
    expr = f"matrix {what} {_cond_word(cond)}"
    pods = m["pods"]
    have = {(s, d): m["allowed"][i][j] for i, s in enumerate(pods) for j, d in enumerate(pods)
            if s != d}
    if cond == "all-allowed":
        want = {k: True for k in have}
    elif cond == "all-denied":
        want = {k: False for k in have}
    else:
        kind, pairs = next(iter(cond.items()))
        listed = {tuple(p.split(" -> ")) for p in pairs}
        unknown = sorted(p for p in listed if p not in have)
        if unknown:
            return {"step": step.index, "name": step.name, "family": fam, "expr": expr,
                    "ok": False, "actual": None, "expected": cond,
                    "message": f"pairs not probed: {', '.join(' -> '.join(p) for p in unknown)}"}
        want = {k: ((k in listed) == (kind == "allowed")) for k in have}
    diff = sorted(k for k in have if have[k] != want[k])
    return {"step": step.index, "name": step.name, "family": fam, "expr": expr, "ok": not diff,
            "actual": {"denied": [f"{s} -> {d}" for (s, d), ok in sorted(have.items())
                                  if not ok]},
            "expected": cond,
            "message": "" if not diff else f"{len(diff)} pair(s) differ: " + ", ".join(
                f"{s} -> {d} ({'allowed' if have[(s, d)] else 'denied'})"
                for s, d in diff[:10])}


class BGPWatcher:
    """Samples every node's BGP status (peers up, routes) every 100 ms; records changes."""

    def __init__(self, tb, t0: float):
        self.tb, self.t0 = tb, t0
        self.events: list[dict] = []
        self._last: dict[str, tuple] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="calinet-bgp-watch", daemon=True)

    def start(self):
        if self.tb.routing is not None:
            self._sample()
            self._thread.start()
        return self

    def mark(self, node: str, text: str) -> None:
        self.events.append({"t": round(time.monotonic() - self.t0, 3), "node": node,
                            "event": text, "kind": "fault"})

    def _sample(self) -> None:
        t = round(time.monotonic() - self.t0, 3)
        for node in self.tb.nodes():
            st = self.tb.routing.status(node) or {}
            up = frozenset(p["ip"] for p in st.get("peers", []) if p.get("state") == "up")
            routes = sum(1 for r in st.get("routes", []) if r.get("type") == "unicast")
            old = self._last.get(node)
            if old is not None:
                for ip in sorted(old[0] - up):
                    self.events.append({"t": t, "node": node, "event": f"peer {ip} down",
                                        "kind": "peer-down"})
                for ip in sorted(up - old[0]):
                    self.events.append({"t": t, "node": node, "event": f"peer {ip} up",
                                        "kind": "peer-up"})
            if old is None or old[1] != routes:
                self.events.append({"t": t, "node": node, "event": f"routes: {routes}",
                                    "kind": "routes", "routes": routes})
            self._last[node] = (up, routes)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self._sample()
            except Exception:  # noqa: BLE001 - a status file mid-write: next sample
                pass

    def stop(self) -> list[dict]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        return sorted(self.events, key=lambda e: e["t"])


def versions() -> dict:
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=5).stdout.strip()
        except OSError:
            return None
    out = {"python": platform.python_version(), "kernel": platform.release()}
    try:
        from importlib.metadata import version
        out["calinet"] = version("calinet")
    except Exception:  # noqa: BLE001
        out["calinet"] = "dev"
    for pkg in ("exabgp", "scapy", "mininet"):
        try:
            from importlib.metadata import version
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            out[pkg] = None
    ipt = cmd(["iptables", "--version"])
    out["iptables"] = ipt.replace("iptables ", "") if ipt else None
    return out


def topology_summary(tb) -> dict:
    spec = tb.spec
    out = {"name": spec.name, "underlay": spec.underlay.cidr,
           "ipFamilies": [FAMILY_NAMES[f] for f in spec.families],
           "nodes": [{"name": n.name, "ip": tb.node_ip(n.name), "rack": n.rack,
                      "role": n.role, "labels": dict(n.labels)} for n in spec.nodes],
           "racks": [{"name": r.name, "nodes": list(r.nodes), "subnet": r.subnet, "tor": r.tor}
                     for r in spec.racks]}
    if spec.underlay.cidr6:
        out["underlay6"] = spec.underlay.cidr6
        for node, n in zip(out["nodes"], spec.nodes):
            node["ip6"] = n.ip6
    if spec.fabric is not None:
        out["fabric"] = {
            "routers": [{"name": r.name, "role": r.role, "asNumber": r.asNumber,
                         "rack": r.rack} for r in spec.fabric.routers],
            "links": [{"a": ln.a, "b": ln.b, "wan": ln.wan, "bandwidth": ln.bandwidth,
                       "delay": ln.delay} for ln in spec.fabric.links],
            "sites": [{"name": s, "spines": list(sp)} for s, sp in spec.fabric.sites]}
    if spec.external is not None:
        out["external"] = {"name": spec.external.name, "ip": spec.external.ip,
                           "attach": spec.external.attach}
    if tb.store is not None:
        out["pools"] = [{"name": p["metadata"]["name"], "cidr": p["spec"]["cidr"],
                         "vxlanMode": p["spec"].get("vxlanMode") or "Never",
                         "ipipMode": p["spec"].get("ipipMode") or "Never",
                         "natOutgoing": bool(p["spec"].get("natOutgoing"))}
                        for p in tb.store.list("IPPool")]
    return out


def pods_summary(tb) -> list[dict]:
    out = []
    for key in tb.pods():
        pod = tb.get("Pod", key)
        st = pod.get("status") or {}
        out.append({"key": key, "node": pod["spec"].get("nodeName"),
                    "ip": st.get("podIP"),
                    "ips": [a["ip"] for a in st.get("podIPs") or [] if a.get("ip")],
                    "labels": pod["metadata"].get("labels") or {},
                    "phase": (pod.get("status") or {}).get("phase")})
    return out


def run(exp: Experiment, out_dir: str, *, on_step=None, on_progress=None) -> dict:
    """Run ``exp``; returns the results dict (also written to out_dir/results.json)."""
    from orchestrator.testbed import Testbed
    os.makedirs(out_dir, exist_ok=True)
    say = on_progress or (lambda msg: None)
    t0 = time.monotonic()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    results: dict = {"format": 1,
                     "experiment": {"name": exp.name, "path": exp.path,
                                    "description": exp.description, "seed": exp.seed,
                                    "family": exp.family},
                     "versions": versions(), "host": {"notes": []}, "started": started,
                     "steps": [], "assertions": [], "bgp_timeline": [], "pcaps": [],
                     "passed": False, "error": None}
    tb = Testbed(exp.topology, bgp=exp.bgp, manifests=exp.manifests, progress=say, dns=exp.dns)
    ctx = watcher = None
    try:
        tb.start()
        results["testbed"] = tb.id
        results["topology"] = topology_summary(tb)
        ctx = S.Context(tb, random.Random(exp.seed), out_dir, t0)
        watcher = BGPWatcher(tb, t0).start()
        for step in exp.steps:
            if on_step:
                on_step(step, "start")
            rec = {"index": step.index, "type": step.type, "name": step.name,
                   "t": round(time.monotonic() - t0, 3), "params": _jsonable(step.raw.get(
                       step.type)), "ok": True, "error": None, "measurements": {}}
            if step.type in TRAFFIC_STEPS:   # also when the step fails: the report says which
                rec["families"] = step.params.get("families") or [step.params["family"]]
            st = time.monotonic()
            try:
                if step.type in ("fail-node", "restore-node", "link-down", "link-up",
                                 "kill-speaker") and watcher:
                    watcher.mark(step.params["node"], step.type)
                rec["measurements"] = S.EXECUTORS[step.type](ctx, step.params)
            except (CalinetError, OSError) as exc:
                rec["ok"], rec["error"] = False, f"{type(exc).__name__}: {exc}"
            rec["seconds"] = round(time.monotonic() - st, 4)
            checks = check_expect(step, rec["measurements"]) if rec["ok"] else [
                {"step": step.index, "name": step.name, "expr": f"step {step.type} runs",
                 "ok": False, "actual": None, "expected": None, "message": rec["error"]}]
            results["assertions"] += checks
            results["steps"].append(rec)
            if on_step:
                on_step(step, "ok" if rec["ok"] and all(c["ok"] for c in checks) else "failed",
                        rec, checks)
        results["pcaps"] = S.finish_captures(ctx)
        results["pods"] = pods_summary(tb)
    except KeyboardInterrupt:
        results["error"] = "interrupted (Ctrl-C): torn down"
        raise
    except CalinetError as exc:
        results["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if ctx is not None:
            if ctx.captures:
                results["pcaps"] = S.finish_captures(ctx, wait=False)
            S.undo_faults(ctx)
            results["host"]["notes"] = ctx.notes
        if watcher is not None:
            results["bgp_timeline"] = watcher.stop()
        try:
            tb.stop()
        finally:
            results["seconds"] = round(time.monotonic() - t0, 3)
            results["passed"] = results["error"] is None and all(
                a["ok"] for a in results["assertions"]) and all(
                s["ok"] for s in results["steps"])
            write_outputs(results, out_dir)
    return results


def write_outputs(results: dict, out_dir: str) -> None:
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    try:
        from orchestrator.report.html import render
    except ImportError:
        return
    with open(os.path.join(out_dir, "report.html"), "w") as f:
        f.write(render(results))


def _jsonable(v):
    return json.loads(json.dumps(v, default=str))
