"""hardening of codes: per-phone issue lock, owners' phone look-ups, codes re-keyed

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:45:00

The code hash is now keyed with a server secret kept outside the database, so a code issued
before this upgrade can no longer be verified. Rather than let such a code fail as a wrong
entry, its deadline is moved to the upgrade: the bot's start-up reconciliation then expires it
like any other, telling the owner (with "Send a new code") and the holder.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('code_phone_lock',
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('touched_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('phone')
    )
    op.create_table('phone_lookup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.BigInteger(), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_lookup_owner_created', 'phone_lookup', ['owner_id', 'created_at'],
                    unique=False)
    now = datetime.now(UTC).replace(tzinfo=None)
    code = sa.table('verification_code', sa.column('status', sa.String),
                    sa.column('expires_at', sa.DateTime), sa.column('delivery', sa.String))
    op.execute(code.update()
               .where(code.c.status.in_(('pending', 'verified')), code.c.expires_at > now)
               .values(expires_at=now))
    op.execute(code.update().where(code.c.delivery == 'direct').values(delivery='queued'))


def downgrade() -> None:
    op.drop_index('ix_lookup_owner_created', table_name='phone_lookup')
    op.drop_table('phone_lookup')
    op.drop_table('code_phone_lock')
