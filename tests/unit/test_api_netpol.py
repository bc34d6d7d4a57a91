"""Kubernetes NetworkPolicy (networking.k8s.io/v1) as an API kind: the CLI words that name
it, the API server's defaulting (ports TCP, policyTypes from spec.egress) and validation,
every error located by file, document, object and field. Golden values are the Kubernetes
docs' examples and the rules of SetDefaults_NetworkPolicy / ValidateNetworkPolicySpec."""

from __future__ import annotations

import pytest

from orchestrator import api
from orchestrator.api import Document
from orchestrator.errors import ValidationError

NOW = "2026-01-01T00:00:00Z"
SRC = "policies.yaml"


def netpol(spec, name="p", namespace="x"):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def spec_of(spec):
    return api.normalize(netpol(spec), now=NOW)["spec"]


# -- kind registry -------------------------------------------------------------------------

@pytest.mark.parametrize("word", ["netpol", "networkpolicies", "networkpolicy",
                                  "NetworkPolicy", "NETPOL",
                                  "networkpolicies.networking.k8s.io"])
def test_words_name_the_kubernetes_kind(word):
    info = api.resolve_kind(word)
    assert (info.kind, info.key, info.api_version) == (
        "NetworkPolicy", "NetworkPolicy", "networking.k8s.io/v1")
    assert info.namespaced and info.plural == "networkpolicies"


def test_kind_key_of_a_kubernetes_policy_is_its_kind():
    assert api.kind_key(netpol({"podSelector": {}})) == "NetworkPolicy"
    assert api.kind_key({"apiVersion": "v1", "kind": "Pod"}) == "Pod"
    assert api.kind_key({"apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMBlock"}) \
        == "IPAMBlock"


# -- defaulting --------------------------------------------------------------------------

def test_docs_example_round_trips_with_defaults():
    # kubernetes.io/docs/concepts/services-networking/network-policies "test-network-policy"
    spec = {
        "podSelector": {"matchLabels": {"role": "db"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{
            "from": [{"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
                     {"namespaceSelector": {"matchLabels": {"project": "myproject"}}},
                     {"podSelector": {"matchLabels": {"role": "frontend"}}}],
            "ports": [{"protocol": "TCP", "port": 6379}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
                    "ports": [{"port": 5978}]}],
    }
    out = spec_of(spec)
    assert out == {
        "podSelector": {"matchLabels": {"role": "db"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{
            "from": [{"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
                     {"namespaceSelector": {"matchLabels": {"project": "myproject"}}},
                     {"podSelector": {"matchLabels": {"role": "frontend"}}}],
            "ports": [{"protocol": "TCP", "port": 6379}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
                    "ports": [{"protocol": "TCP", "port": 5978}]}],
    }


def test_port_protocol_defaults_to_tcp_and_named_ports_and_ranges_are_kept():
    out = spec_of({"podSelector": {}, "ingress": [{"ports": [
        {"port": 32000, "endPort": 32768}, {"protocol": "UDP", "port": "dns"},
        {"protocol": "SCTP"}, {}]}]})
    assert out["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": 32000, "endPort": 32768},
        {"protocol": "UDP", "port": "dns"},
        {"protocol": "SCTP"},
        {"protocol": "TCP"},
    ]


@pytest.mark.parametrize("spec, types", [
    # No policyTypes: Ingress always, Egress only when spec.egress has a rule.
    ({"podSelector": {}}, ["Ingress"]),
    ({"podSelector": {}, "ingress": [{}]}, ["Ingress"]),
    ({"podSelector": {}, "egress": []}, ["Ingress"]),             # trap: empty list
    ({"podSelector": {}, "egress": [{}]}, ["Ingress", "Egress"]),  # allow-all egress rule
    ({"podSelector": {}, "egress": [{"to": [], "ports": []}]}, ["Ingress", "Egress"]),
    ({"podSelector": {}, "egress": None}, ["Ingress"]),           # null is "not set"
    ({"podSelector": {}, "policyTypes": [], "egress": [{}]}, ["Ingress", "Egress"]),
    # Given: kept exactly, even when it disagrees with the rules present.
    ({"podSelector": {}, "policyTypes": ["Egress"]}, ["Egress"]),
    ({"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}]}, ["Egress"]),
    ({"podSelector": {}, "policyTypes": ["Ingress"], "egress": [{}]}, ["Ingress"]),
    ({"podSelector": {}, "policyTypes": ["Egress", "Ingress"]}, ["Egress", "Ingress"]),
])
def test_policy_types_defaulting(spec, types):
    assert spec_of(spec)["policyTypes"] == types


def test_empty_lists_are_omitted_like_the_api_server_reads_them_back():
    out = spec_of({"podSelector": {}, "ingress": [{"from": [], "ports": []}], "egress": []})
    assert out == {"podSelector": {}, "ingress": [{}], "policyTypes": ["Ingress"]}


def test_peer_may_combine_pod_and_namespace_selectors():
    peer = {"podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
            "namespaceSelector": {}}
    out = spec_of({"podSelector": {}, "ingress": [{"from": [peer]}]})
    assert out["ingress"][0]["from"] == [peer]


def test_ipblock_cidr_with_host_bits_is_accepted_as_a_legacy_cidr():
    out = spec_of({"podSelector": {}, "egress": [{"to": [{"ipBlock": {
        "cidr": "10.0.0.1/8", "except": ["10.1.0.0/16", "10.2.3.4/32"]}}]}]})
    assert out["egress"][0]["to"][0]["ipBlock"] == {
        "cidr": "10.0.0.1/8", "except": ["10.1.0.0/16", "10.2.3.4/32"]}


# -- validation: file, document, object and field ------------------------------------------

EGRESS_TO = "spec.egress[0].to[0]"


@pytest.mark.parametrize("spec, field", [
    ({}, "spec.podSelector"),
    ({"podSelector": None}, "spec.podSelector"),
    ({"podSelector": {"matchLabels": {"a": "b c"}}}, "spec.podSelector.matchLabels[a]"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
     "spec.podSelector.matchExpressions[0].values"),
    ({"podSelector": {}, "bogus": 1}, "spec.bogus"),
    ({"podSelector": {}, "ingress": {}}, "spec.ingress"),
    ({"podSelector": {}, "ingress": [{"to": []}]}, "spec.ingress[0].to"),
    ({"podSelector": {}, "ingress": [{"from": [{}]}]}, "spec.ingress[0].from[0]"),
    ({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}, {"ipBlock": {
        "cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}]},
     "spec.ingress[0].from[1].ipBlock.except[0]"),
    ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {
        "cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.0.0.0/8"]}}]}]},
     "spec.ingress[0].from[0].ipBlock.except[1]"),          # equal is not strictly inside
    ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {
        "cidr": "10.0.0.0/16", "except": ["10.0.0.0/8"]}}]}]},
     "spec.ingress[0].from[0].ipBlock.except[0]"),          # wider
    ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {
        "cidr": "10.0.0.0/8", "except": ["fd00::/64"]}}]}]},
     "spec.ingress[0].from[0].ipBlock.except[0]"),          # other family
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0"}}]}]},
     f"{EGRESS_TO}.ipBlock.cidr"),                            # no prefix length
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]},
     f"{EGRESS_TO}.ipBlock.cidr"),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {
        "cidr": "10.0.0.0/255.0.0.0"}}]}]}, f"{EGRESS_TO}.ipBlock.cidr"),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {}}]}]}, f"{EGRESS_TO}.ipBlock.cidr"),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                                          "exceptions": []}}]}]},
     f"{EGRESS_TO}.ipBlock.exceptions"),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"},
                                              "podSelector": {}}]}]}, EGRESS_TO),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"},
                                              "namespaceSelector": {}}]}]}, EGRESS_TO),
    ({"podSelector": {}, "egress": [{"to": [{"podSelector": {"matchLabels": {"-x": "y"}}}]}]},
     f"{EGRESS_TO}.podSelector.matchLabels"),
    ({"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]},
     "spec.ingress[0].ports[0].protocol"),
    ({"podSelector": {}, "ingress": [{"ports": [{"protocol": "tcp"}]}]},
     "spec.ingress[0].ports[0].protocol"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]}, "spec.ingress[0].ports[0].port"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 65536}]}]},
     "spec.ingress[0].ports[0].port"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": "80"}]}]},
     "spec.ingress[0].ports[0].port"),                       # a name needs a letter
    ({"podSelector": {}, "ingress": [{"ports": [{"port": "Http"}]}]},
     "spec.ingress[0].ports[0].port"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": "a-very-long-name"}]}]},
     "spec.ingress[0].ports[0].port"),                       # 16 > 15 characters
    ({"podSelector": {}, "ingress": [{"ports": [{"port": True}]}]},
     "spec.ingress[0].ports[0].port"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 79}]}]},
     "spec.ingress[0].ports[0].endPort"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 65536}]}]},
     "spec.ingress[0].ports[0].endPort"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]},
     "spec.ingress[0].ports[0].endPort"),
    ({"podSelector": {}, "ingress": [{"ports": [{"endPort": 90}]}]},
     "spec.ingress[0].ports[0].endPort"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": "90"}]}]},
     "spec.ingress[0].ports[0].endPort"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 80, "name": "x"}]}]},
     "spec.ingress[0].ports[0].name"),
    ({"podSelector": {}, "policyTypes": ["ingress"]}, "spec.policyTypes[0]"),
    ({"podSelector": {}, "policyTypes": ["Ingress", "Ingress"]}, "spec.policyTypes[1]"),
    ({"podSelector": {}, "policyTypes": ["Ingress", "Egress", "Ingress"]},
     "spec.policyTypes"),
    ({"podSelector": {}, "policyTypes": "Ingress"}, "spec.policyTypes"),
])
def test_bad_policies_name_file_document_object_field(spec, field):
    docs = [Document(netpol({"podSelector": {}}, name="ok"), SRC, 0),
            Document(netpol(spec), SRC, 1)]
    with pytest.raises(ValidationError) as err:
        api.normalize_all(docs, now=NOW)
    e = err.value
    assert (e.source, e.index, e.obj, e.field) == (SRC, 1, "NetworkPolicy x/p", field), str(e)
    assert str(e).startswith(f"{SRC}: document 1: NetworkPolicy x/p: field {field}: ")


def test_missing_spec_is_required():
    with pytest.raises(ValidationError) as err:
        api.normalize_all([Document(netpol(None), SRC, 0)], now=NOW)
    assert err.value.field == "spec"


def test_error_messages_say_what_is_wrong():
    def message(spec):
        with pytest.raises(ValidationError) as err:
            spec_of(spec)
        return err.value.message

    assert "strict subset of `cidr`" in message({"podSelector": {}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}]})
    assert "may not specify both ipBlock and another peer" in message(
        {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"},
                                                    "podSelector": {}}]}]})
    assert "must specify a peer" in message({"podSelector": {}, "ingress": [{"from": [{}]}]})
    assert "greater than or equal to `port`" in message(
        {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 79}]}]})
    assert "non-numeric" in message(
        {"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]})
    assert '"TCP", "UDP", "SCTP"' in message(
        {"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]})


def test_namespace_is_defaulted_and_name_checked():
    obj = netpol({"podSelector": {}})
    del obj["metadata"]["namespace"]
    assert api.normalize(obj, now=NOW)["metadata"]["namespace"] == "default"
    with pytest.raises(ValidationError) as err:
        api.normalize(netpol({"podSelector": {}}, name="Bad_Name"), now=NOW)
    assert err.value.field == "metadata.name"


def test_wrong_api_version_names_both_groups():
    obj = netpol({"podSelector": {}})
    obj["apiVersion"] = "networking.k8s.io/v1beta1"
    with pytest.raises(ValidationError) as err:
        api.normalize(obj, now=NOW)
    assert err.value.field == "apiVersion"
    assert "networking.k8s.io/v1" in err.value.message
    assert "projectcalico.org/v3" in err.value.message
