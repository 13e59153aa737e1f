"""The SQLite results store: what it keeps, that it commits as it goes, and that threads may write."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from edgecompress.errors import ResultsError
from edgecompress.results import ResultsStore, default_db_path


def test_run_round_trips_every_metric_and_raw_samples(tmp_path, measured, store_run):
    db = tmp_path / "r.db"
    with ResultsStore(db) as store:
        run_id = store_run(store, measured)
    with ResultsStore(db) as store:                       # a fresh connection reads what was committed
        run = store.run(run_id[:17])                        # a unique prefix names the run
        assert run.id == run_id and run.state == "ok" and run.model_sha256 == measured["sha256"]
        assert run.edgecompress_version and run.host["arch"]
        rows = store.results(run_id)
        assert [r["artifact_key"] for r in rows] == ["fp32.onnx", "dynamic.onnx"]
        for row, res in zip(rows, measured["results"]):
            assert row["p50_ms"] == pytest.approx(res["latency_ms"]["p50"])
            assert row["samples"] == pytest.approx(res["latency_ms"]["samples"])
            assert len(row["samples"]) == row["runs"] == 40
            assert row["size_bytes"] == res["artifact"]["size_bytes"]
            assert row["energy_method"] == "estimated"
            assert row["fid_accuracy"] == pytest.approx(res["fidelity"]["accuracy"])
            assert row["result"].latency_ms.p90 == pytest.approx(res["latency_ms"]["p90"])
        arts = store.artifacts(run_id)
        assert {a["key"] for a in arts} == {"fp32.onnx", "dynamic.onnx"}
        assert all(a["path"].startswith(str(measured["folder"])) for a in arts)
        assert store.targets(run_id)[0]["device"]["runtimes"] == {"onnxruntime": "1.32.0"}
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_each_result_is_committed_before_the_call_returns(tmp_path, measured):
    """Another connection (another process, e.g. `compare` during a run) sees each result at once."""
    db = tmp_path / "r.db"
    store = ResultsStore(db)
    run_id = store.start_run(model_source="m", model_sha256="abc", targets=["local"])
    reader = sqlite3.connect(db)
    for i, res in enumerate(measured["results"], 1):
        store.add_result(run_id, res, profile="p")
        assert reader.execute("SELECT COUNT(*) FROM results WHERE run_id=?", (run_id,)).fetchone()[0] == i
    assert store.run(run_id).state == "running"          # not finished, and its process is alive
    store.close()


def test_worker_threads_write_concurrently_without_losing_rows(tmp_path, measured):
    store = ResultsStore(tmp_path / "r.db")
    run_id = store.start_run(targets=[f"t{i}" for i in range(4)])
    errors = []

    def worker(i):
        try:
            for _ in range(10):
                for res in measured["results"]:
                    store.add_result(run_id, dict(res, target=f"t{i}"), profile="p")
                store.set_target(run_id, f"t{i}", status="running", profile="p")
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store.results(run_id)) == 4 * 10 * 2
    assert len(store.targets(run_id)) == 4
    store.close()


def test_unknown_run_names_the_recent_ones(tmp_path, measured, store_run):
    with ResultsStore(tmp_path / "r.db") as store:
        run_id = store_run(store, measured)
        with pytest.raises(ResultsError, match=run_id):
            store.run("nope")


def test_previous_run_is_the_same_models_earlier_run(tmp_path, measured, store_run):
    with ResultsStore(tmp_path / "r.db") as store:
        first = store_run(store, measured)
        other = store.start_run(model_sha256="another-model")
        second = store_run(store, measured)
        assert store.previous_run(store.run(second)).id == first
        assert store.previous_run(store.run(first)) is None
        assert store.previous_run(store.run(other)) is None


def test_default_path_follows_env_and_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGECOMPRESS_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_db_path() == tmp_path / "data" / "edgecompress" / "results.db"
    monkeypatch.setenv("EDGECOMPRESS_DB", str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ResultsError, match="cannot open the results database"):
        ResultsStore(bad)
