"""kill -9 of the orchestrator: `calinet clean` leaves nothing behind, and a restart on the
same state directory loses nothing and never hands out an IP twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.host.cleanup import owned_links, owned_netns
from orchestrator.host.ledger import Ledger, proc_start_time
from orchestrator.testbed import Testbed

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "topologies" / "examples"

pytestmark = [pytest.mark.root, pytest.mark.mininet, pytest.mark.slow]

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: default}
spec:
  replicas: %d
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers: [{name: c, image: agnhost, ports: [{containerPort: 8080}]}]
"""

CHILD = """
import json, sys, time
from orchestrator.testbed import Testbed
tb = Testbed(sys.argv[1], state_dir=sys.argv[2])
tb.start()
tb.apply(sys.argv[3])
tb.wait_ready(timeout=60)
print(json.dumps({"id": tb.id, "ips": {k: tb.pod_ip(k) for k in tb.pods()}}), flush=True)
time.sleep(600)
"""


@pytest.fixture
def state(tmp_path):
    """The killed child's state dir; whatever it left is removed by ownership, pass or fail."""
    path = str(tmp_path / "state")
    yield path
    if os.path.isdir(path):
        from orchestrator.host.cleanup import clean_state_dir
        clean_state_dir(path)


def _start_and_kill(state_dir: str, replicas: int, manifest: str | None = None) -> dict:
    """A child testbed with ``manifest`` (default: the Deployment with ``replicas``) up and
    ready, then SIGKILL: its {"id", "ips"}."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(EXAMPLES / "three-node.yaml"),
                             state_dir, manifest or MANIFEST % replicas], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, "child testbed did not come up"
        info = json.loads(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    return info


def _leftovers(tid: str, pids: dict) -> list:
    alive = [p for p, s in pids.items() if proc_start_time(p) == s]
    return owned_netns(tid) + owned_links(tid) + alive


def test_clean_after_kill_leaves_nothing(state):
    info = _start_and_kill(state, 6)
    contents = Ledger(state).read()
    assert contents.testbed_id == info["id"]
    time.sleep(0.5)
    assert _leftovers(info["id"], contents.pids), "the kill should leave state for clean to find"
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "clean"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert info["id"] in r.stdout
    deadline = time.monotonic() + 5
    while _leftovers(info["id"], contents.pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _leftovers(info["id"], contents.pids) == []
    assert not os.path.exists(f"/run/calinet/{info['id']}.json")


def test_restart_on_same_state_dir_keeps_ips_and_never_duplicates(state):
    info = _start_and_kill(state, 8)
    with Testbed(str(EXAMPLES / "three-node.yaml"), state_dir=state, keep_state=False) as tb:
        tb.wait_ready(timeout=60)
        assert {k: tb.pod_ip(k) for k in tb.pods()} == info["ips"]
        # The old run's namespaces and processes are gone, replaced by this run's.
        assert owned_netns(info["id"]) == [] and owned_links(info["id"]) == []
        tb.apply(MANIFEST % 20)
        tb.wait_ready(timeout=60)
        ips = [tb.pod_ip(k) for k in tb.pods()]
        # every pod's IP distinct, the cluster DNS pod's (kube-system) included
        assert len(ips) == 20 + len(tb.pods("kube-system")) and len(set(ips)) == len(ips)
        assert set(info["ips"].values()) <= set(ips)
        text, problems = tb.ipam_check()
        assert problems == 0, text


CHILD_MIDWAY = """
import sys
from orchestrator.testbed import Testbed
tb = Testbed(sys.argv[1], state_dir=sys.argv[2])
tb.start()
tb.apply(sys.argv[3])
print("applied", flush=True)
tb.wait_ready(timeout=60)
"""


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_kill_during_allocation_never_double_allocates(state, delay):
    proc = subprocess.Popen([sys.executable, "-c", CHILD_MIDWAY, str(EXAMPLES / "three-node.yaml"),
                             state, MANIFEST % 40], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "applied"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    with Testbed(str(EXAMPLES / "three-node.yaml"), state_dir=state, keep_state=False) as tb:
        tb.wait_ready(timeout=60)
        ips = [tb.pod_ip(k) for k in tb.pods()]
        # every pod's IP distinct, the cluster DNS pod's (kube-system) included
        assert len(ips) == 40 + len(tb.pods("kube-system")) and len(set(ips)) == len(ips)
        text, problems = tb.ipam_check()
        assert problems == 0, text


SERVICES = """
apiVersion: v1
kind: Namespace
metadata: {name: rs}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: rs}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: c, image: agnhost, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: rs}
spec:
  sessionAffinity: ClientIP
  selector: {app: db}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: rs, labels: {role: client}}
spec:
  containers: [{name: c, image: agnhost}]
---
apiVersion: v1
kind: Pod
metadata: {name: stranger, namespace: rs, labels: {role: stranger}}
spec:
  containers: [{name: c, image: agnhost}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-client, namespace: rs}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {role: client}}}]}]
"""


def test_restart_keeps_services_statefulsets_and_policies_working(state):
    # Level-triggered controllers after a kill -9: the same ClusterIP, the same StatefulSet
    # pod names and addresses, endpoints, kube-proxy rules and policy rules rebuilt from the
    # store, and ClientIP affinity pinning the client to one backend.
    sys.path.insert(0, str(Path(__file__).parent))
    from hostname_fetch import FETCH
    before = _start_and_kill(state, 0, SERVICES)
    from orchestrator.control.store import Store
    cluster_ip = Store(os.path.join(state, "state.db")).get("Service", "db", "rs")["spec"][
        "clusterIP"]
    with Testbed(str(EXAMPLES / "three-node.yaml"), state_dir=state, keep_state=False) as tb:
        tb.wait_ready(timeout=60)
        assert {k: tb.pod_ip(k) for k in tb.pods()} == before["ips"]
        assert tb.service_ip("rs/db") == cluster_ip
        assert sorted(k for k in tb.pods("rs") if "/db-" in k) == ["rs/db-0", "rs/db-1"]
        ip = tb.service_ip("rs/db")
        answers = tb.exec("rs/client", [sys.executable, "-c", FETCH, ip, "80", "12"],
                          timeout=60).stdout.split()
        assert len(answers) == 12 and len(set(answers)) == 1 and answers[0] in ("db-0", "db-1")
        denied = tb.exec("rs/stranger", [sys.executable, "-c", FETCH, ip, "80", "2"],
                         timeout=60).stdout.split()
        assert denied == ["-", "-"]
