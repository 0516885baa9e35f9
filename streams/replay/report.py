"""``replay --report DIR``: a self-contained HTML report with PNG plots of a replay.

Reads only the replay's output folder (the JSONL outputs, ``summary.json`` and
``timeline.json``), so a report can be made again from old outputs. Every time axis
marks the triggers (red: ``triggered``, orange: first ``imminent`` of a streak) and the
real ADL episodes of the input (black ticks at the bottom).
"""

from __future__ import annotations

import base64
import html
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streams.engine.adl import UNDERWATER_SCORE

DISTANCE_CLIP_PCT = 20  # the distance plot's top: a spike to 350% flattens 0-10%
PLOTS = (
    ("fund.png", "Insurance fund balance vs projected loss"),
    (
        "adl_distance.png",
        "ADL distance per symbol (adverse move that starts ADL by the venue rule), "
        f"0-{DISTANCE_CLIP_PCT}%: the region where ADL decisions are made; farther is clipped",
    ),
    ("liquidations.png", "Liquidations and bankruptcies detected per minute"),
    ("queue.png", "ADL queue at the first trigger"),
    ("lights.png", "Rank-light distribution at the end"),
    (
        "second_opinion.png",
        "Second opinion per triggered plan: the winners' profit the queue closes vs the "
        "cheapest haircut covering the deficit (what pro-rata takes) and the equity it moves",
    ),
)
OPINION_BARS = 40  # triggered plans drawn in the second-opinion chart (the largest overshoots)
LIGHT_COLOURS = ("#bbbbbb", "#2e7d32", "#9ccc65", "#fdd835", "#fb8c00", "#c62828")
TABLE_ROWS = 200  # triggers listed in the HTML (the rest counted)
PLAN_STEPS = 3  # first steps of a trigger's deleverage plan shown


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.exists():
        with path.open("rb") as f:
            for line in f:
                if line.strip():
                    yield orjson.loads(line)


def _when(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


def _mark_events(ax: Any, timeline: dict[str, Any], triggers: list[dict[str, Any]]) -> None:
    from matplotlib.dates import AutoDateLocator, DateFormatter

    # seconds on the ticks: a 12-minute cascade ticked every 30 s would repeat "21:13"
    ax.xaxis.set_major_locator(AutoDateLocator(tz=UTC, maxticks=12))  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S", tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")
    previous: dict[str, str] = {}
    for t in triggers:
        before = previous.get(t["symbol"], "cleared")
        if t["stage"] == "triggered" and before != "triggered":
            ax.axvline(_when(t["ts"]), color="#c62828", lw=0.8, alpha=0.6)
        elif t["stage"] == "imminent" and before == "cleared":
            ax.axvline(_when(t["ts"]), color="#fb8c00", lw=0.6, alpha=0.5, ls="--")
        previous[t["symbol"]] = t["stage"]
    episodes = timeline.get("adl_episodes", [])
    if episodes:
        ax.plot([_when(e["ts"]) for e in episodes], [0.0] * len(episodes), "|", color="black",
                ms=14, transform=ax.get_xaxis_transform(), label="real ADL")  # fmt: skip


def _fund(plt: Any, out: Path, timeline: dict[str, Any], triggers: list[dict[str, Any]]) -> Any:
    rows = list(_rows(out / "fund_projection.jsonl"))
    fig, ax = plt.subplots(figsize=(11, 4))
    by_fund: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_fund[r["fund"]].append(r)
    for fund, fr in sorted(by_fund.items()):
        times = [_when(r["ts"]) for r in fr]
        ax.step(times, [float(r["fund_balance"]) for r in fr], where="post",
                label=f"{fund} balance")  # fmt: skip
        ax.step(times, [float(r["projected_loss"]) for r in fr], where="post",
                label=f"{fund} projected loss now")  # fmt: skip
    _mark_events(ax, timeline, triggers)
    ax.set_ylabel(
        ", ".join(f"{fund} ({currency_of(fr[0])})" for fund, fr in sorted(by_fund.items()))
    )
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def currency_of(row: dict[str, Any]) -> str:
    """The currency of an output line's money: its ``settlement`` (absent: USDT)."""
    return str(row.get("settlement", "USDT"))


def _distance(plt: Any, out: Path, timeline: dict[str, Any], triggers: list[dict[str, Any]]) -> Any:
    series: dict[str, tuple[list[datetime], list[float]]] = defaultdict(lambda: ([], []))
    for r in _rows(out / "fund_projection.jsonl"):
        for s in r["symbols"]:
            sides = [d for d in (s["adl_distance_long_pct"], s["adl_distance_short_pct"]) if d]
            if sides:
                series[s["symbol"]][0].append(_when(r["ts"]))
                series[s["symbol"]][1].append(min(sides))
    fig, ax = plt.subplots(figsize=(11, 4))
    for sym, (times, values) in sorted(series.items()):
        ax.step(times, values, where="post", label=sym)
    _mark_events(ax, timeline, triggers)
    ax.set_ylabel("% move to ADL (nearer side)")
    ax.set_ylim(0, DISTANCE_CLIP_PCT)
    samples = [v for _, values in series.values() for v in values]
    beyond = sum(v > DISTANCE_CLIP_PCT for v in samples)
    ax.set_title(f"clipped at {DISTANCE_CLIP_PCT}%: {beyond:,} of {len(samples):,} samples "
                 "above (far from ADL)", fontsize=9, loc="left")  # fmt: skip
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def _per_minute(
    plt: Any, out: Path, timeline: dict[str, Any], triggers: list[dict[str, Any]]
) -> Any:
    fig, ax = plt.subplots(figsize=(11, 3.5))
    for name, colour in (("liquidations", "#fb8c00"), ("bankruptcies", "#c62828")):
        minutes = Counter(r["ts"] // 60_000 * 60_000 for r in _rows(out / f"{name}.jsonl"))
        if minutes:
            keys = sorted(minutes)
            ax.bar([_when(k) for k in keys], [minutes[k] for k in keys], width=1 / 1440 * 0.9,
                   align="edge", color=colour, alpha=0.7, label=name)  # fmt: skip
    _mark_events(ax, timeline, triggers)
    ax.set_ylabel("per minute")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def _queue(plt: Any, timeline: dict[str, Any], triggers: list[dict[str, Any]]) -> Any:
    snap = timeline.get("first_trigger")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    if not snap:
        fig.suptitle("no ADL trigger in this replay")
        return fig
    when = _when(snap["ts"])
    fig.suptitle(f"{snap['symbol']} at {when:%H:%M:%S}.{when.microsecond // 1000:03d} UTC")
    # the side its plan closes: the counterparties of the bankrupt positions
    deleveraged = {
        step["side"]
        for t in triggers
        if t["stage"] == "triggered" and t["symbol"] == snap["symbol"] and t["ts"] == snap["ts"]
        for step in t["plan"]
    }
    for ax, side in zip(axes, ("long", "short"), strict=True):
        entries = snap["sides"][side]
        names = [e["account"] for e in entries][::-1]
        # a position under water ranks last with a sentinel score: drawn as 0
        scores = [e["score"] if e["score"] > UNDERWATER_SCORE else 0.0 for e in entries][::-1]
        colours = [LIGHT_COLOURS[e["light"]] for e in entries][::-1]
        ax.barh(names, scores, color=colours)
        other = "short" if side == "long" else "long"
        role = (
            f"DELEVERAGED against the bankrupt {other}s"
            if side in deleveraged
            else "not deleveraged by this trigger"
        )
        ax.set_title(f"{side}s: {role}\n(first in the queue at the top)", fontsize=10)
        ax.set_xlabel("rank score (venue profile)")
        ax.axvline(0, color="black", lw=0.5)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def _lights(plt: Any, timeline: dict[str, Any]) -> Any:
    lights = timeline.get("final_lights", {})
    labels = [f"{sym} {side}" for sym in lights for side in lights[sym]]
    counts = [lights[sym][side] for sym in lights for side in lights[sym]]
    fig, ax = plt.subplots(figsize=(11, 4))
    bottoms = [0] * len(labels)
    for light in range(1, 6):
        values = [c[light] if len(c) > light else 0 for c in counts]
        ax.bar(labels, values, bottom=bottoms, color=LIGHT_COLOURS[light],
               label=f"light {light}")  # fmt: skip
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.set_ylabel("open positions")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def _opinions(triggers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in triggers if t["stage"] == "triggered" and t.get("second_opinion")]


def _second_opinion(plt: Any, triggers: list[dict[str, Any]]) -> Any:
    """One group of bars per triggered plan: queue haircut, cheapest haircut (= the
    pro-rata one), equity moved at the mark; the largest overshoots when there are many."""
    plans = _opinions(triggers)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    if not plans:
        ax.set_title("no triggered plan in this replay")
        return fig
    shown = plans
    if len(plans) > OPINION_BARS:
        shown = sorted(plans, key=lambda t: -float(t["second_opinion"]["queue"]["overshoot"]))
        shown = sorted(shown[:OPINION_BARS], key=lambda t: t["ts"])
        ax.set_title(f"the {OPINION_BARS} largest overshoots of {len(plans)} triggered plans")
    labels = [f"{t['symbol']} {_iso(t['ts'])[11:21]}" for t in shown]
    series = (  # (legend, colour, allocation, field)
        ("queue haircut (winners' profit closed)", "#c62828", "queue", "haircut"),
        ("cheapest haircut min(D, W) = pro-rata", "#2e7d32", "pro_rata", "haircut"),
        ("equity moved at the mark", "#1565c0", "queue", "equity_moved"),
    )
    width = 0.27
    for k, (name, colour, allocation, field) in enumerate(series):
        xs = [i + (k - 1) * width for i in range(len(shown))]
        values = [float(t["second_opinion"][allocation][field]) for t in shown]
        ax.bar(xs, values, width, color=colour, label=name)
    ax.set_xticks(range(len(shown)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yscale("symlog")
    ax.set_ylabel(f"{currency_of(shown[0])} (symlog)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def opinion_totals(triggers: list[dict[str, Any]]) -> list[tuple[str, object]]:
    """The report's second-opinion facts. A symbol re-announced while triggered is
    planned again whole: the sums count a position once per announcement."""
    plans = _opinions(triggers)
    if not plans:
        return [("triggered plans with a second opinion", 0)]
    opinions = [t["second_opinion"] for t in plans]
    kappas = sorted(o["queue"]["utilisation"] for o in opinions if o["queue"]["utilisation"])
    tops = sorted(o["queue"]["top1_share"] for o in opinions if o["queue"]["top1_share"])
    queue = sum(float(o["queue"]["haircut"]) for o in opinions)
    cheapest = sum(float(o["pro_rata"]["haircut"]) for o in opinions)
    return [
        ("triggered plans with a second opinion", len(plans)),
        ("queue haircuts, summed over plans", f"{queue:,.2f}"),
        ("cheapest haircuts (pro-rata), summed", f"{cheapest:,.2f}"),
        ("overshoot, summed", f"{queue - cheapest:,.2f}"),
        ("queue / cheapest, all plans", f"{queue / cheapest:.2f}" if cheapest else "n/a"),
        ("queue / cheapest (kappa), median / max", _median_max(kappas)),
        ("top account's share of a queue haircut, median / max", _median_max(tops)),
    ]


def _median_max(values: list[float]) -> str:
    return f"{values[len(values) // 2]:.2f} / {values[-1]:.2f}" if values else "n/a"


def write_report(out_dir: str | Path, report_dir: str | Path) -> Path:
    """Render the plots and ``index.html`` into ``report_dir``; returns the HTML path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out, report = Path(out_dir), Path(report_dir)
    report.mkdir(parents=True, exist_ok=True)
    summary = orjson.loads((out / "summary.json").read_bytes())
    timeline = orjson.loads((out / "timeline.json").read_bytes())
    triggers = list(_rows(out / "adl_triggers.jsonl"))
    figures = {
        "fund.png": _fund(plt, out, timeline, triggers),
        "adl_distance.png": _distance(plt, out, timeline, triggers),
        "liquidations.png": _per_minute(plt, out, timeline, triggers),
        "queue.png": _queue(plt, timeline, triggers),
        "lights.png": _lights(plt, timeline),
        "second_opinion.png": _second_opinion(plt, triggers),
    }
    for name, fig in figures.items():
        fig.savefig(report / name, dpi=110, metadata={"Software": None})
        plt.close(fig)
    page = report / "index.html"
    page.write_text(_html(summary, report, triggers), encoding="utf-8")
    return page


def _triggers_table(triggers: list[dict[str, Any]]) -> str:
    """Every ``triggered`` announcement: when, what, how short, who goes first."""
    fired = [t for t in triggers if t["stage"] == "triggered"]
    head = ("time (UTC)", "symbol", "fund", "balance", "projected loss", "shortfall",
            "positions to close", "bankrupt accounts", "deleverage plan (first steps)",
            "queue / cheapest haircut", "pro-rata share of profit",
            "top account's share")  # fmt: skip
    rows = []
    for t in fired[:TABLE_ROWS]:
        money = currency_of(t)
        accounts = sorted({b["account"] for b in t["bankrupt"]})
        plan = [f"{p['account']} {p['side']} {p['qty']} @ {p['price']}" for p in t["plan"]]
        more = f" (+{len(plan) - PLAN_STEPS} more)" if len(plan) > PLAN_STEPS else ""
        cells = (
            _iso(t["ts"])[11:23], t["symbol"], t["fund"], f"{t['fund_balance']} {money}",
            f"{t['projected_loss']} {money}", f"{t['shortfall']} {money}", len(t["bankrupt"]),
            ", ".join(accounts[:5]) + (f" (+{len(accounts) - 5})" if len(accounts) > 5 else ""),
            "; ".join(plan[:PLAN_STEPS]) + more, *_opinion_cells(t.get("second_opinion")),
        )  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    left = f"<p>{len(fired) - TABLE_ROWS} more not listed.</p>" if len(fired) > TABLE_ROWS else ""
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (
        f'<h2>ADL triggered ({len(fired)})</h2><table class="triggers"><tr>{header}</tr>'
        f"{''.join(rows)}</table>{left}"
    )


def _opinion_cells(o: dict[str, Any] | None) -> tuple[str, str, str]:
    if o is None:
        return ("", "", "")

    def ratio(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    return (
        ratio(o["queue"]["utilisation"], ".2f"),
        ratio(o["pro_rata"]["ratio"], ".4%"),
        ratio(o["queue"]["top1_share"], ".0%"),
    )


def _html(summary: dict[str, Any], report: Path, triggers: list[dict[str, Any]]) -> str:
    warning = summary.get("adl_warning", {})
    firsts = warning.get("first_adl_by_symbol", {})
    facts = [
        ("events", summary["lines"]),
        ("accounts", summary["accounts"]),
        ("dead letters", summary["dead_letters"]),
        ("first ADL trigger", _iso(summary.get("first_adl_trigger_ts"))),
        ("real ADL episodes", warning.get("adl_episodes")),
        ("episodes without a prior warning", warning.get("unwarned_episodes")),
        ("shortest warning (s)", warning.get("warning_seconds_min")),
        ("median warning (s)", warning.get("warning_seconds_median")),
        *((f"first real ADL on {sym}", _warned(first)) for sym, first in firsts.items()),
        *((f"outputs: {k}", v) for k, v in summary["outputs"].items()),
        *opinion_totals(triggers),
    ]
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts
    )
    figures = "".join(
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,'
        f'{base64.b64encode((report / name).read_bytes()).decode()}">'
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for name, title in PLOTS
    )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>adl-monitor replay report</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1250px}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:3px 8px;"
        "text-align:left}figure{margin:2em 0}img{max-width:100%}</style>"
        "<h1>adl-monitor replay report</h1>"
        "<p>Red lines: ADL triggered; orange dashes: ADL imminent; black ticks: real ADL "
        "fills in the input.</p>"
        f"<table>{rows}</table>{_triggers_table(triggers)}{figures}</html>\n"
    )


def _warned(first: dict[str, Any]) -> str:
    when = _iso(first["ts"])
    if not first["warned"]:
        return f"{when}, NOT warned"
    return f"{when}, warned {first['warning_seconds']} s before"


def _iso(ts_ms: int | None) -> str:
    return "none" if ts_ms is None else _when(ts_ms).isoformat(timespec="milliseconds")
