"""``replay --report``: the HTML and its plots, opened in headless Chromium."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from streams.cli import bundled

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PLOTS = {
    "fund.png",
    "adl_distance.png",
    "liquidations.png",
    "queue.png",
    "lights.png",
    "second_opinion.png",
}


@pytest.fixture(scope="module")
def outputs_and_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    rep = tmp_path_factory.mktemp("report")
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", str(bundled("cascade.jsonl")),
         "--out", str(out), "--report", str(rep), "--quiet"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "report:" in done.stderr
    return out, rep


@pytest.fixture(scope="module")
def report(outputs_and_report):
    return outputs_and_report[1]


def test_the_report_lists_every_trigger_for_the_desk(outputs_and_report):
    out, rep = outputs_and_report
    triggers = [json.loads(line) for line in (out / "adl_triggers.jsonl").read_text().splitlines()]
    fired = [t for t in triggers if t["stage"] == "triggered"]
    page = (rep / "index.html").read_text()
    table = page.split('<table class="triggers">', 1)[1].split("</table>", 1)[0]
    assert f"<h2>ADL triggered ({len(fired)})</h2>" in page
    rows = re.findall(r"<tr><td>(.*?)</td></tr>", table)
    assert len(rows) == len(fired)
    for row, trigger in zip(rows, fired, strict=True):
        cells = row.split("</td><td>")
        assert cells[1] == trigger["symbol"]
        assert cells[5] == f"{trigger['shortfall']} USDT"  # in the fund's currency
        assert cells[6] == str(len(trigger["bankrupt"]))
        first = trigger["plan"][0]
        assert cells[8].startswith(f"{first['account']} {first['side']} {first['qty']} @ ")
        kappa = trigger["second_opinion"]["queue"]["utilisation"]
        assert cells[9] == ("n/a" if kappa is None else f"{kappa:.2f}")


def test_the_report_states_the_second_opinion_totals(outputs_and_report):
    out, rep = outputs_and_report
    triggers = [json.loads(line) for line in (out / "adl_triggers.jsonl").read_text().splitlines()]
    opinions = [t["second_opinion"] for t in triggers if t["second_opinion"]]
    assert opinions
    page = (rep / "index.html").read_text()
    queue = sum(float(o["queue"]["haircut"]) for o in opinions)
    cheapest = sum(float(o["pro_rata"]["haircut"]) for o in opinions)
    facts = dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", page))
    assert facts["triggered plans with a second opinion"] == str(len(opinions))
    assert facts["queue haircuts, summed over plans"] == f"{queue:,.2f}"
    assert facts["overshoot, summed"] == f"{queue - cheapest:,.2f}"
    assert facts["queue / cheapest, all plans"] == f"{queue / cheapest:.2f}"
    assert queue > cheapest  # the bundled cascade's queue closes far more than it needs


def test_the_plots_say_what_they_clip_and_who_is_deleveraged(outputs_and_report):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from streams.replay import report as reporting

    out, _ = outputs_and_report
    timeline = json.loads((out / "timeline.json").read_text())
    triggers = [json.loads(line) for line in (out / "adl_triggers.jsonl").read_text().splitlines()]
    distance = reporting._distance(plt, out, timeline, triggers)
    [ax] = distance.axes
    assert ax.get_ylim() == (0.0, reporting.DISTANCE_CLIP_PCT)
    assert re.match(r"clipped at 20%: \d+ of [\d,]+ samples above", ax.get_title(loc="left"))
    distance.canvas.draw()
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert len(ticks) >= 3
    assert len(set(ticks)) == len(ticks)  # no repeated time
    queue = reporting._queue(plt, timeline, triggers)
    snap = timeline["first_trigger"]
    first = next(t for t in triggers if t["stage"] == "triggered" and t["ts"] == snap["ts"]
                 and t["symbol"] == snap["symbol"])  # fmt: skip
    sides = {step["side"] for step in first["plan"]}
    for ax, side in zip(queue.axes, ("long", "short"), strict=True):
        assert ("DELEVERAGED" in ax.get_title()) is (side in sides)
    opinion = reporting._second_opinion(plt, triggers)
    [ax] = opinion.axes
    plans = [t for t in triggers if t["second_opinion"]]
    queue_bars, cheapest_bars, _ = ax.containers
    assert [b.get_height() for b in queue_bars] == [
        float(t["second_opinion"]["queue"]["haircut"]) for t in plans
    ]
    assert [b.get_height() for b in cheapest_bars] == [
        float(t["second_opinion"]["pro_rata"]["haircut"]) for t in plans
    ]
    plt.close("all")


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
    assert CHROMIUM, "make test installs chromium (tools/system-deps.sh)"
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
