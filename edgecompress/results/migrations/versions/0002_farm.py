"""farm: results.result_key (unique), blobs (artifact store by sha256)

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("results", sa.Column("result_key", sa.String(64), nullable=True))
    op.create_index("results_key", "results", ["result_key"], unique=True)
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False))
    if op.get_bind().dialect.name == "sqlite":   # an older edgecompress (schema 1) then says to upgrade
        op.execute("PRAGMA user_version = 2")


def downgrade() -> None:
    op.drop_table("blobs")
    op.drop_index("results_key", "results")
    with op.batch_alter_table("results") as b:
        b.drop_column("result_key")
