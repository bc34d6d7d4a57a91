"""The report's topology picture: racks as boxes, nodes as boxes (name, IP, role), pods as
chips inside their node (name, IP), wrapped into a grid so 3..50 nodes stay readable. A routed
fabric adds a band of spine routers (their AS, WAN links between sites, the external host)
on top and a trunk down the left joining every rack's ToR to it; rack boxes then name their
subnet and ToR; the caption says how pools are encapsulated.

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
    # A dual-stack pod's other addresses (podIPs) in the tooltip: the chip has room for one.
    ips = pod.get("ips") if isinstance(pod.get("ips"), list) else []
    others = [str(a) for a in ips if str(a) != ip]
    tip = (f"pod {key}\nIP {ip}" + "".join(f"\nIP {a}" for a in others)
           + "".join(f"\n{k}={v}" for k, v in sorted(labels.items())))
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
    tip = f"node {name}\nIP {ip}" + (f"\nIP {node['ip6']}" if node.get("ip6") else "") + (
        f"\nrole {role}" if role else "") + (
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


TRUNK = 24            # left margin of a fabric picture: the ToR uplink trunk
BAND_H = 56           # the spine band
ROUTER_W = 150


def _encap(pool: dict) -> str:
    if pool.get("vxlanMode") not in (None, "Never"):
        mode = f"VXLAN {pool['vxlanMode']}"
    elif pool.get("ipipMode") not in (None, "Never"):
        mode = f"IPIP {pool['ipipMode']}"
    else:
        mode = "no encapsulation"
    return mode + (", natOutgoing" if pool.get("natOutgoing") else "")


def _fabric_band(fabric: dict, external, x0: float, y: float, width: float):
    """Spines (and the external host) in a row; WAN links drawn between sites' spines."""
    spines = [r for r in fabric.get("routers") or [] if r.get("role") == "spine"]
    boxes = spines + ([{"name": external.get("name"), "role": "external",
                        "ip": external.get("ip")}] if isinstance(external, dict) else [])
    parts = [S.rect(x0, y, width, BAND_H - 8, rx=8, fill="#eef3fb", stroke=S.BLUE_LIGHT),
             S.text(x0 + 8, y + 14, "fabric", class_="rack-name")]
    step = min(ROUTER_W + GAP, (width - 16) / max(1, len(boxes)))
    pos = {}
    for i, r in enumerate(boxes):
        bx = x0 + 60 + i * step
        pos[r.get("name")] = bx
        ext = r.get("role") == "external"
        sub = f"{r.get('ip')}" if ext else f"spine \u00b7 AS {r.get('asNumber')}"
        parts.append(S.group(
            S.rect(bx, y + 6, min(ROUTER_W, step - 8), 32, rx=5,
                   fill="#ffffff", stroke=S.ORANGE if ext else S.BLUE_DARK)
            + S.text(bx + 6, y + 19, S.clip(str(r.get("name")), 20), class_="node-name")
            + S.text(bx + 6, y + 32, sub, class_="node-ip"),
            tip=f"{'external host' if ext else 'spine router'} {r.get('name')}", class_="router"))
    for ln in fabric.get("links") or []:
        if ln.get("wan") and ln.get("a") in pos and ln.get("b") in pos:
            xa, xb = sorted((pos[ln["a"]], pos[ln["b"]]))
            w = min(ROUTER_W, step - 8)
            what = f"WAN {S.fmt(ln.get('bandwidth'), 0)} Mbit/s" + (
                f", {ln['delay']}" if ln.get("delay") else "")
            parts.append(S.line(xa + w, y + 22, xb, y + 22, stroke=S.ORANGE, stroke_width=3))
            parts.append(S.text((xa + w + xb) / 2, y + 48, what, class_="node-ip",
                                text_anchor="middle"))
    return S.group("".join(parts), class_="fabric"), y + BAND_H


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
    fabric = topology.get("fabric") if isinstance(topology.get("fabric"), dict) else None
    left = TRUNK if fabric else 0
    width = 2 * MARGIN + left + inner_w + 2 * box_pad
    rack_info = {str(r.get("name")): r for r in topology.get("racks") or []
                 if isinstance(r, dict)}
    tor_as = {str(r.get("rack")): r.get("asNumber")
              for r in (fabric or {}).get("routers") or [] if r.get("role") == "tor"}
    parts, y = [], MARGIN
    rack_tops: list[float] = []
    if fabric:
        band, y = _fabric_band(fabric, topology.get("external"), MARGIN + left, y,
                               inner_w + 2 * box_pad)
        parts.append(band)
    for rack, members in groups:
        top = y
        rack_tops.append(top)
        y += (RACK_HEAD if racked else 0) + box_pad
        for start in range(0, len(members), cols):
            row = members[start:start + cols]
            h = max(_node_height(len(by_node.get(_name(n), []))) for n in row)
            for i, n in enumerate(row):
                x = MARGIN + left + box_pad + i * (NODE_W + GAP)
                parts.append(_node(x, y, h, n, by_node.get(_name(n), [])))
            y += h + GAP
        y += box_pad - GAP
        if racked:
            label = f"rack {rack}" if rack else "no rack"
            info = rack_info.get(str(rack)) or {}
            if info.get("subnet"):
                label += f" \u00b7 {info['subnet']} \u00b7 ToR {info.get('tor')}"
                if tor_as.get(str(rack)) is not None:
                    label += f" (AS {tor_as[str(rack)]})"
            box = (S.rect(MARGIN + left, top, inner_w + 2 * box_pad, y - top, rx=8,
                          fill="#f4f6f9", stroke=S.GREY,
                          stroke_dasharray=None if rack else "4 3")
                   + S.text(MARGIN + left + RACK_PAD, top + 16,
                            f"{label} \u00b7 {len(members)} nodes", class_="rack-name"))
            parts.insert(len(parts) - len(members), S.group(box, class_="rack"))
        y += GAP
    if fabric and rack_tops:
        # The trunk: every rack's ToR uplinks to the spines (each ToR to every spine of its
        # site; equal-cost paths between racks).
        tx = MARGIN + TRUNK / 2
        parts.append(S.line(tx, MARGIN + BAND_H, tx, rack_tops[-1] + 12, stroke=S.BLUE,
                            stroke_width=2))
        for top in rack_tops:
            parts.append(S.line(tx, top + 12, MARGIN + left, top + 12, stroke=S.BLUE,
                                stroke_width=2))
    known = {_name(n) for n in nodes}
    stray = sum(len(v) for k, v in by_node.items() if k not in known)
    name = str(topology.get("name") or "cluster")
    label = f"Topology {name}: {len(nodes)} nodes, {sum(len(v) for v in by_node.values())} pods"
    if stray:
        label += f" ({stray} not on a listed node)"
    encap = [f"{p.get('cidr')} {_encap(p)}" for p in topology.get("pools") or []
             if isinstance(p, dict)]
    if encap:
        label += "; pools: " + ", ".join(encap)
        parts.append(S.text(MARGIN, y - GAP + 14, "IP pools: " + ", ".join(encap),
                            class_="rack-name"))
        y += 18
    return S.svg(width, y - GAP + MARGIN, "".join(parts), label=label, class_="topology")
