"""Where a tune study lives: Optuna's RDB storage in its own SQLite file beside the results
database (``tune-studies.db``), plus a table of measurements keyed by artifact hash.

A study is named after the model's sha256, the target and the search space, so the same
command run again (after a kill) loads it and goes on (``load_if_exists``). A measurement is
keyed by (target, artifact sha256, threads, measure settings): a candidate that builds the
same bytes as an earlier one is never measured twice.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Optional

_SCHEMA = """CREATE TABLE IF NOT EXISTS tune_measurements (
  target TEXT NOT NULL, sha256 TEXT NOT NULL, settings_key TEXT NOT NULL, created_at REAL NOT NULL,
  result_json TEXT NOT NULL, PRIMARY KEY (target, sha256, settings_key))"""


def study_file(db=None) -> Path:
    """``tune-studies.db`` beside the results database (a SQLite file), else under the user data folder."""
    from ..results.urls import default_db_path, resolve

    try:
        _url, _shown, path = resolve(db)
    except Exception:  # noqa: BLE001 - an odd URL: keep studies in the default place
        path = None
    base = path.parent if path is not None else default_db_path().parent
    base.mkdir(parents=True, exist_ok=True)
    return base / "tune-studies.db"


def study_name(model_sha: str, target: str, space: dict) -> str:
    digest = hashlib.sha256(json.dumps(space, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"tune-{model_sha[:12]}-{target}-{digest}"


class Measurements:
    """The measurement cache (one table in the study file)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.commit()

    @staticmethod
    def key(threads: int, measure: dict) -> str:
        return json.dumps({"threads": threads, **measure}, sort_keys=True)

    def get(self, target: str, sha: str, key: str) -> Optional[dict]:
        with self._lock:
            row = self._db.execute("SELECT result_json FROM tune_measurements WHERE target=? AND sha256=? AND "
                                   "settings_key=?", (target, sha, key)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, target: str, sha: str, key: str, result: dict) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO tune_measurements VALUES (?,?,?,?,?)",
                             (target, sha, key, time.time(), json.dumps(result, default=str)))
            self._db.commit()

    def close(self) -> None:
        self._db.close()
