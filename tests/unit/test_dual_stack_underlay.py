"""IPv6 beside IPv4 on the underlay (issue 15, part 1): `underlay.cidr6`, node `ip6`, the
node batch, the Node object (both InternalIPs, Calico's IPv6Address annotation), and IPv6
pools refused with the reason while pods get IPv4 only."""

from __future__ import annotations

import pytest

from orchestrator.control.nodes import node_object
from orchestrator.errors import ValidationError
from orchestrator.ipam.families import IPFamilyAdmission
from topologies import net as tnet
from topologies.addressing import assign_node_ips
from topologies.spec import spec_from_dict

V6 = "fd00:172:18::/64"


def dual(**over):
    d = {"name": "t", "underlay": {"cidr6": V6},
         "nodes": [{"name": "n1"}, {"name": "n2", "ip6": "fd00:172:18::20"}, {"name": "n3"}]}
    d.update(over)
    return spec_from_dict(d, "t.yaml")


def err(d) -> ValidationError:
    with pytest.raises(ValidationError) as ei:
        spec_from_dict(d, "t.yaml")
    return ei.value


def test_nodes_get_ipv6_addresses_in_node_order_skipping_explicit_ones():
    s = dual()
    assert s.families == (4, 6) and s.underlay.cidr6 == V6 and s.underlay.prefixlen6 == 64
    assert [(n.ip, n.ip6, n.prefixlen6) for n in s.nodes] == [
        ("172.18.0.2", "fd00:172:18::2", 64), ("172.18.0.3", "fd00:172:18::20", 64),
        ("172.18.0.4", "fd00:172:18::3", 64)]
    plain = spec_from_dict({"name": "t", "nodes": [{"name": "n1"}]}, "t.yaml")
    assert plain.families == (4,) and plain.nodes[0].ip6 is None


@pytest.mark.parametrize("d,field,words", [
    ({"underlay": {"cidr6": "172.19.0.0/16"}}, "underlay.cidr6", "not an IPv6 network"),
    ({"underlay": {"cidr6": "fd00::1/64"}}, "underlay.cidr6", "host bits set"),
    ({"underlay": {"cidr6": "fd00::/124"}}, "underlay.cidr6", "too small"),
    ({"underlay": {"cidr6": "fe80::/64"}}, "underlay.cidr6", "link-local"),
    ({"nodes": [{"name": "n1", "ip6": "fd00::5"}]}, "nodes[0].ip6", "needs an IPv6 underlay"),
    ({"underlay": {"cidr6": V6}, "nodes": [{"name": "n1", "ip6": "172.18.0.9"}]},
     "nodes[0].ip6", "not an IPv6 address"),
    ({"underlay": {"cidr6": V6}, "nodes": [{"name": "n1", "ip6": "fd00:1::5"}]},
     "nodes[0].ip6", "not a host address"),
    ({"underlay": {"cidr6": V6}, "nodes": [{"name": "n1", "ip6": "fd00:172:18::9"},
                                           {"name": "n2", "ip6": "fd00:172:18::9"}]},
     "nodes[1].ip6", "already the IP of node 'n1'"),
    ({"underlay": {"cidr6": V6}, "fabric": {"spines": {"count": 1}},
      "racks": [{"name": "rack-a", "nodes": ["n1"]}], "nodes": [{"name": "n1"}]},
     "underlay.cidr6", "too small for a fabric of 1 rack(s)"),
])
def test_bad_ipv6_underlay_input_names_the_field(d, field, words):
    doc = {"name": "t", "nodes": [{"name": "n1"}], **d}
    e = err(doc)
    assert e.field == field and words in e.message, (e.field, e.message)


def test_ipv6_assignment_runs_out_with_the_ipv6_field():
    with pytest.raises(ValidationError) as ei:
        assign_node_ips([(f"n{i}", None, "x") for i in range(4)], "fd00::/126",
                        field="underlay.cidr6")
    assert ei.value.field == "underlay.cidr6"


def test_node_batch_adds_ipv6_without_dad_an_on_link_default_and_neighbours():
    s = dual()
    text = tnet.render_node_batch(s, "n1")
    assert text.endswith("addr add fd00:172:18::2/64 dev eth0 nodad\n"
                         "route add ::/0 dev eth0\n"
                         "neigh replace fd00:172:18::20 lladdr 02:ca:ac:12:00:03 dev eth0 "
                         "nud permanent\n"
                         "neigh replace fd00:172:18::3 lladdr 02:ca:ac:12:00:04 dev eth0 "
                         "nud permanent\n"), text
    v4 = spec_from_dict({"name": "t", "nodes": [{"name": "n1"}, {"name": "n2"}]}, "t.yaml")
    assert "::" not in tnet.render_node_batch(v4, "n1")


def test_node_object_has_both_internal_ips_and_calicos_address_annotations():
    s = dual()
    obj = node_object(s.nodes[1], s.nodes[1].ip)
    assert obj["status"]["addresses"] == [
        {"type": "InternalIP", "address": "172.18.0.3"},
        {"type": "InternalIP", "address": "fd00:172:18::20"},
        {"type": "Hostname", "address": "n2"}]
    notes = obj["metadata"]["annotations"]
    assert notes["projectcalico.org/IPv4Address"] == "172.18.0.3/16"
    assert notes["projectcalico.org/IPv6Address"] == "fd00:172:18::20/64"
    v4 = spec_from_dict({"name": "t", "nodes": [{"name": "n1"}]}, "t.yaml").nodes[0]
    assert "projectcalico.org/IPv6Address" not in node_object(v4, v4.ip)["metadata"][
        "annotations"]


def _pool(cidr):
    return {"kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": cidr}}


def test_pools_must_be_of_a_family_the_pods_have():
    IPFamilyAdmission((4,))(None, [_pool("10.250.0.0/16")])
    with pytest.raises(ValidationError) as ei:
        IPFamilyAdmission((4,))(None, [_pool("fd00:10:244::/48")])
    assert ei.value.field == "spec.cidr" and "IPv4 only" in ei.value.message
    assert "underlay.cidr6" in ei.value.message
    IPFamilyAdmission((4, 6))(None, [_pool("fd00:10:244::/48"), _pool("10.250.0.0/16")])
    with pytest.raises(ValidationError) as ei:
        IPFamilyAdmission((6,))(None, [_pool("10.250.0.0/16")])
    assert "IPv6 only" in ei.value.message and "ipFamilies" in ei.value.message
    vx = {"kind": "IPPool", "metadata": {"name": "p"},
          "spec": {"cidr": "fd00:10:244::/48", "vxlanMode": "Always"}}
    with pytest.raises(ValidationError) as ei:
        IPFamilyAdmission((4, 6))(None, [vx])
    assert ei.value.field == "spec.vxlanMode" and "not built" in ei.value.message


def test_ip_families_default_follows_the_underlay_and_bad_values_name_the_field():
    assert dual().families == (4, 6) and dual().node_families == (4, 6)
    v4 = spec_from_dict({"name": "t", "nodes": [{"name": "n1"}]}, "t.yaml")
    assert v4.families == (4,) and v4.node_families == (4,)
    base = {"name": "t", "underlay": {"cidr6": "fd00:1::/64"}, "nodes": [{"name": "n1"}]}
    assert spec_from_dict({**base, "ipFamilies": ["IPv6", "IPv4"]}).families == (6, 4)
    assert spec_from_dict({**base, "ipFamilies": ["IPv6"]}).families == (6,)
    assert spec_from_dict({**base, "ipFamilies": ["IPv4"]}).families == (4,)
    for bad, fld, text in ((["IPv5"], "ipFamilies[0]", "not an IP family"),
                           (["IPv4", "IPv4"], "ipFamilies[1]", "twice"),
                           ("IPv4", "ipFamilies", "a list"), ([], "ipFamilies", "a list")):
        with pytest.raises(ValidationError) as ei:
            spec_from_dict({**base, "ipFamilies": bad}, "t.yaml")
        assert ei.value.field == fld and text in ei.value.message, ei.value
    with pytest.raises(ValidationError) as ei:
        spec_from_dict({"name": "t", "nodes": [{"name": "n1"}], "ipFamilies": ["IPv4", "IPv6"]},
                       "t.yaml")
    assert ei.value.field == "ipFamilies[1]" and "underlay.cidr6" in ei.value.message
