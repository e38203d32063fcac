"""Resizing: the server type a server has at the cloud, and the change of type under way

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 18:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscription_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('server_type_actual', sa.String(length=63), nullable=True))
        batch_op.add_column(sa.Column('resize_step', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('resize_target', sa.String(length=63), nullable=True))
        batch_op.add_column(sa.Column('resize_action_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('resize_progress', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('resize_was_on', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('resize_step_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resize_error', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('subscription_items', schema=None) as batch_op:
        for column in ('resize_error', 'resize_step_at', 'resize_was_on', 'resize_progress', 'resize_action_id',
                       'resize_target', 'resize_step', 'server_type_actual'):
            batch_op.drop_column(column)
