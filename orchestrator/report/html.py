"""report.html: one self-contained HTML page from a results.json dict.

Pure: `render(results)` returns text and touches nothing. The page loads nothing (inline CSS,
inline SVG pictures, no scripts, no fonts) and says so to the browser with a
Content-Security-Policy, so it opens the same from file://, a mail attachment or a CI artifact.
Sections, in order: header, topology, assertions, steps, IPv4 and IPv6 side by side,
reachability heatmaps, ping RTT, iperf throughput, HTTP, BGP timeline, packet captures; a
section with no data is left out. Measurements that record their IP family are labelled with
it (IPv4, IPv6) wherever they appear.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from orchestrator.errors import ValidationError
from orchestrator.report import charts, families, heatmap, timeline, topology
from orchestrator.report import svg as S
from orchestrator.report.style import CSS

# Steps that break or repair something on purpose (orchestrator.experiment.schema's names):
# vertical lines on the BGP timeline when the timeline itself has no "fault" events.
FAULT_STEP_TYPES = frozenset({"fail-node", "restore-node", "link-down", "link-up",
                              "kill-speaker"})
# iperf-baseline (two bare namespaces on a veth pair) is drawn next to the pod runs as the
# ceiling they are compared with.
THROUGHPUT_STEP_TYPES = ("iperf", "iperf-baseline")
LONG_VALUE = 120

# Nothing may load: no network, no file besides this one; inline <style> and the empty
# data: favicon (which stops the browser asking for /favicon.ico) are all that is allowed.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _dicts(value) -> list[dict]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _step_name(step: dict) -> str:
    return f"#{step.get('index', '?')} {step.get('name') or step.get('type', '')}"


def _value(value) -> str:
    """An assertion's expected/actual value: short ones inline, long ones folded."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) <= LONG_VALUE:
        return f"<code>{S.esc(text)}</code>"
    return (f"<details><summary><code>{S.esc(S.clip(text, 60))}</code></summary>"
            f"<pre>{S.esc(text)}</pre></details>")


def _ok_cell(ok) -> str:
    if ok is True:
        return '<td class="ok">\u2713 ok</td>'
    if ok is False:
        return '<td class="fail">\u2717 failed</td>'
    return '<td class="muted">-</td>'


def _row_class(ok) -> str:
    return {True: ' class="ok"', False: ' class="fail"'}.get(ok, "")


def _table(head: list[str], rows: list[str], class_: str) -> str:
    th = "".join(f"<th>{S.esc(h)}</th>" for h in head)
    return (f'<table class="{class_}"><thead><tr>{th}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _section(key: str, heading: str, body: str) -> tuple[str, str, str]:
    return key, heading, f'<section id="{key}"><h2>{S.esc(heading)}</h2>{body}</section>'


def _figure(svg_markup: str) -> str:
    return f'<div class="figure">{svg_markup}</div>'


def _header(r: dict, steps: list, assertions: list) -> str:
    exp, host = _dict(r.get("experiment")), _dict(r.get("host"))
    passed = r.get("passed")
    badge = {True: ("pass", "PASSED"), False: ("fail", "FAILED")}.get(passed, ("unknown", "UNKNOWN"))
    failed_steps = sum(1 for s in steps if s.get("ok") is False)
    failed_asserts = sum(1 for a in assertions if a.get("ok") is False)
    meta = [("started", r.get("started")),
            ("duration", f"{S.fmt(r.get('seconds'))} s" if S.num(r.get("seconds")) is not None else None),
            ("seed", exp.get("seed")), ("experiment", exp.get("path")),
            ("topology", _dict(r.get("topology")).get("name")),
            ("pod families", ", ".join(str(f) for f in _dict(r.get("topology")).get("ipFamilies")
                                       or [])),
            ("steps", f"{len(steps)} ({failed_steps} failed)" if steps else None),
            ("assertions", f"{len(assertions)} ({failed_asserts} failed)" if assertions else None)]
    facts = "".join(f'<span class="kv"><span class="k">{S.esc(k)}</span> <b>{S.esc(v)}</b></span>'
                    for k, v in meta if v not in (None, ""))
    versions = " \u00b7 ".join(f"{S.esc(k)} <b>{S.esc(v)}</b>"
                               for k, v in _dict(r.get("versions")).items())
    flags = " \u00b7 ".join(f"{S.esc(k)} <b>{'yes' if v else 'no'}</b>" for k, v in host.items()
                           if isinstance(v, bool))
    notes = [str(n) for n in host.get("notes") or []] if isinstance(host.get("notes"), list) else []
    out = [f'<header><h1>{S.esc(exp.get("name") or "experiment")} '
           f'<span class="badge {badge[0]}">{badge[1]}</span></h1>']
    if exp.get("description"):
        out.append(f'<p class="desc">{S.esc(exp["description"])}</p>')
    out.append(f'<div class="meta">{facts}</div>')
    if versions:
        out.append(f'<p class="versions">versions: {versions}</p>')
    if flags:
        out.append(f'<p class="versions">host features: {flags}</p>')
    if notes:
        items = "".join(f"<li>{S.esc(x)}</li>" for x in notes)
        out.append(f'<ul class="notes">{items}</ul>')
    out.append("</header>")
    return "".join(out)


def _topology(r: dict) -> str:
    topo = _dict(r.get("topology"))
    picture = topology.topology_svg(topo, _dicts(r.get("pods")))
    if not picture:
        return ""
    nodes, pods = _dicts(topo.get("nodes")), _dicts(r.get("pods"))
    racks = {str(n.get("rack")) for n in nodes if n.get("rack")}
    underlay = " and ".join(str(topo[k]) for k in ("underlay", "underlay6") if topo.get(k))
    fams = ", ".join(str(f) for f in topo.get("ipFamilies") or [])
    caption = (f"{len(nodes)} nodes" + (f" in {len(racks)} racks" if racks else "")
               + f", {len(pods)} pods" + (f" ({fams})" if fams else "")
               + (f"; underlay {underlay}" if underlay else ""))
    return f'<p class="caption">{S.esc(caption)}</p>{_figure(picture)}'


def _assertions(assertions: list) -> str:
    if not assertions:
        return ""
    rows = [f"<tr{_row_class(a.get('ok'))}><td>{S.esc(a.get('step', ''))}</td>"
            f"<td>{S.esc(a.get('expr', ''))}</td>{_ok_cell(a.get('ok'))}"
            f"<td>{S.esc(a.get('message') or '')}</td>"
            f"<td>{_value(a.get('expected'))}</td><td>{_value(a.get('actual'))}</td></tr>"
            for a in assertions]
    return _table(["step", "assertion", "result", "message", "expected", "actual"], rows,
                  "assertions")


def _steps(steps: list) -> str:
    if not steps:
        return ""
    # A family column once any step records one (results.json from before dual stack: none).
    fam = any(families.labels(s.get("families")) for s in steps)
    rows = [f"<tr{_row_class(s.get('ok'))}><td>{S.esc(s.get('index', ''))}</td>"
            f"<td><code>{S.esc(s.get('type', ''))}</code></td><td>{S.esc(s.get('name') or '')}</td>"
            + (f"<td>{S.esc(families.labels(s.get('families')))}</td>" if fam else "")
            + f'<td class="num">{S.fmt(s.get("t"))}</td><td class="num">{S.fmt(s.get("seconds"))}</td>'
            f"{_ok_cell(s.get('ok'))}<td class=\"error\">{S.esc(s.get('error') or '')}</td></tr>"
            for s in steps]
    return _table(["#", "type", "name"] + (["family"] if fam else [])
                  + ["t (s)", "seconds", "ok", "error"], rows, "steps")


def _matrices(steps: list) -> str:
    out = []
    for s in steps:
        if s.get("type") != "probe-matrix":
            continue
        matrices = _dicts(_dict(s.get("measurements")).get("matrices"))
        for m in matrices:
            what = heatmap.matrix_label(m)
            heading = f"step {_step_name(s)} \u00b7 {what}"
            took = f" \u00b7 probed in {S.fmt(m.get('seconds'))} s" if S.num(m.get("seconds")) is not None else ""
            out.append(f'<div class="matrix"><h3>{S.esc(heading)}{S.esc(took)}</h3>'
                       f"{_figure(heatmap.heatmap_svg(m, heading))}</div>")
        # A step that probed several families: do they agree, pair by pair?
        for line in families.step_diffs(matrices):
            out.append(f'<p class="caption family-diff">step {S.esc(_step_name(s))} \u00b7 '
                       f"{S.esc(line)}</p>")
    return f'<div class="matrices">{"".join(out)}</div>' if out else ""


def _fam_prefix(m: dict) -> str:
    """"IPv6 " before a chart label when the measurement records its family."""
    fam = families.label(m.get("family"))
    return f"{fam} " if fam else ""


def _pair(m: dict) -> str:
    return f"{m.get('src', '?')} \u2192 {m.get('dst', '?')}"


def _rtt(steps: list) -> str:
    pings = []
    for s in steps:
        m = _dict(s.get("measurements"))
        if s.get("type") != "ping" or not m:
            continue
        rtt = _dict(m.get("rtt_ms"))
        dst_ip = f" ({m['dst_ip']})" if m.get("dst_ip") else ""
        pings.append({"label": f"#{s.get('index', '?')} {_fam_prefix(m)}{m.get('dst', '')}",
                      "tip": f"{_step_name(s)}: {_fam_prefix(m)}{_pair(m)}{dst_ip}, "
                             f"{m.get('received', '?')}/{m.get('sent', '?')} replies",
                      "min": rtt.get("min"), "avg": rtt.get("avg"), "max": rtt.get("max"),
                      "loss": m.get("loss")})
    return _figure(charts.rtt_svg(pings)) if pings else ""


def _throughput(steps: list) -> str:
    runs = []
    for s in steps:
        m = _dict(s.get("measurements"))
        if s.get("type") not in THROUGHPUT_STEP_TYPES or not m:
            continue
        if s.get("type") == "iperf-baseline":
            label = f"#{s.get('index', '?')} baseline"
            tip = f"{_step_name(s)}: {m.get('what', 'baseline')}"
        else:
            label = f"#{s.get('index', '?')} {_fam_prefix(m)}{m.get('dst', '')}"
            tip = f"{_step_name(s)}: {_fam_prefix(m)}{_pair(m)} {m.get('protocol', '')}"
        tip += (f", {m.get('duration', '?')} s, {m.get('parallel', 1)} streams"
                + (f", {m['retransmits']} retransmits" if "retransmits" in m else ""))
        runs.append({"label": label, "tip": tip, "baseline": s.get("type") == "iperf-baseline",
                     "gbps": m.get("gbps"), "intervals": _dicts(m.get("intervals"))})
    return _figure(charts.throughput_svg(runs)) if runs else ""


def _http(steps: list) -> str:
    rows = []
    fam = any(families.label(_dict(s.get("measurements")).get("family"))
              for s in steps if s.get("type") == "http")
    for s in steps:
        m = _dict(s.get("measurements"))
        if s.get("type") != "http" or not m:
            continue
        lat, codes = _dict(m.get("latency_ms")), _dict(m.get("codes"))
        ok = s.get("ok") is not False and m.get("ok") == m.get("requests")
        code_text = ", ".join(f"{k}\u00d7{v}" for k, v in sorted(codes.items(), key=lambda kv: str(kv[0])))
        cells = [S.esc(_step_name(s)), S.esc(m.get("src", "")), f"<code>{S.esc(m.get('url', ''))}</code>",
                 S.fmt(m.get("requests")), S.fmt(m.get("ok")), S.esc(code_text),
                 S.fmt(lat.get("p50")), S.fmt(lat.get("p95")), S.fmt(lat.get("max"))]
        if fam:
            cells.insert(2, S.esc(families.label(m.get("family"))))
        rows.append(f"<tr{_row_class(ok)}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not rows:
        return ""
    return _table(["step", "from"] + (["family"] if fam else []) + [
        "url", "requests", "ok", "codes", "p50 ms", "p95 ms", "max ms"], rows, "http")


def _faults(events: list, steps: list) -> list[tuple[float, str]]:
    # The timeline's own "fault" events are the record of the fault steps; steps are the
    # fallback for a run whose BGP monitor did not log them.
    recorded = [(S.num(e.get("t")), f"{e.get('event', 'fault')}" + (f" ({e['node']})" if e.get("node") else ""))
                for e in events if e.get("kind") == "fault" and S.num(e.get("t")) is not None]
    if recorded:
        return recorded
    out = []
    for s in steps:
        if s.get("type") in FAULT_STEP_TYPES and S.num(s.get("t")) is not None:
            node = _dict(s.get("measurements")).get("node")
            out.append((S.num(s["t"]), f"{s['type']}" + (f" {node}" if node else "")))
    return out


def _bgp(r: dict, steps: list) -> str:
    events = _dicts(r.get("bgp_timeline"))
    if not events:
        return ""
    order = [str(n.get("name")) for n in _dicts(_dict(r.get("topology")).get("nodes"))]
    picture = timeline.bgp_timeline_svg(events, _faults(events, steps), order,
                                        S.num(r.get("seconds")) or 0.0)
    return _figure(picture) if picture else ""


def relative_href(path) -> str | None:
    """A link target for a file next to report.html, or None when `path` is not a plain
    relative path (a scheme, an absolute path or '..' would point outside the run)."""
    p = str(path)
    first = p.split("/", 1)[0]
    if not p or p.startswith(("/", "\\")) or ":" in first or ".." in p.split("/"):
        return None
    return quote(p, safe="/")


def _pcaps(r: dict, steps: list) -> str:
    pcaps = _dicts(r.get("pcaps"))
    if not pcaps:
        return ""
    packets = {str(_dict(s.get("measurements")).get("file")): _dict(s.get("measurements")).get("packets")
               for s in steps if s.get("type") == "capture"}
    rows = []
    for p in pcaps:
        f = str(p.get("file", ""))
        href = relative_href(f)
        link = f'<a href="{S.esc(href)}">{S.esc(f)}</a>' if href else f"<code>{S.esc(f)}</code>"
        rows.append(f"<tr><td>{S.esc(p.get('step', ''))}</td><td>{S.esc(p.get('interface', ''))}</td>"
                    f"<td>{link}</td><td class=\"num\">{S.fmt(packets.get(f))}</td></tr>")
    return ('<p class="caption">Files are relative to this report; open them with Wireshark '
            "or <code>tcpdump -r</code>.</p>"
            + _table(["step", "interface", "file", "packets"], rows, "pcaps"))


def render(results: dict) -> str:
    """The whole report page for one results.json document (format 1)."""
    if not isinstance(results, dict):
        raise ValidationError("must be a JSON object (results.json format 1)", obj="results")
    steps, assertions = _dicts(results.get("steps")), _dicts(results.get("assertions"))
    bodies = [("topology", "Topology", _topology(results)),
              ("assertions", "Assertions", _assertions(assertions)),
              ("steps", "Steps", _steps(steps)),
              ("families", "IPv4 and IPv6", families.table(steps)),
              ("reachability", "Reachability", _matrices(steps)),
              ("rtt", "Ping round-trip time", _rtt(steps)),
              ("throughput", "Throughput", _throughput(steps)),
              ("http", "HTTP", _http(steps)),
              ("bgp", "BGP convergence", _bgp(results, steps)),
              ("pcaps", "Packet captures", _pcaps(results, steps))]
    sections = [_section(key, heading, body) for key, heading, body in bodies if body]
    nav = " ".join(f'<a href="#{key}">{S.esc(h)}</a>' for key, h, _ in sections)
    name = _dict(results.get("experiment")).get("name") or "experiment"
    status = {True: "passed", False: "failed"}.get(results.get("passed"), "unknown")
    version = _dict(results.get("versions")).get("calinet", "")
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>calinet: {S.esc(name)} ({status})</title><style>{CSS}</style></head><body>",
        _header(results, steps, assertions),
        f"<nav>{nav}</nav>" if nav else "",
        "".join(body for _, _, body in sections),
        f'<footer>calinet {S.esc(version)} \u00b7 results.json format '
        f'{S.esc(results.get("format", "?"))}</footer>',
        "</body></html>\n",
    ])
