"""Unit tests of topologies.spec / addressing / quantity: loading, defaults, every error rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.api.quantity import parse_quantity
from orchestrator.errors import ValidationError
from topologies.addressing import assign_node_ips
from topologies.spec import load_spec, spec_from_dict

EXAMPLES = Path(__file__).resolve().parents[2] / "topologies" / "examples"


def spec(**over):
    d = {"name": "t", "nodes": [{"name": "n1"}, {"name": "n2"}]}
    d.update(over)
    return spec_from_dict(d, "t.yaml")


def err(d, source="t.yaml") -> ValidationError:
    with pytest.raises(ValidationError) as ei:
        spec_from_dict(d, source)
    assert ei.value.source == source
    return ei.value


# ------------------------------------------------------------------------------ examples

def test_three_node_example():
    s = load_spec(EXAMPLES / "three-node.yaml")
    assert s.name == "three-node"
    assert s.node_names == ["node-1", "node-2", "node-3"]
    assert [n.ip for n in s.nodes] == ["172.18.0.2", "172.18.0.3", "172.18.0.4"]
    cp = s.node("node-1")
    assert cp.role == "control-plane" and cp.schedulable and cp.taints == ()
    assert cp.labels["node-role.kubernetes.io/control-plane"] == ""
    assert s.racks == ()


def test_racks_example():
    s = load_spec(str(EXAMPLES / "racks.yaml"))
    assert [r.name for r in s.racks] == ["rack-a", "rack-b"]
    assert s.node("node-b2").rack == "rack-b"
    assert s.node("node-b2").labels["topology.kubernetes.io/zone"] == "rack-b"
    assert s.node("node-a1").labels["topology.kubernetes.io/zone"] == "rack-a"


def test_scale_50_example():
    s = load_spec(EXAMPLES / "scale-50.yaml")
    assert len(s.nodes) == 50
    assert s.nodes[0].name == "node-1" and s.nodes[-1].name == "node-50"
    assert s.nodes[-1].ip == "172.18.0.51"
    assert all(n.capacity.cpu_millis == 4000 for n in s.nodes)
    assert len({n.ip for n in s.nodes}) == 50


def test_load_from_text_and_source():
    s = load_spec("name: x\nnodes:\n  - name: a\n")
    assert s.source == "<text>" and s.node_names == ["a"]


def test_load_missing_file_names_it(tmp_path):
    with pytest.raises(ValidationError) as ei:
        load_spec(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(ei.value)


def test_bad_yaml_reports_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nnodes: [\n  - a: b\n")
    with pytest.raises(ValidationError) as ei:
        load_spec(p)
    assert str(p) in str(ei.value) and "line" in str(ei.value)


# ------------------------------------------------------------------------------ defaults

def test_automatic_labels_worker():
    n = spec().node("n1")
    assert n.labels == {"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": "n1",
                        "kubernetes.io/os": "linux"}
    assert n.role == "worker" and n.schedulable and n.taints == ()


def test_control_plane_gets_kubeadm_taint_unless_schedulable():
    s = spec(nodes=[{"name": "cp", "role": "control-plane"},
                    {"name": "cp2", "role": "control-plane", "schedulable": True}])
    t = s.node("cp").taints
    assert [(x.key, x.effect) for x in t] == [("node-role.kubernetes.io/control-plane",
                                               "NoSchedule")]
    assert not s.node("cp").schedulable
    assert s.node("cp2").taints == ()


def test_unschedulable_worker_is_cordoned():
    n = spec(nodes=[{"name": "w", "schedulable": False}]).node("w")
    assert [(t.key, t.effect) for t in n.taints] == [("node.kubernetes.io/unschedulable",
                                                      "NoSchedule")]


def test_explicit_taints_kept_and_default_not_duplicated():
    n = spec(nodes=[{"name": "cp", "role": "control-plane", "taints": [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
        {"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]}]).node("cp")
    assert [t.as_dict() for t in n.taints] == [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
        {"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]


def test_user_labels_merge():
    n = spec(nodes=[{"name": "a", "labels": {"disk": "ssd", "kubernetes.io/arch": "arm64",
                                              "empty": None}}]).node("a")
    assert n.labels["disk"] == "ssd" and n.labels["kubernetes.io/arch"] == "arm64"
    assert n.labels["empty"] == ""


def test_capacity_defaults_and_parsing():
    s = spec(nodes=[{"name": "a"},
                    {"name": "b", "capacity": {"cpu": "500m", "memory": "1G", "pods": "30"}},
                    {"name": "c", "capacity": {"cpu": 1.5, "memory": 1073741824}}])
    a, b, c = s.nodes
    assert (a.capacity.cpu_millis, a.capacity.memory_bytes, a.capacity.pods) == (2000, 4 << 30, 110)
    assert a.capacity.as_resources() == {"cpu": "2", "memory": "4Gi", "pods": "110"}
    assert (b.capacity.cpu_millis, b.capacity.memory_bytes, b.capacity.pods) == (500, 10**9, 30)
    assert (c.capacity.cpu_millis, c.capacity.memory_bytes) == (1500, 1 << 30)


def test_bandwidth_default_and_override():
    s = spec(underlay={"bandwidth": 100}, nodes=[{"name": "a"}, {"name": "b", "bandwidth": 10}])
    assert s.node("a").bandwidth == 100 and s.node("b").bandwidth == 10
    assert spec().node("n1").bandwidth is None


def test_explicit_ip_is_skipped_by_automatic_assignment():
    s = spec(nodes=[{"name": "a"}, {"name": "b", "ip": "172.18.0.2"}, {"name": "c"}])
    assert [n.ip for n in s.nodes] == ["172.18.0.3", "172.18.0.2", "172.18.0.4"]


def test_custom_cidr():
    s = spec(underlay={"cidr": "10.9.8.0/29"}, nodes=[{"name": f"n{i}"} for i in range(5)])
    assert [n.ip for n in s.nodes] == [f"10.9.8.{i}" for i in range(2, 7)]
    assert s.underlay.prefixlen == 29


def test_generate_after_explicit_nodes_with_template():
    s = spec(nodes=[{"name": "cp", "role": "control-plane"}],
             generate=[{"count": 2, "prefix": "w-", "labels": {"pool": "a"}},
                       {"count": 1, "prefix": "x-", "start": 7}])
    assert s.node_names == ["cp", "w-1", "w-2", "x-7"]
    assert s.node("w-2").labels["pool"] == "a" and s.node("w-2").labels[
        "kubernetes.io/hostname"] == "w-2"


def test_route_reflector_cluster_id():
    n = spec(nodes=[{"name": "rr", "routeReflectorClusterID": "224.0.0.1"}]).node("rr")
    assert n.route_reflector_cluster_id == "224.0.0.1"


def test_spec_is_deterministic():
    d = {"name": "t", "generate": {"count": 5}}
    assert spec_from_dict(d) == spec_from_dict(d)


# ------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("d, field, words", [
    ({"name": "t", "nodes": [{"name": "a"}, {"name": "a"}]}, "nodes[1].name", "duplicate"),
    ({"name": "t", "nodes": [{"name": "a1"}], "generate": {"count": 1, "prefix": "a"}},
     "generate[a1].name", "duplicate node name 'a1' (also nodes[0])"),
    ({"name": "t", "nodes": [{"name": "a"}], "racks": [{"name": "r", "nodes": ["a", "zz"]}]},
     "racks[0].nodes[1]", "unknown node 'zz'"),
    ({"name": "t", "nodes": [{"name": "a"}, {"name": "b"}],
      "racks": [{"name": "r", "nodes": ["a"]}, {"name": "s", "nodes": ["b", "a"]}]},
     "racks[1].nodes[1]", "already in rack 'r'"),
    ({"name": "t", "nodes": [{"name": "a"}, {"name": "b"}],
      "racks": [{"name": "r", "nodes": ["a"]}]}, "nodes[1]", "in no rack"),
    ({"name": "t", "nodes": [{"name": "a"}],
      "racks": [{"name": "r", "nodes": ["a"]}, {"name": "r", "nodes": []}]},
     "racks[1].name", "duplicate rack"),
    ({"name": "t", "nodes": [{"name": "a", "ip": "10.0.0.5"}]}, "nodes[0].ip",
     "not a host address of the underlay 172.18.0.0/16"),
    ({"name": "t", "nodes": [{"name": "a", "ip": "172.18.0.0"}]}, "nodes[0].ip", "host address"),
    ({"name": "t", "nodes": [{"name": "a", "ip": "172.18.0.9"}, {"name": "b", "ip": "172.18.0.9"}]},
     "nodes[1].ip", "already the IP of node 'a'"),
    ({"name": "t", "nodes": [{"name": "a", "ip": "nope"}]}, "nodes[0].ip", "not an IPv4"),
    ({"name": "t", "nodes": [{"name": "a", "colour": "red", "zone": 1}]}, "nodes[0]",
     "unknown key(s) colour, zone"),
    ({"name": "t", "nodes": [{"name": "a"}], "extra": 1}, None, "unknown key(s) extra"),
    ({"name": "t", "underlay": {"cidr": "10.0.0.0/8", "mtu": 9000}, "nodes": [{"name": "a"}]},
     "underlay", "unknown key(s) mtu"),
    ({"name": "t", "nodes": [{"name": "a", "capacity": {"cpu": "lots"}}]},
     "nodes[0].capacity.cpu", "quantities must match"),
    ({"name": "t", "nodes": [{"name": "a", "capacity": {"cpu": "0.0001"}}]},
     "nodes[0].capacity.cpu", "millicore"),
    ({"name": "t", "nodes": [{"name": "a", "capacity": {"memory": "4Gb"}}]},
     "nodes[0].capacity.memory", "quantities must match"),
    ({"name": "t", "nodes": [{"name": "a", "capacity": {"memory": "-1"}}]},
     "nodes[0].capacity.memory", "positive whole number"),
    ({"name": "t", "nodes": [{"name": "a", "capacity": {"pods": 0}}]},
     "nodes[0].capacity.pods", "positive integer"),
    ({"name": "t", "nodes": [{"name": "a", "capacity": {"gpu": 1}}]},
     "nodes[0].capacity", "unknown key(s) gpu"),
    ({"name": "t", "underlay": {"bandwidth": 0}, "nodes": [{"name": "a"}]},
     "underlay.bandwidth", "outside"),
    ({"name": "t", "underlay": {"bandwidth": 5000}, "nodes": [{"name": "a"}]},
     "underlay.bandwidth", "outside"),
    ({"name": "t", "nodes": [{"name": "a", "bandwidth": "fast"}]}, "nodes[0].bandwidth",
     "number"),
    ({"name": "t", "nodes": [{"name": "Node_1"}]}, "nodes[0].name", "RFC 1123"),
    ({"name": "t", "nodes": [{"name": "a", "role": "master"}]}, "nodes[0].role", "role"),
    ({"name": "t", "nodes": [{"name": "a", "schedulable": "yes"}]}, "nodes[0].schedulable",
     "true or false"),
    ({"name": "t", "nodes": [{"name": "a", "taints": [{"key": "k", "effect": "Evict"}]}]},
     "nodes[0].taints[0].effect", "NoSchedule"),
    ({"name": "t", "nodes": [{"name": "a", "taints": [{"key": "bad key", "effect": "NoSchedule"}]}]},
     "nodes[0].taints[0].key", "label key"),
    ({"name": "t", "nodes": [{"name": "a", "labels": {"x": "has space"}}]}, "nodes[0].labels.x",
     "label value"),
    ({"name": "t", "nodes": [{"name": "a", "labels": {"Bad_Prefix/x": "y"}}]},
     "nodes[0].labels.Bad_Prefix/x", "prefix"),
    ({"name": "t", "nodes": [{"name": "a", "labels": {"kubernetes.io/hostname": "b"}}]},
     "nodes[0].labels.kubernetes.io/hostname", "must equal the node name"),
    ({"name": "t", "nodes": [{"name": "a", "routeReflectorClusterID": "224.0.0"}]},
     "nodes[0].routeReflectorClusterID", "dotted-quad"),
    ({"name": "t", "nodes": [{"name": "a", "routeReflectorClusterID": "1.2.3.256"}]},
     "nodes[0].routeReflectorClusterID", "dotted-quad"),
    ({"name": "t", "underlay": {"cidr": "172.18.0.1/16"}, "nodes": [{"name": "a"}]},
     "underlay.cidr", "not an IPv4 network"),
    ({"name": "t", "underlay": {"cidr": "172.18.0.0/30"},
      "nodes": [{"name": "a"}, {"name": "b"}]}, "underlay.cidr", "no free address for node 'b'"),
    ({"name": "Bad Name", "nodes": [{"name": "a"}]}, "name", "RFC 1123"),
    ({"name": "t"}, "nodes", "at least one node"),
    ({"name": "t", "nodes": {"name": "a"}}, "nodes", "list"),
    ({"name": "t", "generate": {"count": 0}}, "generate.count", "integer >= 1"),
    ({"name": "t", "generate": {"count": 2, "ip": "172.18.0.5"}}, "generate", "unknown key(s) ip"),
    ({"name": "t", "generate": {"count": 2, "prefix": "N_"}}, "generate.prefix", "RFC 1123"),
    ({"name": "t", "generate": {"count": 2, "capacity": {"cpu": "x"}}}, "generate.capacity.cpu",
     "quantities must match"),
    ({"name": "t", "generate": [{"count": 1}, {"count": 1, "role": "boss"}]}, "generate[1].role",
     "role"),
])
def test_validation_errors(d, field, words):
    e = err(d)
    assert words in e.message, e.message
    if field is not None:
        assert e.field == field
    assert str(e).startswith("t.yaml")


def test_empty_document():
    with pytest.raises(ValidationError, match="empty topology document"):
        load_spec("# nothing here\n\n")


def test_not_a_mapping():
    assert "mapping" in err(["a", "b"]).message


# ------------------------------------------------------------------------------ helpers

def test_assign_node_ips_order_and_skip():
    got = assign_node_ips([("a", None, "x"), ("b", "10.0.0.3", "y"), ("c", None, "z")],
                          "10.0.0.0/24")
    assert got == {"a": "10.0.0.2", "b": "10.0.0.3", "c": "10.0.0.4"}


@pytest.mark.parametrize("q, base", [("2", 2), ("500m", 0.5), ("1Ki", 1024), ("1k", 1000),
                                     ("1.5Gi", 1.5 * 2**30), ("1e3", 1000), (3, 3), (".5", 0.5)])
def test_parse_quantity(q, base):
    assert float(parse_quantity(q, "f")) == base


@pytest.mark.parametrize("q", ["", "1.2.3", "4Gb", "m", "1 Gi", True, None, [1]])
def test_parse_quantity_rejects(q):
    with pytest.raises(ValidationError) as ei:
        parse_quantity(q, "spec.x")
    assert ei.value.field == "spec.x"


try:
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is in the test extras
    given = None

if given is not None:
    @given(st.integers(1, 60), st.sets(st.integers(1, 62), max_size=10))
    def test_assigned_ips_unique_and_inside(count, explicit_hosts):
        reqs = [(f"n{i}", None, f"nodes[{i}].ip") for i in range(count)]
        reqs += [(f"e{h}", f"10.1.0.{h}", "x") for h in sorted(explicit_hosts)]
        try:
            got = assign_node_ips(reqs, "10.1.0.0/26")
        except ValidationError as e:
            # Only when .2-.62 (61 addresses; .1 only if asked for) cannot hold them all.
            assert "no free address" in e.message
            assert count + len(explicit_hosts - {1}) > 61
            return
        assert len(set(got.values())) == len(reqs)
        for name, h in ((f"e{h}", h) for h in explicit_hosts):
            assert got[name] == f"10.1.0.{h}"
        assert all(1 <= int(ip.rsplit(".", 1)[1]) <= 62 for ip in got.values())
