"""The kubectl NetworkPolicy tutorial, followed with calinet as a user would, from a script:
`calinet up --detach`, `apply -f`, `exec -n dev test -- wget` (flags before `--`, the pod's
own resolv.conf and env), a policy allowing only `purpose: production`, `calinet down`, and
nothing of the cluster left behind. wget is the machine's /usr/bin/wget (no busybox here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from orchestrator.host.cleanup import owned_links, owned_netns
from orchestrator.host.ledger import proc_start_time

pytestmark = [pytest.mark.root, pytest.mark.mininet]     # ~10 s: not slow

TOPOLOGY = """
name: tutorial
underlay: {cidr: 172.31.0.0/16}
nodes:
  - {name: node-1, role: control-plane, schedulable: true}
"""

APP = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec: {containers: [{name: nginx, image: nginx, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: dev, labels: {purpose: development}}
---
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {purpose: production}}
""" + "".join(f"""---
apiVersion: v1
kind: Pod
metadata: {{name: test, namespace: {ns}}}
spec:
  containers:
  - name: alpine
    image: alpine
    command: [sleep, "3600"]
    env: [{{name: TUTORIAL, value: "{ns}-env"}}]
""" for ns in ("dev", "prod"))

POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-allow-prod, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {purpose: production}}
"""


def test_tutorial_recipe(tmp_path):
    state = tmp_path / "state"
    env = {**os.environ, "CALINET_STATE_DIR": str(state)}
    (tmp_path / "topo.yaml").write_text(TOPOLOGY)
    (tmp_path / "app.yaml").write_text(APP)
    (tmp_path / "policy.yaml").write_text(POLICY)

    def calinet(*argv, timeout=120):
        return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *argv],
                              capture_output=True, text=True, env=env, timeout=timeout)

    try:
        # In the try: a failure anywhere (a half-started cluster too) still runs `down`.
        up = calinet("up", str(tmp_path / "topo.yaml"), "--detach", "--no-bgp", timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "calinet down" in up.stdout
        info = json.loads((state / "detached.json").read_text())
        tid = info["testbed"]
        again = calinet("up", str(tmp_path / "topo.yaml"), "--detach", "--no-bgp")
        assert again.returncode != 0 and "already running" in again.stderr

        r = calinet("apply", "-f", str(tmp_path / "app.yaml"))
        assert r.returncode == 0, r.stderr
        _wait_running(calinet)

        for ns in ("dev", "prod"):
            r = calinet("exec", "test", "-n", ns, "--", "cat", "/etc/resolv.conf")
            assert r.returncode == 0, r.stderr
            assert "nameserver 10.96.0.10" in r.stdout
            assert f"search {ns}.svc.cluster.local svc.cluster.local" in r.stdout
            r = calinet("exec", "-n", ns, "test", "--", "sh", "-c", "echo $TUTORIAL $HOSTNAME")
            assert r.stdout.split() == [f"{ns}-env", "test"], r.stdout + r.stderr
            r = calinet("exec", "-n", ns, "test", "--", "wget", "-qO-", "-T", "2",
                        "http://web.default")
            assert r.returncode == 0, f"{ns} before the policy: {r.stderr}"

        r = calinet("apply", "-f", str(tmp_path / "policy.yaml"))
        assert r.returncode == 0, r.stderr
        r = calinet("exec", "-n", "prod", "test", "--", "wget", "-qO-", "-T", "2", "-t", "1",
                    "http://web.default")
        assert r.returncode == 0, f"prod after the policy: {r.stderr}"
        r = calinet("exec", "-n", "dev", "test", "--", "wget", "-qO-", "-T", "2", "-t", "1",
                    "http://web.default")
        assert r.returncode != 0, "dev reached web despite the policy"
    finally:
        down = calinet("down", timeout=180)
    assert down.returncode == 0, down.stdout + down.stderr
    assert proc_start_time(int(info["pid"])) != info["start"], "the owner process is still up"
    assert owned_netns(tid) == [] and owned_links(tid) == []
    again = calinet("down")
    assert again.returncode != 0 and "no detached cluster" in again.stderr


def _wait_running(calinet, timeout=60.0):
    import time
    deadline = time.monotonic() + timeout
    while True:
        r = calinet("get", "pods", "-A")
        lines = [ln for ln in r.stdout.splitlines()[1:] if ln.split()[:1] in (
            ["default"], ["dev"], ["prod"])]
        if len(lines) == 3 and all("Running" in ln and "1/1" in ln for ln in lines):
            return
        assert time.monotonic() < deadline, r.stdout
        time.sleep(0.5)
