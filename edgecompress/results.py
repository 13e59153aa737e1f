"""The results store: every run, target, artifact and benchmark result, in one SQLite file.

Where: ``--db PATH``, else ``$EDGECOMPRESS_DB``, else
``$XDG_DATA_HOME/edgecompress/results.db`` (``~/.local/share/edgecompress/results.db``).

Contract:

- Each write is one transaction, committed before the call returns, so a run killed
  half-way keeps everything it had finished; the journal is WAL with ``synchronous=FULL``
  so the file is never left corrupt (a killed writer's last transaction is rolled back).
- One connection per store, guarded by a lock (``check_same_thread=False``): worker threads
  may call the write methods directly. Readers in other processes (``compare`` while a run
  is going) see committed rows only.
- Tables (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`):
  ``runs`` (id, times, status, model source/hash, project version, host facts, options),
  ``run_targets`` (per target: profile, status, error, device facts incl. runtime versions),
  ``artifacts`` (per run × profile × artifact: file facts and host-side fidelity),
  ``results`` (per run × target × artifact: every metric as a column, the raw latency
  samples as a JSON array, and the whole benchmark result as JSON).
- Run ids are ``YYYYMMDD-HHMMSS-xxxx`` (UTC); any unique prefix names a run.
"""
from __future__ import annotations

import json
import os
import platform
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from ._version import __version__
from .errors import ResultsError

ENV_DB = "EDGECOMPRESS_DB"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY,
  started_at REAL NOT NULL,
  finished_at REAL,
  status TEXT NOT NULL,                 -- running | ok | partial | failed
  model_source TEXT,
  model_sha256 TEXT,
  edgecompress_version TEXT NOT NULL,
  host_json TEXT,                       -- the machine that ran the command
  targets_json TEXT,                    -- target names asked for
  options_json TEXT,
  summary_json TEXT
);
CREATE INDEX IF NOT EXISTS runs_model ON runs(model_sha256, started_at);
CREATE TABLE IF NOT EXISTS run_targets (
  run_id TEXT NOT NULL REFERENCES runs(id),
  target TEXT NOT NULL,
  profile TEXT,
  transport TEXT,
  status TEXT NOT NULL,                 -- running | ok | partial | failed
  error TEXT,
  device_json TEXT,                     -- runner facts: arch, os, python, runtimes{name: version}
  started_at REAL,
  finished_at REAL,
  PRIMARY KEY (run_id, target)
);
CREATE TABLE IF NOT EXISTS artifacts (
  run_id TEXT NOT NULL REFERENCES runs(id),
  profile TEXT NOT NULL,
  key TEXT NOT NULL,                    -- precision.format, e.g. int8.tflite
  path TEXT, format TEXT, precision TEXT, layout TEXT,
  size_bytes INTEGER, sha256 TEXT, status TEXT, error TEXT,
  fidelity_json TEXT, record_json TEXT,
  PRIMARY KEY (run_id, profile, key)
);
CREATE TABLE IF NOT EXISTS results (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL REFERENCES runs(id),
  target TEXT NOT NULL,
  profile TEXT,
  artifact_key TEXT NOT NULL,
  format TEXT, precision TEXT, artifact_sha256 TEXT, size_bytes INTEGER,
  status TEXT NOT NULL, error TEXT,
  created_at REAL NOT NULL,
  arch TEXT, os TEXT, python TEXT, runtime TEXT, threads INTEGER, runs INTEGER,
  load_ms REAL, first_ms REAL, mean_ms REAL, p50_ms REAL, p90_ms REAL, p99_ms REAL,
  std_ms REAL, min_ms REAL, max_ms REAL,
  samples_json TEXT,                    -- raw per-inference latencies, ms
  baseline_rss_mb REAL, peak_rss_mb REAL, delta_rss_mb REAL,
  energy_method TEXT, energy_source TEXT, avg_power_w REAL, mj_per_inference REAL,
  temp_c_before REAL, temp_c_after REAL, throttled INTEGER,
  fid_max_abs REAL, fid_cosine REAL, fid_top1_agreement REAL, fid_accuracy REAL,
  fid_reference_accuracy REAL, fid_samples INTEGER,
  result_json TEXT NOT NULL             -- the whole benchmark result (DESIGN.md), plus fidelity
);
CREATE INDEX IF NOT EXISTS results_run ON results(run_id, target);
"""


def default_db_path() -> Path:
    env = os.environ.get(ENV_DB)
    if env:
        return Path(env).expanduser()
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "edgecompress" / "results.db"


def new_run_id(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(2)


def host_facts() -> dict:
    return {"hostname": platform.node(), "arch": platform.machine(), "os": platform.platform(),
            "python": platform.python_version(), "pid": os.getpid()}


def _alive_here(host: dict) -> bool:
    """Whether the process that wrote a run is still running (only known on the same machine)."""
    pid = host.get("pid")
    if not pid or host.get("hostname") != platform.node():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dumps(obj: Any) -> Optional[str]:
    return None if obj is None else json.dumps(obj, default=_json_default, sort_keys=True)


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    return str(o)


def _loads(text: Optional[str]) -> Any:
    return None if text is None else json.loads(text)


@dataclass
class RunInfo:
    id: str
    started_at: float
    finished_at: Optional[float]
    status: str
    model_source: Optional[str]
    model_sha256: Optional[str]
    edgecompress_version: str
    host: dict = field(default_factory=dict)
    targets: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    n_results: int = 0
    n_failed: int = 0

    @property
    def state(self) -> str:
        """``status`` of a finished run; else ``running`` (its process is alive on this machine)
        or ``incomplete`` (killed half-way, or running elsewhere)."""
        if self.finished_at is not None:
            return self.status
        return "running" if _alive_here(self.host) else "incomplete"

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["state"] = self.state
        return d


def _artifact_key(artifact: dict) -> str:
    return f"{artifact.get('precision')}.{artifact.get('format')}"


class ResultsStore:
    """One SQLite results database (created on first use). Use as a context manager."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path).expanduser() if path else default_db_path()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False,
                                         isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA busy_timeout = 30000")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ResultsError(f"{self.path}: results database schema {version} is newer than this "
                                   f"edgecompress ({__version__}, schema {SCHEMA_VERSION}); upgrade edgecompress")
            if version < SCHEMA_VERSION:
                with self._tx() as c:
                    c.executescript("BEGIN;" + _SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
        except sqlite3.DatabaseError as e:
            raise ResultsError(f"{self.path}: cannot open the results database: {e}") from e

    # -- plumbing ---------------------------------------------------------------------------
    class _Tx:
        def __init__(self, store):
            self.store = store

        def __enter__(self):
            self.store._lock.acquire()
            return self.store._conn

        def __exit__(self, exc_type, exc, tb):
            try:
                conn = self.store._conn
                if conn.in_transaction:
                    conn.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.store._lock.release()

    def _tx(self):
        return ResultsStore._Tx(self)

    def _write(self, sql: str, params: Iterable = ()) -> sqlite3.Cursor:
        with self._tx() as c:
            c.execute("BEGIN IMMEDIATE")
            return c.execute(sql, tuple(params))

    def _query(self, sql: str, params: Iterable = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writing ----------------------------------------------------------------------------
    def start_run(self, *, model_source: str | None = None, model_sha256: str | None = None,
                  targets: list[str] | None = None, options: dict | None = None,
                  run_id: str | None = None) -> str:
        run_id = run_id or new_run_id()
        self._write("INSERT INTO runs (id, started_at, status, model_source, model_sha256, edgecompress_version,"
                    " host_json, targets_json, options_json) VALUES (?,?,?,?,?,?,?,?,?)",
                    (run_id, time.time(), "running", model_source, model_sha256, __version__,
                     _dumps(host_facts()), _dumps(targets or []), _dumps(options or {})))
        return run_id

    def set_model(self, run_id: str, *, source: str | None, sha256: str | None) -> None:
        self._write("UPDATE runs SET model_source=?, model_sha256=? WHERE id=?", (source, sha256, run_id))

    def finish_run(self, run_id: str, status: str, summary: dict | None = None) -> None:
        self._write("UPDATE runs SET finished_at=?, status=?, summary_json=? WHERE id=?",
                    (time.time(), status, _dumps(summary or {}), run_id))

    def reopen_run(self, run_id: str) -> None:
        """Mark a run as running again (``run --resume``); its failed results are dropped, to be redone."""
        with self._tx() as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute("DELETE FROM results WHERE run_id=? AND status != 'ok'", (run_id,))
            c.execute("UPDATE runs SET finished_at=NULL, status='running' WHERE id=?", (run_id,))

    def set_target(self, run_id: str, target: str, *, status: str, profile: str | None = None,
                   transport: str | None = None, error: str | None = None, device: dict | None = None) -> None:
        """Insert or update one target's row (fields given as None keep their stored value)."""
        now = time.time()
        finished = None if status == "running" else now
        self._write(
            "INSERT INTO run_targets (run_id, target, profile, transport, status, error, device_json, started_at,"
            " finished_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(run_id, target) DO UPDATE SET"
            " status=excluded.status, profile=COALESCE(excluded.profile, profile),"
            " transport=COALESCE(excluded.transport, transport), error=COALESCE(excluded.error, error),"
            " device_json=COALESCE(excluded.device_json, device_json), finished_at=excluded.finished_at",
            (run_id, target, profile, transport, status, error, _dumps(device), now, finished))

    def add_artifacts(self, run_id: str, profile: str, artifacts: list, folder: str | Path | None = None) -> None:
        """Record the artifacts built for ``profile`` (ArtifactRecord objects or manifest dicts)."""
        from dataclasses import asdict, is_dataclass

        rows = []
        for a in artifacts:
            d = asdict(a) if is_dataclass(a) else dict(a)
            path = d.get("path")
            if folder is not None and path:
                path = str(Path(folder) / path)
            rows.append((run_id, profile, _artifact_key(d), path, d.get("format"), d.get("precision"),
                         d.get("layout"), d.get("size_bytes"), d.get("sha256"), d.get("status", "ok"),
                         d.get("error"), _dumps(d.get("fidelity")), _dumps(d)))
        with self._tx() as c:
            c.execute("BEGIN IMMEDIATE")
            c.executemany("INSERT OR REPLACE INTO artifacts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def add_result(self, run_id: str, result, *, profile: str | None = None,
                   fidelity: dict | None = None, size_bytes: int | None = None) -> int:
        """Store one :class:`~edgecompress.device.result.BenchmarkResult` (or its dict) and commit it."""
        from .device.result import BenchmarkResult

        r = BenchmarkResult.from_dict(result).to_dict()
        if fidelity is not None:
            r["fidelity"] = fidelity
        fid = r.get("fidelity") or {}
        art = r.get("artifact") or {}
        dev = r.get("device") or {}
        lat = r.get("latency_ms") or {}
        mem = r.get("memory_mb") or {}
        en = r.get("energy") or {}
        th = r.get("thermal") or {}
        thr = th.get("throttled")
        values = {
            "run_id": run_id, "target": r.get("target") or "?", "profile": profile,
            "artifact_key": _artifact_key(art), "format": art.get("format"), "precision": art.get("precision"),
            "artifact_sha256": art.get("sha256"), "size_bytes": size_bytes if size_bytes is not None
            else art.get("size_bytes"), "status": r.get("status") or "failed", "error": r.get("error"),
            "created_at": time.time(), "arch": dev.get("arch"), "os": dev.get("os"), "python": dev.get("python"),
            "runtime": dev.get("runtime"), "threads": dev.get("threads"), "runs": r.get("runs"),
            "load_ms": lat.get("load"), "first_ms": lat.get("first"), "mean_ms": lat.get("mean"),
            "p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"), "p99_ms": lat.get("p99"), "std_ms": lat.get("std"),
            "min_ms": lat.get("min"), "max_ms": lat.get("max"), "samples_json": _dumps(lat.get("samples") or []),
            "baseline_rss_mb": mem.get("baseline_rss"), "peak_rss_mb": mem.get("peak_rss"),
            "delta_rss_mb": mem.get("delta"), "energy_method": en.get("method"), "energy_source": en.get("source"),
            "avg_power_w": en.get("avg_power_w"), "mj_per_inference": en.get("mj_per_inference"),
            "temp_c_before": th.get("temp_c_before"), "temp_c_after": th.get("temp_c_after"),
            "throttled": None if thr is None else int(bool(thr)),
            "fid_max_abs": fid.get("max_abs"), "fid_cosine": fid.get("cosine"),
            "fid_top1_agreement": fid.get("top1_agreement"), "fid_accuracy": fid.get("accuracy"),
            "fid_reference_accuracy": fid.get("reference_accuracy"), "fid_samples": fid.get("samples"),
            "result_json": _dumps(r),
        }
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cur = self._write(f"INSERT INTO results ({cols}) VALUES ({marks})", values.values())
        return int(cur.lastrowid)

    # -- reading ----------------------------------------------------------------------------
    def _run_info(self, row: sqlite3.Row) -> RunInfo:
        counts = self._query("SELECT COUNT(*), SUM(status != 'ok') FROM results WHERE run_id=?", (row["id"],))[0]
        return RunInfo(id=row["id"], started_at=row["started_at"], finished_at=row["finished_at"],
                       status=row["status"], model_source=row["model_source"], model_sha256=row["model_sha256"],
                       edgecompress_version=row["edgecompress_version"], host=_loads(row["host_json"]) or {},
                       targets=_loads(row["targets_json"]) or [], options=_loads(row["options_json"]) or {},
                       summary=_loads(row["summary_json"]) or {}, n_results=counts[0] or 0,
                       n_failed=counts[1] or 0)

    def runs(self, *, limit: int | None = None, model_sha256: str | None = None) -> list[RunInfo]:
        """Runs, newest first."""
        sql, params = "SELECT * FROM runs", []
        if model_sha256:
            sql += " WHERE model_sha256 LIKE ?"
            params.append(model_sha256 + "%")
        sql += " ORDER BY started_at DESC, rowid DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [self._run_info(r) for r in self._query(sql, params)]

    def run(self, run_id: str) -> RunInfo:
        """The run named by ``run_id`` or a unique prefix of it (ResultsError otherwise)."""
        rows = self._query("SELECT * FROM runs WHERE id LIKE ? ORDER BY started_at DESC", (run_id + "%",))
        if len(rows) == 1 or (rows and rows[0]["id"] == run_id):
            return self._run_info(rows[0])
        if not rows:
            recent = ", ".join(r.id for r in self.runs(limit=5)) or "(none: the database is empty)"
            raise ResultsError(f"no run {run_id!r} in {self.path}; recent runs: {recent}")
        raise ResultsError(f"run id {run_id!r} is ambiguous in {self.path}: matches "
                           f"{', '.join(r['id'] for r in rows[:5])}")

    def latest_run(self) -> RunInfo:
        runs = self.runs(limit=1)
        if not runs:
            raise ResultsError(f"no runs in {self.path} yet; make one with `edgecompress run MODEL --target NAME`")
        return runs[0]

    def previous_run(self, run: RunInfo) -> Optional[RunInfo]:
        """The newest run of the same model started before ``run`` that has results, or None."""
        if not run.model_sha256:
            return None
        rows = self._query("SELECT * FROM runs WHERE model_sha256=? AND started_at < ? AND id != ? AND EXISTS"
                           " (SELECT 1 FROM results WHERE results.run_id = runs.id)"
                           " ORDER BY started_at DESC LIMIT 1", (run.model_sha256, run.started_at, run.id))
        return self._run_info(rows[0]) if rows else None

    def targets(self, run_id: str) -> list[dict]:
        out = []
        for r in self._query("SELECT * FROM run_targets WHERE run_id=? ORDER BY target", (run_id,)):
            d = dict(r)
            d["device"] = _loads(d.pop("device_json")) or {}
            out.append(d)
        return out

    def artifacts(self, run_id: str) -> list[dict]:
        out = []
        for r in self._query("SELECT * FROM artifacts WHERE run_id=? ORDER BY profile, key", (run_id,)):
            d = dict(r)
            d["fidelity"] = _loads(d.pop("fidelity_json")) or {}
            d["record"] = _loads(d.pop("record_json")) or {}
            out.append(d)
        return out

    def results(self, run_id: str) -> list[dict]:
        """Result rows of a run in arrival order: metric columns, ``samples`` (list) and ``result``
        (a :class:`~edgecompress.device.result.BenchmarkResult`)."""
        from .device.result import BenchmarkResult

        out = []
        for r in self._query("SELECT * FROM results WHERE run_id=? ORDER BY id", (run_id,)):
            d = dict(r)
            d["samples"] = _loads(d.pop("samples_json")) or []
            d["result"] = BenchmarkResult.from_dict(_loads(d.pop("result_json")) or {"status": d["status"]},
                                                    where=f"stored result {d['id']} of run {run_id}")
            out.append(d)
        return out
