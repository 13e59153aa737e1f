"""The results store by URL: SQLite (default) and a real PostgreSQL, the in-place upgrade of a schema-1
file written by the old code, many writers at once, and passwords that never show."""
from __future__ import annotations

import importlib.util
import multiprocessing as mp
import sqlite3
import sys
from pathlib import Path

import pytest

from edgecompress.errors import ResultsError
from edgecompress.report import compare
from edgecompress.results import HEAD, ResultsStore, result_key
from cli_helpers import cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _old_store_module():
    """The schema-1 store exactly as shipped (tests/farm/fixtures/results_v1.py), importable as
    part of the package so its relative imports resolve."""
    spec = importlib.util.spec_from_file_location("edgecompress._results_v1", FIXTURES / "results_v1.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_a_schema1_sqlite_file_written_by_the_old_code_upgrades_in_place(tmp_path, measured, store_run):
    old = _old_store_module()
    db = tmp_path / "old.db"
    with old.ResultsStore(db) as s:
        first = store_run(s, measured)
        second = store_run(s, measured)
        s.finish_run(second, "partial", {"failed": ["x"]})
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 1
    before = {t: sqlite3.connect(db).execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
              for t in ("runs", "run_targets", "artifacts", "results")}

    with ResultsStore(f"sqlite:///{db}") as store:           # the new store, by URL
        assert {r.id for r in store.runs()} == {first, second}
        rows = store.results(second)
        assert [r["artifact_key"] for r in rows] == ["fp32.onnx", "dynamic.onnx"]
        assert rows[0]["samples"] == pytest.approx(measured["results"][0]["latency_ms"]["samples"])
        assert store.run(second).status == "partial" and store.run(second).summary == {"failed": ["x"]}
        assert store.previous_run(store.run(second)).id == first
        # and it keeps working: a new keyed result on the upgraded file
        rid = store.add_result(second, dict(measured["results"][0], target="new"), profile="p",
                               key=result_key(second, "new", "abc"))
        assert rid and store.add_result(second, dict(measured["results"][0], target="new"), profile="p",
                                        key=result_key(second, "new", "abc")) is None
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == HEAD
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for t, rows in before.items():                           # nothing lost or changed (new column appended)
        after = conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
        if t == "results":
            after = [r[:-1] for r in after if r[2] != "new"]
        assert after == rows, t
    # an old edgecompress now refuses the file with a clear message instead of misreading it
    with pytest.raises(ResultsError, match="newer than this edgecompress"):
        old.ResultsStore(db)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_history_compare_and_fail_on_read_the_same_from_both(kind, tmp_path, measured, store_run, request):
    url = f"sqlite:///{tmp_path / 'r.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")
    with ResultsStore(url) as store:
        first = store_run(store, measured)
        second = store_run(store, measured, scale=2.0)          # twice as slow: a regression
        info = store.run(second)
        assert info.n_results == 2 and info.n_failed == 0 and info.state == "ok"
        assert store.targets(second)[0]["device"]["runtimes"] == {"onnxruntime": "1.32.0"}
    comp = compare([second], url, fail_on=["p50:+50%"])
    assert comp.baseline.id == first
    assert len(comp.checks) == 2 and all(c.failed for c in comp.checks)
    assert all(c.change == pytest.approx(100.0, rel=1e-6) for c in comp.checks)
    assert compare([second], url, fail_on=["p50:+150%"]).regressions == []
    rc, out, err = cli("compare", second, "--db", url, "--fail-on", "p50:+50%")
    assert rc == 1, err
    rc, out, err = cli("history", "--db", url, "--json")
    assert rc == 0, err
    import json

    assert [r["id"] for r in json.loads(out)] == [second, first]


def _writer(url: str, run_id: str, worker: int, results: list, n: int, q):
    try:
        with ResultsStore(url) as store:
            for i in range(n):
                for res in results:
                    key = result_key(run_id, f"w{worker}", f"{res['artifact']['sha256']}{i}")
                    store.add_result(run_id, dict(res, target=f"w{worker}"), profile="p", key=key)
                    store.add_result(run_id, dict(res, target=f"w{worker}"), profile="p", key=key)   # repeat
                store.set_target(run_id, f"w{worker}", status="running", profile="p")
        q.put(None)
    except Exception as e:  # noqa: BLE001 - reported to the parent
        q.put(repr(e))


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_many_writer_processes_at_once_lose_nothing_and_store_keyed_results_once(kind, tmp_path, measured,
                                                                                    request):
    url = f"sqlite:///{tmp_path / 'r.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")
    ctx = mp.get_context("spawn")
    with ResultsStore(url) as store:
        run_id = store.start_run(targets=[f"w{i}" for i in range(4)])
    q = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, run_id, i, measured["results"], 8, q)) for i in range(4)]
    for p in procs:
        p.start()
    errors = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert errors == [None] * 4
    with ResultsStore(url) as store:
        rows = store.results(run_id)
        assert len(rows) == 4 * 8 * 2 and len({r["result_key"] for r in rows}) == len(rows)
        assert len(store.targets(run_id)) == 4


def test_first_opens_from_many_processes_migrate_once(pg_url):
    """Several hosts starting on an empty PostgreSQL database at once: one migrates, the others wait."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_open_and_start, args=(pg_url, q)) for _ in range(4)]
    for p in procs:
        p.start()
    got = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(isinstance(g, str) and g.startswith("2") for g in got), got
    with ResultsStore(pg_url) as store:
        assert len(store.runs()) == 4


def _open_and_start(url, q):
    try:
        with ResultsStore(url) as s:
            q.put(s.start_run(targets=["x"]))
    except Exception as e:  # noqa: BLE001
        q.put(repr(e))


def test_passwords_in_urls_never_show(postgres, tmp_path, measured, store_run, capsys):
    """A role with a password: the URL works, and its password is in no message, row, report or output."""
    import subprocess

    pw = "s3cret-Pa55word"
    subprocess.run(["su", "postgres", "-c", f"psql -h 127.0.0.1 -p {postgres.port} -U postgres -c "
                    f"\"CREATE ROLE alice LOGIN PASSWORD '{pw}' SUPERUSER\""], check=True, capture_output=True)
    postgres.createdb("pwtest")
    url = f"postgresql://alice:{pw}@127.0.0.1:{postgres.port}/pwtest"
    with ResultsStore(url) as store:
        assert pw not in str(store.path) and "***" in store.url
        run_id = store_run(store, measured)
    comp = compare([run_id], url)
    assert pw not in comp.db and pw not in str(comp.to_dict())
    html = tmp_path / "r.html"
    from edgecompress.report import write_html

    write_html(comp, html)
    assert pw not in html.read_text()
    bad = f"postgresql://alice:{pw}@127.0.0.1:{postgres.port}/no_such_db"
    with pytest.raises(ResultsError) as e:
        ResultsStore(bad)
    assert pw not in str(e.value) and "no_such_db" in str(e.value)
    rc, out, err = cli("history", "--db", bad)
    assert rc != 0 and pw not in out + err and "***" in err


def test_bad_urls_are_usage_errors_naming_what_is_valid(tmp_path):
    from edgecompress.errors import UsageError

    with pytest.raises(UsageError, match="valid: sqlite:///PATH"):
        ResultsStore("mysql://u@h/db")
    with pytest.raises(UsageError, match="give a file"):
        ResultsStore("sqlite://")


def test_env_var_takes_a_url(monkeypatch, tmp_path, pg_url, measured, store_run):
    monkeypatch.setenv("EDGECOMPRESS_DB", pg_url)
    with ResultsStore() as store:
        assert store.dialect == "postgresql"
        run_id = store_run(store, measured)
    rc, out, err = cli("history")
    assert rc == 0 and run_id in out


@pytest.mark.slow
def test_resume_works_the_same_on_postgresql(pg_url, farm_model, farm_data, tmp_path):
    """`run --resume` on the shared store: what the first run measured is kept, not measured again."""
    import socket

    import yaml

    from edgecompress.runs import run

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    tiny = Path(__file__).resolve().parents[1] / "runs" / "tiny-x86.yaml"
    tf = tmp_path / "t.yaml"
    tf.write_text(yaml.safe_dump({"targets": [
        {"name": "local", "profile": str(tiny), "transport": "local", "workdir": str(tmp_path / "dev")},
        {"name": "dead", "profile": str(tiny), "transport": "ssh", "host": f"nobody@127.0.0.1:{closed}",
         "connect_timeout_s": 3}]}))
    model, weights = farm_model
    kw = dict(targets_file=tf, data=farm_data, out=tmp_path / "out", db=pg_url, weights=weights, eval_samples=40,
              measure={"runs": 5, "warmup": 1}, html=False)
    first = run(model, ["local", "dead"], **kw)
    assert first.status == "partial" and first.failed == ["dead"]
    with ResultsStore(pg_url) as store:
        before = {r["id"]: r["p50_ms"] for r in store.results(first.run_id)}
    assert len(before) == 3
    again = run(model, ["local"], resume=first.run_id[:15], **kw)
    assert again.run_id == first.run_id and again.status == "ok"
    with ResultsStore(pg_url) as store:
        after = {r["id"]: r["p50_ms"] for r in store.results(first.run_id)}
        assert store.run(first.run_id).state == "ok" and len(store.runs()) == 1
    assert after == before                          # kept, and nothing measured a second time
