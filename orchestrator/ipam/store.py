"""IPAM persisted through the state store: load, run the pure allocator, write back atomically.

Side effects: reads and writes IPPool, Node (read only), IPAMBlock, BlockAffinity, IPAMHandle
and IPAMConfig objects in the SQLite store. Each operation is one store transaction (BEGIN
IMMEDIATE), so concurrent callers in other processes serialise, and a crash either keeps a
whole allocation or none of it: an address is never lost nor handed out twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from orchestrator.errors import CalinetError, IPAMExhausted, ValidationError
from orchestrator.ipam import allocator, codec, report
from orchestrator.ipam.model import IPAMConfig, IPAMState, Outcome, Pool
from orchestrator.ipam.selector import pool_selects_node

log = logging.getLogger(__name__)


def ensure_default_pool(store, families=(4,)) -> list[Pool]:
    """As calico-node at start: per IP family of the cluster's pods with no IPPool of that
    family yet, create its default pool (default-ipv4-ippool 10.244.0.0/16 with /26 blocks,
    default-ipv6-ippool fd00:10:244::/56 with /122). Returns the pools now stored."""
    with store.transaction():
        have = {codec.pool_from_object(o).version for o in store.list("IPPool")}
        for version in families:
            if version in have:
                continue
            name, cidr, block = codec.DEFAULT_POOLS[version]
            if store.get("IPPool", name) is None:
                store.create(codec.pool_object(name, cidr, block))
                log.info("created IPPool %s %s", name, cidr)
        return [codec.pool_from_object(o) for o in store.list("IPPool")]


def _decode_block(obj: dict) -> tuple[str | None, str | None, object]:
    """(problem, cidr, Block or None) of a stored IPAMBlock."""
    spec = obj.get("spec") or {}
    problem = codec.validate_block_spec(spec)
    return (problem, spec.get("cidr"), None) if problem else (None, None,
                                                                codec.block_from_object(obj))


class IPAM:
    """Calico-style IPAM bound to a Store."""

    def __init__(self, store):
        self.store = store
        # Decoded blocks and handles by name, with the resourceVersion they were decoded at.
        # Every allocation loaded and validated all blocks and all handles: at 500 pods that
        # was most of the time a node's batch held the store's write lock, the other
        # kubelets waiting. Now only what changed since is decoded (Store.list_since). The
        # cached values are shared: the allocator copies a block or a handle's counts before
        # changing it (_Txn), nothing else writes them.
        self._decoded: dict[str, tuple[int, dict]] = {}
        self._decoded_lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------

    def pools(self) -> list[Pool]:
        """All IPPools (disabled ones included), in name order as Calico lists them."""
        return [codec.pool_from_object(o) for o in self.store.list("IPPool")]

    def config(self) -> IPAMConfig:
        return codec.config_from_object(self.store.get("IPAMConfig", "default"))

    def set_config(self, config: IPAMConfig) -> None:
        self.store.put(codec.config_object(config))

    def state(self) -> IPAMState:
        """The whole IPAM state; raises ValidationError if a stored block is corrupt."""
        return self._load(strict=True)[0]

    def _load(self, *, strict: bool) -> tuple[IPAMState, dict[str, str]]:
        blocks, invalid = {}, {}
        for name, (problem, cidr, blk) in self._current("IPAMBlock", _decode_block).items():
            if problem:
                if strict:
                    raise ValidationError(problem, obj=f"IPAMBlock {name}")
                invalid[cidr or name] = problem
                continue
            blocks[blk.cidr] = blk
        handles = dict(self._current("IPAMHandle", codec.handle_from_object).values())
        return IPAMState(blocks, handles, self.config()), invalid

    def _current(self, kind: str, decode: Callable[[dict], object]) -> dict[str, object]:
        """{name: decoded object} of every stored ``kind``, decoding only those whose
        resourceVersion is not the one already decoded."""
        with self._decoded_lock:
            seen_rv, cache = self._decoded.get(kind, (0, {}))
        rows = self.store.list_since(kind, seen_rv)
        out, fresh, top = {}, {}, seen_rv
        for _ns, name, rv, obj in rows:
            hit = cache.get(name)
            if obj is None and (hit is None or hit[0] != rv):
                obj = self.store.get(kind, name)   # not decoded before: read it now
                if obj is None:
                    continue                        # deleted since the listing
            value = decode(obj) if obj is not None else hit[1]
            fresh[name] = (rv, value)
            out[name] = value
            top = max(top, rv)
        # Only what is committed is kept: inside a transaction the rows may hold its own
        # writes, and a rollback would hand their resourceVersions to other contents.
        if not self.store.in_transaction():
            with self._decoded_lock:
                if top >= self._decoded.get(kind, (0, {}))[0]:
                    self._decoded[kind] = (top, fresh)
        return out

    def _pools_for(self, node: str, pool_names: Sequence[str] | None,
                   node_labels: Mapping[str, str] | None) -> list[Pool]:
        pools = self.pools()
        if pool_names is not None:
            by_name = {p.name: p for p in pools}
            chosen = []
            for name in pool_names:
                if name not in by_name:
                    raise ValidationError(f"requested IP pool {name!r} does not exist")
                if by_name[name].disabled:
                    raise ValidationError(f"requested IP pool {name!r} is disabled")
                chosen.append(by_name[name])
            pools = chosen
        if node_labels is None:
            node_obj = self.store.get("Node", node)
            node_labels = ((node_obj or {}).get("metadata") or {}).get("labels") or {}
        return [p for p in pools if not p.disabled and pool_selects_node(p.node_selector, node_labels)]

    # -- writing ---------------------------------------------------------------------------

    def _commit(self, before: IPAMState, outcome: Outcome) -> None:
        after = outcome.state
        for cidr in sorted(outcome.changed_blocks):
            old, new = before.blocks.get(cidr), after.blocks.get(cidr)
            if new is not None:
                self.store.put(codec.block_object(new, after.config))
            else:
                self.store.delete("IPAMBlock", codec.block_name(cidr))
            old_aff = old.affinity if old else None
            new_aff = new.affinity if new else None
            if old_aff and old_aff != new_aff:
                self.store.delete("BlockAffinity", codec.affinity_name(old_aff, cidr))
            if new_aff and new_aff != old_aff:
                self.store.put(codec.affinity_object(new_aff, cidr))
        for handle in sorted(outcome.changed_handles):
            counts = after.handles.get(handle)
            if counts:
                self.store.put(codec.handle_object(handle, counts))
            else:
                self.store.delete("IPAMHandle", handle)

    def _run(self, fn) -> Outcome:
        with self.store.transaction():
            before = self.state()
            outcome = fn(before)
            if outcome.changed:
                self._commit(before, outcome)
            return outcome

    # -- operations ------------------------------------------------------------------------

    def auto_assign(self, handle: str, node: str, attrs: Mapping[str, str] | None = None,
                    pool_names: Sequence[str] | None = None,
                    node_labels: Mapping[str, str] | None = None, version: int = 4) -> str:
        """Assign (or return the already assigned) address of ``handle`` on ``node``.

        Pools: ``pool_names`` if given, else every enabled IPv``version`` IPPool whose
        nodeSelector matches the node's labels (``node_labels`` or the stored Node object)."""
        def step(state):
            pools = [p for p in self._pools_for(node, pool_names, node_labels)
                     if p.version == version]
            return allocator.auto_assign(state, handle, node, pools, attrs)
        outcome = self._run(step)
        if outcome.changed:
            log.info("assigned %s to %s on %s", outcome.ip, handle, node)
        return outcome.ip

    def auto_assign_many(self, node: str, requests: Sequence[tuple[str, Mapping[str, str]]],
                         version: int = 4) -> list:
        """auto_assign for many handles on one node: one state load, one transaction.

        Returns, per request, the address or the CalinetError that request met (the others
        still get theirs), so one exhausted pod does not fail its neighbours.
        """
        return [r if isinstance(r, Exception) else r[0]
                for r in self.auto_assign_families(node, requests, (version,))]

    def auto_assign_families(self, node: str, requests: Sequence[tuple[str, Mapping[str, str]]],
                             families: Sequence[int] = (4,)) -> list:
        """One address per family in ``families`` for each request (a dual-stack pod's
        handle holds both), in one transaction. Per request: the addresses in ``families``
        order, or the CalinetError met; as Calico's CNI, a request that gets one family but
        not the other gets neither."""
        results: list = []
        with self.store.transaction():
            before = self.state()
            usable = self._pools_for(node, None, None)
            pools = {v: [p for p in usable if p.version == v] for v in families}
            missing = [v for v in families if not pools[v]]
            state, blocks, handles = before, set(), set()
            for handle, attrs in requests:
                if missing:   # as Calico: no pool of a family the pod needs, no address
                    results.append(IPAMExhausted(
                        f"no configured Calico IPv{missing[0]} pools for node {node}"))
                    continue
                got, trial, tb, th = [], state, set(), set()
                try:
                    for v in families:
                        out = allocator.auto_assign(trial, handle, node, pools[v], attrs)
                        trial = out.state
                        tb |= out.changed_blocks
                        th |= out.changed_handles
                        got.append(out.ip)
                except CalinetError as exc:
                    results.append(exc)
                    continue
                state = trial
                blocks |= tb
                handles |= th
                results.append(tuple(got))
            merged = Outcome(state, (), frozenset(blocks), frozenset(handles))
            if merged.changed:
                self._commit(before, merged)
        return results

    def release_many(self, handles: Sequence[str]) -> list[str]:
        """release_by_handle for many handles in one state load and one transaction."""
        released: list[str] = []
        with self.store.transaction():
            before = self.state()
            state, blocks, changed = before, set(), set()
            for handle in handles:
                out = allocator.release(state, handle)
                state = out.state
                blocks |= out.changed_blocks
                changed |= out.changed_handles
                released += out.ips
            merged = Outcome(state, (), frozenset(blocks), frozenset(changed))
            if merged.changed:
                self._commit(before, merged)
        return released

    def assign_ip(self, ip: str, handle: str, node: str,
                  attrs: Mapping[str, str] | None = None) -> str:
        outcome = self._run(lambda s: allocator.assign_ip(s, ip, handle, node, self.pools(), attrs))
        return outcome.ip

    def release_by_handle(self, handle: str) -> list[str]:
        outcome = self._run(lambda s: allocator.release(s, handle))
        if outcome.ips:
            log.info("released %s of %s", ", ".join(outcome.ips), handle)
        return list(outcome.ips)

    def release_ip(self, ip: str, seq: int | None = None) -> bool:
        return bool(self._run(lambda s: allocator.release_ip(s, ip, seq)).ips)

    def release_node(self, node: str) -> None:
        """Drop a departed node's block affinities (empty blocks deleted, others orphaned)."""
        self._run(lambda s: allocator.release_node_affinity(s, node))

    # -- queries ---------------------------------------------------------------------------

    def ips_for_handle(self, handle: str) -> list[str]:
        return allocator.ips_for_handle(self.state(), handle)

    def blocks_for_node(self, node: str) -> list[str]:
        return allocator.blocks_for_node(self.state(), node)

    def borrowed(self) -> list[dict]:
        return allocator.borrowed_ips(self.state())

    def attributes(self, ip: str) -> dict | None:
        alloc = allocator.allocation_of(self.state(), ip)
        return None if alloc is None else {"handle": alloc.handle, **alloc.attrs}

    def show(self, **kwargs) -> str:
        """calicoctl ipam show; keyword arguments as report.show."""
        return report.show(self.state(), self.pools(), **kwargs)

    def check(self, in_use: Mapping[str, str | Iterable[str]], **kwargs) -> tuple[str, int]:
        """calicoctl ipam check against ``in_use`` (ip -> "ns/pod"); tolerates corrupt blocks
        and reports them."""
        state, invalid = self._load(strict=False)
        return report.check(state, self.pools(), in_use, invalid_blocks=invalid, **kwargs)
