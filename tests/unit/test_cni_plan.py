"""CNI planning and batch rendering: goldens with RecordingRunner, no root needed."""

from __future__ import annotations

import json

import pytest

from orchestrator.errors import ApplyError, ValidationError
from orchestrator.host import naming
from orchestrator.host.runner import RecordingRunner, Result
from orchestrator.node import cni
from orchestrator.node.cni import CNI, SandboxSpec

PID = 4242
NODE_READ_ARGV = ("ip", "-d", "-j", "-batch", "-")

# Real `ip -d -j -batch` output of a node with one correct sandbox (trimmed of unused keys).
REAL_NODE = (
    '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK"],"address":"00:00:00:00:00:00"},'
    '{"ifindex":2,"link_index":2,"ifname":"cali0d7763386da","flags":["BROADCAST","MULTICAST",'
    '"UP","LOWER_UP"],"address":"ee:ee:ee:ee:ee:ee","link_netnsid":0,'
    '"linkinfo":{"info_kind":"veth"}}]\n'
    '[{"type":"unicast","dst":"10.244.0.2","dev":"cali0d7763386da","protocol":"boot",'
    '"scope":"link","flags":[]}]\n'
    '[{"name":"calinet-zz04-0d7763386da","id":0},{"name":"someone-else"}]\n')
REAL_POD = (
    '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"]},'
    '{"ifindex":2,"link_index":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP",'
    '"LOWER_UP"],"address":"06:49:2a:29:34:4c","link_netnsid":0,'
    '"linkinfo":{"info_kind":"veth"}}]\n'
    '[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1",'
    '"prefixlen":8,"scope":"host"}]},{"ifindex":2,"ifname":"eth0","addr_info":[{"family":'
    '"inet","local":"10.244.0.2","prefixlen":32,"scope":"global"},{"family":"inet6",'
    '"local":"fe80::449:2aff:fe29:344c","prefixlen":64,"scope":"link"}]}]\n'
    '[{"type":"unicast","dst":"default","gateway":"169.254.1.1","dev":"eth0",'
    '"protocol":"boot","scope":"global","flags":[]},{"type":"unicast","dst":"169.254.1.1",'
    '"dev":"eth0","protocol":"boot","scope":"link","flags":[]}]\n')
REAL_SPEC = SandboxSpec("default", "web-0", "10.244.0.2", "calinet-zz04-0d7763386da",
                        "cali0d7763386da", PID)
GOOD_SYSCTLS = "".join(f"{k} = {v}\n" for k, v in cni.sysctl_wants(REAL_SPEC, True).items())


def spec(i: int) -> SandboxSpec:
    return SandboxSpec.for_pod("ab12", "default", f"web-{i}", f"10.244.0.{i + 2}", PID)


@pytest.fixture(autouse=True)
def _fixed_host(monkeypatch):
    # Unit tests run without namespaces: no pid guard, IPv6 present, netns as scripted.
    monkeypatch.setattr(cni, "_refuse_own_netns", lambda pid: None)
    monkeypatch.setattr(cni, "_node_alive", lambda pid: True)
    monkeypatch.setattr(cni, "_ipv6", lambda: True)


def runner(node: str = "[]\n[]\n[]\n", **responses) -> RecordingRunner:
    rr = RecordingRunner()
    rr.responses[NODE_READ_ARGV] = Result(0, node, "")
    for prefix, result in responses.items():
        rr.responses[tuple(prefix.split())] = result
    return rr


# ---------------------------------------------------------------- validation

def test_for_pod_uses_calico_names():
    s = spec(0)
    assert s.veth == naming.veth_name("default", "web-0") and len(s.veth) == 15
    assert s.netns == naming.pod_netns("ab12", "default", "web-0")


@pytest.mark.parametrize("fld,value", [("ip", "10.0.0.300"), ("ip", "fe80::1"),
                                       ("ip", "10.0.0.0/26"), ("veth", "eth7"),
                                       ("veth", "cali0123456789abc"), ("netns", "a/b"),
                                       ("netns", ""), ("node_pid", 0)])
def test_validate_names_pod_and_field(fld, value):
    bad = SandboxSpec(**{**spec(0).__dict__, fld: value})
    with pytest.raises(ValidationError) as exc:
        CNI(RecordingRunner()).add(bad)
    assert exc.value.obj == "Pod default/web-0" and exc.value.field == fld


# ---------------------------------------------------------------- ADD goldens

def test_add_two_new_pods_golden():
    rr = runner()
    CNI(rr).add_many([spec(0), spec(1)])
    a, b = spec(0), spec(1)
    calls = rr.calls
    assert calls[0] == {"argv": list(NODE_READ_ARGV), "netns": None, "pid": PID,
                        "input": cni.NODE_READ}
    assert calls[1] == {"argv": ["ip", "-batch", "-"], "netns": None, "pid": None, "input": (
        f"netns add {a.netns}\nnetns add {b.netns}\n"
        f"link add {a.veth} netns {PID} type veth peer name eth0 netns {a.netns}\n"
        f"link add {b.veth} netns {PID} type veth peer name eth0 netns {b.netns}\n")}
    assert calls[2] == {"argv": ["ip", "-batch", "-"], "netns": None, "pid": PID, "input": (
        f"link set {a.veth} address ee:ee:ee:ee:ee:ee\nlink set {a.veth} up\n"
        f"route replace 10.244.0.2/32 dev {a.veth} scope link\n"
        f"link set {b.veth} address ee:ee:ee:ee:ee:ee\nlink set {b.veth} up\n"
        f"route replace 10.244.0.3/32 dev {b.veth} scope link\n")}
    assert calls[3]["pid"] == PID and calls[3]["argv"] == ["sysctl", "-q", "-w"] + [
        f"net.{k}" for v in (a.veth, b.veth) for k in (
            f"ipv4.conf.{v}.route_localnet=1", f"ipv4.neigh.{v}.proxy_delay=0",
            f"ipv4.conf.{v}.proxy_arp=1", f"ipv4.conf.{v}.forwarding=1",
            f"ipv6.conf.{v}.accept_ra=0")]
    pods = sorted(calls[4:], key=lambda c: c["argv"][2])
    assert [c["argv"] for c in pods] == sorted(
        (["ip", "-n", s.netns, "-batch", "-"] for s in (a, b)), key=lambda v: v[2])
    by_ns = {c["argv"][2]: c["input"] for c in pods}
    assert by_ns[a.netns] == ("link set lo up\nlink set eth0 up\n"
                              "addr flush dev eth0 scope global\n"
                              "addr add 10.244.0.2/32 dev eth0\n"
                              "route replace 169.254.1.1 dev eth0 scope link\n"
                              "route replace default via 169.254.1.1 dev eth0\n")


def test_no_ipv6_no_accept_ra(monkeypatch):
    monkeypatch.setattr(cni, "_ipv6", lambda: False)
    assert cni.sysctl_argv([spec(0)], False)[-1].endswith(".forwarding=1")
    assert not any("ipv6" in a for a in cni.sysctl_argv([spec(0)], False))


def test_fork_count_is_constant_plus_one_per_pod():
    for n in (1, 30):
        rr = runner()
        CNI(rr).add_many([spec(i) for i in range(n)])
        assert len(rr.calls) == 4 + n


def test_ip_routed_via_other_interface_is_refused_naming_it():
    node = '[]\n[{"dst":"10.244.0.2","dev":"eth1","scope":"link"}]\n[]\n'
    rr = runner(node)
    with pytest.raises(ApplyError, match="eth1"):
        CNI(rr).add(spec(0))
    assert len(rr.calls) == 1   # read only, nothing written


def test_blackhole_for_the_ip_is_a_conflict_too():
    rr = runner('[]\n[{"type":"blackhole","dst":"10.244.0.2"}]\n[]\n')
    with pytest.raises(ApplyError, match="blackhole"):
        CNI(rr).add(spec(0))


def test_duplicate_ip_in_one_batch():
    twin = SandboxSpec.for_pod("ab12", "other", "x", "10.244.0.2", PID)
    with pytest.raises(ApplyError, match="both want IP 10.244.0.2"):
        CNI(runner()).add_many([spec(0), twin])


def test_stale_host_veth_deleted_first():
    s = spec(0)
    node = json.dumps([{"ifindex": 7, "ifname": s.veth, "flags": ["UP"],
                        "linkinfo": {"info_kind": "veth"}, "link_index": 3,
                        "link_netnsid": 5}]) + "\n[]\n[]\n"
    rr = runner(node)
    CNI(rr).add(s)
    assert rr.calls[1] == {"argv": ["ip", "-batch", "-"], "netns": None, "pid": PID,
                           "input": f"link del {s.veth}\n"}
    assert rr.calls[2]["input"].startswith(f"netns add {s.netns}\n")


def test_batch_failure_carries_its_input():
    rr = runner(**{"ip -batch -": Result(2, "", "RTNETLINK answers: File exists\n")})
    with pytest.raises(ApplyError) as exc:
        CNI(rr).add(spec(0))
    assert "File exists" in str(exc.value)
    assert exc.value.rendered_input.startswith(f"netns add {spec(0).netns}\n")


# ---------------------------------------------------------------- idempotence / repair

def _present(monkeypatch, *names):
    monkeypatch.setattr(CNI, "_netns_present", lambda self, n: n in names)


def _existing(pod_text=REAL_POD, node_text=REAL_NODE, sysctls=GOOD_SYSCTLS):
    rr = runner(node_text, **{f"ip -d -j -n {REAL_SPEC.netns}": Result(0, pod_text, ""),
                              "sysctl": Result(0, sysctls, "")})
    return rr


def test_correct_sandbox_re_add_writes_nothing(monkeypatch):
    _present(monkeypatch, REAL_SPEC.netns)
    rr = _existing()
    CNI(rr).add(REAL_SPEC)
    # Reads only: the pod, the node, the node's sysctls of this veth.
    assert [c["argv"][:4] for c in rr.calls] == [
        ["ip", "-d", "-j", "-n"], ["ip", "-d", "-j", "-batch"],
        ["sysctl", f"net.ipv4.conf.{REAL_SPEC.veth}.route_localnet",
         f"net.ipv4.neigh.{REAL_SPEC.veth}.proxy_delay",
         f"net.ipv4.conf.{REAL_SPEC.veth}.proxy_arp"]]
    assert CNI(rr).check(REAL_SPEC) == []


def test_wrong_sysctl_rewrites_only_sysctls(monkeypatch):
    _present(monkeypatch, REAL_SPEC.netns)
    rr = _existing(sysctls=GOOD_SYSCTLS.replace("proxy_arp = 1", "proxy_arp = 0"))
    assert CNI(rr).check(REAL_SPEC) == [
        f"sysctl net.ipv4.conf.{REAL_SPEC.veth}.proxy_arp=0 (want 1)"]
    rr.calls.clear()
    CNI(rr).add(REAL_SPEC)
    assert [c["argv"][:3] for c in rr.calls[3:]] == [["sysctl", "-q", "-w"]]


def test_missing_pod_default_route_repairs_pod_side_only(monkeypatch):
    _present(monkeypatch, REAL_SPEC.netns)
    pod = REAL_POD.replace('{"type":"unicast","dst":"default","gateway":"169.254.1.1",'
                           '"dev":"eth0","protocol":"boot","scope":"global","flags":[]},', "")
    rr = _existing(pod_text=pod)
    assert CNI(rr).check(REAL_SPEC) == ["pod route default via 169.254.1.1 dev eth0 missing"]
    rr.calls.clear()
    CNI(rr).add(REAL_SPEC)
    assert [c["argv"] for c in rr.calls[3:]] == [["ip", "-n", REAL_SPEC.netns, "-batch", "-"]]


def test_wrong_mac_and_stale_route_repair_node_side(monkeypatch):
    _present(monkeypatch, REAL_SPEC.netns)
    node = REAL_NODE.replace("ee:ee:ee:ee:ee:ee", "02:00:00:00:00:01").replace(
        '"flags":[]}]', '"flags":[]},{"dst":"10.244.0.9","dev":"cali0d7763386da",'
        '"scope":"link"}]')
    rr = _existing(node_text=node)
    assert CNI(rr).check(REAL_SPEC) == [
        "cali0d7763386da MAC 02:00:00:00:00:01 != ee:ee:ee:ee:ee:ee",
        "stale node route 10.244.0.9/32 dev cali0d7763386da"]
    rr.calls.clear()
    CNI(rr).add(REAL_SPEC)
    assert rr.calls[3]["input"] == (
        "route del 10.244.0.9/32 dev cali0d7763386da\n"
        "link set cali0d7763386da address ee:ee:ee:ee:ee:ee\nlink set cali0d7763386da up\n"
        "route replace 10.244.0.2/32 dev cali0d7763386da scope link\n")
    assert len(rr.calls) == 4


def test_broken_pair_recreates_the_netns(monkeypatch):
    _present(monkeypatch, REAL_SPEC.netns)
    pod = REAL_POD.replace('"link_index":2,"ifname":"eth0"', '"link_index":9,"ifname":"eth0"')
    rr = _existing(pod_text=pod)
    assert "are not peers" in CNI(rr).check(REAL_SPEC)[0]
    rr.calls.clear()
    CNI(rr).add(REAL_SPEC)
    inputs = [c["input"] for c in rr.calls[3:]]
    assert inputs[0] == f"link del {REAL_SPEC.veth}\n"
    assert inputs[1].startswith(f"netns del {REAL_SPEC.netns}\nnetns add {REAL_SPEC.netns}\n")


def test_peer_in_another_namespace_with_same_ifindex_is_not_a_pair():
    node = cni.parse_node(REAL_NODE.replace('"id":0', '"id":3'))
    assert "are not peers" in cni.pair_problems(REAL_SPEC, node, cni.parse_pod(REAL_POD))[0]


def test_check_reports_missing_sandbox(monkeypatch):
    monkeypatch.setattr(cni, "_node_alive", lambda pid: True)
    rr = runner()
    assert CNI(rr).check(spec(0))[:1] == [f"netns {spec(0).netns} missing"]


def test_check_of_a_stopped_node(monkeypatch):
    monkeypatch.setattr(cni, "_node_alive", lambda pid: False)
    rr = runner()
    assert CNI(rr).check(spec(0)) == [f"node pid {PID} is not running",
                                      f"netns {spec(0).netns} missing"]
    assert rr.calls == []


# ---------------------------------------------------------------- DEL

def test_delete_golden(monkeypatch):
    a, b = spec(0), spec(1)
    _present(monkeypatch, a.netns)
    monkeypatch.setattr(cni, "_node_alive", lambda pid: True)
    node = json.dumps([{"ifindex": 2, "ifname": a.veth, "flags": []}]) + "\n[]\n[]\n"
    rr = runner(node)
    CNI(rr).delete_many([a, b])
    assert [(c["argv"], c["pid"], c["input"]) for c in rr.calls[1:]] == [
        (["ip", "-batch", "-"], PID, f"link set {a.veth} group {cni.DELETE_GROUP}\n"
                                     f"link del group {cni.DELETE_GROUP}\n"),
        (["ip", "-batch", "-"], None, f"netns del {a.netns}\n")]


def test_delete_of_nothing_writes_nothing(monkeypatch):
    _present(monkeypatch)
    monkeypatch.setattr(cni, "_node_alive", lambda pid: False)   # node gone as well
    rr = runner()
    CNI(rr).delete(spec(0))
    assert rr.calls == []


# ---------------------------------------------------------------- parsers

def test_parse_real_output():
    node, pod = cni.parse_node(REAL_NODE), cni.parse_pod(REAL_POD)
    host = node.links["cali0d7763386da"]
    assert (host.kind, host.mac, host.up, host.peer_ifindex, host.peer_nsid) == (
        "veth", "ee:ee:ee:ee:ee:ee", True, 2, 0)
    assert node.nsids == {"calinet-zz04-0d7763386da": 0}
    assert pod.addrs == ["10.244.0.2/32"]
    assert cni.pod_problems(REAL_SPEC, pod) == []
    assert cni.parse_sysctl("a.b = 1\nnoise\nc = x y\n") == {"a.b": "1", "c": "x y"}


def test_json_stream_handles_back_to_back_documents():
    assert cni.json_stream('[1][{"a":2}]\n[]\n ') == [[1], [{"a": 2}], []]


def test_node_read_before_any_named_netns_exists():
    # `ip -j netns list` prints nothing (not []) while /run/netns is absent (a fresh machine).
    text = "\n".join(REAL_NODE.splitlines()[:2]) + "\n"
    node = cni.parse_node(text)
    assert node.nsids == {} and "cali0d7763386da" in node.links
    assert cni.parse_node(REAL_NODE).nsids == {"calinet-zz04-0d7763386da": 0}
