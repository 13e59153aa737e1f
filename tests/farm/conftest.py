"""Real servers for the team set-up tests: one PostgreSQL and one Redis per test session, on loopback."""
from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest

from services import Postgres, Redis, why_not_postgres, why_not_redis

_dbs = itertools.count(1)


def _report_fixtures():
    """tests/report/conftest.py (real measured results and a run writer), shared here."""
    path = Path(__file__).resolve().parents[1] / "report" / "conftest.py"
    spec = importlib.util.spec_from_file_location("report_fixtures", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_rf = _report_fixtures()
measured, store_run = _rf.measured, _rf.store_run


@pytest.fixture(scope="session")
def postgres():
    reason = why_not_postgres()
    if reason:
        pytest.skip(reason)
    pg = Postgres().start()
    yield pg
    pg.destroy()


@pytest.fixture
def pg_url(postgres, request):
    """A fresh, empty database on the session's server -> its URL (postgresql://postgres@127.0.0.1:PORT/NAME)."""
    return postgres.createdb(f"t{next(_dbs)}_{request.node.name[:40].lower().replace('[', '_').strip(']')}"
                             .replace("-", "_"))


@pytest.fixture(scope="session")
def redis_server():
    reason = why_not_redis()
    if reason:
        pytest.skip(reason)
    r = Redis().start()
    yield r
    r.destroy()
