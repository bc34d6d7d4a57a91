"""IPv4 and IPv6 in the report: the family labels, where two families' probe matrices of the
same pods disagree, and the side-by-side table of a run that measured both families.

Pure: results.json's steps in, text or an HTML table out. A measurement says its family in
`family` (4 or 6, results.json written since dual stack; older files have none, and then
nothing here labels or compares anything).
"""

from __future__ import annotations

from orchestrator.report import svg as S

NAMES = {4: "IPv4", 6: "IPv6"}
MAX_PAIRS = 6         # differing pairs spelled out; the rest are counted


def label(family) -> str:
    """"IPv4" / "IPv6" for a recorded family, "" for none (an older results.json)."""
    if isinstance(family, bool):
        return ""
    return NAMES.get(family, "")


def labels(families) -> str:
    """"IPv4 + IPv6" for a step's list of families ("" when none is recorded)."""
    names = [label(f) for f in families] if isinstance(families, list) else []
    return " + ".join(n for n in names if n)


def matrix_diff(a: dict, b: dict) -> list[tuple[str, str, object, object]] | None:
    """Pairs whose result differs between matrices a and b: [(src, dst, in a, in b)]; None
    when they did not probe the same pods (nothing to compare)."""
    pods = a.get("pods")
    if not isinstance(pods, list) or pods != b.get("pods"):
        return None
    ra, rb = a.get("allowed") or [], b.get("allowed") or []
    out = []
    for i, src in enumerate(pods):
        for j, dst in enumerate(pods):
            if i == j:
                continue
            va = _cell(ra, i, j)
            vb = _cell(rb, i, j)
            if va != vb:
                out.append((str(src), str(dst), va, vb))
    return out


def _cell(rows, i: int, j: int):
    row = rows[i] if i < len(rows) and isinstance(rows[i], list) else []
    return row[j] if j < len(row) else None


def _word(value) -> str:
    return {True: "allowed", False: "denied"}.get(value, "not probed")


def diff_text(a: dict, b: dict) -> str:
    """What a and b (two families' matrices of one port) say about each other, in words."""
    diff = matrix_diff(a, b)
    la, lb = label(a.get("family")) or "first", label(b.get("family")) or "second"
    if diff is None:
        return f"{la} and {lb} probed different pods"
    pairs = sum(1 for row in a.get("allowed") or [] if isinstance(row, list)
                for v in row if v is not None)
    if not diff:
        return f"{la} and {lb} agree on all {pairs} pairs"
    shown = ", ".join(f"{s} \u2192 {d} ({la} {_word(va)}, {lb} {_word(vb)})"
                      for s, d, va, vb in diff[:MAX_PAIRS])
    more = f" and {len(diff) - MAX_PAIRS} more" if len(diff) > MAX_PAIRS else ""
    return f"{la} and {lb} differ on {len(diff)} of {pairs} pairs: {shown}{more}"


def step_diffs(matrices: list[dict]) -> list[str]:
    """For one probe-matrix step: a sentence per protocol/port probed in several families."""
    by_port: dict = {}
    for m in matrices:
        if label(m.get("family")):
            by_port.setdefault((m.get("protocol"), m.get("port")), []).append(m)
    out = []
    for (proto, port), ms in by_port.items():
        for other in ms[1:]:
            out.append(f"{proto}/{port}: {diff_text(ms[0], other)}")
    return out


# -- the side-by-side table ----------------------------------------------------------------

def _items(step: dict) -> list[tuple[tuple, int, str, dict]]:
    """(what key, family, what in words, the measurement) of each family-tagged measurement
    of a step; the key is what must be the same for two measurements to be compared."""
    kind, m = step.get("type"), step.get("measurements")
    if not isinstance(m, dict):
        return []
    if kind == "probe-matrix":
        return [(("matrix", x.get("protocol"), x.get("port"), tuple(map(str, x.get("pods") or ()))),
                 x["family"], f"reachability {x.get('protocol')}/{x.get('port')}, "
                 f"{len(x.get('pods') or [])} pods", x)
                for x in m.get("matrices") or [] if isinstance(x, dict) and label(x.get("family"))]
    if not label(m.get("family")):
        return []
    pair = f"{m.get('src', '?')} \u2192 {m.get('dst', '?')}"
    if kind == "ping":
        return [(("ping", m.get("src"), m.get("dst")), m["family"], f"ping {pair}", m)]
    if kind == "iperf":
        return [(("iperf", m.get("src"), m.get("dst"), m.get("protocol"), m.get("parallel")),
                 m["family"], f"iperf3 {m.get('protocol', '')} {pair}", m)]
    if kind == "http":
        return [(("http", m.get("src"), m.get("dst"), m.get("requests")), m["family"],
                 f"HTTP {pair}", m)]
    return []


def _value(kind: str, m: dict) -> tuple[str, float | None]:
    """A cell's text and the number the ratio column divides (None: no ratio)."""
    if kind == "matrix":
        pairs = [v for row in m.get("allowed") or [] if isinstance(row, list)
                 for v in row if v is not None]
        return f"{sum(1 for v in pairs if v)}/{len(pairs)} allowed", None
    if kind == "ping":
        avg = S.num((m.get("rtt_ms") or {}).get("avg")) if isinstance(m.get("rtt_ms"), dict) \
            else None
        loss = S.num(m.get("loss"))
        text = (f"avg {S.fmt(avg, 3)} ms" if avg is not None else "no reply") + (
            f", loss {S.fmt(loss * 100, 1)}%" if loss is not None else "")
        return text, avg
    if kind == "iperf":
        g = S.num(m.get("gbps"))
        return f"{S.fmt(g, 2)} Gbit/s", g
    lat = m.get("latency_ms") if isinstance(m.get("latency_ms"), dict) else {}
    p50 = S.num(lat.get("p50"))
    return (f"{S.fmt(m.get('ok'))}/{S.fmt(m.get('requests'))} ok"
            + (f", p50 {S.fmt(p50, 3)} ms" if p50 is not None else "")), p50


def rows(steps: list[dict]) -> tuple[list[int], list[dict]]:
    """(families, rows) for the side-by-side table: every measurement of a kind (same pods,
    same port...) in each family, the n-th IPv4 one beside the n-th IPv6 one. Rows:
    {what, kind, cells: {family: (step index, measurement)}}, in order of first appearance."""
    seen: dict = {}
    out: list[dict] = []
    fams: set = set()
    for step in steps:
        for key, fam, what, m in _items(step):
            fams.add(fam)
            n = seen.setdefault((key, fam), 0)
            seen[(key, fam)] = n + 1
            row = next((r for r in out if r["key"] == key and r["n"] == n), None)
            if row is None:
                row = {"key": key, "n": n, "what": what, "kind": key[0], "cells": {}}
                out.append(row)
            row["cells"][fam] = (step.get("index", "?"), m)
    return sorted(fams), out


def table(steps: list[dict]) -> str:
    """The "IPv4 and IPv6" section's body, or "" unless the run measured two families."""
    fams, found = rows(steps)
    if len(fams) < 2:
        return ""
    ratio = fams == [4, 6]
    head = ["measurement"] + [NAMES[f] for f in fams] + (["IPv6 \u00f7 IPv4"] if ratio else [])
    body = []
    for r in found:
        cells = [S.esc(r["what"])]
        nums = {}
        for f in fams:
            if f not in r["cells"]:
                cells.append('<span class="muted">not measured</span>')
                continue
            index, m = r["cells"][f]
            text, nums[f] = _value(r["kind"], m)
            cells.append(f'{S.esc(text)} <span class="muted">(step #{S.esc(index)})</span>')
        if ratio:
            cells.append(S.esc(_compare(r, nums)))
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    th = "".join(f"<th>{S.esc(h)}</th>" for h in head)
    return ('<p class="caption">The same measurement in each family, side by side (the n-th '
            "IPv4 one beside the n-th IPv6 one of the same pods).</p>"
            f'<table class="families"><thead><tr>{th}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _compare(row: dict, nums: dict) -> str:
    if 4 not in row["cells"] or 6 not in row["cells"]:
        return "-"
    if row["kind"] == "matrix":
        diff = matrix_diff(row["cells"][4][1], row["cells"][6][1])
        if diff is None:
            return "different pods"
        return "same on every pair" if not diff else f"{len(diff)} pairs differ"
    a, b = nums.get(4), nums.get(6)
    if a is None or b is None or a == 0:
        return "-"
    return f"{S.fmt(b / a, 2)}\u00d7"
