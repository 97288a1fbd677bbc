"""wizard: a shop chooses how a linked staff member consents to being added (consent_mode)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('shop') as batch:
        batch.add_column(sa.Column('consent_mode', sa.String(length=10), nullable=False,
                                   server_default='code'))


def downgrade() -> None:
    with op.batch_alter_table('shop') as batch:
        batch.drop_column('consent_mode')
