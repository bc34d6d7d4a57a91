"""Unit tests of dual-stack routed fabrics (underlay.cidr6 with `fabric:`): the IPv6 address
plan (topologies.fabric6: rack /64s, ToR ::1, nodes ::2.., /127 links from the last /64) and
its errors naming the field, the IPv4 plan left exactly as it is, the BIRD configs (golden
files, `bird -p`), the routers' and nodes' batches, IPv6 BGPPeers to a ToR (peering, ExaBGP
config, peerIP scope), the routers' IPv6 sessions awaited, and the node Fib's recursive
IPv6 next hops."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bgp import config as bgp_config
from bgp.fib import Fib
from bgp.model import BGPConfiguration, node_bgp, peer_from_manifest
from bgp.peering import peerings
from bgp.rib import Route
from orchestrator.errors import ValidationError
from orchestrator.host.runner import RecordingRunner, Result
from topologies import bird
from topologies.net import render_node_batch, render_router_batch
from topologies.routers import FabricRouters
from topologies.spec import load_spec, spec_from_dict

EXAMPLES = Path(__file__).resolve().parents[2] / "topologies" / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
V6 = "fd00:172:18::/56"


def doc(**over) -> dict:
    d = {"name": "f", "underlay": {"cidr6": V6}, "fabric": {"spines": {"count": 2}},
         "racks": [{"name": "rack-a", "nodes": ["a1", "a2"]},
                   {"name": "rack-b", "nodes": ["b1"]}],
         "nodes": [{"name": "a1"}, {"name": "a2"}, {"name": "b1"}]}
    d.update(over)
    return d


def err(d) -> ValidationError:
    with pytest.raises(ValidationError) as ei:
        spec_from_dict(d, "f.yaml")
    assert ei.value.source == "f.yaml"
    return ei.value


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("CALINET_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs (CALINET_UPDATE_GOLDEN=1 rewrites it)"


# ------------------------------------------------------------------------ address plan

def test_racks_get_the_ith_64_tors_the_first_address_links_127s_from_the_last_64():
    s = spec_from_dict(doc(), "f.yaml")
    assert [r.subnet6 for r in s.racks] == ["fd00:172:18:1::/64", "fd00:172:18:2::/64"]
    assert [(n.name, n.ip6, n.prefixlen6, n.gateway6) for n in s.nodes] == [
        ("a1", "fd00:172:18:1::2", 64, "fd00:172:18:1::1"),
        ("a2", "fd00:172:18:1::3", 64, "fd00:172:18:1::1"),
        ("b1", "fd00:172:18:2::2", 64, "fd00:172:18:2::1")]
    f = s.fabric
    assert f.ipv6 and f.link_cidr6 == "fd00:172:18:ff::/64"
    assert [(ln.a, ln.a_ip6, ln.b, ln.b_ip6) for ln in f.links] == [
        ("tor-a", "fd00:172:18:ff::", "spine-1", "fd00:172:18:ff::1"),
        ("tor-a", "fd00:172:18:ff::2", "spine-2", "fd00:172:18:ff::3"),
        ("tor-b", "fd00:172:18:ff::4", "spine-1", "fd00:172:18:ff::5"),
        ("tor-b", "fd00:172:18:ff::6", "spine-2", "fd00:172:18:ff::7")]
    tor = f.router("tor-a")
    assert [(i.name, i.ip6, i.prefixlen6) for i in tor.interfaces] == [
        ("eth0", "fd00:172:18:1::1", 64), ("eth1", "fd00:172:18:ff::", 127),
        ("eth2", "fd00:172:18:ff::2", 127)]
    assert tor.router_id == "172.18.1.1"          # router ids stay 32-bit
    scope = s.peer_scope()
    assert scope["fd00:172:18:1::1"] == "router tor-a (eth0)"
    assert scope["fd00:172:18:ff::7"] == "router spine-2 (eth2)"
    assert scope["fd00:172:18:1::3"] == "node a2"
    assert s.node_families == (4, 6) and s.families == (4, 6)


def test_the_ipv4_plan_is_the_same_with_and_without_cidr6():
    plain = spec_from_dict({k: v for k, v in doc().items() if k != "underlay"}, "f.yaml")
    dual = spec_from_dict(doc(), "f.yaml")
    assert not plain.fabric.ipv6 and plain.fabric.link_cidr6 is None
    assert all(n.ip6 is None and n.gateway6 is None for n in plain.nodes)
    def v4(spec):
        return ([[(r.name, r.router_id, i.name, i.ip, i.prefixlen, i.peer) for i in r.interfaces]
                 for r in spec.fabric.routers],
                [(ln.a, ln.a_ip, ln.b, ln.b_ip) for ln in spec.fabric.links],
                [(n.ip, n.gateway, n.prefixlen) for n in spec.nodes],
                [(r.subnet, r.tor) for r in spec.racks])
    assert v4(dual) == v4(plain)
    assert all(i.ip6 is None for r in plain.fabric.routers for i in r.interfaces)
    assert plain.peer_scope() == {k: v for k, v in dual.peer_scope().items() if ":" not in k}


def test_explicit_node_ip6_inside_its_rack_and_the_smallest_cidr6():
    s = spec_from_dict(doc(nodes=[{"name": "a1", "ip6": "fd00:172:18:1::a"}, {"name": "a2"},
                                  {"name": "b1"}]), "f.yaml")
    assert s.node("a1").ip6 == "fd00:172:18:1::a" and s.node("a2").ip6 == "fd00:172:18:1::2"
    # two racks need four /64s: the free first one, two racks, the links' last one
    s = spec_from_dict(doc(underlay={"cidr6": "fd00:172:18::/62"}), "f.yaml")
    assert s.racks[1].subnet6 == "fd00:172:18:2::/64"
    assert s.fabric.link_cidr6 == "fd00:172:18:3::/64"
    # an explicit IPv4 rack subnet leaves the IPv6 one at its index
    d = doc()
    d["racks"][1]["subnet"] = "172.18.9.0/24"
    assert spec_from_dict(d, "f.yaml").racks[1].subnet6 == "fd00:172:18:2::/64"


@pytest.mark.parametrize("change, field, words", [
    (lambda d: d.update(underlay={"cidr6": "fd00:172:18::/63"}), "underlay.cidr6",
     "needs 4 /64s: a /62 or shorter"),
    (lambda d: d.update(underlay={"cidr6": "fd00:172:18::/64"}), "underlay.cidr6",
     "too small for a fabric of 2 rack(s)"),
    (lambda d: d.update(underlay={"cidr6": "fd00:172:18::/96"}), "underlay.cidr6",
     "a /56 holds 254 racks"),
    (lambda d: d["nodes"][1].update(ip6="fd00:172:18:2::9"), "nodes[1].ip6",
     "not a host address of the underlay fd00:172:18:1::/64"),
    (lambda d: d["nodes"][0].update(ip6="fd00:172:18:1::1"), "nodes[0].ip6",
     "IPv6 address of rack-a's ToR tor-a"),
    (lambda d: d["nodes"][0].update(ip6="172.18.1.9"), "nodes[0].ip6", "not an IPv6 address"),
    (lambda d: (d["nodes"][0].update(ip6="fd00:172:18:1::9"),
                d["nodes"][1].update(ip6="fd00:172:18:1::9")), "nodes[1].ip6",
     "already the IP of node 'a1'"),
    (lambda d: d.pop("underlay") and d["nodes"][2].update(ip6="fd00:172:18:2::9"),
     "nodes[2].ip6", "set underlay.cidr6"),
])
def test_ipv6_plan_errors_name_the_field(change, field, words):
    d = doc()
    change(d)
    e = err(d)
    assert e.field == field and words in e.message, (e.field, e.message)


def test_sites_wan_links_and_the_external_host_on_a_dual_stack_fabric():
    d = doc(fabric={"sites": [{"name": "dc1", "spines": [{"name": "s1"}]},
                              {"name": "dc2", "spines": [{"name": "s2"}]}]},
            external={"attach": "s1"})
    d["racks"][0]["site"], d["racks"][1]["site"] = "dc1", "dc2"
    s = spec_from_dict(d, "f.yaml")
    wan = next(ln for ln in s.fabric.links if ln.wan)
    assert (wan.a, wan.a_ip6, wan.b, wan.b_ip6) == (
        "s1", "fd00:172:18:ff::4", "s2", "fd00:172:18:ff::5")
    text = bird.render(s.fabric.router("s1"), s.fabric, s)
    assert "protocol bgp s2_v6 from fabric_peer6 {" in text
    assert "\tneighbor fd00:172:18:ff::5 as 65100;" in text
    # The external host stays IPv4: its router interface has no IPv6 address.
    ext = s.fabric.router("s1").interface(s.external.attach_intf)
    assert ext.ip == "203.0.113.1" and ext.ip6 is None
    assert "protocol direct external_net {\n\tipv4;" in text


# ------------------------------------------------------------------------- BIRD configs

def test_bird_configs_of_the_dual_stack_fabric_example_golden():
    s = load_spec(EXAMPLES / "dual-stack-fabric.yaml")
    golden("bird-dual-stack-fabric-tor-a.conf",
           bird.render(s.fabric.router("tor-a"), s.fabric, s))
    golden("bird-dual-stack-fabric-spine-1.conf",
           bird.render(s.fabric.router("spine-1"), s.fabric, s))


def test_the_ipv4_text_is_unchanged_and_every_ipv6_piece_is_added_beside_it():
    plain = load_spec(EXAMPLES / "leaf-spine.yaml")
    tor = bird.render(plain.fabric.router("tor-a"), plain.fabric, plain)
    assert "ipv6" not in tor and "UNDERLAY6" not in tor and "_v6" not in tor
    s = load_spec(EXAMPLES / "dual-stack-fabric.yaml")
    text = bird.render(s.fabric.router("tor-a"), s.fabric, s)
    assert "define UNDERLAY6 = [ fd00:172:18::/56+ ];" in text
    assert "protocol direct rack_subnet6 {\n\tipv6;\n\tinterface \"eth0\";" in text
    assert "protocol kernel kernel6 {\n\tipv6 {" in text and text.count("merge paths on;") == 2
    assert ("protocol bgp spine_2_v6 from fabric_peer6 {\n\tdescription \"spine spine-2 "
            "(IPv6)\";\n\tneighbor fd00:172:18:ff::3 as 65000;") in text
    assert ("protocol bgp node_a2_v6 from rack_node6 {\n\tdescription \"node node-a2 (IPv6)\";"
            "\n\tneighbor fd00:172:18:1::3 as 65001;\n\trr client;") in text
    six = text.split("template bgp rack_node6 {")[1].split("}\n")[0]
    assert "import where !(net ~ UNDERLAY6);" in six and "next hop self ebgp;" in six
    assert "export where source = RTS_BGP && !(net ~ UNDERLAY6);" in six


def test_ipv4_pods_keep_the_routers_ipv6_sessions_but_no_node_ones():
    s = spec_from_dict(doc(ipFamilies=["IPv4"], fabric={"spines": {"count": 1}, "bfd": True}),
                       "f.yaml")
    text = bird.render(s.fabric.router("tor-a"), s.fabric, s)
    assert "protocol bgp spine_1_v6" in text and "rack_node6" not in text
    assert "a1_v6" not in text
    six = text.split("template bgp fabric_peer6 {")[1].split("}\n}")[0]
    assert "\tbfd on;" in six            # BFD covers the IPv6 sessions too


@pytest.mark.skipif(shutil.which("bird") is None and not os.path.exists("/usr/sbin/bird"),
                    reason="BIRD 2 is not installed")
@pytest.mark.parametrize("over", [{}, {"fabric": {"spines": {"count": 2}, "bfd": True}},
                                  {"ipFamilies": ["IPv6"]}])
def test_bird_parses_every_dual_stack_config(tmp_path, over):
    s = spec_from_dict(doc(**over), "f.yaml")
    exe = shutil.which("bird") or "/usr/sbin/bird"
    for r in s.fabric.routers:
        path = tmp_path / f"{r.name}.conf"
        path.write_text(bird.render(r, s.fabric, s))
        res = subprocess.run([exe, "-p", "-c", str(path)], capture_output=True, text=True,
                             timeout=10)
        assert res.returncode == 0, (r.name, res.stderr)


def test_router_sessions_awaited_include_the_ipv6_twins(tmp_path):
    s = spec_from_dict(doc(fabric={"spines": {"count": 1}}), "f.yaml")
    runner = RecordingRunner()
    runner.responses[("/usr/sbin/birdc",)] = runner.responses[("birdc",)] = Result(0, (
        "BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\n"
        "spine_1    BGP        ---        up     12:25:53.409  Established\n"
        "spine_1_v6 BGP        ---        start  12:25:53.409  Active\n"
        "a1_v6      BGP        ---        start  12:25:53.409  Active\n"), "")
    routers = FabricRouters(s, None, str(tmp_path), runner)
    down = routers.fabric_sessions_down()
    assert "tor-a/spine_1_v6 (Active)" in down and not any("a1_v6" in d for d in down)
    assert not any(d.startswith("tor-a/spine_1 ") for d in down)


# ------------------------------------------------------------------ routers' and nodes' ip

def test_router_and_node_batches_of_a_dual_stack_rack():
    s = spec_from_dict(doc(), "f.yaml")
    node = render_node_batch(s, "a1")
    assert "addr add fd00:172:18:1::2/64 dev eth0 nodad" in node
    assert "route add ::/0 via fd00:172:18:1::1 dev eth0" in node
    assert "neigh replace fd00:172:18:1::3 lladdr 02:ca:ac:12:01:03" in node
    assert "neigh replace fd00:172:18:1::1 lladdr 02:ca:ac:12:01:01" in node
    assert "fd00:172:18:2::" not in node          # no neighbours beyond the rack
    tor = render_router_batch(s, "tor-a").splitlines()
    i = tor.index("link set dev eth1 addrgenmode none")
    assert tor[i + 1:i + 3] == ["addr add fd00:172:18:ff::/127 dev eth1 nodad",
                                "link set dev eth1 up"]
    assert "addr add fd00:172:18:1::1/64 dev eth0 nodad" in tor
    assert "neigh replace fd00:172:18:1::2 lladdr 02:ca:ac:12:01:02 dev eth0 nud permanent" in tor
    assert "neigh replace fd00:172:18:ff::1 lladdr 02:ca:ac:12:ff:01 dev eth1 nud permanent" in tor
    plain = spec_from_dict({k: v for k, v in doc().items() if k != "underlay"}, "f.yaml")
    assert "addrgenmode" not in render_router_batch(plain, "tor-a")
    assert "::" not in render_node_batch(plain, "a1")


# ------------------------------------------------------------- IPv6 BGPPeers to the ToR

def _peer(name, ip, asn, sel):
    return {"kind": "BGPPeer", "metadata": {"name": name},
            "spec": {"nodeSelector": sel, "peerIP": ip, "asNumber": asn}}


def test_an_ipv6_bgppeer_to_the_tor_is_an_ipv6_session_of_the_nodes_with_ipv6():
    s = spec_from_dict(doc(), "f.yaml")
    scope = s.peer_scope()
    peers = [peer_from_manifest(_peer("a4", "172.18.1.1", 65001, "all()"), node_names=[],
                                underlay=scope),
             peer_from_manifest(_peer("a6", "fd00:172:18:1::1", 65001, "all()"),
                                node_names=[], underlay=scope)]
    nodes = [node_bgp("a1", "172.18.1.2", ip6="fd00:172:18:1::2"),
             node_bgp("b1", "172.18.2.2")]      # b1: IPv4 only (no bird6)
    config = BGPConfiguration(nodeToNodeMeshEnabled=False)
    table = peerings(nodes, config, peers)
    assert [(nb.ip, nb.family, nb.passive, nb.node) for nb in table["a1"]] == [
        ("172.18.1.1", 4, False, None), ("fd00:172:18:1::1", 6, False, None)]
    assert [nb.ip for nb in table["b1"]] == ["172.18.1.1"]
    text = bgp_config.render(nodes[0], table["a1"], config, ["/bin/agent"])
    block = text.split("neighbor fd00:172:18:1::1 {")[1].split("\n}")[0]
    assert "local-address fd00:172:18:1::2;" in block and "ipv6 unicast;" in block
    assert "connect 179;" in block and "router-id 172.18.1.2;" in block


def test_ipv6_peer_ips_are_checked_against_what_the_cluster_owns():
    s = spec_from_dict(doc(), "f.yaml")
    with pytest.raises(ValidationError) as ei:
        peer_from_manifest(_peer("x", "fd00:172:18:1::77", 65001, "all()"), node_names=[],
                           underlay=s.peer_scope())
    assert ei.value.field == "spec.peerIP" and "no address of a node or fabric router" in \
        ei.value.message and "tor-a fd00:172:18:1::1" in ei.value.message
    flat = spec_from_dict({"name": "l2", "underlay": {"cidr6": "fd00:172:18::/64"},
                           "nodes": [{"name": "n1"}]}, "f.yaml")
    assert flat.peer_scope() == ["172.18.0.0/16", "fd00:172:18::/64"]
    ok = peer_from_manifest(_peer("y", "fd00:172:18::99", 65001, "all()"), node_names=[],
                            underlay=flat.peer_scope())
    assert ok.peerIP == "fd00:172:18::99"
    with pytest.raises(ValidationError, match="outside the underlay fd00:172:18::/64"):
        peer_from_manifest(_peer("z", "fd00:1::1", 65001, "all()"), node_names=[],
                           underlay=flat.peer_scope())
    with pytest.raises(ValidationError, match=r"IPv4 only \(set the topology's underlay.cidr6"):
        peer_from_manifest(_peer("w", "fd00:1::1", 65001, "all()"), node_names=[],
                           underlay="172.18.0.0/16")


# ------------------------------------------------------------- the node's recursive Fib

class _Kernel(RecordingRunner):
    """The first batch is refused as the kernel refuses an off-link IPv6 next hop."""

    def run(self, argv, **kw):
        res = super().run(argv, **kw)
        argv = [str(a) for a in argv]
        if argv[:3] == ["ip", "-force", "-batch"] and \
                sum(c["argv"][:3] == argv[:3] for c in self.calls) == 1:
            from orchestrator.errors import CommandError
            raise CommandError(argv, 2, "", "RTNETLINK answers: No route to host")
        return res


def test_fib_resolves_an_off_link_ipv6_next_hop_via_the_ipv6_gateway():
    k = _Kernel()
    k.responses[("ip", "-6", "-j", "route", "show", "table", "main", "proto", "kernel")] = \
        Result(0, '[{"dst": "fd00:172:18:1::/64"}, {"dst": "fe80::/64"}]', "")
    k.responses[("ip", "-6", "-j", "route", "show", "table", "main", "default")] = \
        Result(0, '[{"dst": "default", "gateway": "fd00:172:18:1::1"}]', "")
    fib = Fib(k)
    fib.apply([Route("fd00:10:244::40/122", via="fd00:172:18:2::2"),
               Route("fd00:10:244::80/122", via="fd00:172:18:1::3")])
    assert fib.recursive
    batches = [c["input"] for c in k.calls if c["argv"][:3] == ["ip", "-force", "-batch"]]
    assert len(batches) == 2
    assert "fd00:10:244::40/122 via fd00:172:18:1::1" in batches[1]
    assert "fd00:10:244::80/122 via fd00:172:18:1::3" in batches[1]
    assert not any(c["argv"][:2] == ["ip", "-j"] and "default" in c["argv"] for c in k.calls)
