"""BGP convergence timeline: one lane per node, a marker per event at its time (peer up,
peer down, routes count), fault steps as dashed vertical lines across all lanes, a legend.

Pure: results.json's `bgp_timeline` plus the fault list and node order in, SVG out.
"""

from __future__ import annotations

from orchestrator.report import svg as S

LANE_H = 20
LEFT_MIN = 90
PLOT_W = 1050
FAULT_ROW = 14        # fault labels sit in rows above the lanes, as many as they need
FAULT_LABEL = 26      # characters
AXIS_H = 30

# kind -> (colour, legend words); anything else is drawn as a grey dot.
KINDS = {"peer-up": (S.GREEN, "peer up"), "peer-down": (S.RED, "peer down"),
         "routes": (S.BLUE, "routes (count in tooltip)")}


def _marker(kind: str, x: float, y: float, tip: str) -> str:
    colour = KINDS.get(kind, (S.MUTED, ""))[0]
    if kind == "peer-up":          # triangle pointing up
        pts = f"{x:.1f},{y - 6:.1f} {x + 5.5:.1f},{y + 4:.1f} {x - 5.5:.1f},{y + 4:.1f}"
    elif kind == "peer-down":      # triangle pointing down
        pts = f"{x - 5.5:.1f},{y - 4:.1f} {x + 5.5:.1f},{y - 4:.1f} {x:.1f},{y + 6:.1f}"
    elif kind == "routes":         # diamond
        pts = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} {x - 5:.1f},{y:.1f}"
    else:
        return (f'<circle {S.attrs(cx=x, cy=y, r=4, fill=colour, class_="event other")}>'
                f"{S.title(tip)}</circle>")
    a = S.attrs(points=pts, fill=colour, stroke="#ffffff", stroke_width=0.8,
                class_=f"event {kind}")
    return f"<polygon {a}>{S.title(tip)}</polygon>"


def _fault_rows(xs: list[float], right: float) -> list[tuple[int, bool]]:
    """(row, anchored at end) per fault line x (sorted): a label goes right of its line, or
    left of it near the right edge, in the first row where it overlaps no earlier label."""
    ends: list[float] = []          # per row: x where the last label ends
    out = []
    for x, label_w in xs:
        at_end = x + 3 + label_w > right
        lo, hi = (x - 3 - label_w, x) if at_end else (x, x + 3 + label_w)
        row = next((i for i, e in enumerate(ends) if lo > e + 6), len(ends))
        if row == len(ends):
            ends.append(hi)
        else:
            ends[row] = hi
        out.append((row, at_end))
    return out


def lanes_of(events: list, node_order: list) -> list[str]:
    """Nodes that have events: in topology order first, then in order of appearance."""
    seen = [str(e.get("node")) for e in events if e.get("node") is not None]
    known = [n for n in node_order if n in set(seen)]
    return known + [n for n in dict.fromkeys(seen) if n not in set(known)]


def bgp_timeline_svg(events: list, faults: list, node_order: list, t_end: float = 0.0) -> str:
    """events: bgp_timeline entries ({t, node, event, kind[, routes]}); faults: [(t, label)];
    t_end: the experiment's length, so the axis spans the whole run."""
    events = [e for e in events if isinstance(e, dict) and S.num(e.get("t")) is not None]
    lane_events = [e for e in events if e.get("kind") != "fault" and e.get("node") is not None]
    lanes = lanes_of(lane_events, node_order)
    if not lanes and not faults:
        return ""
    times = [S.num(e["t"]) for e in events] + [t for t, _ in faults] + [t_end or 0.0]
    ticks = S.nice_ticks(max(max(times), 0.1), 8)
    t_max = ticks[-1]
    left = max(LEFT_MIN, min(max((len(n) for n in lanes), default=4), 24) * S.CHAR_W_11 + 16)
    faults = sorted(faults, key=lambda f: f[0])
    labels = [S.clip(label, FAULT_LABEL) for _, label in faults]
    placed = _fault_rows([(left + t / t_max * PLOT_W, len(lb) * S.CHAR_W_10)
                          for (t, _), lb in zip(faults, labels)], left + PLOT_W + 16)
    top = (max((r for r, _ in placed), default=-1) + 1) * FAULT_ROW + 12
    plot_h = max(len(lanes), 1) * LANE_H

    def xt(t: float) -> float:
        return left + t / t_max * PLOT_W

    parts = []
    for i, node in enumerate(lanes):
        y = top + i * LANE_H
        if i % 2 == 0:
            parts.append(S.rect(left, y, PLOT_W, LANE_H, fill="#f4f6f9"))
        parts.append(S.text(left - 8, y + LANE_H / 2 + 4, S.clip(node, 24), tip=node,
                            class_="label", text_anchor="end"))
    for t in ticks:
        parts.append(S.line(xt(t), top, xt(t), top + plot_h, stroke=S.LIGHT_GREY))
        parts.append(S.text(xt(t), top + plot_h + 14, S.fmt(t), class_="tick",
                            text_anchor="middle"))
    parts.append(S.text(left + PLOT_W / 2, top + plot_h + 27, "seconds since start",
                        class_="axis", text_anchor="middle"))
    for (t, label), short, (frow, at_end) in zip(faults, labels, placed):
        x, ly = xt(t), 12 + frow * FAULT_ROW
        parts.append(S.group(
            S.line(x, ly + 3, x, top + plot_h, stroke=S.ORANGE, stroke_width=1.5,
                   stroke_dasharray="5 3")
            + S.text(x - 3 if at_end else x + 3, ly, short, class_="fault-label",
                     text_anchor="end" if at_end else None),
            tip=f"t={S.fmt(t, 3)} s: {label}", class_="fault"))
    row = {n: i for i, n in enumerate(lanes)}
    for e in lane_events:
        t, kind = S.num(e["t"]), str(e.get("kind") or "")
        y = top + row[str(e["node"])] * LANE_H + LANE_H / 2
        tip = f"t={S.fmt(t, 3)} s {e.get('node')}: {e.get('event', kind)}"
        if S.num(e.get("routes")) is not None:
            tip += f" ({S.fmt(e['routes'])} routes)"
        parts.append(_marker(kind, xt(t), y, tip))
    items = [(c, w) for c, w in KINDS.values()] + [(S.ORANGE, "fault step")]
    leg, leg_w = S.legend(items, left, top + plot_h + AXIS_H + 16)
    parts.append(S.group(leg, class_="legend"))
    width = max(left + PLOT_W + 20, left + leg_w + 8)
    label = f"BGP timeline: {len(lanes)} nodes, {len(lane_events)} events, {len(faults)} faults"
    return S.svg(width, top + plot_h + AXIS_H + 26, "".join(parts), label=label,
                 class_="bgp-timeline")
