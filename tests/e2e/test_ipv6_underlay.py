"""IPv6 on the underlay, on real Mininet: with `underlay.cidr6` every node has its IPv6
address (usable at once: no tentative state), an on-link IPv6 default and IPv6 forwarding;
nodes reach each other over IPv6; the Node objects carry both InternalIPs. With `ipFamilies:
[IPv4]` the pods stay IPv4 only: IPv4 pods and BGP are unchanged, and an IPv6 pool is refused,
saying why, with nothing applied (tests/e2e/test_dual_stack.py has IPv6 pods)."""

from __future__ import annotations

import pytest

from orchestrator.errors import ValidationError
from orchestrator.testbed import Testbed

pytestmark = [pytest.mark.root, pytest.mark.mininet]
TOPO = """
name: v6-underlay
underlay: {cidr: 172.18.0.0/16, cidr6: "fd00:172:18::/64"}
ipFamilies: [IPv4]
nodes:
  - {name: node-1, role: control-plane, schedulable: true}
  - {name: node-2}
  - {name: node-3}
"""


@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    with Testbed(TOPO, state_dir=str(tmp_path_factory.mktemp("v6u")), keep_state=False,
                 dns=False) as tb:
        yield tb


def test_nodes_have_usable_ipv6_addresses_and_reach_each_other(tb):
    addr = tb.node_exec("node-1", ["ip", "-6", "addr", "show", "dev", "eth0"]).stdout
    line = next(ln for ln in addr.splitlines() if "inet6 fd00:172:18::2/64" in ln)
    assert "tentative" not in line, addr          # nodad: bound and used at once
    assert "default dev eth0" in tb.node_exec("node-1", ["ip", "-6", "route"]).stdout
    fwd = tb.node_exec("node-1", ["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]).stdout
    assert fwd.strip() == "1"
    for dst in ("fd00:172:18::3", "fd00:172:18::4"):
        r = tb.node_exec("node-1", ["ping", "-6", "-c1", "-W2", dst])
        assert r.returncode == 0, r.stdout + r.stderr


def test_node_objects_carry_both_families(tb):
    node = tb.get("Node", "node-2")
    ips = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
    assert ips == ["172.18.0.3", "fd00:172:18::3"]
    assert node["metadata"]["annotations"]["projectcalico.org/IPv6Address"] == \
        "fd00:172:18::3/64"


def test_ipv4_pods_still_route_and_an_ipv6_pool_is_refused(tb):
    tb.apply([{"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"p{i}", "namespace": "default"},
               "spec": {"nodeName": f"node-{i}", "containers": [
                   {"name": "c", "image": "agnhost", "ports": [{"containerPort": 80}]}]}}
              for i in (1, 2, 3)])
    tb.wait_ready(timeout=60)
    m = tb.matrix(port=80)
    assert m and all(m.values()), [k for k, v in m.items() if not v]
    pool = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "v6"},
            "spec": {"cidr": "fd00:10:244::/48"}}
    with pytest.raises(ValidationError) as ei:
        tb.apply([pool])
    assert "spec.cidr" in str(ei.value) and "IPv6" in str(ei.value)
    assert tb.client.store.get("IPPool", "v6") is None
