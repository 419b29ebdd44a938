"""The report and `mlflow ui` as a user sees them: Debian's chromium, headless, driven by
Selenium (scripts/screenshot.py). Skipped, with the reason, where chromium or chromedriver is
not installed (`make test-all` installs them)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
from screenshot import chromium_paths, headless_chromium  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_paths() is None, reason="chromium / chromedriver not installed "
                       "(apt-get install chromium chromium-driver; make test-all does)"),
]
MODELS = ("edm_fmnist", "vae_fmnist", "gan_rings")


@pytest.fixture
def browser():
    driver = headless_chromium()
    yield driver
    driver.quit()


def test_report_shows_every_models_card_and_loaded_images(tmp_path, browser):
    from selenium.webdriver.common.by import By

    from genlab.tracking.figures import save_grid
    from genlab.tracking.report import build_report

    (tmp_path / "metrics/eval").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(MODELS):
        (tmp_path / f"metrics/eval/{name}.json").write_text(json.dumps({"sample_fd": 20.0 + i}))
        (tmp_path / "figures" / name).mkdir(parents=True)
        save_grid(rng.integers(0, 256, (4, 1, 28, 28), dtype=np.uint8),
                  tmp_path / "figures" / name / "samples.png", nrow=2)
    out = tmp_path / "reports"
    build_report(tmp_path / "metrics", tmp_path / "figures", out / "summary.csv", out,
                 model_params={m: ("family", {"lr": 0.001}) for m in MODELS}, experiments=None)

    t0 = time.perf_counter()
    browser.get((out / "index.html").as_uri())
    cards = browser.find_elements(By.CSS_SELECTOR, "section.card")
    assert sorted(c.get_attribute("id") for c in cards) == sorted(MODELS)
    for card in cards:
        images = card.find_elements(By.TAG_NAME, "img")
        assert images, card.get_attribute("id")
        for img in images:  # decoded and laid out: a broken data URI has naturalWidth 0
            assert browser.execute_script("return arguments[0].complete && "
                                          "arguments[0].naturalWidth", img) > 0
            assert img.size["width"] > 0 and img.size["height"] > 0
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"report: {len(cards)} cards checked in {time.perf_counter() - t0:.1f} s; {shot}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, seconds: float) -> None:
    end = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > end:
                raise
        time.sleep(0.5)


def test_mlflow_ui_lists_the_logged_run(tmp_path, browser):
    import mlflow
    from selenium.webdriver.support.ui import WebDriverWait

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    exp = mlflow.set_experiment("genlab-browser-test")
    with mlflow.start_run(run_name="train-diffusion@edm_fmnist"):
        mlflow.log_metric("train_loss", 0.5, step=1)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host",
         "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", 120)
        browser.get(f"http://127.0.0.1:{port}/#/experiments/{exp.experiment_id}/runs")
        WebDriverWait(browser, 60).until(
            lambda d: "train-diffusion@edm_fmnist" in d.page_source)
        shot = tmp_path / "mlflow.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        server.terminate()
        server.wait(timeout=30)
