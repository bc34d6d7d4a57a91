"""Dual-stack Services: validation of the family fields and the allocator's defaulting, as the
API server's ValidateServiceClusterIPsRelatedFields and initIPFamilyFields do it."""

from __future__ import annotations

import ipaddress
import random

import pytest

from orchestrator.api import normalize
from orchestrator.control.client import Client
from orchestrator.control.serviceips import ServiceIPAllocator
from orchestrator.control.store import Store
from orchestrator.errors import ValidationError

NOW = "2026-01-01T00:00:00Z"


def svc(name="web", **spec):
    spec.setdefault("ports", [{"port": 80}])
    spec.setdefault("selector", {"app": name})
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


@pytest.fixture
def store(tmp_path):
    from orchestrator.control.nodes import system_namespaces
    s = Store(str(tmp_path / "s.db"))
    for ns in system_namespaces():
        s.create(ns)
    yield s
    s.close()


def client(store, families=(4, 6)):
    return Client(store, clock=lambda: NOW,
                  allocators=[ServiceIPAllocator(rng=random.Random(3), families=families)])


def spec_of(store, name="web"):
    return store.get("Service", name, "default")["spec"]


@pytest.mark.parametrize("spec, field, words", [
    ({"ipFamilies": ["IPv5"]}, "spec.ipFamilies[0]", "Unsupported value"),
    ({"ipFamilies": ["IPv6", "IPv6"]}, "spec.ipFamilies[1]", "Duplicate value"),
    ({"ipFamilyPolicy": "DualStack"}, "spec.ipFamilyPolicy", "Unsupported value"),
    ({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]},
     "spec.ipFamilyPolicy", "multiple IP families"),
    ({"ipFamilyPolicy": "SingleStack", "clusterIPs": ["10.96.0.5", "fd00:10:96::5"]},
     "spec.ipFamilyPolicy", "multiple cluster IPs"),
    ({"clusterIPs": ["10.96.0.5", "10.96.0.6"]}, "spec.clusterIPs[1]", "one IP for each"),
    ({"clusterIPs": ["10.96.0.5", "fd00:10:96::5", "10.96.0.7"]}, "spec.clusterIPs",
     "up to 2"),
    ({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.6"]}, "spec.clusterIPs[0]",
     "must match"),
    ({"clusterIPs": ["None", "fd00:10:96::5"]}, "spec.clusterIPs", "alongside"),
    ({"ipFamilies": ["IPv6"], "clusterIPs": ["10.96.0.5"]}, "spec.clusterIPs[0]",
     "expected an IPv6 value"),
    ({"clusterIPs": ["fd00:10:96::zz"]}, "spec.clusterIPs[0]", "valid IP address"),
])
def test_family_fields_validated_naming_the_field(spec, field, words):
    with pytest.raises(ValidationError) as ei:
        normalize(svc(**spec), now=NOW)
    assert ei.value.field == field, str(ei.value)
    assert words in str(ei.value)


def test_dual_fields_kept_as_given():
    out = normalize(svc(clusterIPs=["fd00:10:96::5", "10.96.0.5"],
                        ipFamilyPolicy="RequireDualStack"), now=NOW)["spec"]
    assert out["clusterIP"] == "fd00:10:96::5"
    assert out["clusterIPs"] == ["fd00:10:96::5", "10.96.0.5"]
    assert out["ipFamilyPolicy"] == "RequireDualStack" and "ipFamilies" not in out


def test_single_stack_default_is_the_primary_family(store):
    client(store).apply(svc())
    s = spec_of(store)
    assert s["ipFamilyPolicy"] == "SingleStack" and s["ipFamilies"] == ["IPv4"]
    assert ipaddress.ip_address(s["clusterIP"]) in ipaddress.ip_network("10.96.0.0/12")
    client(store, families=(6, 4)).apply(svc("six"))
    s = spec_of(store, "six")
    assert s["ipFamilies"] == ["IPv6"] and s["clusterIPs"] == [s["clusterIP"]]
    assert ipaddress.ip_address(s["clusterIP"]) in ipaddress.ip_network("fd00:10:96::/112")


@pytest.mark.parametrize("policy", ["PreferDualStack", "RequireDualStack"])
def test_dual_policies_get_both_families_primary_first(store, policy):
    client(store).apply(svc(ipFamilyPolicy=policy))
    s = spec_of(store)
    assert s["ipFamilies"] == ["IPv4", "IPv6"]
    v4, v6 = s["clusterIPs"]
    assert s["clusterIP"] == v4 and ipaddress.ip_address(v4).version == 4
    assert ipaddress.ip_address(v6) in ipaddress.ip_network("fd00:10:96::/112")
    client(store).apply(svc("other", ipFamilyPolicy=policy, ipFamilies=["IPv6"]))
    assert spec_of(store, "other")["ipFamilies"] == ["IPv6", "IPv4"]


def test_prefer_dual_stack_on_a_single_stack_cluster_is_single(store):
    client(store, families=(4,)).apply(svc(ipFamilyPolicy="PreferDualStack"))
    s = spec_of(store)
    assert s["ipFamilies"] == ["IPv4"] and len(s["clusterIPs"]) == 1


@pytest.mark.parametrize("spec, field, words", [
    ({"ipFamilyPolicy": "RequireDualStack"}, "spec.ipFamilyPolicy", "not configured for dual"),
    ({"ipFamilies": ["IPv6"]}, "spec.ipFamilies[0]", "not configured on this cluster"),
    ({"clusterIPs": ["fd00:10:96::7"]}, "spec.clusterIPs[0]", "IPv6 is not configured"),
])
def test_what_the_cluster_cannot_serve_is_refused_and_nothing_applied(store, spec, field,
                                                                      words):
    c = client(store, families=(4,))
    with pytest.raises(ValidationError) as ei:
        c.apply([svc("ok"), svc(**spec)])
    assert ei.value.field == field and words in str(ei.value), str(ei.value)
    assert store.get("Service", "ok", "default") is None


def test_requested_ipv6_address_checked_against_its_range_and_owners(store):
    c = client(store)
    c.apply(svc("a", clusterIPs=["10.96.0.20", "fd00:10:96::20"],
                ipFamilyPolicy="PreferDualStack"))
    assert spec_of(store, "a")["ipFamilies"] == ["IPv4", "IPv6"]
    with pytest.raises(ValidationError) as ei:
        c.apply(svc("b", ipFamilyPolicy="RequireDualStack",
                    clusterIPs=["10.96.0.21", "fd00:10:96::20"]))
    assert ei.value.field == "spec.clusterIPs[1]" and "default/a" in str(ei.value)
    with pytest.raises(ValidationError) as ei:
        c.apply(svc("c", ipFamilies=["IPv6"], clusterIPs=["fd00:99::1"]))
    assert "not in the valid range" in str(ei.value) and "fd00:10:96::/112" in str(ei.value)


def test_two_cluster_ips_without_a_policy_need_one(store):
    # SingleStack is the default, and SingleStack with two addresses is an error, as upstream.
    with pytest.raises(ValidationError) as ei:
        client(store).apply(svc(clusterIPs=["10.96.0.30", "fd00:10:96::30"]))
    assert ei.value.field == "spec.ipFamilyPolicy"


def test_headless_without_selector_is_dual_even_on_one_family(store):
    obj = svc(clusterIP="None")
    del obj["spec"]["selector"]
    client(store, families=(4,)).apply(obj)
    s = spec_of(store)
    assert s["ipFamilyPolicy"] == "RequireDualStack" and s["ipFamilies"] == ["IPv4", "IPv6"]
    assert s["clusterIPs"] == ["None"]
    client(store).apply(svc("sel", clusterIP="None"))
    assert spec_of(store, "sel")["ipFamilies"] == ["IPv4"]


def test_upgrade_keeps_primary_and_downgrade_releases_secondary(store):
    c = client(store)
    c.apply(svc())
    first = spec_of(store)["clusterIP"]
    c.apply(svc(ipFamilyPolicy="RequireDualStack"))
    s = spec_of(store)
    assert s["clusterIPs"][0] == first and len(s["clusterIPs"]) == 2
    second = s["clusterIPs"][1]
    c.apply(svc(ipFamilyPolicy="RequireDualStack"))           # re-apply: nothing moves
    assert spec_of(store)["clusterIPs"] == [first, second]
    c.apply(svc())                                            # policy kept from before
    assert spec_of(store)["clusterIPs"] == [first, second]
    c.apply(svc(ipFamilyPolicy="SingleStack"))
    s = spec_of(store)
    assert s["clusterIPs"] == [first] and s["ipFamilies"] == ["IPv4"]
    with pytest.raises(ValidationError) as ei:
        c.apply(svc(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6", "IPv4"]))
    assert ei.value.field == "spec.ipFamilies[0]" and "primary" in str(ei.value)
