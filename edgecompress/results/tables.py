"""The results tables as SQLAlchemy Core objects (the same on SQLite and PostgreSQL).

The columns are those of schema 1 (the SQLite-only store), plus, from migration 0002, the
``results.result_key`` (unique: one result per run × target × artifact from the farm, so a job
delivered twice never stores a second row) and the ``blobs`` table (the artifact store: files by
sha256). The migrations in ``migrations/versions`` create exactly these.
"""
from __future__ import annotations

from sqlalchemy import (Column, Float, Index, Integer, LargeBinary, MetaData, PrimaryKeyConstraint, String,
                        Table, Text)

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("id", Text, primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("status", Text, nullable=False),          # running | ok | partial | failed | interrupted
    Column("model_source", Text),
    Column("model_sha256", Text),
    Column("edgecompress_version", Text, nullable=False),
    Column("host_json", Text),
    Column("targets_json", Text),
    Column("options_json", Text),
    Column("summary_json", Text),
    Index("runs_model", "model_sha256", "started_at"),
)

run_targets = Table(
    "run_targets", metadata,
    Column("run_id", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("profile", Text),
    Column("transport", Text),
    Column("status", Text, nullable=False),
    Column("error", Text),
    Column("device_json", Text),
    Column("started_at", Float),
    Column("finished_at", Float),
    PrimaryKeyConstraint("run_id", "target"),
)

artifacts = Table(
    "artifacts", metadata,
    Column("run_id", Text, nullable=False),
    Column("profile", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("path", Text), Column("format", Text), Column("precision", Text), Column("layout", Text),
    Column("size_bytes", Integer), Column("sha256", Text), Column("status", Text), Column("error", Text),
    Column("fidelity_json", Text), Column("record_json", Text),
    PrimaryKeyConstraint("run_id", "profile", "key"),
)

_REAL = ["load_ms", "first_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "std_ms", "min_ms", "max_ms"]
results = Table(
    "results", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("profile", Text),
    Column("artifact_key", Text, nullable=False),
    Column("format", Text), Column("precision", Text), Column("artifact_sha256", Text),
    Column("size_bytes", Integer),
    Column("status", Text, nullable=False), Column("error", Text),
    Column("created_at", Float, nullable=False),
    Column("arch", Text), Column("os", Text), Column("python", Text), Column("runtime", Text),
    Column("threads", Integer), Column("runs", Integer),
    *[Column(c, Float) for c in _REAL],
    Column("samples_json", Text),
    Column("baseline_rss_mb", Float), Column("peak_rss_mb", Float), Column("delta_rss_mb", Float),
    Column("energy_method", Text), Column("energy_source", Text), Column("avg_power_w", Float),
    Column("mj_per_inference", Float),
    Column("temp_c_before", Float), Column("temp_c_after", Float), Column("throttled", Integer),
    Column("fid_max_abs", Float), Column("fid_cosine", Float), Column("fid_top1_agreement", Float),
    Column("fid_accuracy", Float), Column("fid_reference_accuracy", Float), Column("fid_samples", Integer),
    Column("result_json", Text, nullable=False),
    Column("result_key", String(64)),                # 0002: run × target × artifact, unique when set
    Index("results_run", "run_id", "target"),
    Index("results_key", "result_key", unique=True),
    sqlite_autoincrement=True,
)

blobs = Table(                                        # 0002: the artifact store (content-addressed)
    "blobs", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size_bytes", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("data", LargeBinary, nullable=False),
)
