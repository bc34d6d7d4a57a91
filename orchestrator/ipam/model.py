"""IPAM data model: pools, blocks, allocations, config and the whole IPAM state.

Pure. Mirrors Calico's libcalico-go model (IPPool, AllocationBlock, IPAMHandle, IPAMConfig)
closely enough that the persisted objects look like Calico's CRDs; the arithmetic that maps
ordinals to addresses lives here so every other module speaks in CIDR/IP strings.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from orchestrator.errors import ValidationError

# Calico's fallback per-node block limit when neither the request nor IPAMConfig sets one
# (libcalico-go ipam.go autoAssign: "Default to a reasonable limit").
DEFAULT_BLOCK_LIMIT = 20
LINK_LOCAL_V4 = ipaddress.ip_network("169.254.0.0/16")
LINK_LOCAL_V6 = ipaddress.ip_network("fe80::/10")


def parse_network(cidr: str, *, obj: str | None = None, field_: str = "cidr"):
    try:
        return ipaddress.ip_network(str(cidr), strict=True)
    except ValueError as exc:
        raise ValidationError(f"invalid CIDR {cidr!r}: {exc}", obj=obj, field=field_) from None


def parse_ip(ip: str, *, what: str = "IP"):
    try:
        return ipaddress.ip_address(str(ip))
    except ValueError:
        raise ValidationError(f"invalid {what} address {ip!r}") from None


def cidr_sort_key(cidr: str):
    """Numeric order of CIDRs (string order would put 10.244.10.0 before 10.244.2.0)."""
    net = ipaddress.ip_network(cidr)
    return (net.version, int(net.network_address), net.prefixlen)


def ip_sort_key(ip: str):
    addr = ipaddress.ip_address(ip)
    return (addr.version, int(addr))


@dataclass(frozen=True)
class Pool:
    """An IPPool as IPAM sees it; which pools may serve a node is decided by the caller."""

    name: str
    cidr: str
    block_size: int = 26
    disabled: bool = False
    node_selector: str = "all()"

    def __post_init__(self):
        obj = f"IPPool {self.name}"
        net = parse_network(self.cidr, obj=obj, field_="spec.cidr")
        object.__setattr__(self, "cidr", str(net))
        lo, hi = (20, 32) if net.version == 4 else (116, 128)
        if not isinstance(self.block_size, int) or not lo <= self.block_size <= hi:
            raise ValidationError(f"blockSize must be an integer in {lo}..{hi} for IPv{net.version}",
                                  obj=obj, field="spec.blockSize")
        if self.block_size < net.prefixlen:
            raise ValidationError(f"blockSize /{self.block_size} is larger than the pool "
                                  f"{self.cidr}", obj=obj, field="spec.blockSize")
        link_local = LINK_LOCAL_V4 if net.version == 4 else LINK_LOCAL_V6
        if net.overlaps(link_local):
            raise ValidationError(f"CIDR {self.cidr} overlaps link-local {link_local}",
                                  obj=obj, field="spec.cidr")

    @property
    def network(self):
        return ipaddress.ip_network(self.cidr)

    @property
    def version(self) -> int:
        return self.network.version

    @property
    def num_blocks(self) -> int:
        return 1 << (self.block_size - self.network.prefixlen)

    @property
    def block_capacity(self) -> int:
        return 1 << (self.network.max_prefixlen - self.block_size)

    def block_at(self, index: int) -> str:
        base = int(self.network.network_address) + index * self.block_capacity
        return f"{ipaddress.ip_address(base)}/{self.block_size}"

    def block_index(self, block_cidr: str) -> int:
        net = ipaddress.ip_network(block_cidr)
        return (int(net.network_address) - int(self.network.network_address)) // self.block_capacity

    def contains(self, ip_or_cidr: str) -> bool:
        if "/" in ip_or_cidr:
            net = ipaddress.ip_network(ip_or_cidr)
            return net.version == self.version and net.subnet_of(self.network)
        addr = ipaddress.ip_address(ip_or_cidr)
        return addr.version == self.version and addr in self.network

    def block_for_ip(self, ip: str) -> str:
        offset = int(ipaddress.ip_address(ip)) - int(self.network.network_address)
        return self.block_at(offset // self.block_capacity)


@dataclass(frozen=True)
class IPAMConfig:
    """Calico's IPAMConfig singleton, with its defaults and SetIPAMConfig's validity rules."""

    strict_affinity: bool = False
    auto_allocate_blocks: bool = True
    max_blocks_per_host: int = 0

    def __post_init__(self):
        if not self.strict_affinity and not self.auto_allocate_blocks:
            raise ValidationError("autoAllocateBlocks=false requires strictAffinity=true",
                                  obj="IPAMConfig default", field="spec.autoAllocateBlocks")
        if not isinstance(self.max_blocks_per_host, int) or self.max_blocks_per_host < 0:
            raise ValidationError("must be a non-negative integer",
                                  obj="IPAMConfig default", field="spec.maxBlocksPerHost")
        if self.max_blocks_per_host > 0 and not self.strict_affinity:
            raise ValidationError("maxBlocksPerHost>0 requires strictAffinity=true",
                                  obj="IPAMConfig default", field="spec.maxBlocksPerHost")

    @property
    def block_limit(self) -> int:
        return self.max_blocks_per_host or DEFAULT_BLOCK_LIMIT


@dataclass(frozen=True)
class Allocation:
    """One allocated ordinal: who holds it (handle), the owner attributes, its sequence number."""

    handle: str | None
    attrs: dict = field(default_factory=dict)
    seq: int = 0


@dataclass
class Block:
    """An allocation block: a CIDR, an optional node affinity and an ordinal map.

    ``unallocated`` is Calico's FIFO of free ordinals: new blocks list them in ascending order,
    released ordinals go to the back, so the longest-free address is reused first.
    """

    cidr: str
    affinity: str | None
    allocations: dict[int, Allocation]
    unallocated: list[int]
    sequence_number: int = 0

    @classmethod
    def new(cls, cidr: str, affinity: str | None) -> "Block":
        net = ipaddress.ip_network(cidr)
        return cls(str(net), affinity, {}, list(range(net.num_addresses)), 0)

    def copy(self) -> "Block":
        return Block(self.cidr, self.affinity, dict(self.allocations), list(self.unallocated),
                     self.sequence_number)

    @property
    def network(self):
        return ipaddress.ip_network(self.cidr)

    @property
    def size(self) -> int:
        return self.network.num_addresses

    @property
    def free(self) -> int:
        return len(self.unallocated)

    def ip_of(self, ordinal: int) -> str:
        return str(self.network.network_address + ordinal)

    def ordinal_of(self, ip: str) -> int | None:
        addr = ipaddress.ip_address(ip)
        net = self.network
        if addr.version != net.version or addr not in net:
            return None
        return int(addr) - int(net.network_address)

    def ips(self) -> list[str]:
        return [self.ip_of(o) for o in sorted(self.allocations)]


@dataclass
class IPAMState:
    """Everything IPAM persists: blocks by CIDR, the handle index, and the config."""

    blocks: dict[str, Block] = field(default_factory=dict)
    # handle id -> {block CIDR: number of addresses the handle holds in that block}
    handles: dict[str, dict[str, int]] = field(default_factory=dict)
    config: IPAMConfig = field(default_factory=IPAMConfig)

    def sorted_blocks(self) -> list[Block]:
        return [self.blocks[c] for c in sorted(self.blocks, key=cidr_sort_key)]


@dataclass(frozen=True)
class Outcome:
    """Result of a state transition: the new state, the addresses concerned and what changed.

    The persistence layer rewrites exactly ``changed_blocks`` and ``changed_handles`` (deleting
    those no longer present in ``state``) inside one transaction.
    """

    state: IPAMState
    ips: tuple[str, ...] = ()
    changed_blocks: frozenset[str] = frozenset()
    changed_handles: frozenset[str] = frozenset()

    @property
    def ip(self) -> str | None:
        return self.ips[0] if self.ips else None

    @property
    def changed(self) -> bool:
        return bool(self.changed_blocks or self.changed_handles)
