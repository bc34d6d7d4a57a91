"""The all-pairs matrix across nodes, repeated, never misses (issue 13 part 5).

Nine pods on three BGP-routed nodes run `python3 -m http.server 80` (a listener with backlog
5: a matrix sends each pod eight SYNs at once and the kernel drops those that find its accept
queue full). The probe resends an unanswered SYN at 0.3 s (orchestrator/traffic/probe.py),
so a dropped SYN is not reported as an unreachable pod within the usual 1 s timeout. The
readiness probe is what a Kubernetes user adds so that Ready means listening."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.root, pytest.mark.mininet]
ROUNDS_PER_GENERATION = 10


def web_pods(gen: int) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": f"web-{gen}-{i}", "namespace": "default",
                          "labels": {"app": "web"}},
             "spec": {"nodeName": f"node-{i % 3 + 1}", "containers": [{
                 "name": "web", "image": "python:3.12",
                 "command": ["python3", "-m", "http.server", "80"],
                 "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1}}]}}
            for i in range(9)]


def test_repeated_all_pairs_matrix_across_nodes_never_misses(tmp_path):
    with Testbed(str(REPO / "topologies" / "examples" / "three-node.yaml"), dns=False,
                 state_dir=str(tmp_path / "state"), keep_state=False) as tb:
        misses, probed, cross = [], 0, 0
        for gen in range(2):       # fresh pods twice: the first matrix right after Ready
            pods = web_pods(gen)
            tb.apply(pods)
            tb.wait_ready(timeout=90)
            keys = [f"default/{p['metadata']['name']}" for p in pods]
            for rnd in range(ROUNDS_PER_GENERATION):
                res = tb.matrix(80, "TCP", pods=keys, timeout=1.0)
                probed += len(res)
                cross += sum(1 for s, d in res if tb.pod_node(s) != tb.pod_node(d))
                misses += [(gen, rnd, s, d) for (s, d), ok in res.items() if not ok]
            for k in keys:
                tb.delete("Pod", k)
        assert probed == 2 * ROUNDS_PER_GENERATION * 72 and cross == probed * 3 // 4   # 6 of 8 peers are on other nodes
        assert not misses, (f"{len(misses)}/{probed} pairs missed, e.g. {misses[:5]}; "
                            f"routing: {tb.routing.converged()}")
