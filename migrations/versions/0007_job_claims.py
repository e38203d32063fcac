"""Claims of scheduled job runs: one worker process runs each job once per scheduled minute.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 19:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('job_claims',
    sa.Column('job', sa.String(length=50), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('job', 'due_at', name=op.f('pk_job_claims'))
    )


def downgrade():
    op.drop_table('job_claims')
