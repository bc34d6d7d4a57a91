"""report.html in a real browser: the sample report opened from file:// in headless Chromium
(Selenium) logs no console errors, runs no script, draws its heatmaps with a real size, and
`screenshot()` writes a full-width PNG. A planted external image proves the console check
sees what the Content-Security-Policy blocks. Skips when chromium, chromedriver or selenium
is missing (`sudo make setup` installs them)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from orchestrator.errors import CalinetError
from orchestrator.report import browser, render

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "report" / "sample_results.json"
REASON = browser.unavailable_reason()

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(REASON is not None, reason=f"browser check: {REASON}")]


@pytest.fixture
def report(tmp_path) -> Path:
    path = tmp_path / "report.html"
    path.write_text(render(json.loads(FIXTURE.read_text())), encoding="utf-8")
    return path


def test_report_renders_without_console_errors(report):
    from selenium.webdriver.common.by import By

    with browser.open_browser(1400, 900) as drv:
        drv.get(browser.file_url(report))
        assert drv.title == "calinet: rack-failover (failed)"
        assert browser.severe_console_entries(drv) == []
        assert drv.execute_script("return document.scripts.length") == 0
        ids = [s.get_attribute("id") for s in drv.find_elements(By.TAG_NAME, "section")]
        assert ids == ["topology", "assertions", "steps", "reachability", "rtt", "throughput",
                       "http", "bgp", "pcaps"]
        maps = drv.find_elements(By.CSS_SELECTOR, "svg.heatmap")
        assert len(maps) == 3
        for m in maps:
            assert m.size["width"] > 100 and m.size["height"] > 100, m.size
        # the cells themselves are laid out (not just the svg box): 25 + 16 + 16
        boxes = drv.execute_script(
            "return Array.from(document.querySelectorAll('svg.heatmap rect.cell'))"
            ".map(r => { const b = r.getBoundingClientRect(); return [b.width, b.height]; })")
        assert len(boxes) == 57 and all(w > 5 and h > 5 for w, h in boxes)
        # the hostile pod name is text on the page, not an element
        text = drv.find_element(By.ID, "topology").get_attribute("textContent")
        assert "pod demo/<script>alert(1)</script>" in text


def test_console_check_sees_blocked_external_loads(report, tmp_path):
    # A report that tried to load something would show up: the CSP blocks it (nothing is
    # fetched) and Chromium logs the refusal at SEVERE.
    planted = tmp_path / "planted.html"
    planted.write_text(report.read_text().replace(
        "</footer>", '</footer><img src="http://127.0.0.1:9/x.png" alt="">'), encoding="utf-8")
    with browser.open_browser(1000, 700) as drv:
        drv.get(browser.file_url(planted))
        severe = browser.severe_console_entries(drv)
    assert any("127.0.0.1:9" in e.get("message", "") for e in severe), severe


def test_screenshot_writes_a_full_page_png(report, tmp_path):
    png = browser.screenshot(report, tmp_path / "shots" / "report.png", width=1400)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = struct.unpack(">II", data[16:24])        # IHDR
    assert width == 1400 and height > 2000                     # the whole page, not a viewport


def test_screenshot_of_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CalinetError, match="does not exist"):
        browser.screenshot(tmp_path / "nope.html", tmp_path / "x.png")
