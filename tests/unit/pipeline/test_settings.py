"""``ADL_*`` variables are parsed strictly: a typo is an error at start-up, not a default."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streams.engine.errors import ConfigError
from streams.notify.signing import new_secret, webhook_secret
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


def command(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``adl-monitor ARGS`` with ``env`` over this environment (no ADL_WEBHOOK_*)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ADL_WEBHOOK")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**base, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_command_says_it_in_one_line_and_exits_2() -> None:
    done = command("worker", ADL_TRANSACTIONS="flase")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "adl-monitor: ADL_TRANSACTIONS: expected one of 1/true/yes/on/0/false/no/off, got 'flase'"
    ]


def test_a_bad_metrics_port_is_one_line_too() -> None:
    done = command("worker", ADL_METRICS_PORT="٩٤٦٤")
    assert done.returncode == 2
    assert "--metrics-port: a port number 0-65535, got '٩٤٦٤'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_webhook_secret_comes_from_env_or_a_file(tmp_path) -> None:
    good = new_secret()
    assert webhook_secret({"ADL_WEBHOOK_SECRET": good}) == good
    (tmp_path / "secret").write_text(good + "\n")
    assert webhook_secret({"ADL_WEBHOOK_SECRET_FILE": str(tmp_path / "secret")}) == good


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({}, "no webhook secret"),
        ({"ADL_WEBHOOK_SECRET": "whsec_"}, "0 bytes: at least 16"),  # an empty key
        ({"ADL_WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "5 bytes"),  # b"short"
        ({"ADL_WEBHOOK_SECRET": "whsec_not base64!"}, "not base64"),
        ({"ADL_WEBHOOK_SECRET": "hunter2"}, "starts with whsec_"),
        ({"ADL_WEBHOOK_SECRET_FILE": "/nonexistent/secret"}, "No such file"),
        ({"ADL_WEBHOOK_SECRET": "x", "ADL_WEBHOOK_SECRET_FILE": "y"}, "not both"),
    ],
)
def test_a_bad_webhook_secret_is_refused_before_start(environ: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        webhook_secret(environ)


def test_the_dispatcher_has_no_secret_flag() -> None:
    empty = "whsec_"  # the prefix and no key
    done = command("webhooks", "--url", "http://127.0.0.1:9/", ADL_WEBHOOK_SECRET=empty)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "adl-monitor: ADL_WEBHOOK_SECRET: the secret's key is 0 bytes: at least 16"
    ]
    flag = command("webhooks", "--url", "x", "--secret", new_secret())
    assert flag.returncode == 2
    assert "unrecognized arguments: --secret" in flag.stderr
