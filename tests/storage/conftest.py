"""The storage room's fixture: a migrated database on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from pulsewire.storage.engine import migrate, open_engine
from tests.support.server import database_url_for


@pytest.fixture
def engine(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    url = database_url_for(backend, request) or f"sqlite:///{tmp_path / 'pw.db'}"
    eng = open_engine(url)
    migrate(eng)
    yield eng
    eng.dispose()
