"""Every shipped topology example brings up a fully routed cluster by itself: no manifests or
options beside the file (its own `manifests:` only), a pod on every node, every pod reaches
every pod on the other nodes; cluster DNS is there without being asked for. An example with
an IPIP pool, on a kernel without the ipip module, is refused at start-up instead, naming the
field, and leaves nothing running."""

from __future__ import annotations

from pathlib import Path

import pytest

from encap.features import available
from orchestrator.errors import ValidationError
from orchestrator.testbed import Testbed, registered_testbeds

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "topologies" / "examples").glob("*.yaml"))
pytestmark = [pytest.mark.root, pytest.mark.mininet]
SLOW = {"scale-50.yaml"}


def pods_on_every_node(nodes) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": f"echo-{n}", "namespace": "default",
                          "labels": {"app": "echo"}},
             "spec": {"nodeName": n, "containers": [
                 {"name": "echo", "image": "agnhost", "ports": [{"containerPort": 8080}]}]}}
            for n in nodes]


@pytest.mark.parametrize("path", [
    pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.name in SLOW else [])
    for p in EXAMPLES])
def test_example_alone_is_fully_routed(path, tmp_path):
    if "ipipMode: " in path.read_text() and not available("ipip")[0]:
        before = {t["id"] for t in registered_testbeds()}
        with pytest.raises(ValidationError, match=r"spec\.ipipMode.*ipip module"):
            Testbed(str(path), state_dir=str(tmp_path / "state"), keep_state=False).start()
        assert {t["id"] for t in registered_testbeds() if t["alive"]} <= before
        return
    with Testbed(str(path), state_dir=str(tmp_path / "state"), keep_state=False) as tb:
        assert tb.cluster_dns is not None          # DNS on by default
        tb.apply(pods_on_every_node(tb.nodes()))
        tb.wait_ready(timeout=180)
        pods = [f"default/echo-{n}" for n in tb.nodes()]
        res = tb.matrix(8080, "TCP", pods=pods, timeout=2.0)
        cross = {k: v for k, v in res.items() if tb.pod_node(k[0]) != tb.pod_node(k[1])}
        assert len(cross) == len(pods) * (len(pods) - 1)
        missed = sorted(k for k, v in cross.items() if not v)
        assert not missed, (f"{len(missed)}/{len(cross)} cross-node pairs unreachable, e.g. "
                            f"{missed[:5]}; routing problems: {tb.routing.converged()}")
        assert tb.resolve(pods[0], "kube-dns.kube-system") == ["10.96.0.10"]
        if 6 in tb.spec.families:       # dual stack: every pod reaches every pod over IPv6 too
            res6 = tb.matrix(8080, "TCP", pods=pods, timeout=2.0, family=6)
            assert res6 and all(res6.values()), sorted(k for k, v in res6.items() if not v)


def test_a_reflector_without_bgp_objects_fails_wait_ready_naming_cause_and_fix(tmp_path):
    # The route-reflectors example without its `manifests:` (experiments keeps such a copy).
    topo = REPO / "experiments" / "topologies" / "route-reflectors-mesh-first.yaml"
    with Testbed(str(topo), dns=False, state_dir=str(tmp_path / "state"),
                 keep_state=False) as tb:
        tb.apply(pods_on_every_node(["node-1", "node-3"]))
        with pytest.raises(Exception) as ei:
            tb.wait_ready(timeout=8)
        text = str(ei.value)
        assert text.startswith("not ready after 8s: node node-1 has no BGP peer: its topology "
                               "sets routeReflectorClusterID 224.0.0.1"), text
        assert "apply BGPPeer objects" in text.split(";", 3)[2], text
