"""Pure IPAM allocator: Calico's assign order, borrowing, limits, release, explicit IPs."""

import copy
import ipaddress

import pytest

from orchestrator.errors import Conflict, IPAMExhausted, ValidationError
from orchestrator.ipam import (
    IPAMConfig,
    IPAMState,
    Pool,
    allocation_of,
    assign_ip,
    auto_assign,
    blocks_for_node,
    borrow_order,
    borrowed_ips,
    ips_for_handle,
    release,
    release_ip,
    release_node_affinity,
)
from orchestrator.ipam.allocator import fnv1_32

DEFAULT = [Pool("default-ipv4-ippool", "10.244.0.0/16", 26)]


def assign_many(state, node, n, pools=DEFAULT, prefix="h"):
    ips = []
    for i in range(n):
        out = auto_assign(state, f"{prefix}{node}-{i}", node, pools,
                          {"namespace": "default", "pod": f"{prefix}{node}-{i}"})
        state = out.state
        ips.append(out.ip)
    return state, ips


def test_first_addresses_come_from_the_first_block_in_order():
    state, ips = assign_many(IPAMState(), "node-1", 3)
    # Calico uses every ordinal, .0 included (no network/broadcast reservation in blocks).
    assert ips == ["10.244.0.0", "10.244.0.1", "10.244.0.2"]
    assert blocks_for_node(state, "node-1") == ["10.244.0.0/26"]
    state, ips = assign_many(state, "node-2", 2)
    assert ips == ["10.244.0.64", "10.244.0.65"]
    assert blocks_for_node(state, "node-2") == ["10.244.0.64/26"]


def test_auto_assign_is_idempotent_per_handle_and_records_attrs():
    out = auto_assign(IPAMState(), "k8s-pod-network.u1", "node-1", DEFAULT,
                      {"namespace": "ns", "pod": "p"})
    again = auto_assign(out.state, "k8s-pod-network.u1", "node-1", DEFAULT)
    assert again.ip == out.ip and not again.changed and again.state is out.state
    alloc = allocation_of(out.state, out.ip)
    assert alloc.handle == "k8s-pod-network.u1"
    assert alloc.attrs == {"namespace": "ns", "pod": "p", "node": "node-1"}
    assert out.changed_blocks == {"10.244.0.0/26"}
    assert out.changed_handles == {"k8s-pod-network.u1"}


def test_input_state_is_never_modified():
    state, _ = assign_many(IPAMState(), "node-1", 3)
    snapshot = copy.deepcopy(state)
    auto_assign(state, "new", "node-1", DEFAULT)
    release(state, "hnode-1-0")
    release_ip(state, "10.244.0.1")
    assign_ip(state, "10.244.0.9", "x", "node-1", DEFAULT)
    assert state == snapshot


def test_full_block_claims_next_block():
    state, ips = assign_many(IPAMState(), "node-1", 65)
    assert ips[63] == "10.244.0.63" and ips[64] == "10.244.0.64"
    assert blocks_for_node(state, "node-1") == ["10.244.0.0/26", "10.244.0.64/26"]


def test_released_ordinal_goes_to_the_back_of_the_fifo():
    state, _ = assign_many(IPAMState(), "node-1", 3)
    state = release(state, "hnode-1-0").state
    out = auto_assign(state, "next", "node-1", DEFAULT)
    # Calico's Unallocated list is a FIFO: the just-freed .0 is reused last.
    assert out.ip == "10.244.0.3"
    state, ips = assign_many(out.state, "node-1", 61, prefix="more")
    assert ips[-1] == "10.244.0.0"


def test_release_is_idempotent_and_keeps_affinity():
    state, ips = assign_many(IPAMState(), "node-1", 1)
    out = release(state, "hnode-1-0")
    assert out.ips == ("10.244.0.0",)
    assert blocks_for_node(out.state, "node-1") == ["10.244.0.0/26"]
    assert out.state.handles == {}
    again = release(out.state, "hnode-1-0")
    assert again.ips == () and not again.changed and again.state is out.state
    assert release(IPAMState(), "never-seen").ips == ()


def test_release_ip_honours_sequence_numbers():
    state, _ = assign_many(IPAMState(), "node-1", 2)
    seq = allocation_of(state, "10.244.0.1").seq
    stale = release_ip(state, "10.244.0.1", seq=seq + 100)
    assert stale.ips == () and allocation_of(stale.state, "10.244.0.1") is not None
    ok = release_ip(state, "10.244.0.1", seq=seq)
    assert ok.ips == ("10.244.0.1",) and allocation_of(ok.state, "10.244.0.1") is None
    assert ips_for_handle(ok.state, "hnode-1-1") == []
    assert release_ip(ok.state, "10.244.0.1").ips == ()
    assert release_ip(ok.state, "192.0.2.1").ips == ()


def test_fnv1_matches_go_hash_fnv_new32():
    assert fnv1_32("") == 0x811C9DC5
    assert fnv1_32("a") == 0x050C5D7E
    assert fnv1_32("foobar") == 0x31F0B262


# A /28 pool cut into four /30 blocks: small enough to exhaust by hand.
TINY = [Pool("tiny", "10.0.0.0/28", 30)]


def _four_nodes_one_ip_each():
    state = IPAMState()
    for n in range(4):
        state = auto_assign(state, f"h{n}", f"node-{n}", TINY).state
    return state


def test_borrows_only_when_no_block_is_free_and_in_node_seeded_order():
    state = _four_nodes_one_ip_each()
    assert [blocks_for_node(state, f"node-{n}") for n in range(4)] == [
        ["10.0.0.0/30"], ["10.0.0.4/30"], ["10.0.0.8/30"], ["10.0.0.12/30"]]
    start = fnv1_32("node-x") % 4
    order = [b.cidr for b in borrow_order(state, TINY[0], "node-x")]
    assert order == [TINY[0].block_at((start + i) % 4) for i in range(4)]
    out = auto_assign(state, "hx", "node-x", TINY, {"namespace": "ns", "pod": "x"})
    block = order[0]
    assert out.ip == str(ipaddress.ip_network(block).network_address + 1)
    assert blocks_for_node(out.state, "node-x") == []
    owner = out.state.blocks[block].affinity
    assert borrowed_ips(out.state) == [{"ip": out.ip, "borrowing_node": "node-x", "block": block,
                                        "block_owner": owner, "type": "pod",
                                        "allocated_to": "ns/x"}]
    # The same inputs always borrow the same address.
    assert auto_assign(state, "hx", "node-x", TINY).ip == out.ip


def test_exhausted_pools_message():
    state = IPAMState()
    for i in range(16):
        state = auto_assign(state, f"h{i}", f"node-{i % 5}", TINY).state
    with pytest.raises(IPAMExhausted) as err:
        auto_assign(state, "one-too-many", "node-9", TINY)
    assert str(err.value) == ("Assigned 0 out of 1 requested IPv4 addresses; "
                              "No IPs available in pools: [10.0.0.0/28]")


def test_strict_affinity_refuses_to_borrow():
    state = _four_nodes_one_ip_each()
    state.config = IPAMConfig(strict_affinity=True)
    with pytest.raises(IPAMExhausted) as err:
        auto_assign(state, "hx", "node-x", TINY)
    assert str(err.value) == ("Assigned 0 out of 1 requested IPv4 addresses; "
                              "No more free affine blocks and strict affinity enabled")
    # The node's own block still serves it.
    assert auto_assign(state, "h0b", "node-0", TINY).ip == "10.0.0.1"


def test_block_limit_defaults_to_20_and_is_final():
    pools = [Pool("p", "10.0.0.0/24", 30)]  # 64 blocks of 4
    state, ips = assign_many(IPAMState(), "node-1", 80, pools)
    assert len(blocks_for_node(state, "node-1")) == 20
    with pytest.raises(IPAMExhausted, match="limit of 20 blocks reached for this node"):
        auto_assign(state, "h81", "node-1", pools)
    # Other nodes are unaffected.
    assert auto_assign(state, "other", "node-2", pools).ip == "10.0.0.80"


def test_max_blocks_per_host_from_config():
    pools = [Pool("p", "10.0.0.0/24", 30)]
    state = IPAMState(config=IPAMConfig(strict_affinity=True, max_blocks_per_host=2))
    state, _ = assign_many(state, "node-1", 8, pools)
    with pytest.raises(IPAMExhausted, match="limit of 2 blocks reached"):
        auto_assign(state, "h9", "node-1", pools)


def test_auto_allocate_blocks_false_uses_only_existing_affine_blocks():
    state, _ = assign_many(IPAMState(), "node-1", 1, TINY)
    state.config = IPAMConfig(strict_affinity=True, auto_allocate_blocks=False)
    state, ips = assign_many(state, "node-1", 3, TINY, prefix="more")
    assert ips == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    with pytest.raises(IPAMExhausted, match="failed to find or claim a block"):
        auto_assign(state, "z", "node-1", TINY)


def test_disabled_pools_are_not_used():
    a = Pool("a", "10.1.0.0/24", 26)
    b = Pool("b", "10.2.0.0/24", 26)
    state = auto_assign(IPAMState(), "h1", "node-1", [a, b]).state
    assert blocks_for_node(state, "node-1") == ["10.1.0.0/26"]
    a_off = Pool("a", "10.1.0.0/24", 26, disabled=True)
    out = auto_assign(state, "h2", "node-1", [a_off, b])
    assert out.ip == "10.2.0.0"
    with pytest.raises(IPAMExhausted, match="no configured Calico pools for node node-1"):
        auto_assign(state, "h3", "node-1", [a_off])


def test_assign_ip_explicit_address():
    state = auto_assign(IPAMState(), "h1", "node-1", DEFAULT).state
    out = assign_ip(state, "10.244.0.7", "h2", "node-1", DEFAULT, {"pod": "p2"})
    assert out.ip == "10.244.0.7"
    assert ips_for_handle(out.state, "h2") == ["10.244.0.7"]
    assert assign_ip(out.state, "10.244.0.7", "h2", "node-1", DEFAULT).state is out.state
    with pytest.raises(Conflict, match="10.244.0.7 is already assigned"):
        assign_ip(out.state, "10.244.0.7", "h3", "node-1", DEFAULT)
    with pytest.raises(ValidationError, match="not in a configured pool"):
        assign_ip(out.state, "192.168.9.9", "h3", "node-1", DEFAULT)
    # An address in an unclaimed block claims that block for the node.
    far = assign_ip(out.state, "10.244.9.9", "h4", "node-2", DEFAULT)
    assert blocks_for_node(far.state, "node-2") == ["10.244.9.0/26"]
    # auto_assign then skips the taken ordinal.
    ips = assign_many(out.state, "node-1", 7, prefix="n")[1]
    assert "10.244.0.7" not in ips


def test_assign_ip_strict_affinity_requires_own_block():
    state = auto_assign(IPAMState(config=IPAMConfig(strict_affinity=True)), "h1", "node-1",
                        DEFAULT).state
    with pytest.raises(IPAMExhausted, match=r"Block affinity \(node-1\) does not match"):
        assign_ip(state, "10.244.0.5", "h2", "node-2", DEFAULT)


def test_release_node_affinity_orphans_used_blocks_and_drops_empty_ones():
    state, _ = assign_many(IPAMState(), "node-1", 65)
    state = release(state, "hnode-1-64").state  # second block now empty
    out = release_node_affinity(state, "node-1")
    assert blocks_for_node(out.state, "node-1") == []
    assert list(out.state.blocks) == ["10.244.0.0/26"]
    assert out.state.blocks["10.244.0.0/26"].affinity is None
    # Releasing the last address of an orphaned block deletes the block (Calico does).
    s = out.state
    for i in range(64):
        s = release(s, f"hnode-1-{i}").state
    assert s.blocks == {}


@pytest.mark.parametrize("kwargs, field", [
    ({"cidr": "10.0.0.1/16"}, "spec.cidr"),
    ({"cidr": "10.0.0.0/16", "block_size": 19}, "spec.blockSize"),
    ({"cidr": "10.0.0.0/27", "block_size": 26}, "spec.blockSize"),
    ({"cidr": "169.254.0.0/16"}, "spec.cidr"),
])
def test_pool_validation(kwargs, field):
    with pytest.raises(ValidationError) as err:
        Pool("bad", **kwargs)
    assert err.value.field == field and err.value.obj == "IPPool bad"


def test_ipam_config_validation():
    with pytest.raises(ValidationError, match="requires strictAffinity"):
        IPAMConfig(strict_affinity=False, auto_allocate_blocks=False)
    with pytest.raises(ValidationError, match="maxBlocksPerHost>0 requires"):
        IPAMConfig(max_blocks_per_host=3)
    assert IPAMConfig().block_limit == 20
    assert IPAMConfig(strict_affinity=True, max_blocks_per_host=3).block_limit == 3


def test_bad_arguments_are_named():
    with pytest.raises(ValidationError, match="handle must be a non-empty string"):
        auto_assign(IPAMState(), "", "node-1", DEFAULT)
    with pytest.raises(ValidationError, match="invalid IP address 'nope'"):
        release_ip(IPAMState(), "nope")


def test_blocks_left_by_a_pool_with_another_block_size_are_respected():
    old = [Pool("p", "10.3.0.0/24", 25)]
    state = auto_assign(IPAMState(), "h1", "node-1", old).state       # 10.3.0.0/25
    new = [Pool("p", "10.3.0.0/24", 26)]
    out = auto_assign(state, "h2", "node-2", new)
    assert blocks_for_node(out.state, "node-2") == ["10.3.0.128/26"]
    # An explicit address inside the old /25 lands in that block, not in a new /26.
    out = assign_ip(out.state, "10.3.0.100", "h3", "node-1", new)
    assert sorted(out.state.blocks) == ["10.3.0.0/25", "10.3.0.128/26"]


def test_pools_of_mixed_ip_versions_are_refused():
    with pytest.raises(ValidationError, match="share an IP version"):
        auto_assign(IPAMState(), "h", "n", [Pool("a", "10.0.0.0/24"),
                                            Pool("b", "fd00::/64", 122)])
