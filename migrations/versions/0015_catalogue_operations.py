"""Catalogue operations: every lifecycle change of a plan or product (who, what), and for replace and retire
the outcome for each subscription, unique per operation and subscription

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 17:53:49.514066

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('catalogue_operations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('publish', 'deprecate', 'set_target', 'clear_target', 'supersede', 'replace', 'retire', name='catalogue_action', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_name', sa.String(length=200), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=True),
    sa.Column('plan_ids', sa.JSON(), nullable=False),
    sa.Column('mapping', sa.JSON(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('running', 'paused', 'finished', 'failed', name='catalogue_operation_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('moved', sa.Integer(), nullable=False),
    sa.Column('canceled', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_catalogue_operations_actor_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_catalogue_operations_product_id_products'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_catalogue_operations_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalogue_operations'))
    )
    with op.batch_alter_table('catalogue_operations', schema=None) as batch_op:
        batch_op.create_index('ix_catalogue_operations_status', ['status'], unique=False)
        batch_op.create_index('ix_catalogue_operations_tenant_id', ['tenant_id', 'id'], unique=False)

    op.create_table('catalogue_operation_outcomes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operation_id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.Enum('moved', 'canceled', 'skipped', 'failed', name='catalogue_outcome', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('from_plan_id', sa.Integer(), nullable=True),
    sa.Column('to_plan_id', sa.Integer(), nullable=True),
    sa.Column('old_price_minor', sa.Integer(), nullable=True),
    sa.Column('new_price_minor', sa.Integer(), nullable=True),
    sa.Column('proration_minor', sa.Integer(), nullable=False),
    sa.Column('resize_needed', sa.Boolean(), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.Column('notified', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['operation_id'], ['catalogue_operations.id'], name=op.f('fk_catalogue_operation_outcomes_operation_id_catalogue_operations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_catalogue_operation_outcomes_subscription_id_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalogue_operation_outcomes')),
    sa.UniqueConstraint('operation_id', 'subscription_id', name=op.f('uq_catalogue_operation_outcomes_operation_id_subscription_id'))
    )
    with op.batch_alter_table('catalogue_operation_outcomes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_catalogue_operation_outcomes_subscription_id'), ['subscription_id'], unique=False)
        batch_op.create_index('ix_catalogue_operation_outcomes_untold', ['operation_id', 'notified'], unique=False)



def downgrade():
    with op.batch_alter_table('catalogue_operation_outcomes', schema=None) as batch_op:
        batch_op.drop_index('ix_catalogue_operation_outcomes_untold')
        batch_op.drop_index(batch_op.f('ix_catalogue_operation_outcomes_subscription_id'))

    op.drop_table('catalogue_operation_outcomes')
    with op.batch_alter_table('catalogue_operations', schema=None) as batch_op:
        batch_op.drop_index('ix_catalogue_operations_tenant_id')
        batch_op.drop_index('ix_catalogue_operations_status')

    op.drop_table('catalogue_operations')
