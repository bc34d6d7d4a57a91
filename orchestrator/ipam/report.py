"""`calicoctl ipam show` and `calicoctl ipam check` reports.

Pure: IPAM state and pools in, text out. Table shapes, column alignment and number formats
follow calicoctl (release versions, without the RESERVED column; go-pretty's default box style),
and the check narrative follows calicoctl's check.go line for line where it applies here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from orchestrator.ipam.allocator import allocation_of, allocations, borrowed_ips
from orchestrator.ipam.model import IPAMState, Pool, cidr_sort_key, ip_sort_key, parse_ip


def render_table(header: Sequence[str], rows: Iterable[Sequence[str]],
                 right: Iterable[str] = ()) -> str:
    """A go-pretty StyleDefault table: centred headers, cells padded by one space."""
    rows = [[str(c) for c in r] for r in rows]
    right = set(right)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def centre(text, w):
        pad = w - len(text)
        return " " * (pad // 2) + text + " " * (pad - pad // 2)

    lines = [rule, "| " + " | ".join(centre(h, w) for h, w in zip(header, widths, strict=True)) + " |", rule]
    for r in rows:
        cells = [c.rjust(w) if h in right else c.ljust(w) for c, h, w in zip(r, header, widths, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(rule)
    return "\n".join(lines) + "\n"


def _num(n: int) -> str:
    return f"{float(n):.5g}"


def _pct(n: int, capacity: int) -> str:
    return f"{_num(n)} ({100 * n / capacity:.0f}%)"


def _usage_row(kind: str, cidr: str, capacity: int, in_use: int) -> list[str]:
    return [kind, cidr, _num(capacity), _pct(in_use, capacity), _pct(capacity - in_use, capacity)]


def show(state: IPAMState, pools: Sequence[Pool], *, show_blocks: bool = False,
         show_borrowed: bool = False, show_config: bool = False, ip: str | None = None) -> str:
    """Render what `calicoctl ipam show [--ip=X | --show-blocks | --show-borrowed |
    --show-configuration]` prints for this state."""
    if ip is not None:
        return _show_ip(state, ip)
    if show_borrowed:
        rows = [[r["ip"], r["borrowing_node"], r["block"], r["block_owner"], r["type"],
                 r["allocated_to"]] for r in borrowed_ips(state)]
        return render_table(["IP", "BORROWING-NODE", "BLOCK", "BLOCK OWNER", "TYPE",
                             "ALLOCATED-TO"], rows)
    if show_config:
        cfg = state.config
        rows = [["StrictAffinity", str(cfg.strict_affinity).lower()],
                ["AutoAllocateBlocks", str(cfg.auto_allocate_blocks).lower()],
                ["MaxBlocksPerHost", str(cfg.max_blocks_per_host)]]
        return render_table(["PROPERTY", "VALUE"], rows)
    rows = []
    blocks = state.sorted_blocks()
    placed = set()
    for pool in sorted(pools, key=lambda p: cidr_sort_key(p.cidr)):
        mine = [b for b in blocks if b.cidr not in placed and pool.contains(b.cidr)]
        placed.update(b.cidr for b in mine)
        in_use = sum(len(b.allocations) for b in mine)
        rows.append(_usage_row("IP Pool", pool.cidr, pool.network.num_addresses, in_use))
        if show_blocks:
            rows += [_usage_row("Block", b.cidr, b.size, len(b.allocations)) for b in mine]
    if show_blocks:
        # Blocks of a deleted pool: calicoctl lists them without a pool row.
        rows += [_usage_row("Block", b.cidr, b.size, len(b.allocations))
                 for b in blocks if b.cidr not in placed]
    return render_table(["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"], rows,
                        right=["IPS TOTAL"])


def _show_ip(state: IPAMState, ip: str) -> str:
    addr = str(parse_ip(ip))
    alloc = allocation_of(state, addr)
    if alloc is None:
        return f"IP {addr} is not currently assigned\n"
    lines = [f"IP {addr} is in use"]
    if alloc.attrs:
        lines.append("Attributes:")
        first = [k for k in ("pod", "namespace", "node") if k in alloc.attrs]
        for key in first + sorted(k for k in alloc.attrs if k not in first):
            lines.append(f"  {key}: {alloc.attrs[key]}")
    else:
        lines.append("No attributes defined")
    return "\n".join(lines) + "\n"


def _attr_string(handle: str | None, attrs: Mapping[str, str]) -> str:
    extra = ",".join(f"{k}={attrs[k]}" for k in sorted(attrs))
    return f"Main:{handle or '<none>'} Extra:{extra}"


def check(state: IPAMState, pools: Sequence[Pool], in_use: Mapping[str, str | Sequence[str]],
          *, tunnel_ips: Mapping[str, str] | None = None,
          invalid_blocks: Mapping[str, str] | None = None,
          show_problem_ips: bool = False) -> tuple[str, int]:
    """`calicoctl ipam check`: cross-check IPAM against what workloads really use.

    ``in_use`` maps each address a workload holds to its "ns/pod" (or a list of them when
    several claim it); ``tunnel_ips`` maps node tunnel addresses to node names;
    ``invalid_blocks`` maps block CIDRs that failed structural validation to the reason.
    Returns (report text, number of problems).
    """
    out: list[str] = []
    say = out.append
    say("Checking IPAM for inconsistencies...")
    say("")

    allocs = allocations(state)
    alloc_by_ip = {ip: (cidr, a) for ip, cidr, a in allocs}
    say("Loading all IPAM blocks...")
    say(f"Found {len(state.blocks)} IPAM blocks.")
    for blk in state.sorted_blocks():
        say(f" IPAM block {blk.cidr} affinity={'host:' + blk.affinity if blk.affinity else '<none>'}:")
    say(f"IPAM blocks record {len(allocs)} allocations.")
    say("")

    active = [p for p in pools if not p.disabled]
    say("Loading all IPAM pools...")
    for pool in active:
        say(f"  {pool.cidr}")
    say(f"Found {len(active)} active IP pools.")
    say("")

    owners: dict[str, list[str]] = {}
    say("Loading all nodes.")
    for ip, node in sorted((tunnel_ips or {}).items(), key=lambda kv: ip_sort_key(kv[0])):
        owners.setdefault(str(parse_ip(ip)), []).append(f"Node({node})")
    say(f"Found {len(tunnel_ips or {})} node tunnel IPs.")
    say("")

    say("Loading all workload endpoints.")
    n_wep = 0
    for ip, who in in_use.items():
        for name in ([who] if isinstance(who, str) else list(who)):
            owners.setdefault(str(parse_ip(ip)), []).append(f"Workload({name})")
            n_wep += 1
    say(f"Found {n_wep} workload IPs.")
    say(f"Workloads and nodes are using {len(owners)} IPs.")
    say("")

    say("Loading all handles")
    by_node: dict[str, int] = {}
    for _ip, cidr, a in allocs:
        node = a.attrs.get("node") or state.blocks[cidr].affinity or ""
        by_node[node] = by_node.get(node, 0) + 1
    say("Looking for top (up to 20) nodes by allocations...")
    ranked = sorted(by_node, key=lambda n: (-by_node[n], n))
    for node in ranked[:20]:
        say(f"  {node} has {by_node[node]} allocations")
    if ranked:
        say(f"Node with most allocations has {by_node[ranked[0]]}; "
            f"median is {by_node[ranked[len(ranked) // 2]]}")
    say("")

    problems = 0
    say("Scanning for IPs that are allocated but not actually in use...")
    leaked = [ip for ip, _c, _a in allocs if ip not in owners]
    if show_problem_ips:
        for ip in leaked:
            a = alloc_by_ip[ip][1]
            say(f"  {ip} leaked; attrs {_attr_string(a.handle, a.attrs)}")
    problems += len(leaked)
    say(f"Found {len(leaked)} IPs that are allocated in IPAM but not actually in use.")

    say("Scanning for IPs that are in use by a workload or node but not allocated in IPAM...")
    outside, unallocated = [], []
    for ip in sorted(owners, key=ip_sort_key):
        names = owners[ip]
        if show_problem_ips and len(names) > 1:
            say(f"  {ip} has multiple owners.")
        if ip in alloc_by_ip:
            continue
        if not any(p.contains(ip) for p in active):
            outside.append(ip)
            if show_problem_ips:
                for name in names:
                    say(f"  {ip} in use by {name} is not in any active IP pool.")
            continue
        unallocated.append(ip)
        if show_problem_ips:
            for name in names:
                say(f"  {ip} in use by {name} and in active IPAM pool but has no IPAM allocation.")
    problems += len(outside) + len(unallocated)
    say(f"Found {len(outside)} in-use IPs that are not in active IP pools.")
    say(f"Found {len(unallocated)} in-use IPs that are in active IP pools but have no "
        "corresponding IPAM allocation.")
    say("")

    say("Scanning for IPAM handles with no matching IPs...")
    used_handles = {a.handle for _ip, _c, a in allocs if a.handle is not None}
    empty_handles = sorted(h for h in state.handles if h not in used_handles)
    if show_problem_ips:
        for h in empty_handles:
            say(f"  {h} doesn't have any active IPs.")
    problems += len(empty_handles)
    say(f"Found {len(empty_handles)} handles with no matching IPs (and "
        f"{len(state.handles) - len(empty_handles)} handles with matches).")

    say("Scanning for IPs with missing handle...")
    missing = sorted(h for h in used_handles if h not in state.handles)
    if show_problem_ips:
        for h in missing:
            say(f"  {h} is in use in a block but doesn't exist.")
    say(f"Found {len(missing)} handles mentioned in blocks with no matching handle resource.")

    say("Validating IPAMBlock structures...")
    invalid = invalid_blocks or {}
    for cidr in sorted(invalid):
        say(f"  IPAMBlock {cidr} is invalid: {invalid[cidr]}")
    problems += len(invalid)
    say(f"Found {len(invalid)} invalid IPAMBlocks.")
    say(f"Check complete; found {problems} problems.")
    return "\n".join(out) + "\n", problems
