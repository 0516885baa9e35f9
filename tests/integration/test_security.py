"""Kafka security for real: an Apache Kafka broker of the test's own with a SASL_PLAINTEXT
listener (SCRAM-SHA-512, a user made at the storage format) and an SSL listener that
requires client certificates (mTLS, throwaway CA: ``tls.py``). Over each: ``produce``,
the worker (outputs equal the engine's over the file), ``simulate --bootstrap``,
``account-agents`` and the webhooks dispatcher connect and work; a wrong password, a
certificate from a CA the broker does not trust, or none, end in one line and exit 2."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.brokers import apache
from streams.brokers.base import free_port
from streams.notify.signing import new_secret
from streams.pipeline.settings import Settings
from tests.integration.test_account_agents import scrape
from tests.integration.test_pipeline import (
    assert_same,
    expected,  # noqa: F401  (the fixture: the engine's outputs over the file)
    read_outputs,
    replayed,  # noqa: F401  (the fixture it is made from)
)
from tests.integration.test_webhooks import read_all
from tests.integration.tls import Certificates, make_certificates

USER, PASSWORD = "adl-monitor", "a-scram-secret"
MODES = ("SASL_PLAINTEXT", "SSL")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Certificates]]:
    if not apache.available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI requires Apache Kafka: install Java 17+ and Maven")
        pytest.skip("the security tests need Apache Kafka (Java and Maven)")
    folder = tmp_path_factory.mktemp("secured")
    certs = make_certificates(folder / "certs")
    properties = {
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.ssl.ssl.client.auth": "required",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs.broker_keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs.ca),
    }  # fmt: skip
    broker = apache.ApacheKafka(
        folder / "broker", partitions=3, secured=MODES, properties=properties,
        scram_users=[f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]"],
    )  # fmt: skip
    with broker:
        yield broker, certs


def security_env(mode: str, broker: Any, certs: Certificates, tmp: Path) -> dict[str, str]:
    env = {"ADL_BOOTSTRAP": broker.address(mode), "ADL_SECURITY_PROTOCOL": mode}
    if mode == "SASL_PLAINTEXT":
        secret = tmp / "sasl-password"
        secret.write_text(PASSWORD + "\n")  # a mounted secret file, not a flag
        env |= {"ADL_SASL_MECHANISM": "SCRAM-SHA-512", "ADL_SASL_USERNAME": USER,
                "ADL_SASL_PASSWORD_FILE": str(secret)}  # fmt: skip
    else:
        env |= {"ADL_SSL_CAFILE": str(certs.ca), "ADL_SSL_CERTFILE": str(certs.client_cert),
                "ADL_SSL_KEYFILE": str(certs.client_key)}  # fmt: skip
    return env


def run(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def spawn(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for(check: Any, what: str, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s} s\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize("mode", MODES)
def test_every_client_connects_and_works(
    secured: tuple[Any, Certificates],
    expected,  # noqa: F811
    tmp_path: Path,
    mode: str,
) -> None:
    broker, certs = secured
    prefix = f"sec{uuid.uuid4().hex[:5]}."
    env = security_env(mode, broker, certs, tmp_path) | {"ADL_TOPIC_PREFIX": prefix,
                                                         "ADL_PARTITIONS": "3"}  # fmt: skip
    settings = Settings.from_env(env)
    produced = run(env, "produce")
    assert produced.returncode == 0, produced.stderr[-3000:]
    worker = run(env, "worker", "--exit-when-idle")
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert_same(asyncio.run(read_outputs(settings)), expected)

    out = str(tmp_path / "sim.jsonl")
    simulated = run(env | {"ADL_TOPIC_PREFIX": f"sim-{prefix}"}, "simulate", "--accounts", "40",
                    "--minutes", "2", "--crash-start-min", "1", "--crash-minutes", "1",
                    "--out", out, "--bootstrap", broker.address(mode))  # fmt: skip
    assert simulated.returncode == 0, simulated.stderr[-3000:]
    sim_settings = Settings.from_env(env | {"ADL_TOPIC_PREFIX": f"sim-{prefix}"})
    assert len(asyncio.run(read_all(sim_settings, "mark_prices"))) > 10

    port = free_port()
    agents_log = tmp_path / "agents.log"
    agents = spawn(env, agents_log, "account-agents", "--metrics-port", str(port))
    try:  # the fan-out reads marks and writes their copies: both ways over the listener
        wait_for(lambda: scrape(port).get(("adl_agent_marks_fanned_out_total", ()), 0) > 1000,
                 "account-agents forwarding marks", agents_log, timeout_s=180)  # fmt: skip
    finally:
        stop(agents)

    hooks_log = tmp_path / "webhooks.log"
    dead_end = f"http://127.0.0.1:{free_port()}/nobody-listens"
    hooks = spawn(env | {"ADL_WEBHOOK_SECRET": new_secret()}, hooks_log, "webhooks",
                  "--url", dead_end, "--max-age-s", "1", "--no-rank-alerts")  # fmt: skip
    try:  # it reads the triggers and writes each one, expired, to its dead letters
        wait_for(lambda: asyncio.run(read_all(settings, "webhook_dead_letters")),
                 "webhook dead letters", hooks_log)  # fmt: skip
    finally:
        stop(hooks)


@pytest.mark.parametrize(
    ("mode", "change", "said"),
    [
        ("SASL_PLAINTEXT", {"ADL_SASL_PASSWORD_FILE": "", "ADL_SASL_PASSWORD": "wrong"},
         "invalid credentials"),
        ("SSL", {"cert": "rogue"}, "closed"),
        ("SSL", {"cert": "none"}, "closed"),
    ],
    ids=["wrong password", "certificate of an unknown CA", "no certificate"],
)  # fmt: skip
def test_refused_credentials_are_one_line_and_exit_2(
    secured: tuple[Any, Certificates], tmp_path: Path, mode: str, change: dict[str, str], said: str
) -> None:
    broker, certs = secured
    env = security_env(mode, broker, certs, tmp_path) | {"ADL_TOPIC_PREFIX": "refused."}
    cert = change.pop("cert", None)
    if cert == "rogue":
        env |= {"ADL_SSL_CERTFILE": str(certs.rogue_cert), "ADL_SSL_KEYFILE": str(certs.rogue_key)}
    elif cert == "none":
        env = {k: v for k, v in env.items() if k not in ("ADL_SSL_CERTFILE", "ADL_SSL_KEYFILE")}
    env = {k: v for k, v in (env | change).items() if v} | {"ADL_WEBHOOK_SECRET": new_secret()}
    commands = {
        "worker": ["worker", "--exit-when-idle"],
        "produce": ["produce"],
        "account-agents": ["account-agents"],
        # refused before it simulates, not after
        "simulate": ["simulate", "--accounts", "20", "--minutes", "1", "--crash-start-min",
                     "0.5", "--crash-minutes", "0.2", "--out", str(tmp_path / "sim.jsonl"),
                     "--bootstrap", broker.address(mode)],
        # it waits for a broker that is down, not for one that refuses it
        "webhooks": ["webhooks", "--url", f"http://127.0.0.1:{free_port()}/hook"],
    }  # fmt: skip
    for name, command in commands.items():
        done = run(env, *command, timeout=120)
        assert done.returncode == 2, (name, done.stderr[-2000:])
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(f"adl-monitor: cannot use Kafka at {broker.address(mode)}")
        assert said in last
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "sim.jsonl").exists()
