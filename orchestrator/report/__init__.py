"""The experiment report: `render(results) -> str` turns a results.json dict into one
self-contained report.html (pure); `orchestrator.report.browser.screenshot` photographs it
in headless Chromium (needs the `report` extra and Debian's chromium + chromium-driver).

`python -m orchestrator.report results.json [-o report.html] [--screenshot report.png]`
does both from the command line.
"""

from orchestrator.report.html import render

__all__ = ["render"]
