"""Each plan counts the subscriptions ordered on it, counted from the subscriptions there are.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 19:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('plans', sa.Column('subscription_count', sa.Integer(), server_default='0', nullable=False))
    op.execute("UPDATE plans SET subscription_count = "
               "(SELECT count(*) FROM subscriptions WHERE subscriptions.plan_id = plans.id)")


def downgrade():
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35 and later) rather than batch mode's copy of the table, which
    # cannot drop `plans` while subscriptions refer to it.
    op.drop_column('plans', 'subscription_count')
