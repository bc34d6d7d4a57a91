"""SVG building blocks for the HTML report: escaping, a few elements, number formatting,
axis ticks and the shared palette.

Pure: values in, markup strings out. Every piece of text from results.json goes through
`esc`, so a hostile pod name stays text in both the HTML and the (XML) SVG parsers.
"""

from __future__ import annotations

import html
import math
import re

SVG_NS = "http://www.w3.org/2000/svg"

# Palette shared by charts, tables and the legend (colour-blind safe enough: green/red
# always come with a text label or a tooltip too).
GREEN = "#2f9e55"
RED = "#d64541"
GREY = "#c3c8cf"
LIGHT_GREY = "#e6e9ed"
INK = "#1f2933"
MUTED = "#66727f"
BLUE = "#3b7dd8"
BLUE_LIGHT = "#9cc0f0"
BLUE_DARK = "#1f4f99"
ORANGE = "#e0801f"
CHIP = "#e5effc"

# Average advance of a character at the report's SVG font sizes; used only to size label
# gutters, so an approximation is enough (text is never measured in a pure module).
CHAR_W_11 = 6.4
CHAR_W_10 = 5.9

# XML 1.0 forbids most C0 controls and lone surrogates; html.escape leaves them in, and
# ElementTree (and the browser's SVG parser) would then reject the whole picture.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def esc(value) -> str:
    """`value` as text safe inside HTML/XML element content and quoted attributes."""
    return html.escape(_XML_BAD.sub("\ufffd", str(value)), quote=True)


def num(value) -> float | None:
    """A finite number from JSON, else None (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def fmt(value, digits: int = 2) -> str:
    """Compact number: 12.9, 0.05, 1200; "-" when missing."""
    v = num(value)
    if v is None:
        return "-"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    text = f"{v:.{digits}f}".rstrip("0").rstrip(".")
    # A tiny non-zero value (0.004 ms) must not print as "0".
    return text if float(text) != 0 else f"{v:.2g}"


def clip(text, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis (the full text goes in a <title>)."""
    s = str(text)
    return s if len(s) <= limit else s[: max(limit - 1, 1)] + "\u2026"


def attrs(**kw) -> str:
    """Attribute list; `class_` -> class, `font_size` -> font-size; None values dropped."""
    out = []
    for key, value in kw.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        if isinstance(value, float):
            value = round(value, 2)
        out.append(f'{name}="{esc(value)}"')
    return " ".join(out)


def title(text) -> str:
    return f"<title>{esc(text)}</title>"


def rect(x, y, w, h, tip=None, **kw) -> str:
    a = attrs(x=x, y=y, width=max(w, 0), height=max(h, 0), **kw)
    return f"<rect {a}>{title(tip)}</rect>" if tip is not None else f"<rect {a}/>"


def text(x, y, content, tip=None, **kw) -> str:
    inner = esc(content) + (title(tip) if tip is not None else "")
    return f"<text {attrs(x=x, y=y, **kw)}>{inner}</text>"


def line(x1, y1, x2, y2, **kw) -> str:
    return f"<line {attrs(x1=x1, y1=y1, x2=x2, y2=y2, **kw)}/>"


def group(body: str, tip=None, **kw) -> str:
    a = attrs(**kw)
    return f"<g{' ' + a if a else ''}>{title(tip) if tip is not None else ''}{body}</g>"


def svg(width, height, body: str, *, label: str, class_: str) -> str:
    """A complete inline <svg>: fixed pixel size (CSS may scale it down), a viewBox, and
    an accessible name from `label` (also its tooltip)."""
    w, h = math.ceil(width), math.ceil(height)
    head = attrs(xmlns=SVG_NS, class_=class_, width=w, height=h, viewBox=f"0 0 {w} {h}",
                 role="img", aria_label=label)
    return f"<svg {head}>{title(label)}{body}</svg>"


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values 0..>=top (1/2/5 x 10^k steps), at most about `count` + 1 of them."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def legend(items, x: float, y: float, gap: float = 16) -> tuple[str, float]:
    """A row of (colour, label) swatches starting at (x, y baseline); returns (markup, width)."""
    parts, cx = [], x
    for colour, label in items:
        parts.append(rect(cx, y - 9, 11, 11, fill=colour, rx=2))
        parts.append(text(cx + 15, y, label, class_="legend"))
        cx += 15 + len(str(label)) * CHAR_W_11 + gap
    return "".join(parts), cx - x
