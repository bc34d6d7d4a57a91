"""The CNI for IPv6 and dual-stack pods, as Calico's does it (pure: RecordingRunner goldens
and netlink message encoding): the /128 on eth0, `default via` the host veth's link-local
address, `<ip6>/128 dev caliX` on the node, the IPv6 host sysctls (DAD off, proxy_ndp,
forwarding), both families read back from one `route show table all`, and an IPv6-only pod."""

from __future__ import annotations

import socket
import struct

import pytest

from orchestrator.errors import ValidationError
from orchestrator.host import naming, rtnl
from orchestrator.host.runner import RecordingRunner, Result
from orchestrator.node import cni
from orchestrator.node.cni import CNI, SandboxSpec

PID = 4242
NODE_READ_ARGV = ("ip", "-d", "-j", "-batch", "-")
GW6 = "fe80::ecee:eeff:feee:eeee"


@pytest.fixture(autouse=True)
def _fixed_host(monkeypatch):
    monkeypatch.setattr(cni, "_refuse_own_netns", lambda pid: None)
    monkeypatch.setattr(cni, "_node_alive", lambda pid: True)
    monkeypatch.setattr(cni, "_ipv6", lambda: True)


def dual(i=0, primary6=False):
    ips = (f"10.244.0.{i + 2}", f"fd00:10:244::{i + 2}")
    if primary6:
        ips = ips[::-1]
    s = SandboxSpec.for_pod("ab12", "default", f"web-{i}", ips[0], PID)
    return SandboxSpec(**{**s.__dict__, "extra_ips": (ips[1],)})


def only6(i=0):
    return SandboxSpec.for_pod("ab12", "default", f"web-{i}", f"fd00:10:244::{i + 2}", PID)


def runner(node="[]\n[]\n[]\n"):
    rr = RecordingRunner()
    rr.responses[NODE_READ_ARGV] = Result(0, node, "")
    return rr


def test_the_link_local_gateway_is_the_eui64_of_the_host_veth_mac():
    mac = bytes.fromhex(naming.HOST_VETH_MAC.replace(":", ""))
    eui = bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:]
    assert socket.inet_pton(socket.AF_INET6, naming.POD_GATEWAY6) == b"\xfe\x80" + b"\0" * 6 + eui


def test_validate_one_address_per_family_and_no_link_local():
    s = dual()
    for extra, fld in (("10.244.0.9", "extra_ips[0]"), ("fe80::1", "extra_ips[0]"),
                       ("nope", "extra_ips[0]")):
        bad = SandboxSpec(**{**s.__dict__, "extra_ips": (extra,)})
        with pytest.raises(ValidationError) as ei:
            cni.validate(bad)
        assert ei.value.field == fld, (extra, ei.value)
    cni.validate(only6())
    cni.validate(dual(primary6=True))


def test_dual_stack_add_golden():
    rr = runner()
    a = dual()
    CNI(rr).add_many([a])
    node = rr.calls[2]
    assert node["pid"] == PID and node["input"] == (
        f"link set {a.veth} address ee:ee:ee:ee:ee:ee\nlink set {a.veth} up\n"
        f"route replace 10.244.0.2/32 dev {a.veth} scope link\n"
        f"route replace fd00:10:244::2/128 dev {a.veth}\n")
    assert rr.calls[3]["argv"] == ["sysctl", "-q", "-w"] + [
        f"net.ipv4.conf.{a.veth}.route_localnet=1", f"net.ipv4.neigh.{a.veth}.proxy_delay=0",
        f"net.ipv4.conf.{a.veth}.proxy_arp=1", f"net.ipv4.conf.{a.veth}.forwarding=1",
        f"net.ipv6.conf.{a.veth}.accept_dad=0", f"net.ipv6.conf.{a.veth}.disable_ipv6=0",
        f"net.ipv6.conf.{a.veth}.proxy_ndp=1", f"net.ipv6.conf.{a.veth}.forwarding=1",
        f"net.ipv6.conf.{a.veth}.accept_ra=0"]
    assert rr.calls[4]["input"] == (
        "link set lo up\nlink set eth0 up\naddr flush dev eth0 scope global\n"
        "addr add 10.244.0.2/32 dev eth0\nroute replace 169.254.1.1 dev eth0 scope link\n"
        "route replace default via 169.254.1.1 dev eth0\n"
        f"addr add fd00:10:244::2/128 dev eth0 nodad\nroute replace ::/0 via {GW6} dev eth0\n")


def test_ipv6_only_pod_gets_no_ipv4_plumbing():
    rr = runner()
    a = only6()
    CNI(rr).add_many([a])
    assert rr.calls[2]["input"].endswith(f"route replace fd00:10:244::2/128 dev {a.veth}\n")
    assert not any("ipv4" in w for w in rr.calls[3]["argv"])
    assert "169.254.1.1" not in rr.calls[4]["input"]


def _views(spec, *, v6_route=True, v6_addr=True, default6=True):
    routes = [{"dst": "10.244.0.2", "dev": spec.veth, "scope": "link", "protocol": "boot"},
              # the kernel's own: never "stale"; and the local table: not ours
              {"dst": "fe80::/64", "dev": spec.veth, "protocol": "kernel", "metric": 256},
              {"type": "local", "dst": "fd00:172:18::2", "dev": "eth0", "table": "local"}]
    if v6_route:
        routes.append({"dst": "fd00:10:244::2", "dev": spec.veth, "protocol": "boot"})
    node = cni.NodeView({spec.veth: cni.Link(spec.veth, 5, "veth", "ee:ee:ee:ee:ee:ee", True,
                                             2, 0)},
                        cni.main_routes(routes), {spec.netns: 0},
                        cni.sysctl_wants(spec, True))
    addrs = ["10.244.0.2/32"] + (["fd00:10:244::2/128"] if v6_addr else [])
    proutes = [{"dst": "default", "gateway": "169.254.1.1", "dev": "eth0"},
               {"dst": "169.254.1.1", "dev": "eth0", "scope": "link"}]
    if default6:
        proutes.append({"dst": "default", "gateway": GW6, "dev": "eth0"})
    pod = cni.PodView({"lo": cni.Link("lo", 1, up=True),
                       "eth0": cni.Link("eth0", 2, "veth", up=True, peer_ifindex=5)},
                      addrs, proutes)
    return node, pod


def test_check_sees_both_families():
    s = dual()
    node, pod = _views(s)
    assert cni.node_problems(s, node, True) == [] and cni.pod_problems(s, pod) == []
    node, pod = _views(s, v6_route=False, v6_addr=False, default6=False)
    assert cni.node_problems(s, node, True) == [
        f"node route fd00:10:244::2/128 dev {s.veth} missing"]
    probs = cni.pod_problems(s, pod)
    assert any("addresses" in p for p in probs)
    assert f"pod route default via {GW6} dev eth0 missing" in probs


def test_parse_pod_reads_global_addresses_of_both_families():
    text = ('[{"ifindex":1,"ifname":"lo","flags":["UP"]}]\n'
            '[{"ifindex":2,"ifname":"eth0","addr_info":['
            '{"family":"inet","local":"10.244.0.2","prefixlen":32,"scope":"global"},'
            '{"family":"inet6","local":"fd00:10:244::2","prefixlen":128,"scope":"global"},'
            '{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]}]\n'
            '[{"dst":"default","gateway":"fe80::ecee:eeff:feee:eeee","dev":"eth0"},'
            '{"type":"local","dst":"10.244.0.2","dev":"eth0","table":"local"}]\n')
    view = cni.parse_pod(text)
    assert view.addrs == ["10.244.0.2/32", "fd00:10:244::2/128"]
    assert view.routes == [{"dst": "default", "gateway": GW6, "dev": "eth0"}]


def test_netlink_requests_for_a_dual_stack_pod():
    reqs = rtnl.pod_requests(["10.244.0.2", "fd00:10:244::2"], "169.254.1.1", GW6, lo=1, eth0=7)
    assert [w for w, _ in reqs] == ["lo up", "eth0 up", "addr 10.244.0.2", "route 169.254.1.1",
                                    "default route", "addr fd00:10:244::2",
                                    "IPv6 default route"]
    assert [struct.unpack_from("=IHHII", m)[3] for _, m in reqs] == list(range(1, 8))
    fam, plen, _, _, idx = struct.unpack_from("=BBBBI", reqs[5][1], 16)
    assert (fam, plen, idx) == (socket.AF_INET6, 128, 7)
    r = struct.unpack_from("=BBBBBBBBI", reqs[6][1], 16)
    assert (r[0], r[1], r[6]) == (socket.AF_INET6, 0, rtnl.RT_SCOPE_UNIVERSE)
    assert struct.pack("=HH", 20, rtnl.RTA_GATEWAY) + socket.inet_pton(
        socket.AF_INET6, GW6) in reqs[6][1]
    assert rtnl.pod_sysctls(["10.244.0.2"]) == {}
    assert rtnl.pod_sysctls(["fd00::2"])["net.ipv6.conf.eth0.accept_dad"] == "0"


def test_netlink_host_routes_per_address():
    reqs = rtnl.host_requests([(9, "calix", ("10.244.0.2", "fd00:10:244::2"))],
                              "ee:ee:ee:ee:ee:ee")
    assert [w for w, _ in reqs] == ["calix address/up", "route 10.244.0.2 dev calix",
                                    "route fd00:10:244::2 dev calix"]
    v6 = struct.unpack_from("=BBBBBBBBI", reqs[2][1], 16)
    assert (v6[0], v6[1]) == (socket.AF_INET6, 128)


def test_main_routes_with_and_without_ip_d():
    # `ip -d -j route show table all` names the main table; plain `ip -j` names none.
    routes = [{"dst": "10.244.0.2", "dev": "calia", "table": "main", "protocol": "boot"},
              {"dst": "fd00:10:244::2", "dev": "calia", "protocol": "boot"},
              {"dst": "10.9.0.0/24", "dev": "x", "table": "7"},
              {"type": "local", "dst": "10.0.0.1", "dev": "eth0", "table": "local"},
              {"dst": "fe80::/64", "dev": "calia", "table": "main", "protocol": "kernel"}]
    assert [r["dst"] for r in cni.main_routes(routes)] == ["10.244.0.2", "fd00:10:244::2"]
