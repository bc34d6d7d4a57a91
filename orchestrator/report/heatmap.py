"""Reachability heatmap of one probe matrix: rows are sources, columns destinations; green
allowed, red denied, grey the pod itself (or a pair that was not probed); labels and legend.

Pure: one `measurements.matrices[]` entry of a probe-matrix step in, one SVG string out.
"""

from __future__ import annotations

from orchestrator.report import families
from orchestrator.report import svg as S

LABEL_CHARS = 28      # longer pod keys are clipped (the cell tooltips carry them in full)
ROT = 0.7071          # column labels are drawn at -45 degrees


def _cell_size(n: int) -> int:
    return 22 if n <= 16 else 16 if n <= 40 else 11


def matrix_label(matrix: dict) -> str:
    """"TCP/80" (protocol/port), "IPv6 TCP/80" with a recorded family: as the step's
    assertions name the matrix."""
    proto = str(matrix.get("protocol") or "?")
    port = matrix.get("port")
    what = f"{proto}/{port}" if port not in (None, "") else proto
    fam = families.label(matrix.get("family"))
    return f"{fam} {what}" if fam else what


def cell_state(value, same: bool) -> tuple[str, str, str]:
    """(css class, colour, words) of one matrix entry."""
    if value is True:
        return "allowed", S.GREEN, "allowed"
    if value is False:
        return "denied", S.RED, "denied"
    if same:
        return "self", S.GREY, "self (not probed)"
    return "unprobed", S.LIGHT_GREY, "not probed"


def heatmap_svg(matrix: dict, heading: str = "") -> str:
    """The heatmap SVG; `heading` (e.g. "step 3 probe all") prefixes its title."""
    pods = [str(p) for p in matrix.get("pods") or []]
    rows = matrix.get("allowed") if isinstance(matrix.get("allowed"), list) else []
    n, cell, what = len(pods), _cell_size(len(pods)), matrix_label(matrix)
    longest = max((len(S.clip(p, LABEL_CHARS)) for p in pods), default=1)
    text_w = longest * S.CHAR_W_11
    left = text_w + 30                     # row labels + the rotated "from" axis title
    top = text_w * ROT + 30                # rotated column labels + the "to" axis title
    grid = n * cell
    width = left + grid + text_w * ROT + 16
    counts = {"allowed": 0, "denied": 0, "self": 0, "unprobed": 0}
    parts = [S.text(left + grid / 2, 14, "to (destination)", class_="axis", text_anchor="middle"),
             S.text(12, top + grid / 2, "from (source)", class_="axis", text_anchor="middle",
                    transform=f"rotate(-90 12 {top + grid / 2:.1f})")]
    for i, src in enumerate(pods):
        y = top + i * cell
        parts.append(S.text(left - 6, y + cell / 2 + 4, S.clip(src, LABEL_CHARS), tip=src,
                            class_="label", text_anchor="end"))
        row = rows[i] if i < len(rows) and isinstance(rows[i], list) else []
        for j, dst in enumerate(pods):
            value = row[j] if j < len(row) else None
            cls, colour, words = cell_state(value, i == j)
            counts[cls] += 1
            parts.append(S.rect(left + j * cell, y, cell - 1, cell - 1,
                                tip=f"{src} \u2192 {dst}: {words} ({what})",
                                class_=f"cell {cls}", fill=colour))
    for j, dst in enumerate(pods):
        x, y = left + j * cell + cell / 2 + 3, top - 6
        parts.append(S.text(x, y, S.clip(dst, LABEL_CHARS), tip=dst, class_="label",
                            transform=f"rotate(-45 {x:.1f} {y:.1f})"))
    items = [(S.GREEN, f"allowed ({counts['allowed']})"),
             (S.RED, f"denied ({counts['denied']})"),
             (S.GREY, f"self ({counts['self']})")]
    if counts["unprobed"]:
        items.append((S.LIGHT_GREY, f"not probed ({counts['unprobed']})"))
    leg, leg_w = S.legend(items, left, top + grid + 24)
    parts.append(S.group(leg, class_="legend"))
    label = (f"{heading}: " if heading else "") + (
        f"reachability {what}, {n} pods: rows = source, columns = destination")
    return S.svg(max(width, left + leg_w + 8), top + grid + 36, "".join(parts),
                 label=label, class_="heatmap")
