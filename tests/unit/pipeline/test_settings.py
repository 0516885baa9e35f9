"""``ADL_*`` variables are parsed strictly: a typo is an error at start-up, not a default."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streams.engine.errors import ConfigError
from streams.pipeline.settings import Settings


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("0", False), (" Off ", False)])
def test_booleans_take_the_usual_words(raw: str, value: bool) -> None:
    assert Settings.from_env({"ADL_TRANSACTIONS": raw}).transactions is value


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("ADL_TRANSACTIONS", "flase"),  # was: exactly-once quietly off
        ("ADL_TRANSACTIONS", ""),
        ("ADL_PARTITIONS", "١٢"),  # Arabic-Indic digits: int() reads 12
        ("ADL_PARTITIONS", "1_2"),
        ("ADL_PARTITIONS", "-4"),
        ("ADL_PARTITIONS", "0"),
        ("ADL_MAX_POLL_RECORDS", "9" * 5000),
    ],
)
def test_bad_values_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: raw})


def test_integers_in_ascii_digits() -> None:
    settings = Settings.from_env({"ADL_PARTITIONS": "12", "ADL_REPLICATION_FACTOR": " 3"})
    assert (settings.partitions, settings.replication_factor) == (12, 3)


def test_the_command_says_it_in_one_line_and_exits_2() -> None:
    env = {**os.environ, "ADL_TRANSACTIONS": "flase"}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "adl-monitor: ADL_TRANSACTIONS: expected one of 1/true/yes/on/0/false/no/off, got 'flase'"
    ]


def test_a_bad_metrics_port_is_one_line_too() -> None:
    env = {**os.environ, "ADL_METRICS_PORT": "٩٤٦٤"}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--metrics-port: a port number 0-65535, got '٩٤٦٤'" in done.stderr
    assert "Traceback" not in done.stderr
