"""`python -m orchestrator.report RESULTS.json [-o report.html] [--screenshot report.png]`:
write report.html for a run (next to results.json by default) and optionally photograph it.

Side effects: reads results.json, writes the HTML file, and with --screenshot starts
headless Chromium (orchestrator.report.browser) and writes a PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orchestrator.errors import CalinetError
from orchestrator.report.html import render


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orchestrator.report",
                                 description="Render report.html from a calinet results.json")
    ap.add_argument("results", help="results.json written by `calinet run`")
    ap.add_argument("-o", "--output", help="HTML file (default: report.html beside RESULTS)")
    ap.add_argument("--screenshot", metavar="PNG", help="also save a full-page PNG of it")
    ap.add_argument("--width", type=int, default=1400, help="screenshot width in px")
    args = ap.parse_args(argv)
    src = Path(args.results)
    out = Path(args.output) if args.output else src.with_name("report.html")
    try:
        results = json.loads(src.read_text(encoding="utf-8"))
        out.write_text(render(results), encoding="utf-8")
        print(f"wrote {out}")
        if args.screenshot:
            from orchestrator.report.browser import screenshot
            print(f"wrote {screenshot(out, args.screenshot, width=args.width)}")
    except (OSError, ValueError, CalinetError) as e:
        print(f"calinet report: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
