"""Self-signed certificates for TLS tests, made with the openssl command (Debian's openssl package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.env import missing


def self_signed(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid for a day, and its unencrypted key: (cert, key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("the openssl command is not installed", "apt-get install -y openssl")
    assert openssl is not None
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"]
        + ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True,
        capture_output=True,
    )
    return cert, key
