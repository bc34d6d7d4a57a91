"""projectcalico.org/v3 NetworkPolicy and GlobalNetworkPolicy as API kinds: the words that
name them next to Kubernetes' NetworkPolicy, the store key that lets both NetworkPolicy kinds
hold the same namespace/name, types defaulting, validation errors located by file, document,
object and field, and Client.apply / get / delete of each kind. Golden values come from
Calico's v3 API docs (policy_common.go, networkpolicy.go) and libcalico-go's validator."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator import api
from orchestrator.api import Document
from orchestrator.cli import commands
from orchestrator.control.client import Client
from orchestrator.control.store import Store
from orchestrator.errors import ValidationError
from orchestrator.present import printers

NOW = "2026-01-01T00:00:00Z"
SRC = "policies.yaml"
CALICO = "projectcalico.org/v3"
CALICO_NP = "NetworkPolicy.projectcalico.org"


def cnp(spec, name="p", namespace="x"):
    return {"apiVersion": CALICO, "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def gnp(spec, name="p"):
    return {"apiVersion": CALICO, "kind": "GlobalNetworkPolicy",
            "metadata": {"name": name}, "spec": spec}


def k8s_np(name="p", namespace="x"):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"podSelector": {}}}


def spec_of(obj):
    return api.normalize(obj, now=NOW)["spec"]


# -- kind registry -------------------------------------------------------------------------

@pytest.mark.parametrize("word", ["networkpolicies.projectcalico.org",
                                  "networkpolicy.projectcalico.org", CALICO_NP,
                                  "cnp", "caliconetworkpolicy", "caliconetworkpolicies"])
def test_words_name_the_calico_networkpolicy(word):
    info = api.resolve_kind(word)
    assert (info.kind, info.key, info.api_version) == ("NetworkPolicy", CALICO_NP, CALICO)
    assert info.namespaced


@pytest.mark.parametrize("word", ["gnp", "gnps", "cgnp", "GlobalNetworkPolicy",
                                  "globalnetworkpolicies", "globalnetworkpolicy",
                                  "globalnetworkpolicies.projectcalico.org",
                                  "calicoglobalnetworkpolicies"])
def test_words_name_the_global_network_policy(word):
    info = api.resolve_kind(word)
    assert (info.kind, info.key, info.api_version) == (
        "GlobalNetworkPolicy", "GlobalNetworkPolicy", CALICO)
    assert not info.namespaced


@pytest.mark.parametrize("word", ["NetworkPolicy", "networkpolicies", "netpol"])
def test_bare_words_mean_the_kubernetes_networkpolicy(word):
    assert api.resolve_kind(word).api_version == "networking.k8s.io/v1"


def test_kinds_are_keyed_by_key_and_kind_key_uses_the_group():
    assert api.KINDS[CALICO_NP].kind == "NetworkPolicy"
    assert api.KINDS["NetworkPolicy"].group == "networking.k8s.io"
    assert all(key == info.key for key, info in api.KINDS.items())
    assert api.kind_key(cnp({})) == CALICO_NP
    assert api.kind_key(k8s_np()) == "NetworkPolicy"
    assert api.kind_key(gnp({})) == "GlobalNetworkPolicy"
    with pytest.raises(ValidationError, match=CALICO_NP):
        api.resolve_kind("nosuchkind")


# -- defaulting ----------------------------------------------------------------------------

def test_calico_docs_networkpolicy_example():
    # docs.tigera.io calico resources/networkpolicy "allow-tcp-6379"
    spec = {
        "selector": "role == 'database'",
        "types": ["Ingress", "Egress"],
        "ingress": [{"action": "Allow",
                     "metadata": {"annotations": {"from": "frontend", "to": "database"}},
                     "protocol": "TCP",
                     "source": {"selector": "role == 'frontend'"},
                     "destination": {"ports": [6379]}}],
        "egress": [{"action": "Allow"}],
    }
    assert spec_of(cnp(spec, name="allow-tcp-6379", namespace="production")) == {
        "tier": "default",
        "selector": "role == 'database'",
        "types": ["Ingress", "Egress"],
        "ingress": [{"action": "Allow", "protocol": "TCP",
                     "source": {"selector": "role == 'frontend'"},
                     "destination": {"ports": [6379]},
                     "metadata": {"annotations": {"from": "frontend", "to": "database"}}}],
        "egress": [{"action": "Allow", "source": {}, "destination": {}}],
    }


@pytest.mark.parametrize("spec, types", [
    ({}, ["Ingress"]),                                              # no rules at all
    ({"ingress": [{"action": "Allow"}]}, ["Ingress"]),
    ({"egress": [{"action": "Allow"}]}, ["Egress"]),                # egress only
    ({"ingress": [{"action": "Deny"}], "egress": [{"action": "Allow"}]},
     ["Ingress", "Egress"]),
    ({"ingress": [{"action": "Allow"}], "egress": []}, ["Ingress"]),  # trap: empty list
    ({"egress": []}, ["Ingress"]),
    ({"types": [], "egress": [{"action": "Allow"}]}, ["Egress"]),   # empty is "not set"
    ({"types": ["Egress"]}, ["Egress"]),                            # given: kept
    ({"types": ["Ingress"], "egress": [{"action": "Allow"}]}, ["Ingress"]),
    ({"types": ["Egress", "Ingress"]}, ["Egress", "Ingress"]),
])
@pytest.mark.parametrize("make", [cnp, gnp])
def test_types_defaulting(make, spec, types):
    assert spec_of(make(spec))["types"] == types


def test_tier_order_and_selector_defaults():
    assert spec_of(cnp({})) == {"tier": "default", "types": ["Ingress"]}
    assert spec_of(cnp({"tier": "default", "order": 1000, "selector": ""}))["order"] == 1000
    assert spec_of(gnp({"order": 10.5}))["order"] == 10.5
    assert "order" not in spec_of(gnp({}))
    assert spec_of(gnp({"doNotTrack": False, "preDNAT": False, "applyOnForward": False})) \
        == {"tier": "default", "types": ["Ingress"]}


def test_ports_protocols_and_icmp_normalize_like_calico():
    rule = {"action": "Allow", "protocol": "17", "notProtocol": 6,
            "source": {"ports": ["53", "80:80", "1000:2000", 443, "dns-udp"],
                       "notPorts": [9]},
            "destination": {"nets": ["10.0.0.0/8", "192.168.1.7"],
                            "notNets": ["10.1.0.0/16"],
                            "namespaceSelector": "global()"}}
    out = spec_of(cnp({"egress": [rule]}))["egress"][0]
    assert out == {"action": "Allow", "protocol": 17, "notProtocol": 6,
                   "source": {"ports": [53, 80, "1000:2000", 443, "dns-udp"], "notPorts": [9]},
                   "destination": {"nets": ["10.0.0.0/8", "192.168.1.7"],
                                   "notNets": ["10.1.0.0/16"],
                                   "namespaceSelector": "global()"}}
    icmp = spec_of(gnp({"ingress": [
        {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8, "code": 0}},
        {"action": "Deny", "protocol": "ICMP", "ipVersion": 4, "notICMP": {"type": 0}},
        {"action": "Log", "protocol": "ICMPv6", "icmp": {"type": 128}},
        {"action": "Pass", "protocol": "SCTP", "destination": {"ports": [5000]}},
    ]}))["ingress"]
    assert icmp[0]["icmp"] == {"type": 8, "code": 0}
    assert icmp[1]["notICMP"] == {"type": 0} and icmp[1]["ipVersion"] == 4
    assert [r["action"] for r in icmp] == ["Allow", "Deny", "Log", "Pass"]


def test_gnp_namespace_selector_and_names():
    out = api.normalize(gnp({"namespaceSelector": "kubernetes.io/metadata.name == 'x'",
                             "selector": "all()"}, name="default.allow-dns"), now=NOW)
    assert out["spec"]["namespaceSelector"] == "kubernetes.io/metadata.name == 'x'"
    assert out["metadata"] == {"name": "default.allow-dns", "creationTimestamp": NOW}


# -- validation: file, document, object and field ------------------------------------------

def rules(direction, *items):
    return {direction: list(items)}


IN0 = "spec.ingress[0]"
TCP = {"action": "Allow", "protocol": "TCP"}

BAD_SPECS = [
    ({"tier": "security"}, "spec.tier"),
    ({"order": "100"}, "spec.order"),
    ({"order": True}, "spec.order"),
    ({"order": float("inf")}, "spec.order"),
    ({"selector": "app =="}, "spec.selector"),
    ({"selector": "role == 'db"}, "spec.selector"),
    ({"selector": "global()"}, "spec.selector"),
    ({"selector": 3}, "spec.selector"),
    ({"types": ["ingress"]}, "spec.types[0]"),
    ({"types": ["Egress", "Egress"]}, "spec.types[1]"),
    ({"types": "Ingress"}, "spec.types"),
    ({"bogus": 1}, "spec.bogus"),
    ({"serviceAccountSelector": "role == 'x'"}, "spec.serviceAccountSelector"),
    ({"performanceHints": ["Fast"]}, "spec.performanceHints[0]"),
    ({"egress": [{"action": "Allow"}] * 1025}, "spec.egress"),
    (rules("ingress", {}), f"{IN0}.action"),
    (rules("ingress", None), IN0),
    (rules("ingress", {"action": "allow"}), f"{IN0}.action"),
    (rules("ingress", {"action": "Allow", "ports": [80]}), f"{IN0}.ports"),
    (rules("ingress", {"action": "Allow", "protocol": "tcp"}), f"{IN0}.protocol"),
    (rules("ingress", {"action": "Allow", "protocol": 0}), f"{IN0}.protocol"),
    (rules("ingress", {"action": "Allow", "protocol": 256}), f"{IN0}.protocol"),
    (rules("ingress", {"action": "Allow", "notProtocol": "GRE"}), f"{IN0}.notProtocol"),
    (rules("ingress", {"action": "Allow", "ipVersion": 5}), f"{IN0}.ipVersion"),
    (rules("ingress", {"action": "Allow", "icmp": {"type": 8}}), f"{IN0}.icmp"),
    (rules("ingress", {**TCP, "icmp": {"type": 8}}), f"{IN0}.icmp"),
    # Calico compares with the name: protocol 1 is ICMP, but icmp fields need "ICMP".
    (rules("ingress", {"action": "Allow", "protocol": 1, "icmp": {"type": 8}}), f"{IN0}.icmp"),
    (rules("ingress", {"action": "Allow", "notICMP": {"type": 8}}), f"{IN0}.notICMP"),
    (rules("ingress", {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 255}}),
     f"{IN0}.icmp.type"),
    (rules("ingress", {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 3, "code": 256}}),
     f"{IN0}.icmp.code"),
    (rules("ingress", {"action": "Allow", "protocol": "ICMP", "icmp": {"code": 1}}),
     f"{IN0}.icmp.code"),
    (rules("ingress", {"action": "Allow", "protocol": "ICMP", "icmp": {"kind": 1}}),
     f"{IN0}.icmp.kind"),
    (rules("ingress", {"action": "Allow", "protocol": "ICMP", "ipVersion": 6}),
     f"{IN0}.ipVersion"),
    (rules("ingress", {"action": "Allow", "source": {"nets": ["10.0.0.1/24"]}}),
     f"{IN0}.source.nets[0]"),                                # host bits set
    (rules("ingress", {"action": "Allow", "source": {"nets": ["10.0.0.0/33"]}}),
     f"{IN0}.source.nets[0]"),
    (rules("ingress", {"action": "Allow", "source": {"notNets": ["web"]}}),
     f"{IN0}.source.notNets[0]"),
    (rules("ingress", {"action": "Allow", "source": {"nets": ["10.0.0.0/8"]},
                       "destination": {"notNets": ["fd00::/8"]}}),
     f"{IN0}.destination.notNets[0]"),                        # IPv4 and IPv6 in one rule
    (rules("ingress", {"action": "Allow", "ipVersion": 6, "source": {"nets": ["10.0.0.0/8"]}}),
     f"{IN0}.source.nets[0]"),
    (rules("ingress", {"action": "Allow",
                       "source": {"nets": [f"10.0.{i}.0/24" for i in range(257)]}}),
     f"{IN0}.source.nets"),
    (rules("ingress", {"action": "Allow", "destination": {"ports": [80]}}),
     f"{IN0}.destination.ports"),                             # ports need a protocol
    (rules("ingress", {"action": "Allow", "protocol": "ICMP", "destination": {"ports": [80]}}),
     f"{IN0}.destination.ports"),
    (rules("ingress", {"action": "Allow", "protocol": "UDPLite",
                       "destination": {"ports": [80]}}), f"{IN0}.destination.ports"),
    (rules("ingress", {"action": "Allow", "notProtocol": "TCP",
                       "source": {"notPorts": [80]}}), f"{IN0}.source.notPorts"),
    (rules("ingress", {**TCP, "destination": {"ports": [0]}}), f"{IN0}.destination.ports[0]"),
    (rules("ingress", {**TCP, "destination": {"ports": ["1:65536"]}}),
     f"{IN0}.destination.ports[0]"),
    (rules("ingress", {**TCP, "destination": {"ports": [80, "2000:1000"]}}),
     f"{IN0}.destination.ports[1]"),
    (rules("ingress", {**TCP, "destination": {"ports": ["web port"]}}),
     f"{IN0}.destination.ports[0]"),
    (rules("ingress", {**TCP, "destination": {"ports": [-1]}}), f"{IN0}.destination.ports[0]"),
    (rules("ingress", {**TCP, "destination": {"ports": [8.5]}}), f"{IN0}.destination.ports[0]"),
    (rules("ingress", {**TCP, "destination": {"ports": list(range(1, 52))}}),
     f"{IN0}.destination.ports"),
    (rules("ingress", {"action": "Allow", "source": {"selector": "a in {"}}),
     f"{IN0}.source.selector"),
    (rules("ingress", {"action": "Allow", "source": {"notSelector": "global()"}}),
     f"{IN0}.source.notSelector"),
    (rules("ingress", {"action": "Allow",
                       "source": {"namespaceSelector": "global() && a == 'b'"}}),
     f"{IN0}.source.namespaceSelector"),
    (rules("ingress", {"action": "Allow", "source": {"serviceAccounts": {"names": ["a"]}}}),
     f"{IN0}.source.serviceAccounts"),
    (rules("egress", {"action": "Allow", "destination": {"services": {"name": "kube-dns"}}}),
     "spec.egress[0].destination.services"),
    (rules("ingress", {**TCP, "http": {"methods": ["GET"]}}), f"{IN0}.http"),
    (rules("ingress", {"action": "Allow", "metadata": {"annotations": {"bad key": "x"}}}),
     f"{IN0}.metadata.annotations"),
    (rules("ingress", {"action": "Allow", "metadata": {"labels": {}}}),
     f"{IN0}.metadata.labels"),
    (rules("ingress", {"action": "Allow", "source": {"podSelector": {}}}),
     f"{IN0}.source.podSelector"),
]


@pytest.mark.parametrize("spec, field", BAD_SPECS)
@pytest.mark.parametrize("make, ref", [(cnp, "NetworkPolicy x/p"),
                                       (gnp, "GlobalNetworkPolicy p")])
def test_bad_policies_name_file_document_object_field(make, ref, spec, field):
    docs = [Document(make({}, name="ok"), SRC, 0), Document(make(spec), SRC, 1)]
    with pytest.raises(ValidationError) as err:
        api.normalize_all(docs, now=NOW)
    e = err.value
    assert (e.source, e.index, e.obj, e.field) == (SRC, 1, ref, field), str(e)
    assert str(e).startswith(f"{SRC}: document 1: {ref}: field {field}: ")


@pytest.mark.parametrize("obj, field", [
    (gnp({"doNotTrack": True, "applyOnForward": True}), "spec.doNotTrack"),
    (gnp({"preDNAT": True, "applyOnForward": True}), "spec.preDNAT"),
    (gnp({"applyOnForward": True}), "spec.applyOnForward"),
    (gnp({"doNotTrack": "yes"}), "spec.doNotTrack"),
    (gnp({"namespaceSelector": "global()"}), "spec.namespaceSelector"),
    (gnp({"namespaceSelector": "a =="}), "spec.namespaceSelector"),
    (cnp({"namespaceSelector": "all()"}), "spec.namespaceSelector"),   # GNP only
    (cnp({"doNotTrack": False}), "spec.doNotTrack"),                   # GNP only
    (gnp({}, name="a.b.c"), "metadata.name"),
    (cnp({}, name="Web"), "metadata.name"),
    (cnp({}, name="a_b"), "metadata.name"),
])
def test_bad_objects_of_one_kind(obj, field):
    with pytest.raises(ValidationError) as err:
        api.normalize_all([Document(obj, SRC, 0)], now=NOW)
    assert (err.value.source, err.value.index, err.value.field) == (SRC, 0, field), str(err.value)


def test_gnp_is_cluster_scoped():
    obj = gnp({})
    obj["metadata"]["namespace"] = "x"
    with pytest.raises(ValidationError) as err:
        api.normalize(obj, now=NOW)
    assert err.value.field == "metadata.namespace"


def test_unsupported_features_say_so():
    def message(obj):
        with pytest.raises(ValidationError) as err:
            api.normalize(obj, now=NOW)
        return err.value.message

    assert "not supported by calinet" in message(gnp({"doNotTrack": True}))
    assert "not supported by calinet" in message(cnp({"serviceAccountSelector": "a == 'b'"}))
    assert "not supported by calinet" in message(cnp(rules("ingress", {
        "action": "Allow", "protocol": "TCP", "http": {"paths": [{"exact": "/"}]}})))
    assert "'default' tier" in message(cnp({"tier": "platform"}))
    assert "TCP, UDP or SCTP" in message(cnp(rules("ingress", {
        "action": "Allow", "destination": {"ports": [80]}})))
    assert "position" in message(cnp({"selector": "a =="}))   # the parser's own detail


# -- both NetworkPolicy kinds in one store, one apply --------------------------------------

@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    yield s
    s.close()


def test_both_networkpolicy_kinds_share_a_name_in_the_store(store):
    k = api.normalize(k8s_np("foo"), now=NOW)
    c = api.normalize(cnp({"selector": "all()"}, name="foo"), now=NOW)
    store.create(k)
    store.create(c)
    assert store.get("NetworkPolicy", "foo", "x")["apiVersion"] == "networking.k8s.io/v1"
    assert store.get(CALICO_NP, "foo", "x")["apiVersion"] == CALICO
    assert [o["apiVersion"] for o in store.list("NetworkPolicy")] == ["networking.k8s.io/v1"]
    assert [o["spec"]["tier"] for o in store.list(CALICO_NP, "x")] == ["default"]
    assert store.kinds() == ["NetworkPolicy", CALICO_NP]
    assert [e.kind for e in store.events(0)] == ["NetworkPolicy", CALICO_NP]
    store.delete(CALICO_NP, "foo", "x")
    assert store.get(CALICO_NP, "foo", "x") is None
    assert store.get("NetworkPolicy", "foo", "x") is not None


def test_one_apply_may_hold_both_kinds_with_one_name_but_not_one_kind_twice():
    objs = api.normalize_all([k8s_np("foo"), cnp({}, name="foo")], now=NOW)
    assert [o["apiVersion"] for o in objs] == ["networking.k8s.io/v1", CALICO]
    with pytest.raises(ValidationError) as err:
        api.normalize_all([cnp({}, name="foo"), k8s_np("bar"), cnp({}, name="foo")], now=NOW)
    assert err.value.index == 2 and "duplicate" in err.value.message


@pytest.fixture
def client(store):
    from orchestrator.control.nodes import system_namespaces
    for ns in system_namespaces():
        store.create(ns)
    store.create(api.normalize({"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": "x"}}, now=NOW))
    return Client(store, clock=lambda: NOW)


def test_client_applies_kubernetes_policy_and_gnp(client):
    assert client.apply([k8s_np("a"), gnp({"selector": "all()"}, name="g")]) == [
        "networkpolicy.networking.k8s.io/a created",
        "globalnetworkpolicy.projectcalico.org/g created"]
    assert client.apply([k8s_np("a"), gnp({"selector": "all()"}, name="g")]) == [
        "networkpolicy.networking.k8s.io/a unchanged",
        "globalnetworkpolicy.projectcalico.org/g unchanged"]
    assert client.apply([gnp({"selector": "all()", "order": 5}, name="g")]) == [
        "globalnetworkpolicy.projectcalico.org/g configured"]
    assert client.get("gnp", "g")["spec"]["order"] == 5
    assert client.get("netpol", "x/a")["spec"]["policyTypes"] == ["Ingress"]


def test_client_creates_a_calico_networkpolicy(client):
    assert client.apply([cnp({"selector": "all()"}, name="c")]) == [
        "networkpolicy.projectcalico.org/c created"]
    assert client.store.get(CALICO_NP, "c", "x")["spec"]["selector"] == "all()"
    assert client.store.get("NetworkPolicy", "c", "x") is None


def test_client_rejects_a_policy_in_a_missing_namespace(client):
    with pytest.raises(ValidationError) as err:
        client.apply([cnp({}, namespace="nope")])
    assert err.value.field == "metadata.namespace"
    assert client.store.list(CALICO_NP) == []


def test_client_reapplies_a_calico_networkpolicy(client):
    client.apply([cnp({"selector": "all()"}, name="c")])
    assert client.apply([cnp({"selector": "all()"}, name="c")]) == [
        "networkpolicy.projectcalico.org/c unchanged"]
    assert client.apply([cnp({"selector": "all()", "order": 1}, name="c")]) == [
        "networkpolicy.projectcalico.org/c configured"]


def test_client_keeps_both_networkpolicy_kinds_apart(client):
    assert client.apply([k8s_np("foo"), cnp({"order": 7}, name="foo")]) == [
        "networkpolicy.networking.k8s.io/foo created",
        "networkpolicy.projectcalico.org/foo created"]
    assert client.get("networkpolicies.projectcalico.org", "x/foo")["spec"]["order"] == 7
    assert client.get("netpol", "x/foo")["apiVersion"] == "networking.k8s.io/v1"
    assert [o["apiVersion"] for o in client.list("cnp", "x")] == [CALICO]
    client.delete("networkpolicies.projectcalico.org", "x/foo")
    assert client.store.get(CALICO_NP, "foo", "x") is None
    assert client.get("NetworkPolicy", "x/foo") is not None


def test_printing_shows_the_calico_kind_and_group():
    obj = api.normalize(cnp({"selector": "all()"}, name="c"), now=NOW)
    text = printers.to_yaml(obj)
    assert "apiVersion: projectcalico.org/v3" in text and "kind: NetworkPolicy" in text
    table = printers.table("NetworkPolicy", [obj], now=None, namespace="x")
    assert table.splitlines()[0].split() == ["NAME", "AGE"]
    assert table.splitlines()[1].split()[0] == "c"


def test_cli_get_lists_the_calico_policy_by_its_group(client):
    client.store.create(api.normalize(k8s_np("foo"), now=NOW))
    client.store.create(api.normalize(cnp({}, name="foo"), now=NOW))
    ctx = SimpleNamespace(client=client, store=client.store)
    text = commands.get(ctx, "networkpolicies.projectcalico.org", "foo", namespace="x",
                        output="yaml")
    assert "apiVersion: projectcalico.org/v3" in text and "kind: NetworkPolicy" in text
    text = commands.get(ctx, "netpol", "foo", namespace="x", output="yaml")
    assert "apiVersion: networking.k8s.io/v1" in text
