"""Render every dashboard's panels to PNG from a real Prometheus scraping a demo run.

Grafana cannot run on the development machines, so this draws the same queries with
matplotlib: it starts Prometheus (Debian package) and ``adl-monitor demo``, waits for
the cascade to play out, runs each panel's PromQL over the run with query_range and
plots the series with the panel's legend. Output: docs/dashboards/<uid>.png.

    pip install matplotlib && python tools/render_dashboards.py
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from streams.brokers import free_port  # noqa: E402

VALUES = {"$fund": "USDT-M", "$symbol": ".*", "$side": "short"}


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback
        return json.loads(response.read())


def query_range(prom: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "1s"})
    return list(get(f"{prom}/api/v1/query_range?{params}")["data"]["result"])


def legend(fmt: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)


def ladder(ax: Any, series: list[dict[str, Any]]) -> None:
    by_symbol: dict[str, list[tuple[float, float]]] = {}
    for one in series:
        shock = float(one["metric"]["shock_pct"])
        by_symbol.setdefault(one["metric"]["symbol"], []).append(
            (shock, float(one["values"][-1][1]))
        )
    for symbol, points in sorted(by_symbol.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=symbol)
    ax.set_xlabel("shock to the symbol's mark, % (at the end of the run)", fontsize=8)


def render(dashboard: dict[str, Any], prom: str, start: float, end: float, out: Path) -> None:
    panels = dashboard["panels"]
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(14, 3.4 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for target in panel["targets"]:
            expr = target["expr"]
            for var, value in VALUES.items():
                expr = expr.replace(var, value)
            if panel["type"] == "barchart":  # the ladder: latest loss against the shock
                ladder(ax, query_range(prom, expr, start, end))
                continue
            for series in query_range(prom, expr, start, end):
                xs = [float(t) - start for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                ax.plot(xs, ys, label=legend(target.get("legendFormat", ""), series["metric"]))
        ax.set_title(panel["title"], fontsize=10)
        if panel["type"] != "barchart":
            ax.set_xlabel("seconds into the demo", fontsize=8)
        ax.tick_params(labelsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, ncol=2, loc="best")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(dashboard["title"], fontsize=13)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise SystemExit("needs the Debian prometheus package")
    work = Path(tempfile.mkdtemp())
    metrics_port, prom_port = free_port(), free_port()
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: adl-monitor, static_configs: "
        f"[{{targets: ['127.0.0.1:{metrics_port}']}}]}}]\n"
    )
    prom = subprocess.Popen(
        [prometheus, f"--config.file={work / 'prometheus.yml'}",
         f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{prom_port}"
    time.sleep(8)  # Prometheus starts scraping after its first discovery round
    start = time.time()
    demo = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "demo", "--rate", "300", "--delay", "3",
         "--metrics-port", str(metrics_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    try:
        time.sleep(35)
        end = time.time()
        out = ROOT / "docs" / "dashboards"
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted((ROOT / "dashboards").glob("*.json")):
            dashboard = json.loads(path.read_text())
            render(dashboard, url, start, end, out / f"{dashboard['uid']}.png")
            print(f"wrote {out / (dashboard['uid'] + '.png')}")
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
        prom.terminate()
        prom.wait(timeout=30)


if __name__ == "__main__":
    main()
