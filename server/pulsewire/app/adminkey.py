"""The admin key: from settings, or generated once and kept in the data folder (mode 0600)."""

from __future__ import annotations

import logging
import os
import sys

from pulsewire.settings import Settings
from pulsewire.storage.private import private_dir
from pulsewire.tokens import new_admin_key

log = logging.getLogger("pulsewire.admin")


def resolve_admin_key(settings: Settings) -> str:
    if settings.admin_key:
        return settings.admin_key
    path = settings.admin_key_file
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    private_dir(path.parent)
    key = new_admin_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(path, 0o600)
    # Printed once, on the console only: the log line names the file, never the key.
    print(f"\nPulsewire admin key (shown once, kept in {path}):\n  {key}\n", file=sys.stderr, flush=True)
    log.info("admin key generated", extra={"file": str(path)})
    return key
