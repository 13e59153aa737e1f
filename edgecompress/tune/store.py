"""Where a tune study lives, and the measurements it has made (keyed by artifact hash).

* A PostgreSQL results store (a team's): the study is in **the same database**, in the schema
  ``optuna`` (Optuna's RDB storage keeps its own Alembic version table, so it gets a schema of
  its own rather than sharing the results tables' namespace); the measurements are the table
  ``optuna.tune_measurements``. Every member's ``tune`` against that database sees the same
  studies and never measures the same bytes twice.
* A SQLite results file (one namespace per file): the study and the measurements are in
  ``tune-studies.db`` beside it.

A study is named after the model's sha256, the target and the search space, so the same
command run again (after a kill) loads it and goes on (``load_if_exists``). A measurement is
keyed by (target, artifact sha256, threads, measure settings).
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

SCHEMA = "optuna"            # the PostgreSQL schema of the studies and measurements


@dataclass
class StudyStorage:
    url: str                               # the SQLAlchemy URL Optuna and the measurements connect with
    shown: str                             # the same without a password: what is printed and reported
    schema: Optional[str] = None           # PostgreSQL: the schema it lives in
    engine_kwargs: dict = field(default_factory=dict)

    def optuna(self):
        import optuna

        if self.schema:
            _create_schema(self.url, self.schema)
        return optuna.storages.RDBStorage(self.url, engine_kwargs=self.engine_kwargs)


def study_storage(db=None) -> StudyStorage:
    """The study storage for the results database ``db`` (a path or URL; see the module doc)."""
    from ..results.urls import default_db_path, masked, resolve

    url, _shown, path = resolve(db)
    if path is None:                                                      # PostgreSQL
        real = url.render_as_string(hide_password=False)
        return StudyStorage(real, f"{masked(url)} (schema {SCHEMA})", SCHEMA,
                            {"connect_args": {"options": f"-csearch_path={SCHEMA}"}, "pool_pre_ping": True})
    base = path.parent if path is not None else default_db_path().parent
    base.mkdir(parents=True, exist_ok=True)
    file = base / "tune-studies.db"
    return StudyStorage(f"sqlite:///{file}", f"sqlite:///{file}", None, {"connect_args": {"timeout": 30}})


def _create_schema(url: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()


def study_name(model_sha: str, target: str, space: dict) -> str:
    digest = hashlib.sha256(json.dumps(space, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"tune-{model_sha[:12]}-{target}-{digest}"


class Measurements:
    """The measurement cache: one table beside the studies (SQLAlchemy Core, SQLite or PostgreSQL)."""

    def __init__(self, storage: StudyStorage | Path | str):
        from sqlalchemy import Column, Float, MetaData, String, Table, Text, create_engine

        if not isinstance(storage, StudyStorage):
            storage = StudyStorage(f"sqlite:///{storage}", f"sqlite:///{storage}", None,
                                   {"connect_args": {"timeout": 30}})
        if storage.schema:
            _create_schema(storage.url, storage.schema)
        self.table = Table("tune_measurements", MetaData(schema=storage.schema),
                           Column("target", String(200), primary_key=True),
                           Column("sha256", String(64), primary_key=True),
                           Column("settings_key", String(500), primary_key=True),
                           Column("created_at", Float, nullable=False),
                           Column("result_json", Text, nullable=False))
        self.engine = create_engine(storage.url, **storage.engine_kwargs)
        self.table.metadata.create_all(self.engine)
        self._lock = threading.Lock()

    @staticmethod
    def key(threads: int, measure: dict) -> str:
        return json.dumps({"threads": threads, **measure}, sort_keys=True)

    def _where(self, target: str, sha: str, key: str):
        t = self.table.c
        return (t.target == target) & (t.sha256 == sha) & (t.settings_key == key)

    def get(self, target: str, sha: str, key: str) -> Optional[dict]:
        from sqlalchemy import select

        with self._lock, self.engine.connect() as conn:
            row = conn.execute(select(self.table.c.result_json).where(self._where(target, sha, key))).first()
        return json.loads(row[0]) if row else None

    def put(self, target: str, sha: str, key: str, result: dict) -> None:
        with self._lock, self.engine.begin() as conn:          # replace, in one transaction
            conn.execute(self.table.delete().where(self._where(target, sha, key)))
            conn.execute(self.table.insert().values(target=target, sha256=sha, settings_key=key,
                                                    created_at=time.time(),
                                                    result_json=json.dumps(result, default=str)))

    def close(self) -> None:
        self.engine.dispose()
