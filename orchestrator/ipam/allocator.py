"""Calico IPAM allocation semantics as pure state transitions.

Pure: every function takes an IPAMState and returns an Outcome (new state + what changed);
the input state is never modified. Follows libcalico-go's autoAssign: the node's affine
blocks first, then claim a new block (up to the per-node limit), then, unless strict affinity,
borrow a single address from any existing block, walked in an order seeded by the node name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from orchestrator.errors import Conflict, IPAMExhausted, ValidationError
from orchestrator.ipam.model import (
    Allocation,
    Block,
    IPAMState,
    Outcome,
    Pool,
    cidr_sort_key,
    parse_ip,
)


def fnv1_32(text: str) -> int:
    """Go's hash/fnv New32 (FNV-1, not 1a): Calico seeds its block walk with it."""
    h = 0x811C9DC5
    for byte in text.encode():
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= byte
    return h


class _Txn:
    """Copy-on-write view of a state that records which blocks and handles it touched."""

    def __init__(self, state: IPAMState):
        self.state = IPAMState(dict(state.blocks), dict(state.handles), state.config)
        self.blocks: set[str] = set()
        self.handles: set[str] = set()

    def block(self, cidr: str) -> Block:
        if cidr not in self.blocks:
            self.state.blocks[cidr] = self.state.blocks[cidr].copy()
            self.blocks.add(cidr)
        return self.state.blocks[cidr]

    def add_block(self, block: Block) -> Block:
        self.state.blocks[block.cidr] = block
        self.blocks.add(block.cidr)
        return block

    def drop_block(self, cidr: str) -> None:
        del self.state.blocks[cidr]
        self.blocks.add(cidr)

    def handle_add(self, handle: str | None, cidr: str, delta: int) -> None:
        if handle is None:
            return
        counts = dict(self.state.handles.get(handle, {}))
        counts[cidr] = counts.get(cidr, 0) + delta
        if counts[cidr] <= 0:
            del counts[cidr]
        if counts:
            self.state.handles[handle] = counts
        else:
            self.state.handles.pop(handle, None)
        self.handles.add(handle)

    def assign(self, cidr: str, ordinal: int, handle: str | None, attrs: Mapping) -> str:
        blk = self.block(cidr)
        blk.unallocated.remove(ordinal)
        blk.allocations[ordinal] = Allocation(handle, dict(attrs), blk.sequence_number)
        # Bumped on every write, so a release carrying an old sequence number cannot free
        # an address that was since handed to someone else.
        blk.sequence_number += 1
        self.handle_add(handle, cidr, 1)
        return blk.ip_of(ordinal)

    def unassign(self, cidr: str, ordinal: int) -> str:
        blk = self.block(cidr)
        alloc = blk.allocations.pop(ordinal)
        blk.unallocated.append(ordinal)
        blk.sequence_number += 1
        self.handle_add(alloc.handle, cidr, -1)
        ip = blk.ip_of(ordinal)
        # Calico deletes an emptied block only when no node holds its affinity.
        if not blk.allocations and blk.affinity is None:
            self.drop_block(cidr)
        return ip

    def outcome(self, ips: Iterable[str]) -> Outcome:
        return Outcome(self.state, tuple(ips), frozenset(self.blocks), frozenset(self.handles))


def _pool_of(cidr: str, pools: Iterable[Pool]) -> Pool | None:
    for pool in pools:
        if pool.contains(cidr):
            return pool
    return None


def _require(value: str, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string, got {value!r}")


def _partial(version: int, msgs: list[str]) -> IPAMExhausted:
    # Same shape as libcalico-go IPAMAssignments.PartialFulfillmentError.
    text = f"Assigned 0 out of 1 requested IPv{version} addresses"
    return IPAMExhausted("; ".join([text, *msgs]))


def auto_assign(state: IPAMState, handle: str, node: str, pools: Iterable[Pool],
                attrs: Mapping[str, str] | None = None) -> Outcome:
    """Assign one address to ``handle`` on ``node`` from ``pools`` (those that select the node).

    Idempotent per handle: if the handle already holds an address (a CNI ADD retried after a
    crash), that address is returned and nothing changes.
    """
    _require(handle, "handle")
    _require(node, "node")
    enabled = [p for p in pools if not p.disabled]
    versions = {p.version for p in enabled}
    if len(versions) > 1:
        raise ValidationError(f"pools for one assignment must share an IP version: "
                              f"{[p.cidr for p in enabled]}")
    # Dual-stack pods use one handle for both families: idempotency is per family.
    held = [ip for ip in ips_for_handle(state, handle)
            if not versions or ipaddress.ip_address(ip).version in versions]
    if held:
        return Outcome(state, tuple(held))
    if not enabled:
        raise IPAMExhausted(f"no configured Calico pools for node {node}")
    version = versions.pop()
    attrs = dict(attrs or {})
    attrs.setdefault("node", node)
    config = state.config
    txn = _Txn(state)

    # 1. The node's own blocks inside the eligible pools, in CIDR order.
    affine = [b for b in state.sorted_blocks()
              if b.affinity == node and _pool_of(b.cidr, enabled) is not None]
    for blk in affine:
        if blk.unallocated:
            return txn.outcome([txn.assign(blk.cidr, blk.unallocated[0], handle, attrs)])

    # 2. Claim a new block for the node.
    if len(affine) >= config.block_limit:
        raise _partial(version, [f"Need to allocate an IPAM block but could not - limit of "
                                 f"{config.block_limit} blocks reached for this node"])
    if not config.auto_allocate_blocks:
        raise _partial(version, ["failed to find or claim a block"])
    cidr = _first_unclaimed_block(state, enabled)
    if cidr is not None:
        blk = txn.add_block(Block.new(cidr, node))
        return txn.outcome([txn.assign(cidr, blk.unallocated[0], handle, attrs)])
    if config.strict_affinity:
        raise _partial(version, ["No more free affine blocks and strict affinity enabled"])

    # 3. Borrow one address from any existing block, walked from a node-seeded start.
    exhausted = []
    for pool in enabled:
        for blk in borrow_order(state, pool, node):
            if blk.unallocated:
                return txn.outcome([txn.assign(blk.cidr, blk.unallocated[0], handle, attrs)])
        exhausted.append(pool.cidr)
    raise _partial(version, [f"No IPs available in pools: [{' '.join(exhausted)}]"])


def _first_unclaimed_block(state: IPAMState, pools: list[Pool]) -> str | None:
    """First block-sized CIDR, in pool order then address order, that no block occupies.

    Real Calico starts this search at a node-seeded random offset; we start at the bottom so
    testbed addresses stay readable (10.244.0.0/26, 10.244.0.64/26, ...).
    """
    for pool in pools:
        taken = set()
        for cidr in state.blocks:
            # Mark every block slot an existing block overlaps (a block left over from a pool
            # with another blockSize may span several slots or share one).
            net = ipaddress.ip_network(cidr)
            if net.version != pool.version or not net.overlaps(pool.network):
                continue
            base = int(pool.network.network_address)
            lo = max(int(net.network_address) - base, 0) // pool.block_capacity
            hi = min(int(net.broadcast_address) - base, pool.network.num_addresses - 1)
            taken.update(range(lo, hi // pool.block_capacity + 1))
        for index in range(pool.num_blocks):
            if index not in taken:
                return pool.block_at(index)
    return None


def borrow_order(state: IPAMState, pool: Pool, node: str) -> list[Block]:
    """Existing blocks of ``pool`` in the order ``node`` tries them when borrowing.

    Calico walks every block-sized CIDR of the pool from a start index derived from the FNV-1
    hash of the host name, wrapping around; blocks that do not exist are skipped. Walking only
    the existing blocks in that cyclic order gives the same sequence without the empty steps.
    """
    n = pool.num_blocks
    start = fnv1_32(node) % n
    blocks = [b for b in state.blocks.values() if pool.contains(b.cidr)]
    return sorted(blocks, key=lambda b: (pool.block_index(b.cidr) - start) % n)


def assign_ip(state: IPAMState, ip: str, handle: str, node: str, pools: Iterable[Pool],
              attrs: Mapping[str, str] | None = None) -> Outcome:
    """Assign a specific address (the cni.projectcalico.org/ipAddrs annotation).

    ``pools`` are all enabled pools (explicit addresses ignore node selectors, as in Calico).
    Re-assigning an address to the handle that already holds it is a no-op.
    """
    _require(handle, "handle")
    _require(node, "node")
    addr = str(parse_ip(ip))
    pool = next((p for p in pools if not p.disabled and p.contains(addr)), None)
    if pool is None:
        raise ValidationError(f"The provided IP address {addr} is not in a configured pool")
    attrs = dict(attrs or {})
    attrs.setdefault("node", node)
    # An existing block holding the address wins over the pool's block grid (it may come
    # from an earlier pool with another blockSize).
    cidr = block_for_ip(state, addr) or pool.block_for_ip(addr)
    txn = _Txn(state)
    blk = state.blocks.get(cidr)
    if blk is None:
        blk = txn.add_block(Block.new(cidr, node))
    elif state.config.strict_affinity and blk.affinity != node:
        raise IPAMExhausted(f"Block affinity ({blk.affinity}) does not match provided ({node})")
    ordinal = blk.ordinal_of(addr)
    held = blk.allocations.get(ordinal)
    if held is not None:
        if held.handle == handle:
            return Outcome(state, (addr,))
        raise Conflict(f"IP {addr} is already assigned (handle {held.handle})")
    return txn.outcome([txn.assign(cidr, ordinal, handle, attrs)])


def release(state: IPAMState, handle: str) -> Outcome:
    """Release every address of ``handle``. Unknown handles release nothing (idempotent).

    Emptied blocks keep their node affinity, as in Calico.
    """
    counts = state.handles.get(handle)
    if not counts:
        return Outcome(state)
    txn = _Txn(state)
    released = []
    for cidr in sorted(counts, key=cidr_sort_key):
        blk = state.blocks.get(cidr)
        if blk is None:
            continue
        for ordinal in sorted(o for o, a in blk.allocations.items() if a.handle == handle):
            released.append(txn.unassign(cidr, ordinal))
    # A handle whose blocks no longer hold it is stale: drop the index entry too.
    if handle in txn.state.handles:
        del txn.state.handles[handle]
        txn.handles.add(handle)
    return txn.outcome(released)


def release_ip(state: IPAMState, ip: str, seq: int | None = None) -> Outcome:
    """Release one address; a no-op if it is free. With ``seq``, only if the allocation's
    sequence number still matches (a stale release must not free a re-used address)."""
    addr = str(parse_ip(ip))
    cidr = block_for_ip(state, addr)
    if cidr is None:
        return Outcome(state)
    blk = state.blocks[cidr]
    ordinal = blk.ordinal_of(addr)
    alloc = blk.allocations.get(ordinal)
    if alloc is None or (seq is not None and alloc.seq != seq):
        return Outcome(state)
    txn = _Txn(state)
    return txn.outcome([txn.unassign(cidr, ordinal)])


def release_node_affinity(state: IPAMState, node: str) -> Outcome:
    """A node left the cluster: delete its empty blocks and orphan (affinity None) the rest,
    as Calico's node controller does; addresses still in use stay allocated."""
    txn = _Txn(state)
    for blk in state.sorted_blocks():
        if blk.affinity != node:
            continue
        if blk.allocations:
            txn.block(blk.cidr).affinity = None
        else:
            txn.drop_block(blk.cidr)
    return txn.outcome([])


# -- queries -----------------------------------------------------------------------------

def block_for_ip(state: IPAMState, ip: str) -> str | None:
    for blk in state.blocks.values():
        if blk.ordinal_of(ip) is not None:
            return blk.cidr
    return None


def allocation_of(state: IPAMState, ip: str) -> Allocation | None:
    cidr = block_for_ip(state, ip)
    if cidr is None:
        return None
    blk = state.blocks[cidr]
    return blk.allocations.get(blk.ordinal_of(ip))


def ips_for_handle(state: IPAMState, handle: str) -> list[str]:
    ips = []
    for cidr in sorted(state.handles.get(handle, {}), key=cidr_sort_key):
        blk = state.blocks.get(cidr)
        if blk is not None:
            ips += [blk.ip_of(o) for o, a in sorted(blk.allocations.items()) if a.handle == handle]
    return ips


def blocks_for_node(state: IPAMState, node: str) -> list[str]:
    return [b.cidr for b in state.sorted_blocks() if b.affinity == node]


def allocations(state: IPAMState) -> list[tuple[str, str, Allocation]]:
    """Every allocated address as (ip, block CIDR, allocation), in address order."""
    out = []
    for blk in state.sorted_blocks():
        out += [(blk.ip_of(o), blk.cidr, a) for o, a in sorted(blk.allocations.items())]
    return out


def borrowed_ips(state: IPAMState) -> list[dict]:
    """Addresses used by a node other than their block's owner (calicoctl --show-borrowed).

    Each row: ip, borrowing_node, block, block_owner ("" for a block without affinity),
    type ("pod" when the attributes name a pod), allocated_to ("ns/pod").
    """
    rows = []
    for ip, cidr, alloc in allocations(state):
        owner = state.blocks[cidr].affinity or ""
        borrower = alloc.attrs.get("node")
        if borrower is None or borrower == owner:
            continue
        kind, to = "", ""
        if "pod" in alloc.attrs:
            kind, to = "pod", f"{alloc.attrs.get('namespace', '')}/{alloc.attrs['pod']}"
        elif "type" in alloc.attrs:
            kind = alloc.attrs["type"]
        rows.append({"ip": ip, "borrowing_node": borrower, "block": cidr, "block_owner": owner,
                     "type": kind, "allocated_to": to})
    return rows
