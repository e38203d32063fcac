"""Usage: each record's billing period and when it was billed

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 15:05:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('period_start', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('period_end', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('billed_at', sa.DateTime(timezone=True), nullable=True))
    # Nothing recorded usage before this revision; a row that exists anyway is its own one-instant period.
    op.execute("UPDATE usage_records SET period_start = recorded_at, period_end = recorded_at "
               "WHERE period_start IS NULL")
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.alter_column('period_start', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.alter_column('period_end', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_index('ix_usage_records_subscription_period', ['subscription_id', 'period_start'],
                              unique=False)
        batch_op.create_index('ix_usage_records_unbilled', ['period_end'], unique=False,
                              sqlite_where=sa.text('billed_at IS NULL'),
                              postgresql_where=sa.text('billed_at IS NULL'))


def downgrade():
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_unbilled', sqlite_where=sa.text('billed_at IS NULL'),
                            postgresql_where=sa.text('billed_at IS NULL'))
        batch_op.drop_index('ix_usage_records_subscription_period')
        batch_op.drop_column('billed_at')
        batch_op.drop_column('period_end')
        batch_op.drop_column('period_start')
