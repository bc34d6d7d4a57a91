"""The CLI against a running testbed from another process (as kubectl against a cluster),
`calinet up` driven through its shell, the racks topology, and IPAM exhaustion."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "topologies" / "examples"
pytestmark = [pytest.mark.root, pytest.mark.mininet]

PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: cli}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: cli}
spec:
  replicas: %d
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers: [{name: echo, image: agnhost, ports: [{containerPort: 8080}]}]
"""


def calinet(state_dir, *args, check=True, timeout=60):
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "--state-dir", state_dir,
                        *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, f"calinet {' '.join(args)}: {r.stderr}"
    return r


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("cli"))
    with Testbed(str(EXAMPLES / "three-node.yaml"), state_dir=state, keep_state=False) as tb:
        yield tb


def test_cli_reads_and_writes_a_running_testbed(cluster, tmp_path):
    st = cluster.state_dir
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(PODS % 3)
    out = calinet(st, "apply", "-f", str(manifest)).stdout
    assert "namespace/cli created" in out and "deployment.apps/echo created" in out
    cluster.wait_ready(timeout=30)
    table = calinet(st, "get", "pods", "-n", "cli", "-o", "wide").stdout
    header = table.splitlines()[0].split()
    assert header[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "IP" in header and "NODE" in header
    assert table.count("Running") == 3
    pods = json.loads(calinet(st, "get", "pods", "-n", "cli", "-o", "json").stdout)
    assert pods["kind"] == "List" and len(pods["items"]) == 3
    name = pods["items"][0]["metadata"]["name"]
    assert "Status:" in calinet(st, "describe", "pod", name, "-n", "cli").stdout
    r = calinet(st, "exec", "-n", "cli", name, "--", "ip", "-4", "-o", "addr", "show", "eth0")
    assert pods["items"][0]["status"]["podIP"] + "/32" in r.stdout
    assert "IP Pool" in calinet(st, "ipam", "show").stdout
    assert "found 0 problems" in calinet(st, "ipam", "check").stdout
    other = pods["items"][1]["metadata"]["name"]
    r = calinet(st, "probe", "-n", "cli", name, other, "8080/TCP", check=False)
    assert "cli/" + name in r.stdout
    calinet(st, "label", "pod", name, "-n", "cli", "tier=front")
    assert cluster.get("Pod", f"cli/{name}")["metadata"]["labels"]["tier"] == "front"
    assert calinet(st, "logs", "-n", "cli", name).returncode == 0



def test_cli_describe_summarises_related_objects(cluster, tmp_path):
    # after test_cli_reads_and_writes_a_running_testbed: Deployment cli/echo with 3 pods
    st = cluster.state_dir
    svc = tmp_path / "svc.yaml"
    svc.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: cli}\n"
                   "spec:\n  selector: {app: echo}\n  ports: [{port: 80, targetPort: 8080}]\n")
    calinet(st, "apply", "-f", str(svc))
    ips = sorted(p["status"]["podIP"] for p in cluster.list("Pod", "cli"))
    deadline = time.monotonic() + 10
    while True:
        out = calinet(st, "describe", "svc", "echo", "-n", "cli").stdout
        if "<none>" not in out.split("Endpoints:")[1].splitlines()[0] or \
                time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert f"IP:                       {cluster.service_ip('cli/echo')}" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("Endpoints:"))
    assert sorted(e.split(":")[0] for e in line.split()[1].split(",")) == ips, out
    dep = calinet(st, "describe", "deploy", "echo", "-n", "cli").stdout
    rs = cluster.list("ReplicaSet", "cli")[0]["metadata"]["name"]
    assert re.search(rf"NewReplicaSet:\s+{rs} \(3/3 replicas created\)", dep), dep
    node = cluster.pod_node(f"cli/{cluster.list('Pod', 'cli')[0]['metadata']['name']}")
    assert "Non-terminated Pods:" in calinet(st, "describe", "node", node).stdout


def test_cli_bad_input_is_named_and_changes_nothing(cluster, tmp_path):
    st = cluster.state_dir
    # Not the store version: node heartbeats (Leases) write every second.
    pods = sorted(cluster.pods())
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec:\n"
                   "  containers: [{name: c, image: agnhost}]\n---\n"
                   "apiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n")
    r = calinet(st, "apply", "-f", str(bad), check=False)
    assert r.returncode == 1
    assert "bad.yaml" in r.stderr and "document 1" in r.stderr and "Gizmo" in r.stderr
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: [unclosed\n")
    r = calinet(st, "apply", "-f", str(bad), check=False)
    assert r.returncode == 1 and "bad.yaml" in r.stderr
    r = calinet(st, "get", "pod", "nope", check=False)
    assert r.returncode == 1 and "nope" in r.stderr
    r = calinet(st, "get", "gizmos", check=False)
    assert r.returncode == 1 and "gizmos" in r.stderr
    assert sorted(cluster.pods()) == pods and cluster.store.get("Pod", "ok", "default") is None


def test_up_shell_runs_verbs_and_tears_down(tmp_path):
    state = str(tmp_path / "up")
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(PODS % 2)
    script = "get pods -n cli\nipam show --show-blocks\nnode-1 ip route\nget gizmo\nexit\n"
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "--state-dir", state, "up",
                        str(EXAMPLES / "three-node.yaml"), "-f", str(manifest)],
                       cwd=REPO, input=script, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Running") >= 4  # the summary table and `get pods`
    # Mininet's own commands (`node-1 ip route`) print through its logger, on stderr.
    assert "Block" in r.stdout and "blackhole 10.244." in r.stdout + r.stderr
    assert "error:" in r.stdout and "gizmo" in r.stdout
    # the all-pairs connectivity summary, across nodes over BGP routes
    assert re.search(r"cross-node: (\d+)/\1 connected", r.stderr), r.stderr
    assert "blocked" not in r.stderr
    tid = json.load(open(os.path.join(state, "testbed.json")))["id"]
    assert not [n for n in os.listdir("/var/run/netns") if n.startswith(f"calinet-{tid}-")]


def test_demo_shows_every_pod_reaching_every_web_pod_across_nodes():
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "demo"], cwd=REPO,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "Calico process is running." in out and "Established" in out
    m = re.search(r"cross-node: (\d+)/(\d+) connected", out)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) > 0, out
    assert "blocked" not in out and "proto bird" in out


def test_racks_cluster_places_pods_on_every_node(tmp_path):
    with Testbed(str(EXAMPLES / "racks.yaml"), state_dir=str(tmp_path), keep_state=False) as tb:
        tb.apply(PODS % 12)
        tb.wait_ready(timeout=60)
        nodes = {tb.pod_node(k) for k in tb.pods("cli")}
        assert nodes == set(tb.nodes())
        # Underlay: a node in rack A reaches a node in rack B through ToR, spine, ToR.
        a, b = tb.nodes()[0], tb.nodes()[-1]
        assert tb.node_exec(a, ["ping", "-c1", "-W1", tb.node_ip(b)]).returncode == 0


def test_exhausted_pool_leaves_pod_pending_with_reason(tmp_path):
    topo = EXAMPLES / "three-node.yaml"
    with Testbed(str(topo), state_dir=str(tmp_path), keep_state=False) as tb:
        tb.delete("IPPool", "default-ipv4-ippool")
        tb.apply("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: tiny}\n"
                 "spec: {cidr: 10.250.0.0/30, blockSize: 30, nodeSelector: \"all()\"}\n")
        tb.apply(PODS % 5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pods = tb.list("Pod", "cli")
            waiting = [cs["state"]["waiting"] for p in pods
                       for cs in (p.get("status") or {}).get("containerStatuses", [])
                       if "waiting" in cs.get("state", {})]
            running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
            if len(running) == 4 and waiting:
                break
            time.sleep(0.1)
        assert len(running) == 4
        assert waiting[0]["reason"] == "FailedCreatePodSandBox"
        assert "10.250.0.0/30" in waiting[0]["message"]
        ips = [p["status"]["podIP"] for p in running]
        assert len(set(ips)) == 4
