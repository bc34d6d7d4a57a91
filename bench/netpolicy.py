"""Network policy benchmark: compile + apply per node, new pod -> rules, throughput, one run.

Side effects (root): throwaway network namespaces `calinet-bench-<hex>` (deleted in a finally)
and one live 3-node Testbed (Mininet, pods, ExaBGP), removed at exit.

1. Per node, for {100, 1000} pods x {50, 200} Kubernetes NetworkPolicies (10 namespaces,
   labels app=<20>, tier=<3>; 1/10 of the pods on the measured node, the rest on 9 remote
   nodes where they only feed ipsets): compile time, first apply into an empty netns, a no-op
   re-apply (cached, and with a fresh applier that re-reads the kernel), rule and ipset member
   counts. Baselines: the 1 s goal, and `iptables-restore` + `ipset restore` of the very text
   the apply wrote, into a second empty netns. Then 1000 pods with the *same* 10 local pods as
   the 100-pod case: the rule count must not change.
2. New pod -> its `cali-tw-<iface>` chain in its node's iptables-save, and podIP -> chain (the
   Felix part), p50/p95, with ~20 policies against none (same testbed, same run); apply ->
   the agent's commit of the pod's rules with none, 20 and 200 policies, and with 200 again
   with the iptables half of each write forked instead of through the restore session.
3. iperf3 between pods on two nodes with 200 policies selecting both pods against none.
Usage: sudo .venv/bin/python bench/netpolicy.py [--pods 100,1000] [--policies 50,200]
       [--trials 20] [--reps 4] [--seconds 3] [--offline] [--profile] [--json OUT]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import write_json  # noqa: E402
from orchestrator import api  # noqa: E402
from orchestrator.control.store import now_rfc3339  # noqa: E402
from orchestrator.host import naming  # noqa: E402
from orchestrator.host.runner import DEFAULT  # noqa: E402
from orchestrator.node.firewall import Firewall  # noqa: E402
from policy import compiler, names, render, selector  # noqa: E402
from policy.model import from_object  # noqa: E402

NS, APPS, TIERS, TEAMS = 10, 20, ("web", "api", "db"), ("a", "b", "c")
NODE = "node-0"
TOPOLOGY = REPO / "topologies" / "examples" / "three-node.yaml"
# Named ports differ in number between tiers, so the named-port ipsets carry real mappings.
TIER_PORTS = {"web": [("http", "tcp", 8080), ("metrics", "tcp", 9090)],
              "api": [("http", "tcp", 8000), ("grpc", "tcp", 9000), ("metrics", "tcp", 9091)],
              "db": [("db", "tcp", 5432), ("metrics", "tcp", 9187)]}


# -- the synthetic cluster --------------------------------------------------------------

def namespace_objs() -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": f"bench-{i}", "labels": {"team": TEAMS[i % 3], "env": "prod" if i < 5 else "dev"}}}
        for i in range(NS)]


def pod_specs(count: int) -> list[tuple[str, str, dict, list]]:
    """(namespace, name, labels, ports) of pod 0..count-1. One seeded stream, so the first
    100 pods of the 1000-pod cluster are the 100-pod cluster."""
    rnd = random.Random(1)
    out = []
    for i in range(count):
        tier = rnd.choice(TIERS)
        out.append((f"bench-{i % NS}", f"pod-{i}", {"app": f"app-{rnd.randrange(APPS)}",
                                                   "tier": tier}, TIER_PORTS[tier]))
    return out


def endpoints(count: int, local: int) -> list:
    """Pods 0..local-1 on NODE (they cover all 10 namespaces), the rest on node-1..9."""
    return [compiler.endpoint(ns, name, NODE if i < local else f"node-{1 + i % 9}",
                              naming.veth_name(ns, name), f"10.244.{i // 250}.{i % 250 + 1}",
                              labels, ports)
            for i, (ns, name, labels, ports) in enumerate(pod_specs(count))]


def netpol(j: int) -> dict:
    """Policy j: a mix of matchLabels / matchExpressions / {} pod selectors, namespace
    selectors, ipBlocks with except, numeric, ranged and named ports, ingress and egress."""
    pod_selectors = [{"matchLabels": {"app": f"app-{(3 * j) % APPS}"}},
                     {"matchExpressions": [{"key": "tier", "operator": "In",
                                            "values": ["web", "api"]}]},
                     {"matchLabels": {"tier": TIERS[j % 3]}, "matchExpressions": [
                         {"key": "app", "operator": "NotIn", "values": ["app-1", "app-2"]}]},
                     {}]
    peers = [
        ([{"podSelector": {"matchLabels": {"tier": "web"}}}], [{"port": "http"}]),
        ([{"namespaceSelector": {"matchLabels": {"team": TEAMS[j % 3]}}}],
         [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 9090}]),
        ([{"namespaceSelector": {"matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod"]}]},
          "podSelector": {"matchLabels": {"app": f"app-{j % APPS}"}}}], [{"port": "metrics"}]),
        ([{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.128.0/17"]}}],
         [{"protocol": "TCP", "port": 5432}]),
        ([{"podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}}],
         [{"protocol": "TCP", "port": 8000, "endPort": 8100}]),
    ]
    frm, ports = peers[(j // 4) % len(peers)]
    spec: dict = {"podSelector": pod_selectors[j % 4]}
    types = [["Ingress"], ["Ingress", "Egress"], ["Egress"]][j % 3]
    spec["policyTypes"] = types
    if "Ingress" in types:
        spec["ingress"] = [{"from": frm, "ports": ports}]
    if "Egress" in types:
        spec["egress"] = [
            {"to": [{"podSelector": {"matchLabels": {"tier": "db"}}}], "ports": [{"port": "db"}]},
            {"to": [{"namespaceSelector": {}}],
             "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}],
             "ports": [{"protocol": "TCP", "port": 443}]}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"np-{j:03d}", "namespace": f"bench-{j % NS}"}, "spec": spec}


def policies(count: int) -> list:
    """Validated and defaulted as `apply` does, then converted as the policy agent does."""
    return [from_object(o) for o in api.normalize_all([netpol(j) for j in range(count)],
                                                      now=now_rfc3339())]


# -- 1. compile + apply on one node -----------------------------------------------------

def cold_caches() -> None:
    # Selector parses and matches are memoised process-wide; clear them so each case is
    # timed as the agent's first pass after start, not warmed by the previous case.
    compiler._matches.cache_clear()
    compiler._network.cache_clear()
    render._chain_hashes.cache_clear()
    selector.parse.cache_clear()


def netns_add() -> str:
    name = f"calinet-bench-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    return name


def kernel_rules(netns: str) -> int:
    out = "".join(DEFAULT.run(["iptables-save", "-t", t], netns=netns).stdout
                  for t in ("filter", "raw"))
    return sum(1 for line in out.splitlines() if line.startswith("-A cali-"))


def one_node(pods: int, npol: int, local: int, pols: list, nss: dict) -> dict:
    eps = endpoints(pods, local)
    cold_caches()
    t = time.perf_counter()
    dp = compiler.compile_node(NODE, eps, nss, pols)
    compile_s = time.perf_counter() - t
    made = []
    try:
        made.append(netns_add())
        fw = Firewall(NODE, None, netns=made[0])
        t = time.perf_counter()
        written = fw.apply(dp)      # reads the (empty) kernel state first, as a new agent does
        apply_s = time.perf_counter() - t
        t = time.perf_counter()
        again = fw.apply(dp)
        noop_cached_s = time.perf_counter() - t
        t = time.perf_counter()
        reread = Firewall(NODE, None, netns=made[0]).apply(dp)
        noop_reread_s = time.perf_counter() - t
        in_kernel = kernel_rules(made[0])
        # Baseline: the kernel tools loading exactly that text, nothing read, nothing diffed.
        made.append(netns_add())
        t = time.perf_counter()
        for argv, text in ((["ipset", "restore", "-exist"], written.ipset_pre),
                           (["iptables-restore", "--noflush", "-w"], written.iptables),
                           (["ipset", "restore", "-exist"], written.ipset_post)):
            if text:
                DEFAULT.run(argv, netns=made[1], input=text)
        raw_s = time.perf_counter() - t
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return {"pods": pods, "local_pods": local, "policies": npol, "compile_s": compile_s,
            "first_apply_s": apply_s, "total_s": compile_s + apply_s, "raw_restore_s": raw_s,
            "noop_cached_s": noop_cached_s, "noop_reread_s": noop_reread_s,
            "noop_wrote": again.changed or reread.changed, "rules": dp.rule_count(),
            "kernel_rules": in_kernel, "ipsets": len(dp.ipsets),
            "ipset_members": sum(len(s.members) for s in dp.ipsets.values()),
            "chains": sum(len(c) for c in dp.chains.values())}


def profile_compile(pods: int, local: int, pols: list, nss: dict, top: int = 15) -> list[str]:
    eps = endpoints(pods, local)
    cold_caches()
    prof = cProfile.Profile()
    prof.runcall(compiler.compile_node, NODE, eps, nss, pols)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return [line for line in buf.getvalue().splitlines() if line.strip()][-top - 1:]


def offline(pod_sizes, pol_sizes, profile: bool) -> dict:
    nss = {o["metadata"]["name"]: o["metadata"]["labels"] for o in namespace_objs()}
    rows, held, prof = [], [], None
    for npol in pol_sizes:
        pols = policies(npol)
        for pods in pod_sizes:
            r = one_node(pods, npol, max(1, pods // 10), pols, nss)
            rows.append(r)
            print(f"{pods:>5} pods ({r['local_pods']:>3} local) x {npol:>3} policies: compile "
                  f"{r['compile_s'] * 1000:7.1f} ms + first apply {r['first_apply_s'] * 1000:6.1f}"
                  f" ms = {r['total_s'] * 1000:7.1f} ms ({r['total_s']:.2f} x the 1 s goal) | "
                  f"raw restore of the same text {r['raw_restore_s'] * 1000:6.1f} ms (apply = "
                  f"{r['first_apply_s'] / r['raw_restore_s']:.2f} x raw) | no-op re-apply "
                  f"{r['noop_cached_s'] * 1000:.2f} ms cached, {r['noop_reread_s'] * 1000:.1f}"
                  f" ms re-reading the kernel (wrote: {r['noop_wrote']}) | rules {r['rules']} "
                  f"(kernel {r['kernel_rules']}), {r['ipsets']} ipsets, "
                  f"{r['ipset_members']} members", flush=True)
        # Rule count against pod count: the same 10 local pods, 10x the remote ones.
        small, big = min(pod_sizes), max(pod_sizes)
        same = max(1, small // 10)
        a = next(r for r in rows if r["pods"] == small and r["policies"] == npol)
        b = one_node(big, npol, same, pols, nss)
        held.append({"policies": npol, "local_pods": same, "pods_small": small,
                     "pods_big": big, "rules_small": a["rules"], "rules_big": b["rules"],
                     "members_small": a["ipset_members"], "members_big": b["ipset_members"],
                     "equal": a["rules"] == b["rules"]})
        print(f"      rule count, {npol} policies, the same {same} local pods (pods 0..{same - 1}"
              f" of one seeded stream): {small} pods {a['rules']} vs {big} pods {b['rules']} "
              f"(ratio {b['rules'] / a['rules']:.2f}, {'equal' if held[-1]['equal'] else 'DIFFER'}"
              f"); ipset members {a['ipset_members']} vs {b['ipset_members']}", flush=True)
        if npol == max(pol_sizes):      # always in the JSON; printed with --profile
            prof = profile_compile(big, max(1, big // 10), pols, nss)
            if profile:
                print("\n".join(["      cProfile of the largest compile (own time):"] + prof))
    return {"per_node": rows, "rules_vs_pods": held, "compile_profile": prof}


# -- 2 + 3. live testbed ----------------------------------------------------------------

def pod_obj(ns: str, name: str, labels: dict, ports, image: str = "agnhost",
            node: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": image, "ports": [
        {"name": n, "containerPort": p, "protocol": proto.upper()} for n, proto, p in ports]}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "spec": spec,
            "metadata": {"name": name, "namespace": ns, "labels": labels}}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[int(q * (len(s) - 1))]


def new_pod_enforced(tb, trials: int, tag: str) -> dict:
    """Apply pods one at a time; time apply -> the agent's commit of the rules that include
    the pod (PolicyAgent.enforced_at: iptables-restore on its node returned). Nothing polls
    the kernel meanwhile, so the measurement costs no CPU the pipeline needs; the pod's
    cali-tw chain is then checked in iptables-save (the commit is real)."""
    out, phases = [], []
    for i, (ns, _name, labels, ports) in enumerate(pod_specs(trials)):
        name = f"enf-{tag}-{i}"
        t0 = time.monotonic()
        tb.apply(pod_obj(ns, name, labels, ports))
        deadline = t0 + 15
        while f"{ns}/{name}" not in tb.policy.enforced_at:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pod {ns}/{name}: not enforced within 15 s")
            time.sleep(0.001)
        out.append(tb.policy.enforced_at[f"{ns}/{name}"] - t0)
        node = tb.get("Pod", f"{ns}/{name}")["spec"]["nodeName"]
        chain = names.to_workload(naming.veth_name(ns, name))
        if f":{chain} " not in tb.node_exec(node, ["iptables-save", "-t", "filter"]).stdout:
            raise RuntimeError(f"pod {ns}/{name}: agent says enforced, {chain} not in the kernel")
        time.sleep(0.2)   # let the pod's own start (containers, status) settle
        if "first_node" in tb.policy.last_pass_s:    # the pass that wrote the pod's node
            phases.append(dict(tb.policy.last_pass_s))
    return {"apply_to_enforced_p50_s": statistics.median(out),
            "apply_to_enforced_p95_s": pct(out, 0.95), "apply_to_enforced_s": out,
            # The agent's pass that enforced the pod: reading inputs, compiling the pod's
            # node, and the time until that node's rules were committed (p50 over trials).
            "agent_pass_p50_s": {k: statistics.median(p.get(k, 0.0) for p in phases)
                                 for k in ("inputs", "digest", "compile", "first_node",
                                           "first_node_ipset_pre", "first_node_iptables")}
            if phases else {}}


def new_pod_latency(tb, trials: int, tag: str) -> dict:
    """Apply pods one at a time; time apply -> podIP (store) and apply -> cali-tw chain on the
    pod's node (iptables-save polled back to back). The chain appeared after the last poll
    that missed it started and before the poll that found it ended: both bounds are kept
    (the polling forks compete for the same two cores, so this is the pessimistic
    cross-check of new_pod_enforced). podIP -> rules is negative when the rules came first,
    as they do since the kubelet waits for them before starting the containers."""
    to_ip, upper, lower, polls, agent_apply = [], [], [], [], []
    for i, (ns, _name, labels, ports) in enumerate(pod_specs(trials)):
        name = f"lat-{tag}-{i}"
        chain = names.to_workload(naming.veth_name(ns, name))
        seen_ip: list[float] = []
        done = threading.Event()

        def watch(ns=ns, name=name, seen_ip=seen_ip, done=done):
            rv = 0
            while not done.is_set():   # wakes at once on this process's store commits
                rv = tb.store.wait_for_change(rv, 0.05)
                pod = tb.store.get("Pod", name, ns)
                if pod and (pod.get("status") or {}).get("podIP"):
                    seen_ip.append(time.monotonic())
                    return
        watcher = threading.Thread(target=watch, daemon=True)
        t0 = time.monotonic()
        watcher.start()
        tb.apply(pod_obj(ns, name, labels, ports))
        deadline, found, missed, n, node = t0 + 15, None, t0, 0, None
        while time.monotonic() < deadline:
            node = (tb.store.get("Pod", name, ns) or {}).get("spec", {}).get("nodeName")
            if not node:
                time.sleep(0.001)
                continue
            s = time.monotonic()
            n += 1
            out = tb.node_exec(node, ["iptables-save", "-t", "filter"]).stdout
            if f":{chain} " in out:
                found = time.monotonic()
                break
            missed = s
        # The kubelet starts the containers, and then writes the podIP, once the rules are
        # in place (wait_enforced): the podIP usually comes after the chain.
        watcher.join(max(0.0, deadline - time.monotonic()))
        done.set()
        watcher.join(1)
        if found is None or not seen_ip:
            raise RuntimeError(
                f"pod {ns}/{name}: after 15 s: podIP {'seen' if seen_ip else 'NOT seen'}, "
                f"{chain} {'found' if found else 'NOT found'} on {node}; pod status "
                f"{(tb.store.get('Pod', name, ns) or {}).get('status')}; agent errors "
                f"{tb.policy.errors}; enforced {f'{ns}/{name}' in tb.policy.enforced_at}; "
                f"controller errors {tb.manager.errors[-3:]}")
        to_ip.append(seen_ip[0] - t0)
        upper.append(found - t0)
        lower.append(missed - t0)
        polls.append((found - t0) / n)
        # The agent's kernel write for that node (set once its pass finished).
        settle = time.monotonic() + 2
        while tb.policy.in_sync() and time.monotonic() < settle:
            time.sleep(0.005)
        agent_apply.append(tb.policy.last_apply_s.get(node, 0.0))
    felix = [u - p for u, p in zip(upper, to_ip)]
    felix_lo = [lo - p for lo, p in zip(lower, to_ip)]
    # What the agent's compile costs for this cluster (all nodes, one memo, as poll() does).
    eps, nss, pols, _objs = tb.policy.inputs()
    t = time.perf_counter()
    memo: dict = {}
    for node in tb.nodes():
        compiler.compile_node(node, eps, nss, pols, memo=memo)
    return {"trials": trials, "apply_to_rules_p50_s": statistics.median(upper),
            "apply_to_rules_p95_s": pct(upper, 0.95),
            "apply_to_rules_lower_p50_s": statistics.median(lower),
            "podip_to_rules_p50_s": statistics.median(felix),
            "podip_to_rules_p95_s": pct(felix, 0.95),
            "podip_to_rules_lower_p50_s": statistics.median(felix_lo),
            "apply_to_podip_p50_s": statistics.median(to_ip),
            "apply_to_podip_p95_s": pct(to_ip, 0.95),
            "poll_interval_s": statistics.mean(polls),
            "agent_apply_p50_s": statistics.median(agent_apply),
            "compile_all_nodes_s": time.perf_counter() - t,
            "apply_to_rules_s": upper, "apply_to_podip_s": to_ip}


def perf_policies() -> list[dict]:
    """200 policies selecting both iperf pods; 199 allow only other peers or ports, the last
    (last in Calico's order: same order, ties by name) allows the test traffic, so a new
    connection's first packet walks all 200 policy chains on both sides."""
    out = []
    for k in range(200):
        if k < 199:
            ingress = [{"from": [{"podSelector": {"matchLabels": {"app": f"app-{k % APPS}"}}}],
                        "ports": [{"protocol": "TCP", "port": 10000 + k}]}]
            egress = [{"to": [{"ipBlock": {"cidr": f"192.0.2.{k}/32"}}],
                       "ports": [{"protocol": "TCP", "port": 443}]}]
        else:
            ingress = [{"from": [{"podSelector": {"matchLabels": {"app": "iperf-client"}}}],
                        "ports": [{"port": "iperf"}]}]
            egress = [{"to": [{"podSelector": {"matchLabels": {"app": "iperf-server"}}}],
                       "ports": [{"protocol": "TCP", "port": 5201}]}]
        out.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": f"perf-{k:03d}", "namespace": "bench-0"},
                    "spec": {"podSelector": {"matchExpressions": [
                        {"key": "role", "operator": "In", "values": ["perf"]}]},
                        "policyTypes": ["Ingress", "Egress"],
                        "ingress": ingress, "egress": egress}})
    return out


def iperf(tb, seconds: int) -> float:
    ip = tb.pod_ip("bench-0/iperf-server")
    rc, out, err = tb.exec("bench-0/iperf-client", ["iperf3", "-c", ip, "-p", "5201", "-t",
                                                    str(seconds), "-J"], timeout=seconds + 30)
    if rc != 0:
        raise RuntimeError(f"iperf3 failed: {err.strip() or out[-500:]}")
    return json.loads(out)["end"]["sum_received"]["bits_per_second"]


def throughput(tb, reps: int, seconds: int) -> dict:
    tb.apply([pod_obj("bench-0", "iperf-server", {"app": "iperf-server", "role": "perf"},
                      [("iperf", "tcp", 5201)], "iperf3", "node-2"),
              pod_obj("bench-0", "iperf-client", {"app": "iperf-client", "role": "perf"},
                      [], "pause", "node-3")])
    tb.wait_ready(timeout=60)
    pols = perf_policies()
    # The policies are live: without the last one the traffic is dropped.
    tb.apply(pols[:-1])
    tb.wait_ready(timeout=60)
    enforced = not tb.probe("bench-0/iperf-client", "bench-0/iperf-server", 5201, "TCP")
    present = pols[:-1]
    none, some = [], []
    for rep in range(reps):
        # Alternating order (none first, then policies first), so neither side always runs
        # right after a rule change or always first.
        for on in ((False, True) if rep % 2 == 0 else (True, False)):
            if on and len(present) < len(pols):
                tb.apply(pols)
                present = pols
            elif not on and present:
                tb.delete(present)
                present = []
            tb.wait_ready(timeout=60)
            (some if on else none).append(iperf(tb, seconds))
    if present:
        tb.delete(present)
        tb.wait_ready(timeout=60)
    return {"reps": reps, "seconds": seconds, "enforced_without_allow": enforced,
            "none_bps": none, "policies_bps": some,
            "ratio": statistics.median(some) / statistics.median(none)}


def live(trials: int, reps: int, seconds: int) -> dict:
    from orchestrator.testbed import Testbed
    with Testbed(str(TOPOLOGY)) as tb:
        tb.apply(namespace_objs())
        tb.apply([pod_obj(ns, f"bg-{name}", labels, ports)   # ipset members for the selectors
                  for ns, name, labels, ports in pod_specs(30)])
        tb.wait_ready(timeout=120)
        tp = throughput(tb, reps, seconds)
        g = [[round(v / 1e9, 2) for v in tp[k]] for k in ("none_bps", "policies_bps")]
        print(f"iperf3 node-3 -> node-2, {seconds} s x {reps}: no policies {g[0]} Gbit/s, "
              f"200 policies selecting both pods {g[1]} Gbit/s: median ratio {tp['ratio']:.3f} "
              f"(traffic dropped without the allowing policy: {tp['enforced_without_allow']})",
              flush=True)
        base = new_pod_latency(tb, trials, "none")
        base.update(new_pod_enforced(tb, trials, "none"))
        tb.apply([netpol(j) for j in range(20)])
        tb.wait_ready(timeout=60)
        lat = new_pod_latency(tb, trials, "pol")
        lat.update(new_pod_enforced(tb, trials, "pol"))
        tb.apply([netpol(j) for j in range(20, 200)])
        tb.wait_ready(timeout=120)
        lat200 = new_pod_enforced(tb, trials, "p200")
        # Baseline in the same run: the iptables half of each write forked as before the
        # long-lived restore sessions (each fork spends ~16 ms closing its nf_tables socket).
        sessions = {n: fw.session for n, fw in tb.policy.firewalls.items()}
        for fw in tb.policy.firewalls.values():
            fw.session = None
        try:
            fork200 = new_pod_enforced(tb, trials, "f200")
        finally:
            for n, fw in tb.policy.firewalls.items():
                fw.session = sessions[n]
        agent = dict(tb.policy.last_apply_s)
    for tag, r in (("no policies", base), ("20 policies", lat), ("200 policies", lat200),
                   ("200 policies, forked iptables-restore", fork200)):
        agent_pass = ", ".join(f"{k} {v * 1000:.1f}" for k, v in r["agent_pass_p50_s"].items())
        print(f"new pod apply -> enforced (agent commit), {tag}: p50 "
              f"{r['apply_to_enforced_p50_s'] * 1000:.1f} ms p95 "
              f"{r['apply_to_enforced_p95_s'] * 1000:.1f} ms (agent pass p50 ms: "
              f"{agent_pass})", flush=True)
    for what, key in (("apply -> rules", "apply_to_rules"), ("podIP -> rules", "podip_to_rules")):
        print(f"new pod {what}: 20 policies p50 {lat[key + '_p50_s'] * 1000:6.1f} ms (lower "
              f"bound {lat[key + '_lower_p50_s'] * 1000:.1f}) p95 {lat[key + '_p95_s'] * 1000:6.1f}"
              f" ms | no policies p50 {base[key + '_p50_s'] * 1000:6.1f} ms (lower bound "
              f"{base[key + '_lower_p50_s'] * 1000:.1f}) p95 {base[key + '_p95_s'] * 1000:6.1f} ms"
              + (f" | ratio {lat[key + '_p50_s'] / base[key + '_p50_s']:.2f}"
                 if key == "apply_to_rules" else " (negative: the rules came first)"),
              flush=True)
    for tag, r in (("20 policies", lat), ("no policies", base)):
        print(f"      {tag}: apply -> podIP p50 {r['apply_to_podip_p50_s'] * 1000:.1f} ms p95 "
              f"{r['apply_to_podip_p95_s'] * 1000:.1f} ms | agent write on the pod's node p50 "
              f"{r['agent_apply_p50_s'] * 1000:.1f} ms | compile of all 3 nodes "
              f"{r['compile_all_nodes_s'] * 1000:.1f} ms | poll every "
              f"{r['poll_interval_s'] * 1000:.1f} ms", flush=True)
    print(f"new pod apply -> enforced p50, 200 policies: restore session / forked restore "
          f"{lat200['apply_to_enforced_p50_s'] / fork200['apply_to_enforced_p50_s']:.2f}; "
          f"200 / no policies {lat200['apply_to_enforced_p50_s'] / base['apply_to_enforced_p50_s']:.2f}"
          f"; 200 policies / the 100 ms goal {lat200['apply_to_enforced_p50_s'] / 0.1:.2f}",
          flush=True)
    return {"new_pod_no_policies": base, "new_pod_20_policies": lat,
            "new_pod_200_policies": lat200, "new_pod_200_policies_forked_restore": fork200,
            "throughput": tp,
            "agent_last_apply_s": agent}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", default="100,1000")
    ap.add_argument("--policies", default="50,200")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--offline", action="store_true", help="only part 1 (no testbed)")
    ap.add_argument("--profile", action="store_true", help="print the cProfile of the largest compile")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/netpolicy.py needs root (sudo make bench)")
        return 2
    result = offline([int(x) for x in args.pods.split(",")],
                     [int(x) for x in args.policies.split(",")], args.profile)
    if not args.offline:
        result.update(live(args.trials, args.reps, args.seconds))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
