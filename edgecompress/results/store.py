"""The results store: every run, target, artifact and benchmark result, in one database by URL.

Where: ``--db URL|PATH``, else ``$EDGECOMPRESS_DB``, else
``$XDG_DATA_HOME/edgecompress/results.db`` (``~/.local/share/edgecompress/results.db``).
``sqlite:///path`` (or a bare path) is one file, as before; ``postgresql://user@host[:port]/db``
is a team's shared store (psycopg 3). Both through SQLAlchemy Core, same tables, same JSON.

Contract:

- Each write is one transaction, committed before the call returns, so a run killed
  half-way keeps everything it had finished. SQLite: WAL with ``synchronous=FULL``, writes
  take the write lock at ``BEGIN IMMEDIATE`` (many writers wait their turn, ``busy_timeout``
  30 s). PostgreSQL: one pooled connection per writing thread; many hosts write at once.
- Worker threads may call the write methods directly. Readers elsewhere (``compare`` while a
  run is going, another host) see committed rows only.
- ``retry_s``: a write that meets an unreachable database (server down, connection dropped)
  is retried with backoff for up to that long; result rows with a ``result_key`` are inserted
  at most once, so a retried or repeated write never stores a second copy.
- The schema is migrated by Alembic on open (:func:`migrate`); a schema-1 SQLite file (the
  older store, ``PRAGMA user_version`` 1, no ``alembic_version``) is upgraded in place.
- Tables (:mod:`.tables`): ``runs``, ``run_targets``, ``artifacts``, ``results`` (every metric
  as a column, the raw latency samples and the whole benchmark result as JSON), ``blobs``.
- Run ids are ``YYYYMMDD-HHMMSS-xxxx`` (UTC); any unique prefix names a run.
- Passwords never leave this module: ``path``/``url`` are the masked form (:mod:`.urls`).
"""
from __future__ import annotations

import json
import logging
import os
import platform
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .._version import __version__
from ..errors import ResultsError
from . import tables as T
from .urls import ENV_DB, default_db_path, mask_text, resolve

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2                 # PRAGMA user_version of an upgraded SQLite file
HEAD = "0002"                      # the newest Alembic revision
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_ADVISORY_LOCK = 72_013_013        # pg_advisory_xact_lock key held while migrating

__all__ = ["ResultsStore", "RunInfo", "default_db_path", "new_run_id", "host_facts", "migrate", "ENV_DB",
           "SCHEMA_VERSION", "HEAD", "result_key"]


def new_run_id(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(2)


def result_key(run_id: str, target: str, artifact_sha256: str) -> str:
    """The idempotency key of one measurement: run × target × artifact (sha256 hex, 64 chars)."""
    import hashlib

    return hashlib.sha256(f"{run_id}\0{target}\0{artifact_sha256}".encode()).hexdigest()


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


# -- engine, migrations -------------------------------------------------------------------------
def _sqlite_engine(url):
    from sqlalchemy import create_engine, event

    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None            # we say BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        for pragma in ("busy_timeout = 30000", "journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")       # take the write lock now: no upgrade deadlocks

    return engine


def _engine(url):
    from sqlalchemy import create_engine

    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=8,
                         connect_args={"connect_timeout": 10, "application_name": "edgecompress"})


def _current_revision(conn) -> Optional[str]:
    from sqlalchemy import inspect, text

    names = set(inspect(conn).get_table_names())
    if "alembic_version" in names:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if "runs" in names:                            # the schema-1 SQLite store, before Alembic
        return "legacy"
    return None


def migrate(conn) -> Optional[str]:
    """Bring the schema on ``conn`` (in a transaction) to :data:`HEAD`; -> the revision found before."""
    from sqlalchemy import text

    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})"))   # one migrator at a time
    found = _current_revision(conn)
    if found == HEAD:
        return found
    if found not in (None, "legacy", "0001"):
        raise ResultsError(f"the results database is at schema revision {found!r}, newer than this edgecompress "
                           f"({__version__}, revision {HEAD}); upgrade edgecompress")
    if found == "legacy" and conn.dialect.name == "sqlite":
        v = conn.exec_driver_sql("PRAGMA user_version").scalar()
        if v > 1:
            raise ResultsError(f"results database schema {v} is newer than this edgecompress ({__version__}); "
                               "upgrade edgecompress")
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    if found == "legacy":
        command.stamp(cfg, "0001")
        log.warning("results database: upgrading a schema-1 store in place to revision %s", HEAD)
    command.upgrade(cfg, "head")
    return found


def _unreachable(e: Exception) -> bool:
    """An error that means the database could not be reached (worth retrying), not a bad statement."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(e, DBAPIError) and e.connection_invalidated:
        return True
    if not isinstance(e, OperationalError):
        return False
    if "sqlite" in type(getattr(e, "orig", None)).__module__:       # "no such table" is operational there too
        msg = str(e.orig).lower()
        return any(w in msg for w in ("locked", "busy", "unable to open", "disk i/o"))
    return True


class ResultsStore:
    """One results database by URL or path (created and migrated on first use). Use as a context manager.

    ``path`` / ``url``: where it is, as shown to people (the SQLite file, or the URL with its
    password masked). ``retry_s``: how long writes retry while the database is unreachable.
    """

    def __init__(self, db: str | Path | None = None, *, retry_s: float = 0.0):
        self._url, self.url, sqlite_path = resolve(db)
        self.path = sqlite_path if sqlite_path is not None else self.url
        self.dialect = self._url.get_backend_name()
        self.retry_s = retry_s
        self._closed = False
        try:
            if sqlite_path is not None:
                sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = _engine(self._url)
            self._retrying(self._migrate)
        except ResultsError:
            self.close()
            raise
        except Exception as e:
            self.close()
            raise ResultsError(f"{self.url}: cannot open the results database: {self._clean(e)}") from None

    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            found = migrate(conn)
        if found != HEAD:
            log.info("results database %s migrated from %s to %s", self.url, found, HEAD)

    def _clean(self, e: Exception) -> str:
        """An error's text without SQL parameters, passwords or the driver's boilerplate."""
        msg = str(getattr(e, "orig", None) or e).strip().splitlines()
        text = "; ".join(m.strip() for m in msg if m.strip() and not m.startswith("(Background"))[:500]
        pw = self._url.password
        if pw:
            text = text.replace(str(pw), "***")
        return mask_text(text)

    # -- plumbing ---------------------------------------------------------------------------
    def _retrying(self, fn: Callable, *args):
        """``fn(*args)``; while the database is unreachable, again with backoff for up to ``retry_s``."""
        deadline = time.monotonic() + self.retry_s
        delay = 0.2
        while True:
            try:
                return fn(*args)
            except Exception as e:  # noqa: BLE001 - classified below
                if not _unreachable(e) or time.monotonic() + delay > deadline:
                    raise
                log.warning("results database %s unreachable (%s); retrying in %.1f s", self.url,
                            self._clean(e), delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _tx(self, fn: Callable):
        """Run ``fn(conn)`` in one committed transaction (retried while the database is unreachable)."""
        def once():
            with self.engine.begin() as conn:
                return fn(conn)

        try:
            return self._retrying(once)
        except ResultsError:
            raise
        except Exception as e:
            from sqlalchemy.exc import SQLAlchemyError

            if isinstance(e, SQLAlchemyError):
                raise ResultsError(f"{self.url}: {self._clean(e)}") from None
            raise

    def _rows(self, stmt) -> list[dict]:
        return self._tx(lambda c: [dict(r._mapping) for r in c.execute(stmt)])

    def _insert(self):
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert

    def close(self) -> None:
        if not self._closed and getattr(self, "engine", None) is not None:
            self.engine.dispose()
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"ResultsStore({self.url!r})"

    # -- writing ----------------------------------------------------------------------------
    def start_run(self, *, model_source: str | None = None, model_sha256: str | None = None,
                  targets: list[str] | None = None, options: dict | None = None,
                  run_id: str | None = None) -> str:
        run_id = run_id or new_run_id()
        row = dict(id=run_id, started_at=time.time(), status="running", model_source=model_source,
                   model_sha256=model_sha256, edgecompress_version=__version__, host_json=_dumps(host_facts()),
                   targets_json=_dumps(targets or []), options_json=_dumps(options or {}))
        self._tx(lambda c: c.execute(T.runs.insert().values(**row)))
        return run_id

    def set_model(self, run_id: str, *, source: str | None, sha256: str | None) -> None:
        self._tx(lambda c: c.execute(T.runs.update().where(T.runs.c.id == run_id)
                                     .values(model_source=source, model_sha256=sha256)))

    def finish_run(self, run_id: str, status: str, summary: dict | None = None) -> None:
        self._tx(lambda c: c.execute(T.runs.update().where(T.runs.c.id == run_id).values(
            finished_at=time.time(), status=status, summary_json=_dumps(summary or {}))))

    def reopen_run(self, run_id: str) -> None:
        """Mark a run as running again (``run --resume``); its failed results are dropped, to be redone."""
        def tx(c):
            c.execute(T.results.delete().where(T.results.c.run_id == run_id, T.results.c.status != "ok"))
            c.execute(T.runs.update().where(T.runs.c.id == run_id).values(finished_at=None, status="running"))

        self._tx(tx)

    def set_target(self, run_id: str, target: str, *, status: str, profile: str | None = None,
                   transport: str | None = None, error: str | None = None, device: dict | None = None) -> None:
        """Insert or update one target's row (fields given as None keep their stored value)."""
        from sqlalchemy import func

        now = time.time()
        t = T.run_targets
        stmt = self._insert()(t).values(run_id=run_id, target=target, profile=profile, transport=transport,
                                        status=status, error=error, device_json=_dumps(device), started_at=now,
                                        finished_at=None if status == "running" else now)
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(index_elements=["run_id", "target"], set_={
            "status": ex.status, "profile": func.coalesce(ex.profile, t.c.profile),
            "transport": func.coalesce(ex.transport, t.c.transport), "error": func.coalesce(ex.error, t.c.error),
            "device_json": func.coalesce(ex.device_json, t.c.device_json), "finished_at": ex.finished_at})
        self._tx(lambda c: c.execute(stmt))

    def add_artifacts(self, run_id: str, profile: str, artifacts: list, folder: str | Path | None = None) -> None:
        """Record the artifacts built for ``profile`` (ArtifactRecord objects or manifest dicts)."""
        from dataclasses import asdict, is_dataclass

        rows = []
        for a in artifacts:
            d = asdict(a) if is_dataclass(a) else dict(a)
            path = d.get("path")
            if folder is not None and path:
                path = str(Path(folder) / path)
            rows.append(dict(run_id=run_id, profile=profile, key=_artifact_key(d), path=path,
                             format=d.get("format"), precision=d.get("precision"), layout=d.get("layout"),
                             size_bytes=d.get("size_bytes"), sha256=d.get("sha256"), status=d.get("status", "ok"),
                             error=d.get("error"), fidelity_json=_dumps(d.get("fidelity")), record_json=_dumps(d)))
        if not rows:
            return
        stmt = self._insert()(T.artifacts)
        cols = [c for c in rows[0] if c not in ("run_id", "profile", "key")]
        stmt = stmt.on_conflict_do_update(index_elements=["run_id", "profile", "key"],
                                          set_={c: getattr(stmt.excluded, c) for c in cols})
        self._tx(lambda c: c.execute(stmt, rows))

    def add_result(self, run_id: str, result, *, profile: str | None = None,
                   fidelity: dict | None = None, size_bytes: int | None = None,
                   key: str | None = None) -> Optional[int]:
        """Store one :class:`~edgecompress.device.result.BenchmarkResult` (or its dict) and commit it.

        With ``key`` (:func:`result_key`) the row is stored at most once: a second call with the
        same key stores nothing and returns None. Else -> the new row's id."""
        from ..device.result import BenchmarkResult

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
            "result_json": _dumps(r), "result_key": key,
        }
        stmt = self._insert()(T.results).values(**values)
        if key is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=["result_key"])
        stmt = stmt.returning(T.results.c.id)
        row = self._tx(lambda c: c.execute(stmt).first())
        return None if row is None else int(row[0])

    def result_keys(self, run_id: str, target: str | None = None) -> set[str]:
        """The ``result_key`` of every keyed result of a run (one target's, when given)."""
        from sqlalchemy import select

        q = select(T.results.c.result_key).where(T.results.c.run_id == run_id, T.results.c.result_key.isnot(None))
        if target is not None:
            q = q.where(T.results.c.target == target)
        return {r["result_key"] for r in self._rows(q)}

    def target(self, run_id: str, target: str) -> Optional[dict]:
        """One target's row of a run (``device`` decoded), or None."""
        rows = [t for t in self.targets(run_id) if t["target"] == target]
        return rows[0] if rows else None

    # -- blobs: the artifact store inside the database ---------------------------------------
    def put_blob(self, sha256: str, data: bytes) -> bool:
        """Store ``data`` under its sha256 (checked); -> False when it was there already."""
        import hashlib

        if hashlib.sha256(data).hexdigest() != sha256:
            raise ResultsError(f"blob {sha256[:12]}: the data's sha256 differs; refused")
        stmt = self._insert()(T.blobs).values(sha256=sha256, size_bytes=len(data), created_at=time.time(),
                                               data=data).on_conflict_do_nothing(index_elements=["sha256"])
        return bool(self._tx(lambda c: c.execute(stmt).rowcount))

    def has_blob(self, sha256: str) -> bool:
        from sqlalchemy import select

        return bool(self._rows(select(T.blobs.c.sha256).where(T.blobs.c.sha256 == sha256)))

    def get_blob(self, sha256: str) -> Optional[bytes]:
        from sqlalchemy import select

        rows = self._rows(select(T.blobs.c.data).where(T.blobs.c.sha256 == sha256))
        return bytes(rows[0]["data"]) if rows else None

    # -- reading ----------------------------------------------------------------------------
    def _run_infos(self, rows: list[dict]) -> list[RunInfo]:
        from sqlalchemy import case, func, select

        if not rows:
            return []
        r = T.results.c
        q = (select(r.run_id, func.count().label("n"), func.sum(case((r.status != "ok", 1), else_=0)).label("bad"))
             .where(r.run_id.in_([row["id"] for row in rows])).group_by(r.run_id))
        counts = {c["run_id"]: c for c in self._rows(q)}
        out = []
        for row in rows:
            c = counts.get(row["id"]) or {}
            out.append(RunInfo(id=row["id"], started_at=row["started_at"], finished_at=row["finished_at"],
                               status=row["status"], model_source=row["model_source"],
                               model_sha256=row["model_sha256"], edgecompress_version=row["edgecompress_version"],
                               host=_loads(row["host_json"]) or {}, targets=_loads(row["targets_json"]) or [],
                               options=_loads(row["options_json"]) or {}, summary=_loads(row["summary_json"]) or {},
                               n_results=int(c.get("n") or 0), n_failed=int(c.get("bad") or 0)))
        return out

    def runs(self, *, limit: int | None = None, model_sha256: str | None = None) -> list[RunInfo]:
        """Runs, newest first."""
        from sqlalchemy import select

        q = select(T.runs)
        if model_sha256:
            q = q.where(T.runs.c.model_sha256.like(model_sha256 + "%"))
        q = q.order_by(T.runs.c.started_at.desc(), T.runs.c.id.desc())
        if limit:
            q = q.limit(int(limit))
        return self._run_infos(self._rows(q))

    def run(self, run_id: str) -> RunInfo:
        """The run named by ``run_id`` or a unique prefix of it (ResultsError otherwise)."""
        from sqlalchemy import select

        rows = self._rows(select(T.runs).where(T.runs.c.id.like(run_id + "%")).order_by(T.runs.c.started_at.desc()))
        if len(rows) == 1 or (rows and rows[0]["id"] == run_id):
            return self._run_infos(rows[:1])[0]
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
        from sqlalchemy import exists, select

        if not run.model_sha256:
            return None
        ru = T.runs.c
        q = (select(T.runs).where(ru.model_sha256 == run.model_sha256, ru.started_at < run.started_at,
                                  ru.id != run.id, exists().where(T.results.c.run_id == ru.id))
             .order_by(ru.started_at.desc()).limit(1))
        rows = self._rows(q)
        return self._run_infos(rows)[0] if rows else None

    def targets(self, run_id: str) -> list[dict]:
        from sqlalchemy import select

        out = []
        t = T.run_targets
        for d in self._rows(select(t).where(t.c.run_id == run_id).order_by(t.c.target)):
            d["device"] = _loads(d.pop("device_json")) or {}
            out.append(d)
        return out

    def artifacts(self, run_id: str) -> list[dict]:
        from sqlalchemy import select

        out = []
        a = T.artifacts
        for d in self._rows(select(a).where(a.c.run_id == run_id).order_by(a.c.profile, a.c.key)):
            d["fidelity"] = _loads(d.pop("fidelity_json")) or {}
            d["record"] = _loads(d.pop("record_json")) or {}
            out.append(d)
        return out

    def reruns(self, target: str, limit: int = 400) -> list[dict]:
        """The latest ``limit`` ok results on ``target`` (cheap columns only, no samples): what the
        target's rerun noise is learned from (:func:`edgecompress.report.checks.rerun_noise`)."""
        from sqlalchemy import select

        c = T.results.c
        cols = ("run_id", "artifact_sha256", "runtime", "arch", "threads", "created_at", "throttled",
                "p50_ms", "p90_ms", "mean_ms", "peak_rss_mb", "mj_per_inference")
        return self._rows(select(*[c[k] for k in cols])
                          .where(c.target == target, c.status == "ok", c.artifact_sha256.isnot(None))
                          .order_by(c.created_at.desc(), c.id.desc()).limit(limit))

    def results(self, run_id: str) -> list[dict]:
        """Result rows of a run in arrival order: metric columns, ``samples`` (list) and ``result``
        (a :class:`~edgecompress.device.result.BenchmarkResult`)."""
        from sqlalchemy import select

        from ..device.result import BenchmarkResult

        out = []
        for d in self._rows(select(T.results).where(T.results.c.run_id == run_id).order_by(T.results.c.id)):
            d["samples"] = _loads(d.pop("samples_json")) or []
            d["result"] = BenchmarkResult.from_dict(_loads(d.pop("result_json")) or {"status": d["status"]},
                                                    where=f"stored result {d['id']} of run {run_id}")
            out.append(d)
        return out
