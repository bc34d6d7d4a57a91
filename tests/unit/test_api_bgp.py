"""BGPConfiguration / BGPPeer as API kinds (defaulting, validation, the Client's cluster
checks) and Routing's reconfiguration from the store (validated first, only changed speakers
restarted, a rejected set keeps the running ones). No root: speakers are harmless `sleep`s."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from orchestrator import api
from orchestrator.api.bgp import check_peer_against_cluster
from orchestrator.control.client import Client
from orchestrator.control.store import Store
from orchestrator.errors import ValidationError
from orchestrator.host.runner import DEFAULT
from orchestrator.node.routing import Routing

NOW = "2026-01-01T00:00:00Z"
UNDERLAY = "172.18.0.0/16"


def config(spec=None, name="default"):
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
            "metadata": {"name": name}, "spec": spec or {}}


def peer(spec, name="p"):
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
            "metadata": {"name": name}, "spec": spec}


def node(name, labels=None):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels or {}}, "spec": {}}


# -- kinds and normalize -----------------------------------------------------------------

def test_kinds_resolve_by_calicoctl_names():
    assert api.resolve_kind("bgpconfig").kind == "BGPConfiguration"
    assert api.resolve_kind("bgppeers.projectcalico.org").kind == "BGPPeer"
    assert not api.resolve_kind("BGPPeer").namespaced


def test_bgpconfiguration_defaults_as_calico():
    spec = api.normalize(config(), now=NOW)["spec"]
    assert spec["asNumber"] == 64512 and spec["nodeToNodeMeshEnabled"] is True
    assert spec["listenPort"] == 179 and spec["holdTime"] == 240
    assert spec["keepaliveTime"] == 80
    dotted = api.normalize(config({"asNumber": "1.10", "holdTime": 9}), now=NOW)["spec"]
    assert dotted["asNumber"] == 65546 and dotted["keepaliveTime"] == 3


@pytest.mark.parametrize("doc, field", [
    (config({"asNumber": 0}), "spec.asNumber"),
    (config({"asNumber": "70000.1"}), "spec.asNumber"),
    (config({"nodeToNodeMeshEnabled": "no"}), "spec.nodeToNodeMeshEnabled"),
    (config({"holdTime": 9, "keepaliveTime": 5}), "spec.keepaliveTime"),
    (config({"bogus": 1}), "spec.bogus"),
    (config({}, name="node.node-1"), "metadata.name"),
    (peer({"peerIP": "172.18.0.9", "asNumber": 0}), "spec.asNumber"),
    (peer({"peerIP": "172.18.0.9"}), "spec.asNumber"),
    (peer({"peerIP": "not-an-ip", "asNumber": 65000}), "spec.peerIP"),
    (peer({"asNumber": 65000}), "spec.peerIP"),
    (peer({"nodeSelector": "all(", "peerSelector": "all()"}), "spec.nodeSelector"),
    (peer({"node": "a", "nodeSelector": "all()", "peerSelector": "all()"}),
     "spec.nodeSelector"),
    (peer({"peerSelector": "all()", "peerIP": "172.18.0.9"}), "spec.peerSelector"),
    (peer({"peerSelector": "all()", "password": "x"}), "spec.password"),
])
def test_bad_bgp_objects_name_file_document_object_field(doc, field):
    with pytest.raises(ValidationError) as err:
        api.normalize_all([config(), doc], now=NOW)
    e = err.value
    assert e.field == field, str(e)
    assert e.index == 1 and f"{doc['kind']} {doc['metadata']['name']}" in str(e)


def test_bgppeer_normalized_keeps_only_what_is_set():
    out = api.normalize(peer({"nodeSelector": "all()",
                              "peerSelector": "route-reflector == 'true'"}), now=NOW)
    assert out["spec"] == {"nodeSelector": "all()",
                           "peerSelector": "route-reflector == 'true'"}
    out = api.normalize(peer({"node": "node-1", "peerIP": "172.18.0.9", "asNumber": "65000"}),
                        now=NOW)
    assert out["spec"] == {"node": "node-1", "peerIP": "172.18.0.9", "asNumber": 65000}


def test_check_peer_against_cluster():
    ok = api.normalize(peer({"node": "n1", "peerIP": "172.18.0.9", "asNumber": 65000}), now=NOW)
    check_peer_against_cluster(ok, ["n1"], UNDERLAY)
    with pytest.raises(ValidationError) as err:
        check_peer_against_cluster(ok, ["n2"], UNDERLAY)
    assert err.value.field == "spec.node" and "n1" in err.value.message
    with pytest.raises(ValidationError) as err:
        check_peer_against_cluster(ok, ["n1"], "10.0.0.0/8")
    assert err.value.field == "spec.peerIP" and "underlay" in err.value.message


# -- Client ------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    yield s
    s.close()


def test_client_rejects_peers_that_do_not_fit_the_cluster(store):
    client = Client(store, clock=lambda: NOW, reserved={"underlay": UNDERLAY})
    client.apply([node("node-1"), node("node-2")])
    good = peer({"node": "node-1", "peerIP": "172.18.0.3", "asNumber": 64512}, name="good")
    assert client.apply([config({"nodeToNodeMeshEnabled": False}), good]) == [
        "bgpconfiguration.projectcalico.org/default created",
        "bgppeer.projectcalico.org/good created"]
    for spec, field in (({"node": "node-9", "peerIP": "172.18.0.3", "asNumber": 1}, "spec.node"),
                        ({"peerIP": "10.1.2.3", "asNumber": 1}, "spec.peerIP")):
        with pytest.raises(ValidationError) as err:
            client.apply([config({"asNumber": 65001}), peer(spec, name="bad")])
        assert err.value.field == field and err.value.index == 1
        assert "BGPPeer bad" in str(err.value)
    # all or nothing: the BGPConfiguration in the rejected applies did not change either
    assert [p["metadata"]["name"] for p in store.list("BGPPeer")] == ["good"]
    assert store.get("BGPConfiguration", "default")["spec"]["asNumber"] == 64512


# -- Routing reconfiguration -------------------------------------------------------------

class SleepRunner:
    """`run` is the real one (exabgp validate -n needs no root); `spawn` starts a harmless
    `sleep` in its own process group instead of exabgp in a node's namespace."""

    def __init__(self):
        self.spawned: list[list[str]] = []
        self.ran: list[list[str]] = []

    def run(self, argv, **kw):
        self.ran.append(list(argv))
        return DEFAULT.run(argv, **kw)

    def spawn(self, argv, *, pid=None, stdout=None, stderr=None, env=None, **kw):
        self.spawned.append(list(argv))
        return subprocess.Popen(["sleep", "60"], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def routing(store, tmp_path):
    names = ["node-1", "node-2", "node-3", "node-4"]
    rr = {"node-1": "224.0.0.1", "node-2": "224.0.0.1"}
    spec = SimpleNamespace(
        underlay=SimpleNamespace(cidr=UNDERLAY),
        nodes=[SimpleNamespace(name=n, labels={"kubernetes.io/hostname": n},
                               route_reflector_cluster_id=rr.get(n)) for n in names])
    cluster = SimpleNamespace(nodes={n: SimpleNamespace(ip=f"172.18.0.{i + 2}", pid=1)
                                     for i, n in enumerate(names)})
    client = Client(store, clock=lambda: NOW, reserved={"underlay": UNDERLAY})
    client.apply([node(n, {"kubernetes.io/hostname": n}) for n in names])
    runner = SleepRunner()
    r = Routing(spec, cluster, str(tmp_path), store, runner)
    for sp in r.supervisor.speakers.values():
        sp._spawn()
    r.client, r.runner = client, runner
    yield r
    r.stop()


def peer_ips(r, name):
    return [nb.ip for nb in r.table[name]]


def test_routing_reconfigures_only_changed_speakers(routing):
    r = routing
    # Mesh (the default) skips the route reflectors, which have no peers yet.
    assert peer_ips(r, "node-3") == ["172.18.0.5"] and peer_ips(r, "node-1") == []
    assert r.poll() == []  # nothing changed
    r.client.apply([peer({"nodeSelector": "all()", "peerSelector": "route-reflector == 'true'"},
                         name="to-rr")])
    assert r.poll() == []  # nobody is labelled route-reflector yet: same configs
    old_pids = {n: sp.proc.pid for n, sp in r.supervisor.speakers.items()}
    r.client.label("Node", "node-1", {"route-reflector": "true"})
    restarted = r.poll()
    validations = [a for a in r.runner.ran if "validate" in a]
    assert len(validations) == 1 and len(validations[0]) == 3 + 4  # one batch, four configs
    assert sorted(restarted) == ["node-1", "node-2", "node-3", "node-4"]
    assert peer_ips(r, "node-3") == ["172.18.0.2", "172.18.0.5"]
    assert peer_ips(r, "node-1") == ["172.18.0.3", "172.18.0.4", "172.18.0.5"]
    assert all(nb.rr_client for nb in r.table["node-1"] if nb.node != "node-2")
    for n, sp in r.supervisor.speakers.items():
        assert sp.proc.pid != old_pids[n] and "172.18.0.2" in sp.config_text
    assert r.errors == []
    # Changing nothing that node-3/4 render from restarts nobody.
    r.client.apply([config({"logSeverityScreen": "Info"})])
    assert r.poll() == []


def test_routing_keeps_running_speakers_when_the_store_has_a_bad_peer(routing):
    r = routing
    texts = {n: sp.config_text for n, sp in r.supervisor.speakers.items()}
    pids = {n: sp.proc.pid for n, sp in r.supervisor.speakers.items()}
    # Written past the Client (as a stale state directory could hold it).
    bad = api.normalize(peer({"node": "node-9", "peerIP": "172.18.0.9", "asNumber": 65000},
                             name="stale"), now=NOW)
    r.store.create(bad)
    assert r.poll() == []
    assert len(r.errors) == 1 and "spec.node" in r.errors[0] and "node-9" in r.errors[0]
    assert {n: sp.config_text for n, sp in r.supervisor.speakers.items()} == texts
    assert {n: sp.proc.pid for n, sp in r.supervisor.speakers.items()} == pids
    assert r.poll() == [] and len(r.errors) == 1  # not retried until something changes


# -- admission: configs ExaBGP rejects never reach the running speakers --------------------

def test_client_admission_rejection_rolls_the_whole_apply_back(store):
    seen = []

    def check(st, objs):
        seen.append([o["kind"] for o in objs])
        assert st.get("BGPConfiguration", "default") is not None  # sees the uncommitted write
        raise ValidationError("no", obj="Node node-1", field="exabgp.conf")
    check.KINDS = {"BGPConfiguration"}
    client = Client(store, clock=lambda: NOW, reserved={"underlay": UNDERLAY},
                    admission=[check])
    with pytest.raises(ValidationError) as err:
        client.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\n"
                     "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\n"
                     "metadata: {name: default}\nspec: {asNumber: 65001}\n")
    assert seen == [["Namespace", "BGPConfiguration"]]
    assert err.value.obj == "BGPConfiguration default" and err.value.index == 1
    assert "rejected, nothing applied" in str(err.value) and "Node node-1" in str(err.value)
    assert store.get("BGPConfiguration", "default") is None
    assert store.get("Namespace", "x") is None


def admitted_cluster(store, tmp_path):
    """Three nodes as the Testbed registers them, each with a running exabgp.conf on disk."""
    from orchestrator.control.nodes import node_object
    from orchestrator.node.routing import BGPAdmission, node_inputs_from_store, render_configs
    from topologies.spec import load_spec
    spec = load_spec("name: t\nnodes: [{name: node-1}, {name: node-2}, {name: node-3}]\n")
    for i, n in enumerate(spec.nodes):
        store.put(node_object(n, f"172.18.0.{i + 2}"))
    bgp_dir = tmp_path / "bgp"
    *_, texts = render_configs(store, node_inputs_from_store(store), UNDERLAY, str(bgp_dir))
    for name, text in texts.items():
        (bgp_dir / name).mkdir(parents=True)
        (bgp_dir / name / "exabgp.conf").write_text(text)
    runner = SleepRunner()
    admission = BGPAdmission(str(tmp_path), UNDERLAY, runner=runner)
    return Client(store, clock=lambda: NOW, reserved={"underlay": UNDERLAY},
                  admission=[admission]), runner


def test_bgp_admission_validates_only_changed_configs_with_exabgp(store, tmp_path):
    client, runner = admitted_cluster(store, tmp_path)
    client.apply([config({"logSeverityScreen": "Info"})])   # env only: the texts stay
    client.apply([node("unrelated")])                        # not a BGP kind: not checked
    assert not [a for a in runner.ran if "validate" in a]
    client.apply([peer({"node": "node-1", "peerIP": "172.18.0.99", "asNumber": 65001})])
    validations = [a for a in runner.ran if "validate" in a]
    assert len(validations) == 1 and len(validations[0]) == 3 + 1   # only node-1 changed
    assert store.get("BGPPeer", "p") is not None


def test_bgp_admission_refuses_what_exabgp_rejects(store, tmp_path, monkeypatch):
    """No API input is known to render a config ExaBGP rejects (validation catches them
    first), so the renderer is made to emit an unknown keyword; `exabgp validate` is real."""
    from bgp import config as bgp_config
    client, _ = admitted_cluster(store, tmp_path)
    real = bgp_config.render
    monkeypatch.setattr(bgp_config, "render",
                        lambda *a, **kw: real(*a, **kw).replace("hold-time", "hold-tyme"))
    with pytest.raises(ValidationError) as err:
        client.apply([config({"holdTime": 30})])
    text = str(err.value)
    assert "BGPConfiguration default: rejected, nothing applied: " in text, text
    assert "ExaBGP rejects the configuration" in text and "Node node-1" in text, text
    assert store.get("BGPConfiguration", "default") is None
    assert not list((tmp_path / "bgp").glob("*/exabgp.conf.check"))
