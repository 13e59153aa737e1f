"""`tune --db postgresql://...`: the study and its measurements live in the team's results database
(schema ``optuna``, beside the results tables, which it leaves alone); a second member's call with
the same model and target resumes the same study and measures nothing again."""
from __future__ import annotations

import json

import pytest

from cli_helpers import cli

pytestmark = pytest.mark.slow


def _args(m, tmp, db, trials):
    return ["tune", m["model"], "--targets", m["targets"], "--target", "local", "--data", m["data"],
            "--artifacts", "fp32.onnx,int8.onnx", "--no-passes", "--trials", str(trials), "--db", db,
            "--out", tmp / "out", "--runs", "10", "--json"]


def test_the_study_is_kept_in_the_postgresql_results_database(sensitive_mlp, pg_url, tmp_path):
    from sqlalchemy import create_engine, text

    from edgecompress.results import ResultsStore

    with ResultsStore(pg_url) as store:                 # the team's results store, already in use
        store.start_run(model_sha256="0" * 64, targets=["local"])
    rc, out, err = cli(*_args(sensitive_mlp, tmp_path / "a", pg_url, 4))
    assert rc in (0, 1), err[-3000:]
    doc = json.loads(out)
    assert doc["storage"].endswith("(schema optuna)") and doc["storage"].startswith("postgresql://")
    t = doc["targets"]["local"]
    assert t["trials"] == 4 and t["measured"] >= 2, [(c["label"], c["status"], c["cached"]) for c in t["candidates"]]
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        studies = conn.execute(text("SELECT study_name FROM optuna.studies")).scalars().all()
        trials = conn.execute(text("SELECT count(*) FROM optuna.trials")).scalar()
        cached = conn.execute(text("SELECT count(*) FROM optuna.tune_measurements")).scalar()
        runs = conn.execute(text("SELECT count(*) FROM public.runs")).scalar()
        ours = conn.execute(text("SELECT version_num FROM public.alembic_version")).scalar()
    engine.dispose()
    assert studies == [t["study"]] and trials == 4
    assert cached == t["measured"]          # each fully measured candidate once (quick looks are not kept)
    assert runs == 1 and ours               # the results tables are untouched
    assert not list(tmp_path.rglob("tune-studies.db"))
    # another member, another folder, the same database: the same study, nothing measured again
    rc, out, err = cli(*_args(sensitive_mlp, tmp_path / "b", pg_url, 4))
    assert rc in (0, 1), err[-3000:]
    again = json.loads(out)["targets"]["local"]
    assert again["study"] == t["study"] and again["measured"] == 0 and again["trials"] == 4
