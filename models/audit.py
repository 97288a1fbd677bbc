"""The audit log: every change to a shop, its roles, accounts and codes.

``record`` does not make an ORM object: it keeps the event's row on the session, and the rows
go to the database in one Core ``INSERT`` just before the transaction commits (or before a
statement that reads or deletes audit events, so a transaction still sees its own). Through the
unit of work an event cost a model's validation, a flush and an ``INSERT … RETURNING`` of its
id nobody reads: about 1 ms of CPU per routing decision on PostgreSQL, 40 % of it
(benchmarks/RESULTS.md). A rollback drops the rows, a savepoint's rollback those recorded
since it began — as the unit of work would have.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Table, event, func, insert
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.util import find_tables
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import AuditEvent, User

AUDIT: Table = AuditEvent.__table__  # type: ignore[attr-defined]
_INSERT = insert(AUDIT)
#: ``Session.info`` keys: the rows not yet written; where each open savepoint began in them
_PENDING = "subaccount_bot.audit_pending"
_MARKS = "subaccount_bot.audit_marks"


def pending(session: Session) -> list[dict[str, Any]]:
    """The audit rows recorded in ``session`` and not written yet."""
    rows: list[dict[str, Any]] = session.info.setdefault(_PENDING, [])
    return rows


def write_pending(session: Session) -> None:
    """Write the recorded rows now (one ``INSERT``; the session's own connection)."""
    rows = session.info.get(_PENDING)
    if rows:
        session.info[_PENDING] = []
        session.execute(_INSERT, rows)


def _before_commit(session: Session) -> None:
    write_pending(session)


#: statement → whether it reads or changes audit events (statements are mostly built once,
#: and walking one costs more than running it)
_TOUCHES_AUDIT: WeakKeyDictionary[Executable, bool] = WeakKeyDictionary()


def _touches_audit(statement: Executable) -> bool:
    touches = _TOUCHES_AUDIT.get(statement)
    if touches is None:
        touches = _TOUCHES_AUDIT[statement] = isinstance(statement, ClauseElement) and (
            AUDIT in find_tables(statement, include_crud=True))
    return touches


def _before_statement(state: ORMExecuteState) -> None:
    if state.session.info.get(_PENDING) and not state.is_insert and _touches_audit(
            state.statement):
        write_pending(state.session)


def _marks(session: Session) -> WeakKeyDictionary[SessionTransaction, int]:
    marks: WeakKeyDictionary[SessionTransaction, int] = session.info.setdefault(
        _MARKS, WeakKeyDictionary())
    return marks


def _savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        _marks(session)[transaction] = len(pending(session))


def _ended(session: Session, transaction: SessionTransaction) -> None:
    """A savepoint released has written the rows (``before_commit``); one rolled back drops
    those recorded since it began. The transaction's end drops what is left."""
    mark = _marks(session).pop(transaction, None)
    if mark is not None:
        del pending(session)[mark:]
    if transaction.parent is None:
        session.info[_PENDING] = []


event.listen(Session, "before_commit", _before_commit)
event.listen(Session, "do_orm_execute", _before_statement)
event.listen(Session, "after_transaction_create", _savepoint)
event.listen(Session, "after_transaction_end", _ended)


def record(
    session: AsyncSession,
    *,
    now: datetime,
    shop_id: int | None,
    actor_id: int | None,
    action: str,
    object_type: str,
    object_id: object = "",
    **detail: Any,
) -> None:
    """Record one audit event in the session (committed with the change it describes)."""
    pending(session.sync_session).append({
        "shop_id": shop_id, "actor_id": actor_id, "action": action,
        "object_type": object_type, "object_id": str(object_id), "detail": detail,
        "created_at": now,
    })


async def recent(
    session: AsyncSession, shop_id: int, *, limit: int = 10, offset: int = 0
) -> list[AuditEvent]:
    """A shop's events, newest first."""
    rows = await session.exec(
        select(AuditEvent)
        .where(AuditEvent.shop_id == shop_id)
        .order_by(col(AuditEvent.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all())


async def count(session: AsyncSession, shop_id: int) -> int:
    """How many events a shop has."""
    result = await session.exec(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.shop_id == shop_id)
    )
    return int(result.one())


async def actors(session: AsyncSession, events: list[AuditEvent]) -> dict[int, User]:
    """The users who acted in ``events`` (for naming them in the log), by id."""
    ids = {e.actor_id for e in events if e.actor_id is not None}
    if not ids:
        return {}
    rows = await session.exec(select(User).where(col(User.id).in_(ids)))
    return {user.id: user for user in rows.all()}
