"""Calico-style IPAM: pure allocator, show/check reports, persistence through the store.

Pure except ``orchestrator.ipam.store`` (reads/writes the state store).
"""

from orchestrator.ipam.allocator import (
    allocation_of,
    assign_ip,
    auto_assign,
    block_for_ip,
    blocks_for_node,
    borrow_order,
    borrowed_ips,
    ips_for_handle,
    release,
    release_ip,
    release_node_affinity,
)
from orchestrator.ipam.model import (
    DEFAULT_BLOCK_LIMIT,
    Allocation,
    Block,
    IPAMConfig,
    IPAMState,
    Outcome,
    Pool,
)
from orchestrator.ipam.report import check, show
from orchestrator.ipam.selector import pool_selects_node, validate_selector
from orchestrator.ipam.store import IPAM, ensure_default_pool

__all__ = [
    "DEFAULT_BLOCK_LIMIT", "IPAM", "Allocation", "Block", "IPAMConfig", "IPAMState", "Outcome",
    "Pool", "allocation_of", "assign_ip", "auto_assign", "block_for_ip", "blocks_for_node",
    "borrow_order", "borrowed_ips", "check", "ensure_default_pool", "ips_for_handle",
    "pool_selects_node", "release", "release_ip", "release_node_affinity", "show",
    "validate_selector",
]
