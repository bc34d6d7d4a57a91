"""The report's topology picture: racks as boxes, nodes as boxes (name, IP, role), pods as
chips inside their node (name, IP), wrapped into a grid so 3..50 nodes stay readable.

Pure: results.json's `topology` and `pods` in, one SVG string out.
"""

from __future__ import annotations

from orchestrator.report import svg as S

MAX_COLS = 6          # 6 x 212 px fits a laptop screen; more columns would shrink the text
NODE_W = 200
GAP = 12
NODE_HEAD = 36        # name + IP/role lines
CHIP_H = 15
CHIP_GAP = 3
MAX_CHIPS = 12        # more pods on one node collapse into a "+N more" chip
RACK_HEAD = 24
RACK_PAD = 10
MARGIN = 8


def _name(x) -> str:
    return str(x.get("name", "")) if isinstance(x, dict) else str(x)


def _groups(topology: dict, nodes: list) -> list[tuple[str | None, list]]:
    """[(rack or None, nodes)] in the topology's rack order; nodes without a rack last."""
    order: list[str] = []
    for r in topology.get("racks") or []:
        if _name(r) and _name(r) not in order:
            order.append(_name(r))
    for n in nodes:
        rack = n.get("rack")
        if rack and str(rack) not in order:
            order.append(str(rack))
    # A rack listed with member names but nodes without a "rack" field: trust the list.
    member_of = {}
    for r in topology.get("racks") or []:
        if isinstance(r, dict):
            for m in r.get("nodes") or []:
                member_of.setdefault(str(m), _name(r))
    grouped: dict = {r: [] for r in order}
    loose = []
    for n in nodes:
        rack = n.get("rack") or member_of.get(_name(n))
        (grouped[str(rack)] if rack else loose).append(n)
    out = [(r, grouped[r]) for r in order if grouped[r]]
    if loose:
        out.append((None, loose))
    return out


def _node_height(pod_count: int) -> float:
    chips = min(pod_count, MAX_CHIPS + 1)      # 12 chips + "+N more", or all of 13
    return NODE_HEAD + chips * (CHIP_H + CHIP_GAP) + (6 if chips else 0)


def _chip(x: float, y: float, pod: dict) -> str:
    key, ip = str(pod.get("key", "?")), str(pod.get("ip") or "no IP")
    labels = pod.get("labels") if isinstance(pod.get("labels"), dict) else {}
    tip = f"pod {key}\nIP {ip}" + "".join(f"\n{k}={v}" for k, v in sorted(labels.items()))
    w = NODE_W - 12
    # Name left, IP right: the IP always shows in full, the name gives way.
    room = int((w - 10 - len(ip) * S.CHAR_W_10) / S.CHAR_W_10) - 1
    body = (S.rect(x, y, w, CHIP_H, rx=7, fill=S.CHIP, stroke=S.BLUE_LIGHT)
            + S.text(x + 6, y + 11, S.clip(key, max(room, 4)), class_="chip")
            + S.text(x + w - 5, y + 11, ip, class_="chip ip", text_anchor="end"))
    return S.group(body, tip=tip, class_="pod")


def _more_chip(x: float, y: float, rest: list) -> str:
    tip = f"{len(rest)} more pods:\n" + "\n".join(
        f"{p.get('key', '?')} {p.get('ip') or ''}" for p in rest)
    body = (S.rect(x, y, NODE_W - 12, CHIP_H, rx=7, fill=S.LIGHT_GREY)
            + S.text(x + 6, y + 11, f"+{len(rest)} more", class_="chip"))
    return S.group(body, tip=tip, class_="pod more")


def _node(x: float, y: float, h: float, node: dict, pods: list) -> str:
    name, ip = _name(node), str(node.get("ip") or "")
    role = str(node.get("role") or "")
    cp = "control" in role
    tip = f"node {name}\nIP {ip}" + (f"\nrole {role}" if role else "") + (
        f"\nrack {node.get('rack')}" if node.get("rack") else "") + f"\n{len(pods)} pods"
    parts = [S.rect(x, y, NODE_W, h, rx=6, fill="#ffffff",
                    stroke=S.BLUE_DARK if cp else S.MUTED, stroke_width=2 if cp else 1),
             S.text(x + 8, y + 15, S.clip(name, 28), class_="node-name"),
             S.text(x + 8, y + 29, ip + ("  \u00b7 control-plane" if cp else ""),
                    class_="node-ip")]
    shown = pods if len(pods) <= MAX_CHIPS + 1 else pods[:MAX_CHIPS]
    cy = y + NODE_HEAD
    for pod in shown:
        parts.append(_chip(x + 6, cy, pod))
        cy += CHIP_H + CHIP_GAP
    if len(shown) < len(pods):
        parts.append(_more_chip(x + 6, cy, pods[len(shown):]))
    return S.group("".join(parts), tip=tip, class_="node")


def topology_svg(topology: dict, pods: list) -> str:
    """The cluster picture, or "" when the topology lists no nodes."""
    nodes = [n for n in topology.get("nodes") or [] if isinstance(n, dict)]
    if not nodes:
        return ""
    by_node: dict = {}
    for p in pods:
        if isinstance(p, dict):
            by_node.setdefault(str(p.get("node")), []).append(p)
    groups = _groups(topology, nodes)
    racked = any(r for r, _ in groups)
    cols = min(MAX_COLS, max(len(g) for _, g in groups))
    inner_w = cols * NODE_W + (cols - 1) * GAP
    box_pad = RACK_PAD if racked else 0
    width = 2 * MARGIN + inner_w + 2 * box_pad
    parts, y = [], MARGIN
    for rack, members in groups:
        top = y
        y += (RACK_HEAD if racked else 0) + box_pad
        for start in range(0, len(members), cols):
            row = members[start:start + cols]
            h = max(_node_height(len(by_node.get(_name(n), []))) for n in row)
            for i, n in enumerate(row):
                x = MARGIN + box_pad + i * (NODE_W + GAP)
                parts.append(_node(x, y, h, n, by_node.get(_name(n), [])))
            y += h + GAP
        y += box_pad - GAP
        if racked:
            label = f"rack {rack}" if rack else "no rack"
            box = (S.rect(MARGIN, top, inner_w + 2 * box_pad, y - top, rx=8, fill="#f4f6f9",
                          stroke=S.GREY, stroke_dasharray=None if rack else "4 3")
                   + S.text(MARGIN + RACK_PAD, top + 16, f"{label} \u00b7 {len(members)} nodes",
                            class_="rack-name"))
            parts.insert(len(parts) - len(members), S.group(box, class_="rack"))
        y += GAP
    known = {_name(n) for n in nodes}
    stray = sum(len(v) for k, v in by_node.items() if k not in known)
    name = str(topology.get("name") or "cluster")
    label = f"Topology {name}: {len(nodes)} nodes, {sum(len(v) for v in by_node.values())} pods"
    if stray:
        label += f" ({stray} not on a listed node)"
    return S.svg(width, y - GAP + MARGIN, "".join(parts), label=label, class_="topology")
