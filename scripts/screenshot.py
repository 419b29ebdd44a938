"""Open a page in Debian's chromium, headless, through Selenium, and save a screenshot:
`python scripts/screenshot.py reports/index.html docs/img/report.png [--width 1200]`.
Also the browser helper of tests/browser (`headless_chromium`)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser")


def chromium_paths() -> tuple[str, str] | None:
    """(browser, chromedriver) of the system's Chromium, None when either is missing."""
    browser = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def headless_chromium(width: int = 1200, height: int = 900):
    """A Selenium WebDriver on the system Chromium (never a downloaded browser)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise RuntimeError("chromium and chromedriver are not installed "
                           "(Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(paths[1]), options=options)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("page", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=900)
    args = p.parse_args(argv)
    if not args.page.is_file():
        print(f"screenshot: {args.page} is missing (make repro writes reports/index.html)",
              file=sys.stderr)
        return 2
    driver = headless_chromium(args.width, args.height)
    try:
        driver.get(args.page.resolve().as_uri())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
    print(f"{args.out}: {args.page} at {args.width}x{args.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
