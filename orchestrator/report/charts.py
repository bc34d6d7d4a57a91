"""Bar charts of the report: ping RTT (min/avg/max per ping step) and iperf throughput
(Gbit/s per iperf step, with a small line of its per-interval values under each bar).

Pure: lists of plain dicts in (built by orchestrator.report.html from the steps), SVG out.
"""

from __future__ import annotations

from orchestrator.report import svg as S

PLOT_H = 180
AXIS_W = 52           # y-axis tick labels
TOP = 26              # room for value labels above the tallest bar
LABEL_CHARS = 18


def _y_axis(ticks: list, top_value: float, unit: str, width: float) -> str:
    parts = []
    for t in ticks:
        y = TOP + PLOT_H - (t / top_value) * PLOT_H
        parts.append(S.line(AXIS_W, y, width - 8, y, stroke=S.LIGHT_GREY))
        parts.append(S.text(AXIS_W - 6, y + 4, S.fmt(t), class_="tick", text_anchor="end"))
    parts.append(S.line(AXIS_W, TOP, AXIS_W, TOP + PLOT_H, stroke=S.MUTED))
    parts.append(S.line(AXIS_W, TOP + PLOT_H, width - 8, TOP + PLOT_H, stroke=S.MUTED))
    parts.append(S.text(8, 14, unit, class_="axis"))
    return "".join(parts)


def rtt_svg(pings: list[dict]) -> str:
    """pings: [{label, tip, min, avg, max, loss}] (ms; loss 0..1). One group of three bars
    per ping step; a step with no reply shows "no reply" instead of bars."""
    if not pings:
        return ""
    group_w, bar_w = 112, 27      # a bar fits its value label ("0.052")
    width = max(AXIS_W + 16 + len(pings) * group_w + 8, 300)    # room for the legend
    top_value = max((S.num(p.get(k)) or 0 for p in pings for k in ("min", "avg", "max")),
                    default=0) or 1.0
    ticks = S.nice_ticks(top_value)
    top_value = ticks[-1]
    parts = [_y_axis(ticks, top_value, "RTT (ms)", width)]
    base = TOP + PLOT_H
    colours = (("min", S.BLUE_LIGHT), ("avg", S.BLUE), ("max", S.BLUE_DARK))
    for i, p in enumerate(pings):
        gx = AXIS_W + 16 + i * group_w
        bars = []
        if all(S.num(p.get(k)) is None for k, _ in colours):
            bars.append(S.text(gx + 1.5 * bar_w, base - 8, "no reply", class_="bad",
                               text_anchor="middle"))
        for k, (key, colour) in enumerate(colours):
            v = S.num(p.get(key))
            if v is None:
                continue
            h = max(v / top_value * PLOT_H, 1)
            x = gx + k * bar_w
            bars.append(S.rect(x, base - h, bar_w - 2, h, tip=f"{key} {S.fmt(v, 3)} ms",
                               fill=colour, class_=f"bar {key}"))
            bars.append(S.text(x + bar_w / 2 - 1, base - h - 4, S.fmt(v, 3), class_="value",
                               text_anchor="middle"))
        loss = S.num(p.get("loss"))
        bars.append(S.text(gx + 1.5 * bar_w, base + 15, S.clip(p.get("label", ""), LABEL_CHARS),
                           class_="label", text_anchor="middle"))
        if loss is not None:
            bars.append(S.text(gx + 1.5 * bar_w, base + 28, f"loss {S.fmt(loss * 100, 1)}%",
                               class_="bad" if loss > 0 else "tick", text_anchor="middle"))
        parts.append(S.group("".join(bars), tip=p.get("tip") or p.get("label"), class_="ping"))
    leg, _ = S.legend([(c, k) for k, c in colours], AXIS_W + 16, base + 50)
    parts.append(leg)
    return S.svg(width, base + 60, "".join(parts), label="Ping round-trip times (ms)",
                 class_="chart rtt")


def _sparkline(x: float, y: float, w: float, h: float, intervals: list) -> str:
    """Per-interval Gbit/s as a polyline scaled to its own maximum (shape, not level: the bar
    above gives the level)."""
    pts = [(S.num(iv.get("t")), S.num(iv.get("gbps"))) for iv in intervals if isinstance(iv, dict)]
    pts = [(t, g) for t, g in pts if t is not None and g is not None]
    frame = S.rect(x, y, w, h, fill="#f7f9fb", stroke=S.LIGHT_GREY)
    if not pts:
        return frame
    t0, t1 = min(t for t, _ in pts), max(t for t, _ in pts)
    gmax = max(g for _, g in pts) or 1.0
    span = (t1 - t0) or 1.0
    coords = [(x + 3 + (t - t0) / span * (w - 6) if len(pts) > 1 else x + w / 2,
               y + h - 3 - g / gmax * (h - 6)) for t, g in pts]
    poly = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
    dots = "".join(S.rect(cx - 1.5, cy - 1.5, 3, 3, tip=f"t={S.fmt(t)} s: {S.fmt(g)} Gbit/s",
                          fill=S.BLUE_DARK)
                   for (cx, cy), (t, g) in zip(coords, pts))
    tip = "per-interval Gbit/s: " + ", ".join(S.fmt(g) for _, g in pts)
    body = frame + f'<polyline {S.attrs(points=poly, fill="none", stroke=S.BLUE, stroke_width=1.5)}/>'
    return S.group(body + dots, tip=tip, class_="spark")


def throughput_svg(runs: list[dict]) -> str:
    """runs: [{label, tip, gbps, intervals: [{t, gbps}], baseline}]. One bar per iperf step
    labelled with its Gbit/s (a baseline bar in grey), the per-interval values as a small
    line below it."""
    if not runs:
        return ""
    group_w, bar_w, spark_h = 120, 46, 30
    width = max(AXIS_W + 12 + len(runs) * group_w + 8, 460)     # room for the footnote
    top_value = max((S.num(r.get("gbps")) or 0 for r in runs), default=0) or 1.0
    ticks = S.nice_ticks(top_value)
    top_value = ticks[-1]
    base = TOP + PLOT_H
    parts = [_y_axis(ticks, top_value, "Gbit/s", width)]
    for i, r in enumerate(runs):
        gx = AXIS_W + 12 + i * group_w
        cx = gx + group_w / 2 - 6
        v = S.num(r.get("gbps"))
        body = []
        if v is None:
            body.append(S.text(cx, base - 8, "no result", class_="bad", text_anchor="middle"))
        else:
            h = max(v / top_value * PLOT_H, 1)
            body.append(S.rect(cx - bar_w / 2, base - h, bar_w, h, tip=f"{S.fmt(v, 3)} Gbit/s",
                               fill=S.MUTED if r.get("baseline") else S.BLUE, class_="bar"))
            body.append(S.text(cx, base - h - 5, f"{S.fmt(v, 2)} Gbit/s", class_="value",
                               text_anchor="middle"))
        body.append(S.text(cx, base + 15, S.clip(r.get("label", ""), LABEL_CHARS),
                           class_="label", text_anchor="middle"))
        body.append(_sparkline(gx + 4, base + 24, group_w - 20, spark_h, r.get("intervals") or []))
        parts.append(S.group("".join(body), tip=r.get("tip") or r.get("label"), class_="iperf"))
    parts.append(S.text(AXIS_W + 12, base + 24 + spark_h + 16,
                        "small lines: Gbit/s per interval (each scaled to its own peak)",
                        class_="tick"))
    return S.svg(width, base + spark_h + 50, "".join(parts), label="iperf throughput (Gbit/s)",
                 class_="chart throughput")
