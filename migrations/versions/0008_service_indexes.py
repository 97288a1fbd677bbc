"""customer-service indexes for routing at scale (issue 14)

The shop's available agents in the order the least-busy pick wants them (shop, status, open
chats, id: ``ORDER BY open_chats, id LIMIT 1`` walks the index and stops at the first agent
under their cap, instead of sorting the shop's online agents), replacing the (shop, status)
index it extends; and the conversations an agent served (``served_by``: sticky routing's
foreign key, which PostgreSQL otherwise checks by scanning every conversation when an agent
row goes).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_service_agent_available', 'service_agent',
                    ['shop_id', 'status', 'open_chats', 'id'], unique=False)
    op.drop_index('ix_service_agent_shop_status', table_name='service_agent')
    op.create_index('ix_service_conversation_served_by', 'service_conversation',
                    ['served_by'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_service_conversation_served_by', table_name='service_conversation')
    op.create_index('ix_service_agent_shop_status', 'service_agent', ['shop_id', 'status'],
                    unique=False)
    op.drop_index('ix_service_agent_available', table_name='service_agent')
