"""Translation between IPAM dataclasses and stored objects shaped like Calico's CRDs.

Pure. Kinds: IPPool (projectcalico.org/v3, user-facing), and the internal IPAMBlock,
BlockAffinity, IPAMHandle and IPAMConfig (crd.projectcalico.org/v1). Blocks are stored as
Calico does: ``allocations[ordinal]`` indexes a de-duplicated ``attributes`` list.
"""

from __future__ import annotations

import ipaddress

from orchestrator.errors import ValidationError
from orchestrator.ipam.model import Allocation, Block, IPAMConfig, Pool
from orchestrator.ipam.selector import validate_selector

POOL_API = "projectcalico.org/v3"
CRD_API = "crd.projectcalico.org/v1"
DEFAULT_POOL_NAME = "default-ipv4-ippool"
DEFAULT_POOL_CIDR = "10.244.0.0/16"
# calico-node's IPv6 default pool has a random ULA /48; calinet takes kind's IPv6 podSubnet,
# as it takes kind's IPv4 one above, so addresses are the same on every run.
DEFAULT_POOL6_NAME = "default-ipv6-ippool"
DEFAULT_POOL6_CIDR = "fd00:10:244::/56"
DEFAULT_POOLS = {4: (DEFAULT_POOL_NAME, DEFAULT_POOL_CIDR, 26),
                 6: (DEFAULT_POOL6_NAME, DEFAULT_POOL6_CIDR, 122)}


def block_name(cidr: str) -> str:
    """Calico's object name for a block: 10.244.0.0/26 -> 10-244-0-0-26."""
    return cidr.replace(".", "-").replace(":", "-").replace("/", "-")


def affinity_name(node: str, cidr: str) -> str:
    return f"{node}-{block_name(cidr)}"


# -- pools ---------------------------------------------------------------------------------

def pool_from_object(obj: dict) -> Pool:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or "<unnamed>"
    spec = obj.get("spec") or {}
    where = f"IPPool {name}"
    if not spec.get("cidr"):
        raise ValidationError("is required", obj=where, field="spec.cidr")
    cidr = str(spec["cidr"])
    default_size = 122 if ":" in cidr else 26
    selector = spec.get("nodeSelector") or "all()"
    try:
        validate_selector(selector)
    except ValidationError as exc:
        raise exc.located(obj=where) from None
    disabled = spec.get("disabled", False)
    if not isinstance(disabled, bool):
        raise ValidationError("must be true or false", obj=where, field="spec.disabled")
    return Pool(name, cidr, spec.get("blockSize", default_size), disabled, selector)


def pool_object(name: str, cidr: str, block_size: int = 26, *, node_selector: str = "all()",
                disabled: bool = False) -> dict:
    pool = Pool(name, cidr, block_size, disabled, node_selector)  # validate before storing
    # natOutgoing: calico-node's defaults, true for IPv4 pools and false for IPv6 ones.
    return {"apiVersion": POOL_API, "kind": "IPPool", "metadata": {"name": name},
            "spec": {"cidr": cidr, "blockSize": block_size, "ipipMode": "Never",
                     "vxlanMode": "Never", "natOutgoing": pool.version == 4,
                     "nodeSelector": node_selector,
                     "disabled": disabled}}


# -- config --------------------------------------------------------------------------------

def config_from_object(obj: dict | None) -> IPAMConfig:
    if obj is None:
        return IPAMConfig()
    spec = obj.get("spec") or {}
    return IPAMConfig(bool(spec.get("strictAffinity", False)),
                      bool(spec.get("autoAllocateBlocks", True)),
                      spec.get("maxBlocksPerHost", 0))


def config_object(config: IPAMConfig) -> dict:
    return {"apiVersion": CRD_API, "kind": "IPAMConfig", "metadata": {"name": "default"},
            "spec": {"strictAffinity": config.strict_affinity,
                     "autoAllocateBlocks": config.auto_allocate_blocks,
                     "maxBlocksPerHost": config.max_blocks_per_host}}


# -- blocks --------------------------------------------------------------------------------

def block_object(block: Block, config: IPAMConfig) -> dict:
    attributes: list[dict] = []
    index: dict[str, int] = {}
    allocs: list[int | None] = [None] * block.size
    seqs = {}
    for ordinal in sorted(block.allocations):
        a = block.allocations[ordinal]
        attr = {"handle_id": a.handle, "secondary": dict(sorted(a.attrs.items()))}
        key = repr(sorted(attr["secondary"].items())) + "\0" + str(a.handle)
        if key not in index:
            index[key] = len(attributes)
            attributes.append(attr)
        allocs[ordinal] = index[key]
        seqs[str(ordinal)] = a.seq
    return {"apiVersion": CRD_API, "kind": "IPAMBlock", "metadata": {"name": block_name(block.cidr)},
            "spec": {"cidr": block.cidr,
                     "affinity": f"host:{block.affinity}" if block.affinity else None,
                     "strictAffinity": config.strict_affinity,
                     "allocations": allocs, "unallocated": list(block.unallocated),
                     "attributes": attributes, "deleted": False,
                     "sequenceNumber": block.sequence_number,
                     "sequenceNumberForAllocation": seqs}}


def validate_block_spec(spec: dict) -> str | None:
    """Calico's validateBlock (calicoctl ipam check): None if consistent, else the reason."""
    try:
        size = ipaddress.ip_network(spec.get("cidr", "")).num_addresses
    except ValueError:
        return f"invalid cidr {spec.get('cidr')!r}"
    allocs = spec.get("allocations") or []
    attrs = spec.get("attributes") or []
    if len(allocs) != size:
        return f"expected {size} allocation slots, found {len(allocs)}"
    seen_attrs, seen_ords = set(), set()
    for ordinal, idx in enumerate(allocs):
        if idx is None:
            continue
        if not isinstance(idx, int) or not 0 <= idx < len(attrs):
            return f"allocation {ordinal} indexes a nonexistent attribute {idx}"
        seen_attrs.add(idx)
        seen_ords.add(ordinal)
    for i in range(len(attrs)):
        if i not in seen_attrs:
            return f"attribute index {i} exists but is not indexed by an allocation"
    unalloc = spec.get("unallocated") or []
    for i, o in enumerate(unalloc):
        if not isinstance(o, int) or not 0 <= o < size:
            return f"ordinal {o} appears in the Unallocated array but is out of the block"
        if o in unalloc[:i]:
            return f"ordinal {o} appears more than once in Unallocated array"
        if o in seen_ords:
            return f"ordinal {o} is allocated but appears in Unallocated"
    if len(unalloc) + len(seen_ords) != size:
        return (f"expected {size} addresses in this block, but Unallocated ({len(unalloc)}) + "
                f"Allocated ({len(seen_ords)}) = {len(unalloc) + len(seen_ords)}")
    return None


def block_from_object(obj: dict) -> Block:
    """Decode a stored block. Raises ValidationError if it is structurally invalid, so an
    allocation never proceeds from a corrupt block (check reports such blocks instead)."""
    spec = obj.get("spec") or {}
    problem = validate_block_spec(spec)
    if problem:
        raise ValidationError(problem, obj=f"IPAMBlock {obj.get('metadata', {}).get('name')}")
    affinity = spec.get("affinity")
    node = affinity.split(":", 1)[1] if affinity and affinity.startswith("host:") else affinity
    seqs = spec.get("sequenceNumberForAllocation") or {}
    attrs = spec["attributes"]
    allocations = {}
    for ordinal, idx in enumerate(spec["allocations"]):
        if idx is not None:
            attr = attrs[idx]
            allocations[ordinal] = Allocation(attr.get("handle_id"), dict(attr.get("secondary") or {}),
                                              int(seqs.get(str(ordinal), 0)))
    return Block(str(ipaddress.ip_network(spec["cidr"])), node or None, allocations,
                 list(spec["unallocated"]), int(spec.get("sequenceNumber", 0)))


def affinity_object(node: str, cidr: str) -> dict:
    return {"apiVersion": CRD_API, "kind": "BlockAffinity",
            "metadata": {"name": affinity_name(node, cidr)},
            "spec": {"state": "confirmed", "node": node, "cidr": cidr, "deleted": "false"}}


# -- handles -------------------------------------------------------------------------------

def handle_object(handle: str, counts: dict[str, int]) -> dict:
    return {"apiVersion": CRD_API, "kind": "IPAMHandle", "metadata": {"name": handle},
            "spec": {"handleID": handle, "block": dict(sorted(counts.items())), "deleted": False}}


def handle_from_object(obj: dict) -> tuple[str, dict[str, int]]:
    spec = obj.get("spec") or {}
    handle = spec.get("handleID") or obj["metadata"]["name"]
    return handle, {str(k): int(v) for k, v in (spec.get("block") or {}).items()}
