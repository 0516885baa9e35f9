"""Apache Kafka in KRaft single-node mode, from jars resolved from Maven Central.

The jars (``org.apache.kafka:kafka_2.13`` with its runtime dependencies and a log4j 2
backend) are copied by ``mvn dependency:copy-dependencies`` from ``tools/kafka/pom.xml``
into a cache folder, once; then the same main classes as Kafka's own scripts run:
``kafka.tools.StorageTool format`` and ``kafka.Kafka server.properties``
(DESIGN.md section 7).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from streams.brokers.base import Broker, BrokerError, free_port

KAFKA_VERSION = "4.3.1"
ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "tools" / "kafka" / "pom.xml"
DEFAULT_CACHE = ROOT / ".cache" / "kafka"

LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: warn
      AppenderRef:
        - ref: STDOUT
"""


def available() -> bool:
    """Java and either cached jars or Maven to fetch them."""
    return shutil.which("java") is not None and (
        _libs(DEFAULT_CACHE).is_dir() or shutil.which("mvn") is not None
    )


def _libs(cache: Path) -> Path:
    return cache / KAFKA_VERSION / "libs"


def ensure_jars(cache: Path = DEFAULT_CACHE) -> Path:
    """The folder of Kafka's jars, resolving them with Maven on first use."""
    libs = _libs(cache)
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Apache Kafka needs Maven to fetch its jars (apt-get install maven)")
    libs.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(  # noqa: S603
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BrokerError(f"mvn could not resolve Kafka's jars:\n{done.stdout[-3000:]}")
    (libs / ".complete").touch()
    return libs


class ApacheKafka(Broker):
    """One combined broker+controller node with settings for fast tests."""

    name = "kafka"

    def __init__(
        self,
        workdir: Path,
        cache: Path = DEFAULT_CACHE,
        partitions: int = 4,
        secured: Sequence[str] = (),
        properties: Mapping[str, str] | None = None,
        scram_users: Sequence[str] = (),
    ) -> None:
        """``secured``: more client listeners, each named by its security protocol
        (``SASL_PLAINTEXT``, ``SSL``, ``SASL_SSL``) with a free port of its own
        (``ports``); ``properties``: more server settings (their keystores, SASL
        mechanisms); ``scram_users``: ``--add-scram`` arguments of the storage format
        (KRaft keeps SCRAM credentials in its metadata from the start)."""
        super().__init__(workdir)
        self.controller_port = free_port()
        self.cache = cache
        self.partitions = partitions
        self.ports = {protocol: free_port() for protocol in secured}
        self.properties = dict(properties or {})
        self.scram_users = list(scram_users)
        self.libs: Path | None = None

    def address(self, protocol: str) -> str:
        """Bootstrap address of the listener of ``protocol`` (PLAINTEXT: ``bootstrap``)."""
        return self.bootstrap if protocol == "PLAINTEXT" else f"127.0.0.1:{self.ports[protocol]}"

    def _java(self, *args: str) -> list[str]:
        if self.libs is None:
            raise BrokerError("prepare() resolves the jars before java runs")
        return [
            shutil.which("java") or "java",
            "-Xmx768m",
            "-cp",
            f"{self.libs}/*",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.yaml'}",
            *args,
        ]

    def prepare(self) -> None:
        self.libs = ensure_jars(self.cache)
        (self.workdir / "log4j2.yaml").write_text(LOG4J2)
        clients = {"PLAINTEXT": self.port, **self.ports}
        advertised = ",".join(f"{name}://127.0.0.1:{port}" for name, port in clients.items())
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"{advertised},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": advertised,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(
                ["CONTROLLER:PLAINTEXT", *(f"{name}:{name}" for name in clients)]
            ),
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": str(self.partitions),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "log.flush.interval.messages": "1000000",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            **self.properties,
        }
        config = self.workdir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        done = subprocess.run(  # noqa: S603
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                uuid.uuid4().hex[:22],
                "-c",
                str(config),
                *(arg for user in self.scram_users for arg in ("--add-scram", user)),
            ),
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "KAFKA_HEAP_OPTS": "-Xmx256m"},
        )
        if done.returncode != 0:
            raise BrokerError(f"kafka storage format failed:\n{done.stdout}{done.stderr}")

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.workdir / "server.properties"))
