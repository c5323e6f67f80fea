"""What `pulsewire serve` prints once it listens: where things are, and what to do next."""

from __future__ import annotations

from pathlib import Path

from pulsewire.settings import Settings
from pulsewire_devkit import INSTALL as DEVKIT_INSTALL

DEFAULT_BASE = "http://127.0.0.1:8000"


def banner(base: str, settings: Settings, *, devkit: bool, lan: str | None) -> str:
    """The start-up banner for a server at `base`; `devkit`: are the flashing tools installed;
    `lan`: this machine's address on its network, if known."""
    where = ""
    if base != DEFAULT_BASE:
        where += f" --server {base}"
    if settings.data_dir != Path("data") and not settings.admin_key:
        where += f" --data-dir {settings.data_dir}"
    port = base.rsplit(":", 1)[1]
    scheme = base.split("://", 1)[0]
    lines = [
        "",
        f"  Dashboard:  {base}/",
        f"  API docs:   {base}/docs",
        f"  Live:       {base.replace('http', 'ws', 1)}/ws/live",
        "",
        "  Next:",
        f"    add a device:       pulsewire device add greenhouse-1{where}   (prints its token)",
        f"    simulated devices:  pulsewire simulate 3{where}",
    ]
    if settings.host in ("0.0.0.0", "::"):
        board_base = f"{scheme}://{lan or '<this machine>'}:{port}"
        lines.append(
            f"    flash a board:      pulsewire flash --port /dev/ttyUSB0 --server {board_base} --device-id greenhouse-1"
        )
    else:
        lines += [
            "    flash a board:      boards cannot reach " + settings.host + ": serve with --host 0.0.0.0, then",
            f"                        pulsewire flash --port /dev/ttyUSB0 --server {scheme}://<this machine>:{port} "
            "--device-id greenhouse-1",
        ]
    if not devkit:
        lines.append(f"                        (flashing needs the devkit: {DEVKIT_INSTALL})")
    if settings.tls_cert:
        lines += [
            "",
            f"  TLS:        {settings.tls_cert}; with a self-signed certificate, the commands above need",
            f"              SSL_CERT_FILE={settings.tls_cert}, and a board its CA in `ca` (docs/firmware.md)",
        ]
    lines.append("")
    return "\n".join(lines)
