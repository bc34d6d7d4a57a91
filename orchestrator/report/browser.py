"""Headless Chromium for the report: find the browser and its driver, open a page from
file://, photograph the whole page.

Side effects: starts chromium + chromedriver (Selenium owns both and `quit()` stops them,
also on error), reads the HTML file and writes the PNG. Needs the `report` extra (selenium)
and Debian's `chromium` + `chromium-driver`; `sudo make setup` installs all three. The
driver path is always given explicitly, so Selenium Manager never tries to download one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from orchestrator.errors import CalinetError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MAX_HEIGHT = 16384           # Chromium's largest capture; longer pages are cut there
INSTALL_HINT = "run `sudo make setup` (Debian packages chromium + chromium-driver, extra [report])"


class BrowserUnavailable(CalinetError):
    """Chromium, chromedriver or selenium is missing, or the browser did not start."""


def find_browser() -> tuple[str, str]:
    """(chromium binary, chromedriver) paths; BrowserUnavailable names what is missing.
    CALINET_CHROMIUM / CALINET_CHROMEDRIVER override the search."""
    browser = (shutil.which(os.environ["CALINET_CHROMIUM"]) if os.environ.get("CALINET_CHROMIUM")
               else next((p for p in map(shutil.which, BROWSERS) if p), None))
    driver = shutil.which(os.environ.get("CALINET_CHROMEDRIVER") or "chromedriver")
    missing = [n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p]
    if missing:
        raise BrowserUnavailable(f"{' and '.join(missing)} not found on PATH: {INSTALL_HINT}")
    return browser, driver


def unavailable_reason() -> str | None:
    """Why a browser cannot be driven here, or None when it can (for test skips)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"selenium is not installed: {INSTALL_HINT}"
    try:
        find_browser()
    except BrowserUnavailable as e:
        return str(e)
    return None


@contextlib.contextmanager
def open_browser(width: int = 1400, height: int = 900):
    """A headless Chromium WebDriver with the browser console log enabled; quits on exit."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        raise BrowserUnavailable(f"selenium is not installed ({e}): {INSTALL_HINT}") from e
    browser, driver_path = find_browser()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    # --no-sandbox: Chromium's sandbox refuses to run as root and needs user namespaces,
    # which containers and CI often lack; the page is our own file and runs no script.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--force-device-scale-factor=1", "--no-first-run",
                f"--window-size={width},{height}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        drv = webdriver.Chrome(options=opts, service=Service(executable_path=driver_path))
    except WebDriverException as e:
        raise BrowserUnavailable(f"{browser} did not start under {driver_path}: "
                                 f"{e.msg or e}") from e
    try:
        yield drv
    finally:
        drv.quit()


def file_url(path) -> str:
    return Path(path).resolve().as_uri()


def severe_console_entries(drv) -> list[dict]:
    """Browser console entries at level SEVERE (errors: failed loads, CSP violations)."""
    return [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]


def screenshot(html_path, png_path, width: int = 1400) -> Path:
    """Render `html_path` in headless Chromium at `width` CSS px and save the whole page
    (up to MAX_HEIGHT px tall) as PNG at `png_path`; returns the PNG's path."""
    src = Path(html_path)
    if not src.is_file():
        raise CalinetError(f"screenshot: {src} does not exist")
    out = Path(png_path)
    with open_browser(width, 900) as drv:
        drv.get(file_url(src))
        height = drv.execute_script(
            "return Math.ceil(Math.max(document.documentElement.scrollHeight,"
            " document.body ? document.body.scrollHeight : 0))")
        # The emulated viewport is exactly width x page height, so one capture holds the page
        # (a window resize would include browser chrome and depend on the headless mode).
        drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": int(width), "height": int(min(max(height or 0, 100), MAX_HEIGHT)),
            "deviceScaleFactor": 1, "mobile": False})
        png = drv.get_screenshot_as_png()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    return out
