"""`calinet node status` and `calinet routes NODE` text from an agent's status.json.

Pure. The node status is calicoctl's output byte for byte: "Calico process is running.",
then "IPv4 BGP status" and the table calicoctl draws with olekukonko/tablewriter (headers
centred, cells left-aligned, one space of padding, INFO wrapped at 30 columns by minimum
raggedness), then "IPv6 BGP status" / "No IPv6 peers found.". SINCE is BIRD's: the time of
day when the change happened today, else the date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

HEADERS = ("PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO")
ROUTE_HEADERS = ("PREFIX", "TYPE", "VIA", "SOURCE")
WRAP = 30           # tablewriter's default MaxColWidth
_PENALTY = 100000   # tablewriter's defaultPenalty for a line over the limit


def _wrap_words(words: Sequence[str], limit: int) -> list[str]:
    """tablewriter.WrapWords: minimum raggedness (sum of squared slack, last line free)."""
    n = len(words)
    limit = max([limit, *map(len, words)])   # WrapString: a word never breaks
    length = [[0] * n for _ in range(n)]
    for i in range(n):
        length[i][i] = len(words[i])
        for j in range(i + 1, n):
            length[i][j] = length[i][j - 1] + 1 + len(words[j])
    cost, brk = [2 ** 31 - 1] * n, [0] * n
    for i in range(n - 1, -1, -1):
        if length[i][n - 1] <= limit:
            cost[i], brk[i] = 0, n
            continue
        for j in range(i + 1, n):
            slack = limit - length[i][j - 1]
            c = slack * slack + cost[j] + (_PENALTY if length[i][j - 1] > limit else 0)
            if c < cost[i]:
                cost[i], brk[i] = c, j
    lines, i = [], 0
    while i < n:
        lines.append(" ".join(words[i:brk[i]]))
        i = brk[i]
    return lines


def _cell(text: str) -> tuple[list[str], int]:
    """A cell's lines and the column width it needs (tablewriter.parseDimension)."""
    width = min(len(text), WRAP)
    words = text.split(" ")
    width = max([width, *map(len, words)])
    return (_wrap_words(words, width) if text else [""]), width


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A tablewriter box as calicoctl prints it."""
    cells = [[_cell(str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, (_lines, w) in enumerate(row):
            widths[i] = max(widths[i], w)
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+\n"
    out = [rule, "|" + "|".join(_centre(h, w) for h, w in zip(headers, widths)) + "|\n", rule]
    for row in cells:
        height = max(len(lines) for lines, _w in row)
        for k in range(height):
            parts = [f" {(lines[k] if k < len(lines) else ''):<{w}} "
                     for (lines, _w), w in zip(row, widths)]
            out.append("|" + "|".join(parts) + "|\n")
    out.append(rule)
    return "".join(out)


def _centre(text: str, width: int) -> str:
    gap = width - len(text)
    left = gap // 2
    return " " * (left + 1) + text + " " * (gap - left + 1)


def since(t: float | None, now: float, tz: dt.tzinfo | None = None) -> str:
    """BIRD's time format: HH:MM:SS for today, YYYY-MM-DD before (local time by default)."""
    if t is None:
        return ""
    when = dt.datetime.fromtimestamp(t, tz)
    if when.date() == dt.datetime.fromtimestamp(now, tz).date():
        return when.strftime("%H:%M:%S")
    return when.strftime("%Y-%m-%d")


def render_node_status(status: Mapping | None, now: float, tz: dt.tzinfo | None = None) -> str:
    """`calicoctl node status` from a status.json (None: the agent never ran)."""
    if not status or not status.get("running", True):
        return "Calico process is not running.\n"
    peers = status.get("peers") or []
    out = "Calico process is running.\n"
    for family in ("IPv4", "IPv6"):
        mine = [p for p in peers if (":" in p["ip"]) == (family == "IPv6")]
        out += f"\n{family} BGP status\n"
        if mine:
            out += table(HEADERS, [(p["ip"], p["type"], p["state"],
                                    since(p.get("since"), now, tz), p.get("info", ""))
                                   for p in mine])
        else:
            out += f"No {family} peers found.\n"
    return out


def render_routes(status: Mapping | None) -> str:
    """`calinet routes NODE`: the node's proto bird routes and where each came from."""
    if not status:
        return "No routes: the node's BGP agent has not run.\n"
    rows = [(r["prefix"], r["type"],
             (r.get("via") or "-") + (f" dev {r['dev']}" if r.get("dev") else ""),
             _source(r.get("source", ""))) for r in status.get("routes") or []]
    if not rows:
        return "No routes.\n"
    return table(ROUTE_HEADERS, rows)


def _source(source: str) -> str:
    return "local block" if source == "local" else source
