"""The pytest plugin `calinet` as its users run it: pytest in a subprocess (root, real
testbeds) on examples/ and on generated test modules, and as an unprivileged user.

Each run brings its own testbeds up and down; the generated modules record their testbed's
id so this test can check that nothing of it is left, also after a failing test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from orchestrator.host.cleanup import owned_links, owned_netns
from orchestrator.pytest_plugin import ROOT_REASON

pytestmark = [pytest.mark.root, pytest.mark.mininet]

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 240   # a run brings up to three small clusters up and down (~3 s each)


def run_pytest(args, cwd, user: str | None = None, env=None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *map(str, args)]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    full_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    full_env.pop("PYTEST_ADDOPTS", None)
    r = subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True,
                       timeout=RUN_TIMEOUT)
    r.output = r.stdout + r.stderr
    return r


def outcomes(output: str) -> dict:
    """{"passed": 3, "failed": 1, ...} from pytest's final summary line."""
    last = [ln for ln in output.splitlines() if re.search(r"=+ .* in [\d.]+s", ln)]
    assert last, output
    return {k: int(n) for n, k in re.findall(r"(\d+) (\w+)", last[-1])}


def test_examples_pass_as_root():
    r = run_pytest(["-p", "calinet", "-v", "-rs", "examples/"], cwd=REPO)
    assert r.returncode == 0, r.output
    assert outcomes(r.output) == {"passed": 3}, r.output


# -- generated modules ----------------------------------------------------------------------

SMALL_TOPOLOGY = """
name: small
underlay: {cidr: 172.18.0.0/16}
nodes:
  - {name: n1, role: control-plane, schedulable: true}
  - {name: n2}
"""

PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: gen}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: gen}
spec: {nodeName: n1, containers: [{name: c, image: agnhost}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: gen}
spec: {nodeName: n1, containers: [{name: c, image: agnhost}]}
"""

# Needs no BGP: both pods are on n1 (the run passes --calinet-no-bgp).
TEST_SMALL = '''
import json, os, threading
import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.packet import Raw

pytestmark = [pytest.mark.calinet_topology("topo/small.yaml"),
              pytest.mark.calinet_manifests("manifests/pods.yaml")]


def test_cluster_from_the_marker(testbed):
    with open(os.environ["GEN_RECORD"], "a") as f:
        f.write(json.dumps({"id": testbed.id, "state_dir": testbed.state_dir}) + "\\n")
    assert testbed.nodes() == ["n1", "n2"]
    assert testbed.bgp is False and testbed.routing is None
    assert sorted(testbed.pods("gen")) == ["gen/a", "gen/b"]


def test_sr1_and_send_and_sniff(testbed):
    reply = testbed.sr1("gen/a", IP(dst=testbed.pod_ip("gen/b")) / ICMP(id=7, seq=1))
    assert reply is not None and reply[ICMP].type == 0 and reply[IP].src == testbed.pod_ip("gen/b")
    # Nothing listens on b's UDP 9999: the kernel's port-unreachable answers the datagram.
    unreachable = testbed.sr1("gen/a", IP(dst=testbed.pod_ip("gen/b")) / UDP(dport=9999))
    assert unreachable is not None and (unreachable[ICMP].type, unreachable[ICMP].code) == (3, 3)
    got, done = [], threading.Event()

    def sniff():
        got.extend(testbed.sniff("gen/b", timeout=3.0, count=1,
                                 lfilter=lambda p: p.haslayer(UDP) and p[UDP].dport == 4242))
        done.set()

    threading.Thread(target=sniff, daemon=True).start()
    while not done.wait(0.05):   # until the sniffer (opened concurrently) has caught one
        testbed.send("gen/a", IP(dst=testbed.pod_ip("gen/b")) / UDP(sport=4141, dport=4242) / Raw(b"hi"))
    assert len(got) == 1 and got[0][IP].src == testbed.pod_ip("gen/a")
    assert got[0][Raw].load == b"hi"


def test_fails_on_purpose(testbed):
    assert False, "deliberate failure"
'''

TEST_DEFAULT = '''
import json, os


def test_default_topology_and_bgp_option(testbed):
    with open(os.environ["GEN_RECORD"], "a") as f:
        f.write(json.dumps({"id": testbed.id, "state_dir": testbed.state_dir}) + "\\n")
    assert testbed.nodes() == ["node-1", "node-2", "node-3"]
    assert testbed.bgp is False
'''

TEST_SHIPPED = '''
import json, os
import pytest

pytestmark = pytest.mark.calinet_topology("three-node", bgp=True)


def test_shipped_example_by_name_with_bgp(testbed):
    with open(os.environ["GEN_RECORD"], "a") as f:
        f.write(json.dumps({"id": testbed.id, "state_dir": testbed.state_dir}) + "\\n")
    assert testbed.spec.name == "three-node" and testbed.routing is not None
'''

TEST_MISPLACED = '''
import pytest


@pytest.mark.calinet_topology("three-node")
def test_marker_on_a_function(testbed):
    pass
'''


def write_tree(root: Path, files: dict) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def test_generated_modules_with_entry_point_options_and_markers(tmp_path):
    write_tree(tmp_path, {
        # Its own rootdir: --strict-markers proves the plugin registered its markers.
        "pytest.ini": "[pytest]\naddopts = --strict-markers\n",
        "topo/small.yaml": SMALL_TOPOLOGY,
        "manifests/pods.yaml": PODS,
        "test_a_small.py": TEST_SMALL,
        "test_b_default.py": TEST_DEFAULT,
        "test_c_shipped.py": TEST_SHIPPED,
        "test_d_misplaced.py": TEST_MISPLACED,
    })
    record = tmp_path / "testbeds.jsonl"
    # Autoload off: `-p calinet` alone must find the plugin through its entry point.
    r = run_pytest(["-p", "calinet", "--calinet-no-bgp", "-v", "-rA"], cwd=tmp_path,
                   env={"GEN_RECORD": str(record), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert outcomes(r.output) == {"passed": 4, "failed": 1, "error": 1}, r.output
    assert "deliberate failure" in r.output
    assert "goes on the module" in r.output and "test_marker_on_a_function" in r.output
    started = [json.loads(line) for line in record.read_text().splitlines()]
    # One testbed per module (small once for its three tests), none for the misplaced one.
    assert len(started) == 3 and len({t["id"] for t in started}) == 3, started
    for t in started:
        assert owned_netns(t["id"]) == [] and owned_links(t["id"]) == [], t
        assert not os.path.exists(t["state_dir"]), t


def test_unknown_topology_is_a_clear_error(tmp_path):
    write_tree(tmp_path, {
        "pytest.ini": "[pytest]\n",
        "test_x.py": "import pytest\n"
                     "pytestmark = pytest.mark.calinet_topology('no-such.yaml')\n"
                     "def test_x(testbed):\n    pass\n",
    })
    r = run_pytest(["-p", "calinet"], cwd=tmp_path)
    assert outcomes(r.output) == {"error": 1}, r.output
    assert "calinet topology 'no-such.yaml' not found" in r.output


# -- without root ---------------------------------------------------------------------------

def _unprivileged_user() -> str:
    if shutil.which("runuser") is None:
        pytest.skip("needs runuser (util-linux) to run pytest as another user")
    for user in ("nobody", "daemon"):
        probe = subprocess.run(["runuser", "-u", user, "--", "test", "-r",
                                str(REPO / "examples" / "test_my_policy.py")],
                               capture_output=True)
        if probe.returncode == 0:
            return user
    pytest.skip("no unprivileged user can read the repository (nobody, daemon)")


def test_without_root_everything_skips_with_the_reason():
    user = _unprivileged_user()
    r = run_pytest(["-rs", "examples/"], cwd=REPO, user=user)
    assert r.returncode == 0, r.output
    assert outcomes(r.output) == {"skipped": 3}, r.output
    assert ROOT_REASON in r.output

    # The marker alone, and the fixture asked for at run time (not seen at collection).
    with tempfile.TemporaryDirectory(prefix="calinet-plugin-") as d:
        os.chmod(d, 0o755)
        write_tree(Path(d), {
            "pytest.ini": "[pytest]\naddopts = --strict-markers\n",
            "test_y.py": "import pytest\n"
                         "@pytest.mark.calinet\n"
                         "def test_marked():\n    pass\n"
                         "def test_dynamic(request):\n"
                         "    request.getfixturevalue('testbed')\n",
        })
        r = run_pytest(["-rs", "-p", "calinet"], cwd=d, user=user)
    assert outcomes(r.output) == {"skipped": 2}, r.output
    assert r.output.count(ROOT_REASON) == 2, r.output


TEST_OPTION = '''
def test_topology_from_the_option(testbed):
    assert testbed.nodes() == ["n1", "n2"]
    assert testbed.spec.name == "small"
'''


def test_calinet_topology_option_applies_to_modules_without_a_marker(tmp_path):
    write_tree(tmp_path, {
        "pytest.ini": "[pytest]\n",
        "topo/small.yaml": SMALL_TOPOLOGY,
        "test_opt.py": TEST_OPTION,
    })
    r = run_pytest(["-p", "calinet", "--calinet-no-bgp", "--calinet-topology", "topo/small.yaml"],
                   cwd=tmp_path)
    assert outcomes(r.output) == {"passed": 1}, r.output
    r = run_pytest(["-p", "calinet", "--calinet-no-bgp", "--calinet-topology", "topo/none.yaml"],
                   cwd=tmp_path)
    assert outcomes(r.output) == {"error": 1} and "none.yaml" in r.output, r.output
