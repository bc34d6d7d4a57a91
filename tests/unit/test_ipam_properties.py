"""Property tests of the pure IPAM core over random assign/release sequences across nodes."""

from hypothesis import event, given, settings
from hypothesis import strategies as st

from orchestrator.errors import IPAMExhausted
from orchestrator.ipam import (
    IPAMConfig,
    IPAMState,
    Pool,
    allocation_of,
    auto_assign,
    ips_for_handle,
    release,
    release_ip,
)
from orchestrator.ipam.allocator import _first_unclaimed_block
from orchestrator.ipam.codec import block_from_object, block_object, validate_block_spec

# 32 addresses in eight /30 blocks, three nodes and 121 handles: sequences exhaust the pool
# often, and force borrowing.
POOL = Pool("p", "10.9.0.0/27", 30)
NODES = ["node-a", "node-b", "node-c"]


def _op(kind, n, node):
    # Mostly assignments, so the pool fills up and borrowing and exhaustion happen.
    if kind < 7:
        return ("assign", n, node)
    return ("release", n) if kind < 9 else ("release_ip", n % 32)


ops = st.lists(st.builds(_op, st.integers(0, 9), st.integers(0, 120), st.sampled_from(NODES)),
               min_size=60, max_size=250)


def check_invariants(state, holders):
    seen = {}
    counts = {}
    for cidr, blk in state.blocks.items():
        obj = block_object(blk, state.config)
        assert validate_block_spec(obj["spec"]) is None
        assert block_from_object(obj) == blk
        for ordinal, alloc in blk.allocations.items():
            ip = blk.ip_of(ordinal)
            assert ip not in seen, f"{ip} allocated twice"
            seen[ip] = alloc.handle
            counts.setdefault(alloc.handle, {}).setdefault(cidr, 0)
            counts[alloc.handle][cidr] += 1
    assert counts == state.handles
    assert {ip: h for h, ips in holders.items() for ip in ips} == seen


def run(sequence, config):
    state = IPAMState(config=config)
    holders: dict[str, list[str]] = {}
    trace = []
    for op in sequence:
        if op[0] == "assign":
            handle, node = f"h{op[1]}", op[2]
            before = state
            try:
                out = auto_assign(state, handle, node, [POOL], {"pod": handle})
            except IPAMExhausted as exc:
                trace.append(("exhausted", str(exc)))
                event("exhausted")
                used = sum(len(b.allocations) for b in state.blocks.values())
                own_free = any(b.free for b in state.blocks.values() if b.affinity == node)
                assert not own_free and _first_unclaimed_block(state, [POOL]) is None
                if not config.strict_affinity:
                    assert used == 32, "non-strict IPAM gave up with addresses left"
                continue
            if handle in holders:
                assert out.ips == tuple(holders[handle]) and not out.changed
            else:
                assert out.ip not in {ip for ips in holders.values() for ip in ips}
                holders[handle] = [out.ip]
                blk = out.state.blocks[next(c for c in out.state.blocks
                                            if out.state.blocks[c].ordinal_of(out.ip) is not None)]
                if blk.affinity != node:
                    # Borrowed: only legal when the node had no room and no block was free.
                    assert not config.strict_affinity
                    assert not any(b.free for b in before.blocks.values() if b.affinity == node)
                    assert _first_unclaimed_block(before, [POOL]) is None
                    event("borrowed")
            state = out.state
            trace.append(("ip", out.ip))
        elif op[0] == "release":
            handle = f"h{op[1]}"
            out = release(state, handle)
            assert sorted(out.ips) == sorted(holders.pop(handle, []))
            assert release(out.state, handle).ips == ()
            state = out.state
            trace.append(("released", out.ips))
        else:
            ip = str(POOL.network.network_address + op[1])
            alloc = allocation_of(state, ip)
            out = release_ip(state, ip)
            assert out.ips == ((ip,) if alloc else ())
            if alloc:
                holders[alloc.handle].remove(ip)
                if not holders[alloc.handle]:
                    del holders[alloc.handle]
            state = out.state
        check_invariants(state, holders)
    for handle, ips in holders.items():
        assert ips_for_handle(state, handle) == ips
    return trace


@settings(max_examples=100, deadline=None)
@given(ops)
def test_no_address_twice_and_indexes_stay_consistent(sequence):
    run(sequence, IPAMConfig())


@settings(max_examples=50, deadline=None)
@given(ops)
def test_strict_affinity_never_borrows(sequence):
    run(sequence, IPAMConfig(strict_affinity=True))


@settings(max_examples=50, deadline=None)
@given(ops)
def test_allocation_is_deterministic(sequence):
    assert run(sequence, IPAMConfig()) == run(sequence, IPAMConfig())
