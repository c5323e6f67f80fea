"""Shared fixtures: real servers on SQLite and PostgreSQL, and the PostgreSQL databases behind them."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.support.env import missing
from tests.support.server import Server, start_server

POSTGRES_ADMIN_URL = os.environ.get("PULSEWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _postgres_problem() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means the same to the caller: no PostgreSQL
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable: {exc}"


@pytest.fixture(scope="session")
def postgres_available() -> None:
    problem = _postgres_problem()
    if problem:
        missing(problem, "tests/run starts it")


@pytest.fixture(scope="session")
def postgres_database(postgres_available: None) -> Iterator[object]:
    """A factory of fresh PostgreSQL databases (SQLAlchemy URLs), dropped at the end of the session."""
    import psycopg

    made: list[str] = []

    def make() -> str:
        name = "pulsewire_test_" + secrets.token_hex(5)
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        return f"{base}/{name}"

    yield make
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """One real server per test module and backend; tests use their own device ids."""
    tmp = tmp_path_factory.mktemp(f"server-{request.param}")
    return start_server(tmp, request.param, request, ping_interval_s="1", ping_timeout_s="1", sample_interval_ms="1000")
