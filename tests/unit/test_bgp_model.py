"""BGPConfiguration / BGPPeer / Node manifests: defaults, validation errors naming the field."""

from __future__ import annotations

import pytest

from bgp import model
from bgp.model import BGPConfiguration, BGPPeer, load, parse_as_number
from orchestrator.errors import ValidationError

UNDERLAY = "172.18.0.0/16"
NODES = [model.node_bgp("n1", "172.18.0.2", labels={"rr": "true"}),
         model.node_bgp("n2", "172.18.0.3")]


def peer(**spec):
    return {"apiVersion": model.API_VERSION, "kind": "BGPPeer", "metadata": {"name": "p"},
            "spec": spec}


def test_defaults_like_calico():
    cfg = model.configuration_from_manifest(None)
    assert cfg == BGPConfiguration(asNumber=64512, nodeToNodeMeshEnabled=True, listenPort=179,
                                   logSeverityScreen="Info", holdTime=240, keepaliveTime=80,
                                   nodeMeshMaxRestartTime=120)


def test_configuration_fields():
    doc = {"kind": "BGPConfiguration", "metadata": {"name": "default"},
           "spec": {"asNumber": "1.10", "nodeToNodeMeshEnabled": False, "holdTime": 9,
                    "nodeMeshMaxRestartTime": "2m", "logSeverityScreen": "Warning"}}
    cfg = model.configuration_from_manifest(doc)
    assert (cfg.asNumber, cfg.nodeToNodeMeshEnabled, cfg.holdTime, cfg.keepaliveTime,
            cfg.nodeMeshMaxRestartTime) == (65546, False, 9, 3, 120)


@pytest.mark.parametrize("spec,field", [
    ({"asNumber": 0}, "spec.asNumber"), ({"asNumber": 4294967296}, "spec.asNumber"),
    ({"asNumber": "1.70000"}, "spec.asNumber"), ({"asNumber": "x"}, "spec.asNumber"),
    ({"nodeToNodeMeshEnabled": "yes"}, "spec.nodeToNodeMeshEnabled"),
    ({"holdTime": 2}, "spec.holdTime"), ({"holdTime": 9, "keepaliveTime": 5},
                                         "spec.keepaliveTime"),
    ({"logSeverityScreen": "Loud"}, "spec.logSeverityScreen"),
    ({"listenPort": 0}, "spec.listenPort"),
    ({"nodeMeshMaxRestartTime": "soon"}, "spec.nodeMeshMaxRestartTime")])
def test_configuration_errors(spec, field):
    doc = {"kind": "BGPConfiguration", "metadata": {"name": "default"}, "spec": spec}
    with pytest.raises(ValidationError) as exc:
        model.configuration_from_manifest(doc)
    assert exc.value.field == field and exc.value.obj == "BGPConfiguration default"


def test_as_numbers():
    assert parse_as_number(64512, obj="x", field_name="f") == 64512
    assert parse_as_number("4294967295", obj="x", field_name="f") == 4294967295
    assert parse_as_number("65535.65535", obj="x", field_name="f") == 4294967295
    with pytest.raises(ValidationError):
        parse_as_number(True, obj="x", field_name="f")


def test_peers_load_sorted_and_validated():
    docs = [dict(peer(peerIP="172.18.0.254", asNumber=65001), metadata={"name": "z"}),
            dict(peer(nodeSelector="all()", peerSelector="rr == 'true'"),
                 metadata={"name": "a"}),
            {"kind": "Pod", "metadata": {"name": "ignored"}}]
    cfg, peers = load(docs, NODES, UNDERLAY)
    assert cfg == BGPConfiguration()
    assert peers == [BGPPeer("a", nodeSelector="all()", peerSelector="rr == 'true'"),
                     BGPPeer("z", peerIP="172.18.0.254", asNumber=65001)]
    assert peers[1].is_global and not peers[0].is_global


@pytest.mark.parametrize("spec,field,words", [
    ({"node": "n9", "peerIP": "172.18.0.9", "asNumber": 1}, "spec.node", "unknown node"),
    ({"peerIP": "172.18.0.9", "asNumber": -1}, "spec.asNumber", "AS number"),
    ({"peerIP": "10.9.9.9", "asNumber": 1}, "spec.peerIP", "outside the underlay"),
    ({"peerIP": "fe80::1", "asNumber": 1}, "spec.peerIP", "IPv4"),
    ({"peerIP": "172.18.0.9:1790", "asNumber": 1}, "spec.peerIP", "port"),
    ({"peerIP": "172.18.0.9"}, "spec.asNumber", "required"),
    ({}, "spec.peerIP", "required"),
    ({"peerSelector": "rr in {'a'}"}, "spec.peerSelector", "selector"),
    ({"nodeSelector": "has(", "peerIP": "172.18.0.9", "asNumber": 1}, "spec.nodeSelector",
     "selector"),
    ({"node": "n1", "nodeSelector": "all()", "peerIP": "172.18.0.9", "asNumber": 1},
     "spec.nodeSelector", "exclusive"),
    ({"peerSelector": "all()", "peerIP": "172.18.0.9"}, "spec.peerSelector", "excludes")])
def test_peer_errors(spec, field, words):
    with pytest.raises(ValidationError, match=words) as exc:
        load([peer(**spec)], NODES, UNDERLAY)
    assert exc.value.field == field and exc.value.obj == "BGPPeer p"


def test_duplicates_rejected():
    with pytest.raises(ValidationError, match="duplicate"):
        load([peer(peerIP="172.18.0.9", asNumber=1)] * 2, NODES, UNDERLAY)
    cfgs = [{"kind": "BGPConfiguration", "metadata": {"name": n}} for n in ("a", "b")]
    with pytest.raises(ValidationError, match="more than one"):
        load(cfgs, NODES, UNDERLAY)


def test_selectors():
    labels = {"rack": "a", "rr": "true"}
    assert model.selects("all()", {})
    assert model.selects("has(rr) && !(rack == 'b')", labels)
    assert model.selects("rack != 'a' || rr == 'true'", labels)
    assert not model.selects("rack == 'b'", labels)
    assert not model.selects(None, labels) and not model.selects("", labels)


def test_node_manifest_and_errors():
    doc = {"kind": "Node", "metadata": {"name": "n3", "labels": {"b": "2", "a": "1"}},
           "spec": {"bgp": {"ipv4Address": "172.18.0.4/16", "asNumber": 65010,
                            "routeReflectorClusterID": "224.0.0.1"}}}
    node = model.node_from_manifest(doc)
    assert node == model.NodeBGP("n3", "172.18.0.4", 65010, "224.0.0.1",
                                 (("a", "1"), ("b", "2")))
    assert node.is_route_reflector and node.as_number(BGPConfiguration()) == 65010
    with pytest.raises(ValidationError, match="IPv4") as exc:
        model.node_bgp("n", "nope")
    assert exc.value.field == "spec.bgp.ipv4Address"
    with pytest.raises(ValidationError) as exc:
        model.node_bgp("n", "1.2.3.4", routeReflectorClusterID="rr-1")
    assert exc.value.field == "spec.bgp.routeReflectorClusterID"
