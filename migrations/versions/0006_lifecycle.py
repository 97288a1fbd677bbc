"""lifecycle: owner transfers, time-limited access, access reviews (docs/lifecycle.md)

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01 10:20:00

``sub_account.code_id`` becomes nullable: a former owner made a sub-account by a transfer was
never sent a code. ``uq_phone_binding_shop_owner`` lets a shop have one owner binding; every
shop already has exactly one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0006'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    with op.batch_alter_table('sub_account') as batch:
        batch.add_column(sa.Column('access_until', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('access_remind_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('expired_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('last_activity_at', sa.DateTime(), nullable=True))
        batch.alter_column('code_id', existing_type=sa.Integer(), nullable=True)
        batch.create_index('ix_sub_account_access_remind', ['access_remind_at'], unique=False)
        batch.create_index('ix_sub_account_access_until', ['access_until'], unique=False)
    with op.batch_alter_table('shop') as batch:
        batch.add_column(sa.Column('review_days', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('review_no_response', _text(10), nullable=True))
        batch.add_column(sa.Column('review_due_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('time_zone', _text(64), nullable=True))
        batch.create_index('ix_shop_review_due', ['review_due_at'], unique=False)
    op.create_index('uq_phone_binding_shop_owner', 'phone_binding', ['shop_id'], unique=True,
                    sqlite_where=sa.text("kind = 'owner'"),
                    postgresql_where=sa.text("kind = 'owner'"))

    op.create_table('owner_transfer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('from_user_id', sa.BigInteger(), nullable=False),
    sa.Column('to_user_id', sa.BigInteger(), nullable=False),
    sa.Column('to_account_id', sa.Integer(), nullable=False),
    sa.Column('old_owner_role_id', sa.Integer(), nullable=True),
    sa.Column('old_owner_leaves', sa.Boolean(), nullable=False),
    sa.Column('status', _text(10), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['old_owner_role_id'], ['role.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['shop_id'], ['shop.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_transfer_status_expires', 'owner_transfer', ['status', 'expires_at'],
                    unique=False)
    op.create_index('uq_transfer_pending_shop', 'owner_transfer', ['shop_id'], unique=True,
                    sqlite_where=sa.text("status = 'pending'"),
                    postgresql_where=sa.text("status = 'pending'"))

    op.create_table('review_round',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('remind_at', sa.DateTime(), nullable=True),
    sa.Column('deadline_at', sa.DateTime(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('outcome', _text(10), nullable=True),
    sa.ForeignKeyConstraint(['shop_id'], ['shop.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('uq_review_open_shop', 'review_round', ['shop_id'], unique=True,
                    sqlite_where=sa.text('closed_at IS NULL'),
                    postgresql_where=sa.text('closed_at IS NULL'))

    op.create_table('review_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('nickname', _text(30), nullable=False),
    sa.Column('phone_masked', _text(24), nullable=False),
    sa.Column('role_name', _text(30), nullable=False),
    sa.Column('im_enabled', sa.Boolean(), nullable=False),
    sa.Column('status', _text(10), nullable=False),
    sa.Column('last_activity_at', sa.DateTime(), nullable=True),
    sa.Column('decision', _text(10), nullable=True),
    sa.Column('decided_by_owner', sa.Boolean(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['sub_account.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['round_id'], ['review_round.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'account_id', name='uq_review_item')
    )
    op.create_index('ix_review_item_account_id', 'review_item', ['account_id'], unique=False)
    op.create_index('ix_review_item_round_id', 'review_item', ['round_id'], unique=False)


def downgrade() -> None:
    op.drop_table('review_item')
    op.drop_table('review_round')
    op.drop_table('owner_transfer')
    op.drop_index('uq_phone_binding_shop_owner', table_name='phone_binding')
    with op.batch_alter_table('shop') as batch:
        batch.drop_index('ix_shop_review_due')
        for column in ('time_zone', 'review_due_at', 'review_no_response', 'review_days'):
            batch.drop_column(column)
    op.execute("DELETE FROM sub_account WHERE code_id IS NULL")
    with op.batch_alter_table('sub_account') as batch:
        batch.drop_index('ix_sub_account_access_until')
        batch.drop_index('ix_sub_account_access_remind')
        batch.alter_column('code_id', existing_type=sa.Integer(), nullable=False)
        for column in ('last_activity_at', 'expired_at', 'access_remind_at', 'access_until'):
            batch.drop_column(column)
