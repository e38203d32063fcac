"""Invoices: the drafts in id order have an index of their own

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 16:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index('ix_invoices_drafts', ['id'], unique=False,
                              sqlite_where=sa.text("status = 'draft'"),
                              postgresql_where=sa.text("status = 'draft'"))


def downgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_drafts', sqlite_where=sa.text("status = 'draft'"),
                            postgresql_where=sa.text("status = 'draft'"))
