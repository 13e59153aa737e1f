"""schema 1: runs, run_targets, artifacts, results (the SQLite-only store's tables)

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

T, F, I = sa.Text, sa.Float, sa.Integer


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", T, primary_key=True), sa.Column("started_at", F, nullable=False),
        sa.Column("finished_at", F), sa.Column("status", T, nullable=False), sa.Column("model_source", T),
        sa.Column("model_sha256", T), sa.Column("edgecompress_version", T, nullable=False),
        sa.Column("host_json", T), sa.Column("targets_json", T), sa.Column("options_json", T),
        sa.Column("summary_json", T))
    op.create_index("runs_model", "runs", ["model_sha256", "started_at"])
    op.create_table(
        "run_targets",
        sa.Column("run_id", T, sa.ForeignKey("runs.id"), nullable=False), sa.Column("target", T, nullable=False),
        sa.Column("profile", T), sa.Column("transport", T), sa.Column("status", T, nullable=False),
        sa.Column("error", T), sa.Column("device_json", T), sa.Column("started_at", F),
        sa.Column("finished_at", F), sa.PrimaryKeyConstraint("run_id", "target"))
    op.create_table(
        "artifacts",
        sa.Column("run_id", T, sa.ForeignKey("runs.id"), nullable=False), sa.Column("profile", T, nullable=False),
        sa.Column("key", T, nullable=False), sa.Column("path", T), sa.Column("format", T),
        sa.Column("precision", T), sa.Column("layout", T), sa.Column("size_bytes", I), sa.Column("sha256", T),
        sa.Column("status", T), sa.Column("error", T), sa.Column("fidelity_json", T), sa.Column("record_json", T),
        sa.PrimaryKeyConstraint("run_id", "profile", "key"))
    real = ["load_ms", "first_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "std_ms", "min_ms", "max_ms"]
    op.create_table(
        "results",
        sa.Column("id", I, primary_key=True, autoincrement=True),
        sa.Column("run_id", T, sa.ForeignKey("runs.id"), nullable=False), sa.Column("target", T, nullable=False),
        sa.Column("profile", T), sa.Column("artifact_key", T, nullable=False), sa.Column("format", T),
        sa.Column("precision", T), sa.Column("artifact_sha256", T), sa.Column("size_bytes", I),
        sa.Column("status", T, nullable=False), sa.Column("error", T), sa.Column("created_at", F, nullable=False),
        sa.Column("arch", T), sa.Column("os", T), sa.Column("python", T), sa.Column("runtime", T),
        sa.Column("threads", I), sa.Column("runs", I), *[sa.Column(c, F) for c in real],
        sa.Column("samples_json", T), sa.Column("baseline_rss_mb", F), sa.Column("peak_rss_mb", F),
        sa.Column("delta_rss_mb", F), sa.Column("energy_method", T), sa.Column("energy_source", T),
        sa.Column("avg_power_w", F), sa.Column("mj_per_inference", F), sa.Column("temp_c_before", F),
        sa.Column("temp_c_after", F), sa.Column("throttled", I), sa.Column("fid_max_abs", F),
        sa.Column("fid_cosine", F), sa.Column("fid_top1_agreement", F), sa.Column("fid_accuracy", F),
        sa.Column("fid_reference_accuracy", F), sa.Column("fid_samples", I),
        sa.Column("result_json", T, nullable=False), sqlite_autoincrement=True)
    op.create_index("results_run", "results", ["run_id", "target"])


def downgrade() -> None:
    for t in ("results", "artifacts", "run_targets", "runs"):
        op.drop_table(t)
