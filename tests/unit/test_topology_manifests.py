"""A topology's own `manifests:`: files (relative to the topology file) and inline objects,
loaded as located documents; every bad entry named by file and field; the shipped examples;
the Testbed applying them before its `manifests=`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.api.loader import Document, load_documents
from orchestrator.errors import ValidationError
from topologies.spec import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "topologies" / "examples"
PEER = {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
        "metadata": {"name": "p"}, "spec": {"nodeSelector": "all()", "peerIP": "172.18.0.9",
                                            "asNumber": 64512}}
CONFIG_YAML = ("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\n"
               "metadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n")


def topo(tmp_path: Path, manifests, name="topo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"name": "t", "nodes": [{"name": "n1"}, {"name": "n2"}],
                                    "manifests": manifests}))
    return path


def bad(path: Path) -> ValidationError:
    with pytest.raises(ValidationError) as ei:
        load_spec(path)
    assert ei.value.source == str(path)
    assert str(path) in str(ei.value)
    return ei.value


def test_files_relative_to_the_topology_and_inline_objects_in_order(tmp_path, monkeypatch):
    sub = tmp_path / "bgp"
    sub.mkdir()
    (sub / "config.yaml").write_text(CONFIG_YAML + "---\n" + yaml.safe_dump(PEER))
    path = topo(tmp_path, ["bgp/config.yaml", PEER | {"metadata": {"name": "inline"}}])
    monkeypatch.chdir("/")          # relative to the topology file, not the cwd
    s = load_spec(str(path))
    docs = s.manifests
    assert [d.obj["kind"] for d in docs] == ["BGPConfiguration", "BGPPeer", "BGPPeer"]
    assert [d.obj["metadata"]["name"] for d in docs] == ["default", "p", "inline"]
    assert docs[0].source == str(sub / "config.yaml") and docs[1].index == 1
    assert docs[2].source == f"{path} manifests[1]"
    assert all(isinstance(d, Document) for d in docs)
    assert load_documents(list(docs)) == list(docs)   # what Testbed hands to apply


def test_no_manifests_field():
    assert load_spec(EXAMPLES / "three-node.yaml").manifests == ()


def test_absolute_path(tmp_path):
    (tmp_path / "m.yaml").write_text(CONFIG_YAML)
    s = load_spec(topo(tmp_path, [str(tmp_path / "m.yaml")]))
    assert s.manifests[0].obj["kind"] == "BGPConfiguration"


@pytest.mark.parametrize("manifests, field, words", [
    ("bgp.yaml", "manifests", "must be a list"),
    ({"kind": "BGPPeer"}, "manifests", "must be a list"),
    ([PEER, 3], "manifests[1]", "got int 3"),
    ([["bgp.yaml"]], "manifests[0]", "got list"),
    ([""], "manifests[0]", "manifest file path"),
    (["missing.yaml"], "manifests[0]", "no such file"),
])
def test_bad_entries_name_the_file_and_field(tmp_path, manifests, field, words):
    path = topo(tmp_path, manifests)
    e = bad(path)
    assert e.field == field and words in e.message, str(e)
    if "no such file" in words:
        assert str(tmp_path / "missing.yaml") in e.message


def test_malformed_yaml_in_a_manifest_file(tmp_path):
    (tmp_path / "broken.yaml").write_text("kind: BGPPeer\nspec: {nodeSelector: [unclosed\n")
    e = bad(topo(tmp_path, [PEER, "broken.yaml"]))
    assert e.field == "manifests[1]"
    assert str(tmp_path / "broken.yaml") in e.message and "malformed YAML at line" in e.message


def test_a_manifest_document_that_is_not_a_mapping(tmp_path):
    (tmp_path / "list.yaml").write_text(CONFIG_YAML + "---\n- 1\n")
    e = bad(topo(tmp_path, ["list.yaml"]))
    assert e.field == "manifests[0]" and "document 1" in e.message and "mapping" in e.message


def test_route_reflectors_example_carries_its_bgp_objects():
    s = load_spec(EXAMPLES / "route-reflectors.yaml")
    kinds = {d.obj["kind"]: d.obj for d in s.manifests}
    assert kinds["BGPConfiguration"]["spec"]["nodeToNodeMeshEnabled"] is False
    assert kinds["BGPPeer"]["spec"] == {"nodeSelector": "all()",
                                        "peerSelector": "route-reflector == 'true'"}
    rrs = [n.name for n in s.nodes if n.route_reflector_cluster_id]
    assert rrs == ["node-1", "node-2"]
    assert all(s.node(n).labels["route-reflector"] == "true" for n in rrs)


def test_every_example_routes_every_node_by_itself():
    """The peerings the example's own objects give: every node has a BGP neighbor."""
    from bgp.model import configuration_from_manifest, node_bgp, peer_from_manifest
    from bgp.peering import peerings
    for path in sorted(EXAMPLES.glob("*.yaml")):
        s = load_spec(path)
        objs = [d.obj for d in s.manifests]
        config = configuration_from_manifest(
            next((o for o in objs if o["kind"] == "BGPConfiguration"), None))
        peers = [peer_from_manifest(o, node_names=s.node_names, underlay=s.peer_scope())
                 for o in objs if o["kind"] == "BGPPeer"]
        nodes = [node_bgp(n.name, n.ip, labels=n.labels, ip6=n.ip6,
                          routeReflectorClusterID=n.route_reflector_cluster_id) for n in s.nodes]
        table = peerings(nodes, config, peers)
        assert all(table[n] for n in s.node_names), (path.name, table)
        if 6 in s.families:     # and an IPv6 neighbor where pods have IPv6 addresses
            assert all(any(nb.family == 6 for nb in table[n]) for n in s.node_names), \
                (path.name, table)


def test_testbed_applies_the_topology_manifests_first(tmp_path):
    from orchestrator.testbed import Testbed
    (tmp_path / "m.yaml").write_text(CONFIG_YAML)
    state = str(tmp_path / "state")    # named: the constructor creates nothing
    tb = Testbed(str(topo(tmp_path, ["m.yaml"])), manifests=[PEER], state_dir=state)
    assert tb.manifests[0] == list(load_spec(tmp_path / "topo.yaml").manifests)
    assert tb.manifests[1] == PEER
    assert Testbed(str(EXAMPLES / "three-node.yaml"), manifests="x.yaml",
                   state_dir=state).manifests == ["x.yaml"]
    assert tb.dns is True       # cluster DNS unless told dns=False
