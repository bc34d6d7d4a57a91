"""Derived names: Calico's veth names (values computed with sha1sum), netns, handles, bridges."""

import pytest

from orchestrator.host import naming


@pytest.mark.parametrize("ns, pod, veth", [
    ("default", "nginx", "calic440f455693"),
    ("kube-system", "coredns-5d78c9869d-abcde", "cali4d5f75c480c"),
    ("x", "a", "cali456b416f2bf"),
    ("demo", "web-0", "cali50aeaf5a85d"),
])
def test_veth_name_matches_calico(ns, pod, veth):
    assert naming.veth_name(ns, pod) == veth
    assert len(veth) == 15  # IFNAMSIZ - 1


def test_veth_name_depends_on_namespace_and_pod_not_their_join():
    # "a.b" + "c" and "a" + "b.c" hash the same string: Calico has the same property.
    assert naming.veth_name("a", "b") != naming.veth_name("b", "a")


def test_pod_netns_is_per_testbed_and_handle_is_calico_style():
    assert naming.pod_netns("ab12", "x", "a") == "calinet-ab12-456b416f2bf"
    assert naming.pod_netns("ab12", "x", "a") != naming.pod_netns("cd34", "x", "a")
    assert naming.ipam_handle("uid-1") == "k8s-pod-network.uid-1"


def test_switch_names_fit_ifnamsiz_with_ports():
    name = naming.switch_name("ab12", 99)
    assert len(f"{name}-eth99") <= 15
    assert naming.is_testbed_id("ab12") and not naming.is_testbed_id("AB12x")
