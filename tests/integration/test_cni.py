"""CNI against the kernel: a fake node (a process in its own netns) and real pod sandboxes.

Root only. Every object carries a random testbed id and is removed in teardown. The fidelity
checks read the kernel with `ip -j` / `sysctl` directly rather than through cni.check().
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time

import pytest

from orchestrator.errors import ApplyError
from orchestrator.host import naming
from orchestrator.host.runner import Runner
from orchestrator.node.cni import CNI, SandboxSpec

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces")]


def sh(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)


def in_node(pid, *argv) -> str:
    r = sh(["nsenter", "-t", pid, "-n", "--", *argv])
    assert r.returncode == 0, r.stderr
    return r.stdout


def in_pod(netns, *argv) -> str:
    r = sh(["ip", "netns", "exec", netns, *argv])
    assert r.returncode == 0, r.stderr
    return r.stdout


class FakeNode:
    """A process in a fresh netns standing in for a Mininet host, with a default route on an
    underlay interface (a veth pair kept inside the node) so proxy ARP answers 169.254.1.1."""

    def __init__(self):
        self.tb = secrets.token_hex(2)
        self.proc = subprocess.Popen(["unshare", "--net", "sleep", "3600"])
        deadline = time.monotonic() + 5
        while os.stat(f"/proc/{self.pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
            assert time.monotonic() < deadline, "unshare did not enter a new netns"
            time.sleep(0.01)
        in_node(self.pid, "sh", "-c",
                "ip link set lo up && ip link add up0 type veth peer name up1 && "
                "ip link set up0 up && ip link set up1 up && "
                "ip addr add 192.0.2.1/24 dev up0 && "
                "ip route add default via 192.0.2.254 dev up0 onlink")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def spec(self, pod: str, ip: str) -> SandboxSpec:
        return SandboxSpec.for_pod(self.tb, "default", pod, ip, self.pid)

    def close(self):
        self.proc.kill()
        self.proc.wait(5)
        for name in os.listdir("/var/run/netns"):
            if name.startswith(f"{naming.NETNS_PREFIX}{self.tb}-"):
                sh(["ip", "netns", "del", name])


@pytest.fixture
def node():
    n = FakeNode()
    yield n
    n.close()


class CountingRunner(Runner):
    def __init__(self):
        self.argvs = []

    def run(self, argv, **kw):
        self.argvs.append([str(a) for a in argv])
        return super().run(argv, **kw)


def snapshot(node: FakeNode, specs) -> dict:
    snap = {"node": [in_node(node.pid, "ip", "-d", "-j", what, "show")
                     for what in ("link", "addr", "route")]}
    for s in specs:
        snap[s.netns] = [in_pod(s.netns, "ip", "-d", "-j", what, "show")
                         for what in ("link", "addr", "route")]
        snap[s.veth] = in_node(node.pid, "sysctl", f"net.ipv4.conf.{s.veth}.proxy_arp",
                               f"net.ipv4.neigh.{s.veth}.proxy_delay",
                               f"net.ipv4.conf.{s.veth}.forwarding",
                               f"net.ipv4.conf.{s.veth}.route_localnet")
    return snap


def assert_calico_sandbox(node: FakeNode, s: SandboxSpec):
    host = json.loads(in_node(node.pid, "ip", "-d", "-j", "link", "show", s.veth))[0]
    assert host["address"] == "ee:ee:ee:ee:ee:ee" and "UP" in host["flags"]
    assert host["linkinfo"]["info_kind"] == "veth"
    want = {f"net.ipv4.conf.{s.veth}.proxy_arp": "1", f"net.ipv4.neigh.{s.veth}.proxy_delay": "0",
            f"net.ipv4.conf.{s.veth}.forwarding": "1",
            f"net.ipv4.conf.{s.veth}.route_localnet": "1"}
    if os.path.isdir("/proc/sys/net/ipv6"):
        want[f"net.ipv6.conf.{s.veth}.accept_ra"] = "0"
    got = in_node(node.pid, "sysctl", "-n", *want).split()
    assert dict(zip(want, got, strict=True)) == want
    routes = json.loads(in_node(node.pid, "ip", "-j", "route", "show", f"{s.ip}/32"))
    assert [(r["dst"], r["dev"], r.get("scope"), r.get("gateway")) for r in routes] == [
        (s.ip, s.veth, "link", None)]
    eth0 = json.loads(in_pod(s.netns, "ip", "-d", "-j", "addr", "show", "eth0"))[0]
    assert eth0["linkinfo"]["info_kind"] == "veth" and "UP" in eth0["flags"]
    assert eth0["link_index"] == host["ifindex"] and host["link_index"] == eth0["ifindex"]
    assert [(a["local"], a["prefixlen"]) for a in eth0["addr_info"]
            if a["family"] == "inet"] == [(s.ip, 32)]
    lo = json.loads(in_pod(s.netns, "ip", "-j", "link", "show", "lo"))[0]
    assert "UP" in lo["flags"]
    pod_routes = {(r["dst"], r.get("gateway"), r["dev"], r.get("scope"))
                  for r in json.loads(in_pod(s.netns, "ip", "-j", "route", "show"))}
    assert pod_routes == {("169.254.1.1", None, "eth0", "link"),
                          ("default", "169.254.1.1", "eth0", None)}


def test_two_pods_are_plumbed_like_calico_and_talk_through_the_node(node):
    a, b = node.spec("a", "10.244.7.2"), node.spec("b", "10.244.7.3")
    cni = CNI()
    cni.add_many([a, b])
    for s in (a, b):
        assert_calico_sandbox(node, s)
        assert cni.check(s) == []
    r = sh(["ip", "netns", "exec", a.netns, "ping", "-c", "2", "-i", "0.2", "-W", "2", b.ip])
    assert r.returncode == 0, r.stdout + r.stderr
    # The gateway was resolved by the node's proxy ARP: the host veth's fixed MAC.
    neigh = json.loads(in_pod(a.netns, "ip", "-j", "neigh", "show", "169.254.1.1"))
    assert neigh and neigh[0]["lladdr"] == "ee:ee:ee:ee:ee:ee"


def test_second_add_changes_nothing_and_writes_nothing(node):
    specs = [node.spec(f"p{i}", f"10.244.7.{10 + i}") for i in range(3)]
    CNI().add_many(specs)
    before = snapshot(node, specs)
    counting = CountingRunner()
    CNI(counting).add_many(specs)
    assert snapshot(node, specs) == before
    assert not any("-w" in argv or (argv[:2] == ["ip", "-batch"]) or
                   (argv[:2] == ["ip", "-n"] and argv[3] == "-batch") for argv in counting.argvs)


def test_stale_host_veth_is_replaced(node):
    s = node.spec("stale", "10.244.7.20")
    in_node(node.pid, "ip", "link", "add", s.veth, "type", "veth", "peer", "name", "junk0")
    CNI().add(s)
    assert_calico_sandbox(node, s)
    assert "junk0" not in in_node(node.pid, "ip", "-o", "link")


def test_ip_routed_via_another_interface_is_refused(node):
    s = node.spec("conflict", "10.244.7.30")
    in_node(node.pid, "ip", "route", "add", f"{s.ip}/32", "dev", "up0")
    with pytest.raises(ApplyError, match="up0"):
        CNI().add(s)
    assert not os.path.exists(f"/var/run/netns/{s.netns}")


def test_drifted_sandbox_is_repaired_in_place(node):
    s = node.spec("drift", "10.244.7.40")
    cni = CNI()
    cni.add(s)
    inode = os.stat(f"/var/run/netns/{s.netns}").st_ino
    in_node(node.pid, "sysctl", "-q", "-w", f"net.ipv4.conf.{s.veth}.proxy_arp=0")
    in_node(node.pid, "ip", "link", "set", s.veth, "address", "02:00:00:00:00:01")
    in_pod(s.netns, "ip", "route", "del", "default")
    problems = cni.check(s)
    assert len(problems) == 3, problems
    cni.add(s)
    assert cni.check(s) == []
    assert os.stat(f"/var/run/netns/{s.netns}").st_ino == inode   # same sandbox, not new
    assert_calico_sandbox(node, s)


def test_broken_veth_pair_recreates_the_sandbox(node):
    s = node.spec("broken", "10.244.7.50")
    cni = CNI()
    cni.add(s)
    in_pod(s.netns, "ip", "link", "del", "eth0")   # takes the host end with it
    assert any("missing" in p for p in cni.check(s))
    cni.add(s)
    assert cni.check(s) == []
    assert_calico_sandbox(node, s)


def test_delete_leaves_nothing_and_is_idempotent(node):
    specs = [node.spec(f"d{i}", f"10.244.7.{60 + i}") for i in range(3)]
    cni = CNI()
    cni.add_many(specs)
    cni.delete_many(specs[:1])
    cni.delete_many(specs)
    cni.delete_many(specs)
    links = in_node(node.pid, "ip", "-o", "link")
    routes = in_node(node.pid, "ip", "route")
    for s in specs:
        assert not os.path.exists(f"/var/run/netns/{s.netns}")
        assert s.veth not in links and s.ip not in routes


def test_thirty_pods_in_a_constant_number_of_forks(node):
    specs = [node.spec(f"bulk{i}", f"10.244.8.{i + 2}") for i in range(30)]
    counting = CountingRunner()
    cni = CNI(counting)
    t0 = time.monotonic()
    cni.add_many(specs)
    took = time.monotonic() - t0
    # Node read and root batch; both ends of every fresh veth go over netlink in-process.
    assert len(counting.argvs) == 2, counting.argvs
    assert took < 3.0, f"30 sandboxes took {took:.2f}s"
    for s in specs[::7]:
        assert cni.check(s) == []
    cni.delete_many(specs)
    assert not any(os.path.exists(f"/var/run/netns/{s.netns}") for s in specs)


def test_refuses_a_node_in_our_own_namespace():
    s = SandboxSpec.for_pod(secrets.token_hex(2), "default", "x", "10.244.9.9", os.getpid())
    with pytest.raises(ApplyError, match="own network namespace"):
        CNI().add(s)
    assert not os.path.exists(f"/var/run/netns/{s.netns}")
