"""Standard Webhooks signatures (standardwebhooks.com): HMAC-SHA256 over
``{webhook-id}.{webhook-timestamp}.{body}`` with the secret's bytes, sent as
``v1,<base64>`` in ``webhook-signature``. Secrets are ``whsec_<base64>``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping

from streams.engine.errors import ConfigError
from streams.pipeline.settings import secret_from_env

PREFIX = "whsec_"


MIN_SECRET_BYTES = 16  # an empty or toy key signs nothing worth verifying


def secret_bytes(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise ValueError("a Standard Webhooks secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the secret after whsec_ is not base64: {exc}") from exc
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret's key is {len(key)} bytes: at least {MIN_SECRET_BYTES}")
    return key


def webhook_secret(environ: Mapping[str, str]) -> str:
    """The signing secret from ``ADL_WEBHOOK_SECRET`` or the file named by
    ``ADL_WEBHOOK_SECRET_FILE`` (a mounted secret), checked before anything starts."""
    value = secret_from_env(environ, "ADL_WEBHOOK_SECRET")
    if value is None:
        raise ConfigError("no webhook secret: set ADL_WEBHOOK_SECRET or ADL_WEBHOOK_SECRET_FILE")
    try:
        secret_bytes(value)
    except ValueError as exc:
        raise ConfigError(f"ADL_WEBHOOK_SECRET: {exc}") from exc
    return value


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp_s}.".encode() + body
    digest = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": sign(secret, msg_id, timestamp_s, body),
        "content-type": "application/json",
    }
