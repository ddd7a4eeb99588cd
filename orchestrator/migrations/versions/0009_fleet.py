"""fleet operations: agent pause/drain, locks, rollout control, schedule checks, audit log

Revision ID: 0009_fleet
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_fleet"
down_revision = "0004_ai_git"
branch_labels = None
depends_on = None

COLUMNS = {
    "agents": [
        sa.Column("paused_at", sa.DateTime(), nullable=True),
        sa.Column("paused_until", sa.DateTime(), nullable=True),
        sa.Column("pause_note", sa.Text(), nullable=True),
        sa.Column("paused_by", sa.String(length=32), nullable=True),
        sa.Column("drain_requested_at", sa.DateTime(), nullable=True),
    ],
    "jobs": [
        sa.Column("lock", sa.String(length=200), nullable=True),
        sa.Column("concurrency_group", sa.String(length=200), nullable=True),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("late_result", sa.JSON(), nullable=True),
    ],
    "fanouts": [
        sa.Column("gate", sa.String(length=32), nullable=True),
        sa.Column("gate_until", sa.DateTime(), nullable=True),
        sa.Column("paused_at", sa.DateTime(), nullable=True),
        sa.Column("rerun_of", sa.String(length=32), nullable=True),
        sa.Column("schedule_id", sa.String(length=32), nullable=True),
        sa.Column("verify_script", sa.String(length=255), nullable=True),
        sa.Column("job_options", sa.JSON(), nullable=True),
    ],
    "schedules": [
        sa.Column("job_options", sa.JSON(), nullable=True),
        sa.Column("max_concurrency", sa.String(length=16), nullable=True),
        sa.Column("max_errors", sa.String(length=16), nullable=True),
        sa.Column("expect_success_every", sa.Integer(), nullable=True),
        sa.Column("missed_since", sa.DateTime(), nullable=True),
        sa.Column("pause_after_failures", sa.Integer(), nullable=True),
        sa.Column("paused_reason", sa.Text(), nullable=True),
    ],
    "schedule_runs": [
        sa.Column("fanout_id", sa.String(length=32), nullable=True),
    ],
}


def upgrade():
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.add_column(column)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_audit_log_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_tenant_id", "audit_log", ["tenant_id"])
    op.create_table(
        "alert_states",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("integration_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("recent", sa.JSON(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_alert_states_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_states")),
        sa.UniqueConstraint("integration_id", "key", name="uq_alert_states_integration_key"),
    )
    op.create_index("ix_alert_states_tenant_id", "alert_states", ["tenant_id"])


def downgrade():
    op.drop_index("ix_alert_states_tenant_id", table_name="alert_states")
    op.drop_table("alert_states")
    op.drop_index("ix_audit_log_tenant_id", table_name="audit_log")
    op.drop_table("audit_log")
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column.name)
