"""Invoices finalized in batches: a line's tax share is derived, not stored; emails rendered when sent

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 18:10:00.000000

A finalized invoice's tax is split over its lines by the largest remainder each time it is shown
(app/domain/invoicing.py line_taxes), from the invoice's frozen tax and its lines' nets, so the column that
stored the split goes. An email written in bulk (the billing run's "invoice issued") keeps what it needs to be
rendered when it is sent (render_context) instead of its bodies.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_column('tax_minor')
    with op.batch_alter_table('email_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('render_context', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('email_messages', schema=None) as batch_op:
        batch_op.drop_column('render_context')
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tax_minor', sa.Integer(), nullable=True))
