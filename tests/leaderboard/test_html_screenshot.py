"""leaderboard.html with 20 variants uses the window's width, keeps rank and variant fixed when the main table
scrolls sideways and bolds each score column's best; screenshots at 1400 and 1920 px with headless Chromium
where it is installed (<tmp>/leaderboard-<width>.png)."""
import shutil
import subprocess

import pytest
from PIL import Image

from benchmark.leaderboard.command import main
from run_folders import twenty_variants

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


@pytest.fixture
def page(tmp_path):
    root = twenty_variants(tmp_path / "results")
    assert main([f"results_dir={root}", "bootstrap=0"]) == 0
    return root / "leaderboard.html"


def test_the_page_uses_the_window_and_bolds_the_best(page):
    html = page.read_text()
    assert "max-width: 1400px" not in html and "position: sticky; left: 0" in html
    assert "<table class='main'>" in html
    assert "<strong>80.9 ± 0.9</strong>" in html and "<strong>10.7 ± 0.9</strong>" not in html


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (Debian: apt-get install chromium)")
@pytest.mark.parametrize("width", [1400, 1920])
def test_screenshot(page, tmp_path, width):
    shot = tmp_path / f"leaderboard-{width}.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},1100",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    with Image.open(shot) as image:
        assert image.size == (width, 1100)
        pixels = image.convert("L").crop((width - 120, 150, width - 20, 600))
        assert pixels.getextrema()[0] < 128  # the table reaches the window's right side: text there
