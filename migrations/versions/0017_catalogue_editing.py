"""Catalogue editing: prices per server type, locations with surcharges, images and a free-plan limit per plan;
scheduled price changes; the catalogue's audit trail

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 17:53:51.702117

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('catalogue_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=20), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('impersonator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_catalogue_changes_actor_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['impersonator_id'], ['users.id'], name=op.f('fk_catalogue_changes_impersonator_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_catalogue_changes_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalogue_changes'))
    )
    with op.batch_alter_table('catalogue_changes', schema=None) as batch_op:
        batch_op.create_index('ix_catalogue_changes_tenant', ['tenant_id', 'id'], unique=False)

    op.create_table('plan_locations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('location', sa.String(length=63), nullable=False),
    sa.Column('surcharge_minor', sa.Integer(), nullable=False),
    sa.Column('sort', sa.Integer(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.CheckConstraint('surcharge_minor >= 0', name=op.f('ck_plan_locations_surcharge_not_negative')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_plan_locations_plan_id_plans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_locations')),
    sa.UniqueConstraint('plan_id', 'location', name=op.f('uq_plan_locations_plan_id_location'))
    )
    op.create_table('plan_price_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('server_type', sa.String(length=63), nullable=False),
    sa.Column('old_price_minor', sa.Integer(), nullable=False),
    sa.Column('new_price_minor', sa.Integer(), nullable=False),
    sa.Column('announced_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_plan_price_changes_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_plan_price_changes_plan_id_plans'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_plan_price_changes_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_price_changes'))
    )
    with op.batch_alter_table('plan_price_changes', schema=None) as batch_op:
        batch_op.create_index('ix_plan_price_changes_plan', ['plan_id', 'server_type', 'effective_at'], unique=False)

    op.create_table('plan_prices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('server_type', sa.String(length=63), nullable=False),
    sa.Column('price_minor', sa.Integer(), nullable=False),
    sa.Column('cost_minor', sa.Integer(), nullable=True),
    sa.Column('markup_bp', sa.Integer(), nullable=True),
    sa.Column('sort', sa.Integer(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.CheckConstraint('price_minor >= 0', name=op.f('ck_plan_prices_plan_price_not_negative')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_plan_prices_plan_id_plans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_prices')),
    sa.UniqueConstraint('plan_id', 'server_type', name=op.f('uq_plan_prices_plan_id_server_type'))
    )
    # Plain ADD COLUMN rather than batch mode's copy of the table, which cannot drop `plans` while
    # subscriptions refer to it.
    op.add_column('plans', sa.Column('images', sa.JSON(), server_default='[]', nullable=False))
    op.add_column('plans', sa.Column('free_plan_limit', sa.Integer(), server_default='1', nullable=True))
    op.add_column('plans', sa.Column('price_notice_days', sa.Integer(), server_default='30', nullable=False))

def downgrade():
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35 and later), for the same reason.
    op.drop_column('plans', 'price_notice_days')
    op.drop_column('plans', 'free_plan_limit')
    op.drop_column('plans', 'images')
    op.drop_table('plan_prices')
    with op.batch_alter_table('plan_price_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_plan_price_changes_plan')

    op.drop_table('plan_price_changes')
    op.drop_table('plan_locations')
    with op.batch_alter_table('catalogue_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_catalogue_changes_tenant')

    op.drop_table('catalogue_changes')
