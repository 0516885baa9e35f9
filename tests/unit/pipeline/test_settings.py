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
        ("ADL_SESSION_TIMEOUT_MS", "2999"),  # heartbeats under 1 s: a false death at a GC
        ("ADL_HEARTBEAT_INTERVAL_MS", "3334"),  # over a third of the 10 s session timeout
        ("ADL_HEARTBEAT_INTERVAL_MS", "0"),
        ("ADL_STANDBY_REPLICAS", "-1"),  # was: handed to Faust as is
        ("ADL_CHANGELOG_SEGMENT_MS", "60"),  # seconds meant: a broker segment per append
    ],
)
def test_bad_values_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: raw})


def test_the_changelog_segments_are_a_minute_or_the_brokers() -> None:
    assert Settings.from_env({}).changelog_segment_ms == 60_000
    assert Settings.from_env({"ADL_CHANGELOG_SEGMENT_MS": "0"}).changelog_segment_ms == 0
    assert Settings.from_env({"ADL_CHANGELOG_SEGMENT_MS": "1000"}).changelog_segment_ms == 1000


def test_the_session_timeout_and_heartbeats_are_settings() -> None:
    default = Settings.from_env({})
    assert (default.session_timeout_ms, default.heartbeat_interval_ms) == (10_000, 1_000)
    short = Settings.from_env({"ADL_SESSION_TIMEOUT_MS": "3000"})  # 1 s: a third of it
    assert (short.session_timeout_ms, short.heartbeat_interval_ms) == (3000, 1000)
    with pytest.raises(ConfigError, match="ADL_HEARTBEAT_INTERVAL_MS"):
        Settings.from_env({"ADL_SESSION_TIMEOUT_MS": "4000", "ADL_HEARTBEAT_INTERVAL_MS": "1500"})


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


SCRAM = {"ADL_SECURITY_PROTOCOL": "SASL_SSL", "ADL_SASL_MECHANISM": "SCRAM-SHA-512",
         "ADL_SASL_USERNAME": "u", "ADL_SASL_PASSWORD": "p"}  # fmt: skip


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"ADL_SECURITY_PROTOCOL": "TLS"}, "ADL_SECURITY_PROTOCOL: one of"),
        ({**SCRAM, "ADL_SASL_MECHANISM": "SCRAM-SHA-1"}, "ADL_SASL_MECHANISM: one of"),
        ({**SCRAM, "ADL_SASL_MECHANISM": ""}, "ADL_SASL_MECHANISM: one of"),
        ({**SCRAM, "ADL_SASL_PASSWORD": ""}, "needs ADL_SASL_USERNAME and ADL_SASL_PASSWORD"),
        ({"ADL_SECURITY_PROTOCOL": "SSL", "ADL_SSL_CERTFILE": "/etc/hostname"},
         "ADL_SSL_CERTFILE and ADL_SSL_KEYFILE go together"),
        ({"ADL_SECURITY_PROTOCOL": "SSL", "ADL_SSL_CAFILE": "/nonexistent/ca.pem"},
         "ADL_SSL_CAFILE: no such file"),
        ({**SCRAM, "ADL_SASL_PASSWORD": "", "ADL_SASL_PASSWORD_FILE": "/nonexistent"},
         "ADL_SASL_PASSWORD_FILE"),
    ],
)  # fmt: skip
def test_security_settings_that_cannot_work_are_one_line(env: dict[str, str], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        Settings.from_env({k: v for k, v in env.items() if v})


def test_the_sasl_password_from_a_file(tmp_path) -> None:
    secret = tmp_path / "password"
    written = "from-a-file"
    secret.write_text(written + "\n")
    env = {**SCRAM, "ADL_SASL_PASSWORD": "", "ADL_SASL_PASSWORD_FILE": str(secret)}
    settings = Settings.from_env({k: v for k, v in env.items() if v})
    assert settings.sasl_password == written
    assert settings.client_options()["sasl_plain_password"] == written


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({"ADL_SASL_USERNAME": "u"}, "SASL settings are ignored"),
        ({"ADL_SSL_CAFILE": "/etc/hostname"}, "TLS files are ignored"),
        ({**SCRAM, "ADL_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "ADL_SASL_MECHANISM": "PLAIN"},
         "password in clear"),
    ],
)  # fmt: skip
def test_settings_that_work_but_mislead_are_warned(env: dict[str, str], warned: str) -> None:
    [warning] = Settings.from_env(env).security_warnings()
    assert warned in warning


def test_a_warning_is_printed_by_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "produce", "/nonexistent.jsonl"],
        env={**os.environ, "ADL_SASL_USERNAME": "u", "ADL_BOOTSTRAP": "127.0.0.1:1"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "adl-monitor: warning: SASL settings are ignored with" in done.stderr


def test_scram_over_tls_sets_every_client_option() -> None:
    options = Settings.from_env(SCRAM).client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["ssl_context"] is not None
    assert "sasl_mechanism" not in Settings.from_env({"ADL_SASL_USERNAME": "u"}).client_options()
