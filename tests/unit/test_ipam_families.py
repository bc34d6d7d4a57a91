"""IPAM for dual-stack pods: calico-node's default pool per family (default-ipv6-ippool,
/122 blocks, natOutgoing false), one handle holding both addresses, all or nothing per pod,
release by handle freeing both, and `ipam show` / `ipam check` over both families."""

import pytest

from orchestrator.control.store import Store
from orchestrator.errors import IPAMExhausted
from orchestrator.ipam import IPAM, ensure_default_pool
from orchestrator.ipam.codec import pool_object


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "state.db"))
    yield s
    s.close()


def attrs(pod):
    return {"namespace": "default", "pod": pod}


def test_default_pools_per_family(store):
    pools = ensure_default_pool(store, (4, 6))
    assert [(p.name, p.cidr, p.block_size) for p in pools] == [
        ("default-ipv4-ippool", "10.244.0.0/16", 26),
        ("default-ipv6-ippool", "fd00:10:244::/56", 122)]
    six = store.get("IPPool", "default-ipv6-ippool")["spec"]
    assert six["natOutgoing"] is False and six["ipipMode"] == "Never"
    assert store.get("IPPool", "default-ipv4-ippool")["spec"]["natOutgoing"] is True
    ensure_default_pool(store, (4, 6))
    assert len(store.list("IPPool")) == 2


def test_a_family_with_its_own_pool_gets_no_default(store):
    store.create(pool_object("mine6", "fd00:99::/64", 122))
    names = [p.name for p in ensure_default_pool(store, (4, 6))]
    assert names == ["default-ipv4-ippool", "mine6"]
    # an IPv6-only cluster gets no IPv4 default pool
    other = Store(store.path + "-2")
    try:
        assert [p.name for p in ensure_default_pool(other, (6,))] == ["default-ipv6-ippool"]
    finally:
        other.close()


def test_dual_stack_pods_get_both_addresses_on_one_handle(store):
    ensure_default_pool(store, (4, 6))
    ipam = IPAM(store)
    got = ipam.auto_assign_families("n1", [("h1", attrs("a")), ("h2", attrs("b"))], (4, 6))
    assert got == [("10.244.0.0", "fd00:10:244::"), ("10.244.0.1", "fd00:10:244::1")]
    assert sorted(ipam.blocks_for_node("n1")) == ["10.244.0.0/26", "fd00:10:244::/122"]
    assert sorted(ipam.ips_for_handle("h1")) == ["10.244.0.0", "fd00:10:244::"]
    # idempotent per family (a retried CNI ADD), and IPv6 primary keeps the order asked
    assert ipam.auto_assign_families("n1", [("h1", attrs("a"))], (6, 4)) == [
        ("fd00:10:244::", "10.244.0.0")]
    assert sorted(ipam.release_many(["h1"])) == ["10.244.0.0", "fd00:10:244::"]
    assert ipam.ips_for_handle("h1") == []


def test_a_pod_that_cannot_get_both_gets_neither(store):
    store.create(pool_object("tiny4", "10.250.0.0/30", 30))
    store.create(pool_object("six", "fd00:10:244::/120", 122))
    ipam = IPAM(store)
    got = ipam.auto_assign_families("n1", [(f"h{i}", attrs(f"p{i}")) for i in range(5)],
                                    (4, 6))
    assert [g for g in got if isinstance(g, tuple)] == [
        ("10.250.0.0", "fd00:10:244::"), ("10.250.0.1", "fd00:10:244::1"),
        ("10.250.0.2", "fd00:10:244::2"), ("10.250.0.3", "fd00:10:244::3")]
    assert isinstance(got[4], IPAMExhausted) and "IPv4" in str(got[4])
    assert ipam.ips_for_handle("h4") == []     # no IPv6 address was kept for it either
    v6_used = [a for a in ipam.state().blocks["fd00:10:244::/122"].allocations if a is not None]
    assert len(v6_used) == 4


def test_ipam_show_and_check_cover_both_families(store):
    ensure_default_pool(store, (4, 6))
    ipam = IPAM(store)
    ipam.auto_assign_families("n1", [("h1", attrs("a"))], (4, 6))
    show = ipam.show()
    assert "fd00:10:244::/56" in show and "10.244.0.0/16" in show
    assert "4.7224e+21" in show          # calicoctl prints IPv6 totals in %g form
    blocks = ipam.show(show_blocks=True)
    assert "fd00:10:244::/122" in blocks
    text, rc = ipam.check({"10.244.0.0": "default/a", "fd00:10:244::": "default/a"})
    assert rc == 0, text
    text, rc = ipam.check({"10.244.0.0": "default/a"})
    assert rc != 0 and "fd00:10:244::" in text, text


def test_missing_ipv6_pool_is_an_ipam_error(tmp_path):
    s = Store(str(tmp_path / "m.db"))
    try:
        s.create(pool_object("only4", "10.250.0.0/24", 26))
        (got,) = IPAM(s).auto_assign_families("n1", [("h1", attrs("a"))], (4, 6))
        assert isinstance(got, IPAMExhausted) and "IPv6 pools" in str(got)
        assert IPAM(s).ips_for_handle("h1") == []
    finally:
        s.close()
