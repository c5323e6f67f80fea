"""The running parts of one server, built by the app's lifespan and reached through `Request.app`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from pulsewire.hub import LiveHub
from pulsewire.metrics import Metrics
from pulsewire.presence import Presence
from pulsewire.settings import Settings
from pulsewire.storage.writer import BatchingWriter


@dataclass(eq=False)
class Services:
    settings: Settings
    engine: Engine
    writer: BatchingWriter
    hub: LiveHub
    presence: Presence
    metrics: Metrics
    admin_key: str
