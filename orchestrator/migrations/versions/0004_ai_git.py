"""AI providers and Git integrations: provider column, AI config/analyses, git deliveries

Revision ID: 0004_ai_git
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_ai_git'
down_revision = "0003_hardening"
branch_labels = None
depends_on = None



def _tenant_column(table):
    return sa.Column('tenant_id', sa.String(length=32),
                     sa.ForeignKey('tenants.id', name=f'fk_{table}_tenant_id_tenants',
                                   ondelete='CASCADE'), nullable=False)


def upgrade():
    for table in ('integrations', 'global_integrations'):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column('provider', sa.String(length=32), nullable=True))
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('diagnosis', sa.JSON(), nullable=True))
    op.create_table(
        'ai_configs',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('default_provider', sa.String(length=32), nullable=True),
        sa.Column('agent_overrides', sa.JSON(), nullable=False),
        sa.Column('auto_diagnose', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        _tenant_column('ai_configs'),
        sa.PrimaryKeyConstraint('id', name='pk_ai_configs'),
        sa.UniqueConstraint('tenant_id', name='uq_ai_configs_tenant'),
    )
    op.create_index('ix_ai_configs_tenant_id', 'ai_configs', ['tenant_id'])
    op.create_table(
        'global_ai_config',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('default_provider', sa.String(length=32), nullable=True),
        sa.Column('agent_overrides', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_global_ai_config'),
    )
    op.create_table(
        'ai_analyses',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('task', sa.String(length=32), nullable=False),
        sa.Column('job_id', sa.String(length=32), nullable=True),
        sa.Column('script', sa.String(length=255), nullable=True),
        sa.Column('schedule_id', sa.String(length=32), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        _tenant_column('ai_analyses'),
        sa.PrimaryKeyConstraint('id', name='pk_ai_analyses'),
    )
    op.create_index('ix_ai_analyses_tenant_id', 'ai_analyses', ['tenant_id'])
    op.create_index('ix_ai_analyses_job_id', 'ai_analyses', ['job_id'])
    op.create_table(
        'git_deliveries',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('integration_id', sa.String(length=32), nullable=False),
        sa.Column('delivery_id', sa.String(length=200), nullable=False),
        sa.Column('body_sha256', sa.String(length=64), nullable=False),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('repo', sa.String(length=300), nullable=True),
        sa.Column('branch', sa.String(length=300), nullable=True),
        sa.Column('sha', sa.String(length=64), nullable=True),
        sa.Column('pr', sa.Integer(), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('job_id', sa.String(length=32), nullable=True),
        sa.Column('fanout_id', sa.String(length=32), nullable=True),
        sa.Column('report_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('reported_at', sa.DateTime(), nullable=True),
        _tenant_column('git_deliveries'),
        sa.PrimaryKeyConstraint('id', name='pk_git_deliveries'),
        sa.UniqueConstraint('integration_id', 'delivery_id', name='uq_git_deliveries_delivery'),
        sa.UniqueConstraint('integration_id', 'body_sha256', name='uq_git_deliveries_body'),
    )
    op.create_index('ix_git_deliveries_tenant_id', 'git_deliveries', ['tenant_id'])
    op.create_index('ix_git_deliveries_job', 'git_deliveries', ['job_id'])
    op.create_index('ix_git_deliveries_fanout', 'git_deliveries', ['fanout_id'])
    op.create_table(
        'git_comments',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('integration_id', sa.String(length=32), nullable=False),
        sa.Column('pr', sa.Integer(), nullable=False),
        sa.Column('comment_id', sa.String(length=64), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        _tenant_column('git_comments'),
        sa.PrimaryKeyConstraint('id', name='pk_git_comments'),
        sa.UniqueConstraint('integration_id', 'pr', name='uq_git_comments_pr'),
    )
    op.create_index('ix_git_comments_tenant_id', 'git_comments', ['tenant_id'])


def downgrade():
    for table in ('git_comments', 'git_deliveries', 'ai_analyses', 'global_ai_config',
                  'ai_configs'):
        op.drop_table(table)
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_column('diagnosis')
    for table in ('integrations', 'global_integrations'):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column('provider')
