"""``replay --report``: the HTML and its plots, opened in headless Chromium."""

import base64
import os
import re
import shutil
import subprocess
import sys

import pytest

from streams.cli import bundled

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PLOTS = {"fund.png", "adl_distance.png", "liquidations.png", "queue.png", "lights.png"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    rep = tmp_path_factory.mktemp("report")
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", str(bundled("cascade.jsonl")),
         "--out", str(out), "--report", str(rep), "--quiet"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "report:" in done.stderr
    return rep


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_the_report_is_one_self_contained_page_with_every_plot(report):
    assert {p.name for p in report.iterdir()} == PLOTS | {"index.html"}
    page = (report / "index.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(PLOTS)
    for image in images:
        width, height = _png_size(base64.b64decode(image))
        assert width > 500
        assert height > 300
    assert "http://" not in page
    assert "https://" not in page
    assert "episodes without a prior warning" in page


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="Debian chromium not installed"
)
def test_chromium_renders_the_report(report, tmp_path):
    assert CHROMIUM, "CI installs chromium (.ci/run)"
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         "--window-size=1280,2400", f"--screenshot={shot}", (report / "index.html").as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[:2] == (2400, 1280)
    # the plots were drawn: the page below the table is not one blank colour, and has the
    # plot colours (matplotlib's default blue line) in it
    lower = pixels[600:, :, :3]
    assert lower.std() > 0.05
    blue = (abs(lower[..., 0] - 0x1F / 255) < 0.05) & (abs(lower[..., 2] - 0xB4 / 255) < 0.05)
    assert blue.sum() > 500
