"""Worker settings from the environment (or flags): which cluster, how to reach it,
topic prefix and partitions. Every name is ``ADL_`` + the field in upper case."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from streams.engine.errors import ConfigError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(name: str, raw: str) -> bool:
    """Strict: a typo (``flase``) must not switch exactly-once off in silence."""
    word = raw.strip().lower()
    if word not in _TRUE + _FALSE:
        raise ConfigError(f"{name}: expected one of {'/'.join(_TRUE + _FALSE)}, got {raw!r}")
    return word in _TRUE


def secret_from_env(environ: Mapping[str, str], name: str) -> str | None:
    """A secret from the variable ``name`` or from the file ``name``_FILE names (a mounted
    secret; never a flag: flags show in ``ps``); ``None`` if neither is set."""
    value, path = environ.get(name), environ.get(f"{name}_FILE")
    if value and path:
        raise ConfigError(f"set {name} or {name}_FILE, not both")
    if path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE ({path}): {exc.strerror}") from exc
        if not value:
            raise ConfigError(f"{name}_FILE ({path}) is empty")
    return value or None


def whole_number(text: str, max_digits: int = 9) -> int | None:
    """``text`` as a whole number written in at most ``max_digits`` ASCII digits, else
    ``None`` (Python's int() also takes '١٢', '²'.isdigit() is true, '1_0', spaces)."""
    if not (text.isascii() and text.isdigit() and len(text) <= max_digits):
        return None
    return int(text)


def _int(name: str, raw: str) -> int:
    value = whole_number(raw.strip())
    if value is None:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}")
    return value


MIN_SESSION_TIMEOUT_MS = 3_000
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 1_000
MIN_CHANGELOG_SEGMENT_MS = 1_000


def _check_ranges(values: Mapping[str, Any]) -> None:
    """One ``ConfigError`` naming the variable for a number out of its range."""
    for name in ("partitions", "replication_factor", "max_poll_records", "max_message_bytes",
                 "max_outputs_per_transaction", "max_buffered_events"):  # fmt: skip
        if values.get(name, 1) < 1:
            raise ConfigError(f"ADL_{name.upper()}: must be at least 1, got {values[name]}")
    if values.get("standby_replicas", 0) < 0:  # 0: no standbys, every takeover restores
        raise ConfigError(
            f"ADL_STANDBY_REPLICAS: must be 0 or more, got {values['standby_replicas']}"
        )
    if 0 < values.get("changelog_segment_ms", 0) < MIN_CHANGELOG_SEGMENT_MS:
        # a segment (files on the broker) per append: "60" meant as seconds
        raise ConfigError(
            f"ADL_CHANGELOG_SEGMENT_MS: 0 (the broker's default) or at least "
            f"{MIN_CHANGELOG_SEGMENT_MS}, got {values['changelog_segment_ms']}"
        )
    if values.get("session_timeout_ms", MIN_SESSION_TIMEOUT_MS) < MIN_SESSION_TIMEOUT_MS:
        raise ConfigError(
            f"ADL_SESSION_TIMEOUT_MS: must be at least {MIN_SESSION_TIMEOUT_MS}, got "
            f"{values['session_timeout_ms']}"
        )
    session_ms = values.get("session_timeout_ms", SESSION_TIMEOUT_MS)
    heartbeat_ms = values.get("heartbeat_interval_ms", HEARTBEAT_INTERVAL_MS)
    if not 0 < heartbeat_ms * 3 <= session_ms:
        raise ConfigError(
            f"ADL_HEARTBEAT_INTERVAL_MS: between 1 and a third of the session timeout "
            f"({session_ms} ms), got {heartbeat_ms}"
        )


@dataclass(frozen=True, slots=True)
class Settings:
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    partitions: int = 4
    replication_factor: int = 1
    instruments: str = ""  # TOML path; empty = the bundled instruments
    transactional_id: str = "adl-monitor-worker"
    # Kafka transactions: exactly-once outputs. Off for brokers without them (Tansu in
    # `demo`): outputs are then at-least-once, each with its sequence header for dedupe.
    transactions: bool = True
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = ""  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""  # CA bundle the broker's certificate is checked against
    ssl_certfile: str = ""  # this client's certificate (PEM), for brokers requiring mTLS
    ssl_keyfile: str = ""  # its private key (PEM)
    idle_flush_ms: int = 500  # no input for this long: release what is buffered
    # how far behind the newest event time an input may deliver and still be applied in
    # order: events this close to the newest wait for the other inputs
    # (docs/streaming.md, ADL_ALLOWED_LATENESS_MS)
    allowed_lateness_ms: int = 200
    max_poll_records: int = 5000  # input records per batch (and per output transaction)
    # a backlog released at once (a start, an input that stalled) is written in
    # transactions of about this many outputs, not one: not all held in memory (a
    # 50k-account crash released whole grew the worker past 22 GB; the kernel killed it)
    max_outputs_per_transaction: int = 20_000
    # decoded input events held for the watermark before the inputs ahead of it are
    # paused: in a backlog the sparse inputs were read to their end while the dense one
    # (marks) gated the watermark (a restart over 10M events held ~2.9 GB)
    max_buffered_events: int = 200_000
    # account-agents: a process silent this long is taken for dead and its partitions
    # move. A risk monitor wants it short (a dead owner's accounts go unwatched until
    # then) but above the pauses of a loaded process (a false death moves every
    # partition: docs/streaming.md); Faust's default is 60 s, and brokers refuse less
    # than their group.min.session.timeout.ms (6 s by default)
    session_timeout_ms: int = SESSION_TIMEOUT_MS
    # account-agents: how often a process tells its group it lives. A survivor learns of
    # a rebalance (a dead peer's partitions to take) only at its next heartbeat: at a
    # third of the session timeout (Kafka's advice, as a maximum) that was up to 3.3 s
    # of every takeover; at most a third of the session timeout
    heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS
    # account-agents: how many other processes read each changelog partition as a
    # standby (Faust's ``table_standby_replicas``), each keeping a warm copy of it (below)
    standby_replicas: int = 1
    # account-agents: a shard kept warm for each account partition this process reads
    # as a standby (``agents/warm.py``), refreshed every second: a partition moved here
    # (its owner died) is taken over from it in a fraction of a second, where a restore
    # from its rows takes ~17 s at the preset's scale (``bench_rebalance.py``). Costs
    # the copy's memory (about the owner's) and the CPU of applying its changed rows
    warm_copies: bool = True
    # account-agents: the changelog tables' rows are compacted (each key's older rows
    # dropped) once they are this old: Kafka's ``segment.ms`` of the changelog topics this
    # process creates (Kafka never compacts a topic's newest segment: by default a week
    # or 1 GB of rows, every one read again by a process that starts without the
    # partition's state). 0: the broker's default
    changelog_segment_ms: int = 60_000
    # larger input messages are dead-lettered unparsed (the broker's own limit is ~1 MB)
    max_message_bytes: int = 1 << 20
    # worker snapshots (``pipeline/snapshots.py``): the key that signs them (a secret:
    # ADL_SNAPSHOT_KEY or ADL_SNAPSHOT_KEY_FILE); none: no snapshots, a start replays
    # the whole input history. With one, a start reads the last snapshot and the input
    # after it, and the inputs need keep only that (``input_retention_hours``)
    snapshot_key: str = ""
    snapshot_interval_s: int = 60  # wall time between two snapshots (0: at every commit)
    # a snapshot made by a forked child (``pipeline/snapshot_fork.py``) while the loop
    # goes on; off: made in the loop, which waits (~28 s at the preset's 437k accounts)
    snapshot_fork: bool = True
    # the input topics' retention when this process creates them (0: forever, Kafka's
    # retention.ms=-1). Without snapshots the worker needs the whole history: a start
    # that finds an input's first records deleted stops with one clear message
    input_retention_hours: int = 0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f"ADL_{f.name.upper()}"
            raw = env.get(name)
            if raw is not None:
                if f.type in ("int", int):
                    values[f.name] = _int(name, raw)
                elif f.type in ("bool", bool):
                    values[f.name] = _bool(name, raw)
                else:
                    values[f.name] = raw
        password = secret_from_env(env, "ADL_SASL_PASSWORD")  # or ADL_SASL_PASSWORD_FILE
        if password is not None:
            values["sasl_password"] = password
        snapshot_key = secret_from_env(env, "ADL_SNAPSHOT_KEY")  # or ADL_SNAPSHOT_KEY_FILE
        if snapshot_key is not None:
            values["snapshot_key"] = snapshot_key
        values.update({k: v for k, v in overrides.items() if v is not None})
        _check_ranges(values)
        settings = cls(**values)
        settings.check_security()
        return settings

    @property
    def uses_sasl(self) -> bool:
        """SASL_PLAINTEXT or SASL_SSL: the SASL settings apply."""
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        """SSL or SASL_SSL: the TLS files apply."""
        return self.security_protocol.endswith("SSL")

    def check_security(self) -> None:
        """One ``ConfigError`` line for a security setting that cannot work."""
        if self.security_protocol not in PROTOCOLS:
            allowed = "/".join(PROTOCOLS)
            got = self.security_protocol
            raise ConfigError(f"ADL_SECURITY_PROTOCOL: one of {allowed}, got {got!r}")
        sasl = self.uses_sasl
        if sasl and self.sasl_mechanism not in MECHANISMS:
            raise ConfigError(
                f"ADL_SASL_MECHANISM: one of {'/'.join(MECHANISMS)} with "
                f"{self.security_protocol}, got {self.sasl_mechanism!r}"
            )
        if sasl and not (self.sasl_username and self.sasl_password):
            raise ConfigError(
                f"{self.security_protocol} needs ADL_SASL_USERNAME and ADL_SASL_PASSWORD "
                "(or ADL_SASL_PASSWORD_FILE)"
            )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("ADL_SSL_CERTFILE and ADL_SSL_KEYFILE go together (mTLS)")
        if self.uses_tls:
            for name, path in (
                ("ADL_SSL_CAFILE", self.ssl_cafile),
                ("ADL_SSL_CERTFILE", self.ssl_certfile),
                ("ADL_SSL_KEYFILE", self.ssl_keyfile),
            ):
                if path and not Path(path).is_file():
                    raise ConfigError(f"{name}: no such file: {path}")

    def security_warnings(self) -> list[str]:
        """Settings that work but are probably not what was meant (logged at start)."""
        out = []
        if not self.uses_sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            out.append(
                f"SASL settings are ignored with ADL_SECURITY_PROTOCOL={self.security_protocol}"
            )
        if not self.uses_tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile):
            out.append(f"TLS files are ignored with ADL_SECURITY_PROTOCOL={self.security_protocol}")
        if self.security_protocol == "SASL_PLAINTEXT" and self.sasl_mechanism == "PLAIN":
            out.append("SASL PLAIN over SASL_PLAINTEXT sends the password in clear: use SASL_SSL")
        return out

    def ssl_context(self) -> Any:
        """The TLS context for SSL and SASL_SSL (the CA; this client's certificate for
        mTLS), ``None`` otherwise."""
        if not self.uses_tls:
            return None
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(
            cafile=self.ssl_cafile or None,
            certfile=self.ssl_certfile or None,
            keyfile=self.ssl_keyfile or None,
        )

    def listening(self, timeout_s: float = 2.0) -> bool:
        """Whether a bootstrap server accepts TCP connections: a client that then fails
        to start was refused (credentials, certificates), the broker is not down."""
        for server in self.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                    return True
            except (OSError, ValueError):
                continue
        return False

    def client_options(self) -> dict[str, Any]:
        """aiokafka connection options (security) shared by every client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.uses_sasl:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password,
            }
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        return options
