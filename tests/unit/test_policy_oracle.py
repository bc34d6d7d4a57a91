"""policy.oracle: hand-derived golden checks of Kubernetes NetworkPolicy semantics.

The model is small on purpose so every expected value can be read off the policy:
ns1 (team=a) holds web (app=web, serves http 80/TCP and dns 53/UDP) and db (app=db, serves
pg 5432/TCP); ns2 (team=b) holds client (app=client, serves nothing).
"""

import pytest

from orchestrator.errors import ValidationError
from policy import oracle

MODEL = oracle.Model(
    namespaces={"ns1": {"team": "a"}, "ns2": {"team": "b"}},
    pods=[
        {"namespace": "ns1", "name": "web", "labels": {"app": "web"}, "ip": "10.0.0.1",
         "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                   {"name": "dns", "port": 53, "protocol": "UDP"}]},
        {"namespace": "ns1", "name": "db", "labels": {"app": "db"}, "ip": "10.0.0.2",
         "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]},
        {"namespace": "ns2", "name": "client", "labels": {"app": "client"}, "ip": "10.0.1.1",
         "ports": []},
    ])
WEB, DB, CLIENT = "ns1/web", "ns1/db", "ns2/client"


def pol(ns, name, selector, types, ingress=None, egress=None):
    spec = {"podSelector": selector, "policyTypes": types}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": ns, "name": name}, "spec": spec}


def denied(policies, port=80, protocol="TCP"):
    return {pair for pair, ok in oracle.matrix(MODEL, policies, port, protocol).items() if not ok}


def test_no_policy_allows_every_pair_and_matrix_has_no_self_pairs():
    m = oracle.matrix(MODEL, [], 80, "TCP")
    assert set(m) == {(WEB, DB), (WEB, CLIENT), (DB, WEB), (DB, CLIENT), (CLIENT, WEB),
                      (CLIENT, DB)}
    assert all(m.values())


def test_default_deny_ingress_isolates_only_the_namespace_and_direction():
    deny = pol("ns1", "deny", {}, ["Ingress"])
    assert denied([deny]) == {(WEB, DB), (DB, WEB), (CLIENT, WEB), (CLIENT, DB)}


def test_default_deny_egress():
    assert denied([pol("ns2", "deny", {}, ["Egress"])]) == {(CLIENT, WEB), (CLIENT, DB)}


def test_podselector_alone_is_the_policy_namespace_only():
    p = pol("ns1", "db-from-any", {"matchLabels": {"app": "db"}}, ["Ingress"],
            [{"from": [{"podSelector": {}}]}])
    assert denied([p]) == {(CLIENT, DB)}


def test_namespaceselector_alone_is_every_pod_of_matching_namespaces():
    p = pol("ns1", "db-from-b", {"matchLabels": {"app": "db"}}, ["Ingress"],
            [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}])
    assert denied([p]) == {(WEB, DB)}


def test_both_selectors_in_one_peer_are_anded_two_peers_are_ored():
    anded = pol("ns1", "p", {"matchLabels": {"app": "db"}}, ["Ingress"],
                [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}},
                            "podSelector": {"matchLabels": {"app": "web"}}}]}])
    assert denied([anded]) == {(WEB, DB), (CLIENT, DB)}
    ored = pol("ns1", "p", {"matchLabels": {"app": "db"}}, ["Ingress"],
               [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}},
                          {"podSelector": {"matchLabels": {"app": "web"}}}]}])
    assert denied([ored]) == set()


def test_notin_matches_a_namespace_without_the_key():
    p = pol("ns1", "p", {"matchLabels": {"app": "db"}}, ["Ingress"],
            [{"from": [{"namespaceSelector": {"matchExpressions": [
                {"key": "env", "operator": "NotIn", "values": ["prod"]}]}}]}])
    assert denied([p]) == set()


def test_ipblock_matches_pod_ips_and_except_removes_them():
    p = pol("ns1", "p", {"matchLabels": {"app": "db"}}, ["Ingress"],
            [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}]}])
    assert denied([p]) == {(CLIENT, DB)}
    one = pol("ns2", "p", {}, ["Egress"], egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]}])
    assert denied([one]) == {(CLIENT, DB)}


def test_ipblock_never_matches_a_pod_without_ip():
    model = oracle.Model(MODEL.namespaces, [dict(p, ip=None) for p in MODEL.pods])
    p = pol("ns1", "p", {"matchLabels": {"app": "db"}}, ["Ingress"],
            [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}])
    assert not oracle.allowed(model, [p], WEB, DB, 80, "TCP")


# The same pods in IPv6 (a dual-stack pod is modelled once per family).
MODEL6 = oracle.Model(MODEL.namespaces, [
    dict(p, ip=ip) for p, ip in zip(MODEL.pods, ("fd00:10:244::1", "fd00:10:244::2",
                                                 "fd00:10:244:0:1::1"))])


def denied6(policies, port=80, protocol="TCP"):
    return {pair for pair, ok in oracle.matrix(MODEL6, policies, port, protocol).items()
            if not ok}


def test_ipblock_with_ipv6_pod_addresses_cidr_and_except():
    p = pol("ns1", "p", {"matchLabels": {"app": "db"}}, ["Ingress"],
            [{"from": [{"ipBlock": {"cidr": "fd00:10:244::/48",
                                    "except": ["fd00:10:244:0:1::/80"]}}]}])
    assert denied6([p]) == {(CLIENT, DB)}
    one = pol("ns2", "p", {}, ["Egress"],
              egress=[{"to": [{"ipBlock": {"cidr": "fd00:10:244::1/128"}}]}])
    assert denied6([one]) == {(CLIENT, DB)}
    # a /128 is one address: the neighbour ::2 is not in it
    assert oracle.explain(MODEL6, [one], CLIENT, WEB, 80, "TCP").egress.rules == (
        "ns2/p egress[0]",)
    # written differently, the same address matches (parsed, not compared as text)
    spelled = pol("ns2", "p", {}, ["Egress"],
                  egress=[{"to": [{"ipBlock": {"cidr": "FD00:10:244:0:0:0:0:1/128"}}]}])
    assert denied6([spelled]) == {(CLIENT, DB)}


def test_an_ipblock_never_matches_the_other_family():
    v4_any = pol("ns1", "p", {"matchLabels": {"app": "db"}}, ["Ingress"],
                 [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}])
    v6_any = pol("ns1", "p", {"matchLabels": {"app": "db"}}, ["Ingress"],
                 [{"from": [{"ipBlock": {"cidr": "::/0"}}]}])
    # 0.0.0.0/0 allows every IPv4 source and no IPv6 one; ::/0 the other way round
    assert denied([v4_any]) == set() and denied6([v4_any]) == {(WEB, DB), (CLIENT, DB)}
    assert denied6([v6_any]) == set() and denied([v6_any]) == {(WEB, DB), (CLIENT, DB)}
    # an except of the other family removes nothing
    v6_except_v4 = pol("ns1", "p", {"matchLabels": {"app": "db"}}, ["Ingress"],
                       [{"from": [{"ipBlock": {"cidr": "::/0", "except": ["10.0.0.0/8"]}}]}])
    assert denied6([v6_except_v4]) == set()
    # both families in one rule (two peers, as dual-stack policies are written)
    both = pol("ns1", "p", {"matchLabels": {"app": "db"}}, ["Ingress"],
               [{"from": [{"ipBlock": {"cidr": "10.0.1.0/24"}},
                          {"ipBlock": {"cidr": "fd00:10:244:0:1::/80"}}]}])
    assert denied([both]) == denied6([both]) == {(WEB, DB)}


def test_ipv6_selectors_and_ports_are_the_ipv4_ones():
    # Only ipBlocks look at addresses: every other verdict is the same in both families.
    ps = [pol("ns1", "deny", {}, ["Ingress"]),
          pol("ns1", "allow", {"matchLabels": {"app": "web"}}, ["Ingress"],
              [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}],
                "ports": [{"port": "http", "protocol": "TCP"}]}])]
    for port, proto in ((80, "TCP"), (53, "UDP")):
        assert oracle.matrix(MODEL6, ps, port, proto) == oracle.matrix(MODEL, ps, port, proto)


def test_a_bad_ipv6_block_names_the_field():
    bad = pol("ns1", "p", {}, ["Ingress"], [{"from": [{"ipBlock": {"cidr": "fd00::/129"}}]}])
    with pytest.raises(ValidationError) as exc:
        oracle.matrix(MODEL6, [bad], 80, "TCP")
    assert exc.value.field == "spec.ingress[0].from[0].ipBlock"


def test_named_port_resolves_on_destination_with_rule_protocol():
    http = pol("ns1", "p", {}, ["Ingress"], [{"ports": [{"port": "http", "protocol": "TCP"}]}])
    assert oracle.allowed(MODEL, [http], CLIENT, WEB, 80, "TCP")
    assert not oracle.allowed(MODEL, [http], CLIENT, WEB, 81, "TCP")
    # db serves no port named http: the rule matches nothing there, even on 80
    assert not oracle.allowed(MODEL, [http], CLIENT, DB, 80, "TCP")
    # dns is a UDP port; used with protocol TCP it matches nothing
    dns_tcp = pol("ns1", "p", {}, ["Ingress"], [{"ports": [{"port": "dns", "protocol": "TCP"}]}])
    assert not oracle.allowed(MODEL, [dns_tcp], CLIENT, WEB, 53, "TCP")
    assert not oracle.allowed(MODEL, [dns_tcp], CLIENT, WEB, 53, "UDP")
    dns_udp = pol("ns1", "p", {}, ["Ingress"], [{"ports": [{"port": "dns", "protocol": "UDP"}]}])
    assert oracle.allowed(MODEL, [dns_udp], CLIENT, WEB, 53, "UDP")


def test_named_port_in_egress_resolves_on_the_destination_not_the_source():
    p = pol("ns1", "p", {"matchLabels": {"app": "web"}}, ["Egress"],
            egress=[{"ports": [{"port": "pg", "protocol": "TCP"}]}])
    assert oracle.allowed(MODEL, [p], WEB, DB, 5432, "TCP")      # db serves pg
    assert not oracle.allowed(MODEL, [p], WEB, CLIENT, 5432, "TCP")  # client does not


def test_endport_range_is_inclusive_and_protocol_must_match():
    p = pol("ns1", "p", {}, ["Ingress"],
            [{"ports": [{"port": 80, "endPort": 90, "protocol": "TCP"}]}])
    assert oracle.allowed(MODEL, [p], CLIENT, WEB, 80, "TCP")
    assert oracle.allowed(MODEL, [p], CLIENT, WEB, 90, "TCP")
    assert not oracle.allowed(MODEL, [p], CLIENT, WEB, 91, "TCP")
    assert not oracle.allowed(MODEL, [p], CLIENT, WEB, 79, "TCP")
    assert not oracle.allowed(MODEL, [p], CLIENT, WEB, 85, "UDP")


def test_protocol_only_port_entry_allows_every_port_of_that_protocol():
    p = pol("ns1", "p", {}, ["Ingress"], [{"ports": [{"protocol": "SCTP"}]}])
    assert oracle.allowed(MODEL, [p], CLIENT, WEB, 9999, "SCTP")
    assert not oracle.allowed(MODEL, [p], CLIENT, WEB, 9999, "TCP")


def test_empty_rule_and_empty_lists_allow_everything():
    for rule in ({}, {"from": []}, {"from": [], "ports": []}):
        assert denied([pol("ns1", "p", {}, ["Ingress"], [rule])]) == set(), rule


def test_rules_of_a_direction_missing_from_policytypes_are_ignored():
    p = pol("ns1", "p", {"matchLabels": {"app": "web"}}, ["Ingress"],
            [{}], egress=[{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}])
    assert denied([p]) == set()


def test_policies_union_and_both_directions_must_allow():
    deny_all_in = pol("ns1", "deny", {}, ["Ingress"])
    allow_client = pol("ns1", "allow", {"matchLabels": {"app": "web"}}, ["Ingress"],
                       [{"from": [{"namespaceSelector": {}}]}])
    assert denied([deny_all_in, allow_client]) == {(WEB, DB), (CLIENT, DB)}
    client_only_db = pol("ns2", "egress", {}, ["Egress"],
                         egress=[{"to": [{"namespaceSelector": {},
                                          "podSelector": {"matchLabels": {"app": "db"}}}]}])
    # client's egress allows only db; db's ingress is closed: client reaches nothing
    assert denied([deny_all_in, allow_client, client_only_db]) == {
        (WEB, DB), (CLIENT, DB), (CLIENT, WEB)}


def test_explain_names_policies_and_rules():
    deny = pol("ns1", "deny", {}, ["Ingress"])
    allow = pol("ns1", "allow-web", {"matchLabels": {"app": "web"}}, ["Ingress"],
                [{"from": [{"podSelector": {"matchLabels": {"app": "db"}}}]},
                 {"ports": [{"port": 80, "protocol": "TCP"}]}])
    e = oracle.explain(MODEL, [deny, allow], CLIENT, WEB, 80, "TCP")
    assert e.allowed
    assert e.egress.policies == () and e.egress.reason == "not isolated"
    assert e.ingress.policies == ("ns1/deny", "ns1/allow-web")
    assert e.ingress.rules == ("ns1/allow-web ingress[1]",)
    assert e.ingress.reason == "allowed by ns1/allow-web ingress[1]"
    e = oracle.explain(MODEL, [deny, allow], CLIENT, DB, 80, "TCP")
    assert not e.allowed and e.ingress.policies == ("ns1/deny",)
    assert e.ingress.reason == "no rule allowed"
    assert str(e).splitlines() == [
        "ns2/client -> ns1/db TCP/80: denied",
        "  egress on ns2/client: not isolated (policies: none)",
        "  ingress on ns1/db: no rule allowed (policies: ns1/deny)",
    ]


def test_accepts_mapping_model_and_pod_dicts():
    as_map = {"namespaces": MODEL.namespaces, "pods": MODEL.pods}
    deny = pol("ns1", "deny", {}, ["Ingress"])
    assert not oracle.allowed(as_map, [deny], MODEL.pods[2], MODEL.pods[0], 80, "TCP")
    assert oracle.matrix(as_map, [deny], 80, "TCP") == oracle.matrix(MODEL, [deny], 80, "TCP")


def test_undefaulted_policies_are_refused_with_the_field():
    p = pol("ns1", "p", {}, ["Ingress"])
    del p["spec"]["policyTypes"]
    with pytest.raises(ValidationError) as exc:
        oracle.matrix(MODEL, [p], 80, "TCP")
    assert exc.value.field == "spec.policyTypes" and exc.value.obj == "NetworkPolicy ns1/p"
    p = pol("ns1", "p", {}, ["Ingress"], [{"ports": [{"port": 80}]}])
    with pytest.raises(ValidationError) as exc:
        oracle.matrix(MODEL, [p], 80, "TCP")
    assert exc.value.field == "spec.ingress[0].ports[0].protocol"


def test_bad_probe_protocol_and_unknown_pod():
    with pytest.raises(ValueError):
        oracle.matrix(MODEL, [], 80, "ICMP")
    with pytest.raises(KeyError):
        oracle.allowed(MODEL, [], "ns1/nope", WEB, 80, "TCP")
