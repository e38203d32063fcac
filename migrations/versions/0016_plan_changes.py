"""Plan changes: a downgrade waiting for the period's end is kept until the renewal applies it

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 18:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

_SCHEDULED = sa.text("status = 'scheduled'")


def upgrade():
    op.create_table('scheduled_plan_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.Enum('plan', 'quantity', 'migrate', name='plan_change_action', native_enum=False,
                                create_constraint=True, length=8), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('price_minor', sa.Integer(), nullable=False),
    sa.Column('server_type', sa.String(length=63), nullable=True),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('scheduled', 'applied', 'canceled', name='scheduled_change_status',
                                native_enum=False, create_constraint=True, length=9), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('price_minor >= 0', name=op.f('ck_scheduled_plan_changes_price_not_negative')),
    sa.CheckConstraint('quantity >= 1', name=op.f('ck_scheduled_plan_changes_quantity_positive')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_scheduled_plan_changes_plan_id_plans')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'],
                            name=op.f('fk_scheduled_plan_changes_subscription_id_subscriptions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_scheduled_plan_changes_tenant_id_tenants'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scheduled_plan_changes'))
    )
    with op.batch_alter_table('scheduled_plan_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scheduled_plan_changes_subscription_id'), ['subscription_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_scheduled_plan_changes_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('uq_scheduled_plan_changes_one', ['subscription_id'], unique=True,
                              sqlite_where=_SCHEDULED, postgresql_where=_SCHEDULED)


def downgrade():
    with op.batch_alter_table('scheduled_plan_changes', schema=None) as batch_op:
        batch_op.drop_index('uq_scheduled_plan_changes_one', sqlite_where=_SCHEDULED, postgresql_where=_SCHEDULED)
        batch_op.drop_index(batch_op.f('ix_scheduled_plan_changes_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_scheduled_plan_changes_subscription_id'))
    op.drop_table('scheduled_plan_changes')
