"""Throwaway certificates for the secured broker (openssl): a CA, the broker's
certificate for 127.0.0.1, a client certificate signed by the CA, and one signed by
another CA the broker does not trust."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str | Path) -> None:
    openssl = shutil.which("openssl") or "openssl"
    subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name}", "-keyout", key, "-out", cert)  # fmt: skip
    return key, cert


def _signed(folder: Path, name: str, ca: tuple[Path, Path], san: str | None) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", key,
             "-out", csr)  # fmt: skip
    extra = folder / f"{name}.ext"
    extra.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial",
             "-days", "2", "-extfile", extra, "-out", cert)  # fmt: skip
    return key, cert


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA both sides trust
    broker_keystore: Path  # the broker's key and certificate, one PEM file
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # signed by a CA the broker does not know
    rogue_key: Path


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    ca = _ca(folder, "adl-test-ca")
    broker_key, broker_cert = _signed(folder, "broker", ca, "IP:127.0.0.1,DNS:localhost")
    keystore = folder / "broker-keystore.pem"
    keystore.write_text(broker_key.read_text() + broker_cert.read_text())
    client_key, client_cert = _signed(folder, "adl-client", ca, None)
    rogue_ca = _ca(folder, "rogue-ca")
    rogue_key, rogue_cert = _signed(folder, "rogue-client", rogue_ca, None)
    return Certificates(ca[1], keystore, client_cert, client_key, rogue_cert, rogue_key)
