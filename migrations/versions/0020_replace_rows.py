"""A replace records each move by its history event; charges keep only the indexes they are read by

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 21:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscription_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('operation_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_subscription_events_operation_id_catalogue_operations'),
                                    'catalogue_operations', ['operation_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index('uq_subscription_events_operation_subscription', ['operation_id', 'subscription_id'],
                              unique=True, sqlite_where=sa.text('operation_id IS NOT NULL'),
                              postgresql_where=sa.text('operation_id IS NOT NULL'))

    with op.batch_alter_table('catalogue_operations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('told_through', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('catalogue_operation_outcomes', schema=None) as batch_op:
        batch_op.drop_index('ix_catalogue_operation_outcomes_untold')

    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_index('ix_charges_subscription_id')
        batch_op.drop_index('ix_charges_invoice_id')
        batch_op.create_index('ix_charges_invoice_id', ['invoice_id'], unique=False,
                              sqlite_where=sa.text('invoice_id IS NOT NULL'),
                              postgresql_where=sa.text('invoice_id IS NOT NULL'))


def downgrade():
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_index('ix_charges_invoice_id', sqlite_where=sa.text('invoice_id IS NOT NULL'),
                            postgresql_where=sa.text('invoice_id IS NOT NULL'))
        batch_op.create_index('ix_charges_invoice_id', ['invoice_id'], unique=False)
        batch_op.create_index('ix_charges_subscription_id', ['subscription_id'], unique=False)

    with op.batch_alter_table('catalogue_operation_outcomes', schema=None) as batch_op:
        batch_op.create_index('ix_catalogue_operation_outcomes_untold', ['operation_id', 'notified'], unique=False)

    with op.batch_alter_table('catalogue_operations', schema=None) as batch_op:
        batch_op.drop_column('told_through')

    with op.batch_alter_table('subscription_events', schema=None) as batch_op:
        batch_op.drop_index('uq_subscription_events_operation_subscription',
                            sqlite_where=sa.text('operation_id IS NOT NULL'),
                            postgresql_where=sa.text('operation_id IS NOT NULL'))
        batch_op.drop_constraint(batch_op.f('fk_subscription_events_operation_id_catalogue_operations'),
                                 type_='foreignkey')
        batch_op.drop_column('operation_id')
