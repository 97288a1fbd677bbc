"""The audit log: every change to a shop, its roles, accounts and codes.

``record`` does not make an ORM object: it keeps the event's row on the session, and the rows
go to the database in one Core ``INSERT`` just before the transaction commits (or before a
statement that reads or deletes audit events, so a transaction still sees its own). Through the
unit of work an event cost a model's validation, a flush and an ``INSERT … RETURNING`` of its
id nobody reads: about 1 ms of CPU per routing decision on PostgreSQL, 40 % of it
(benchmarks/RESULTS.md). A rollback drops the rows, a savepoint's rollback those recorded
since it began — as the unit of work would have.

Reading: ``recent``, ``count``, ``actors``, and for /log a page at a time (``LogFilter``: the
view's conditions in SQL; ``attempts``, ``count_entries``, ``entry_events``, ``code_history``;
``filtered_batches`` for an export).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    event,
    false,
    func,
    insert,
    not_,
    or_,
)
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


async def actors(session: AsyncSession, events: list[AuditEvent]) -> dict[int, User]:
    """The users who acted in ``events`` (for naming them in the log), by id."""
    ids = {e.actor_id for e in events if e.actor_id is not None}
    if not ids:
        return {}
    rows = await session.exec(select(User).where(col(User.id).in_(ids)))
    return {user.id: user for user in rows.all()}


# --- the log a page at a time (/log) -------------------------------------------------------
#
# What /log shows is "entries": every event, except that the code events of a phone are folded
# into the next "account.created" of that phone, and those after its last one (codes that led
# to no account) are one entry, where the last of them happened. The helpers below let a page
# of entries be read with the shop's index (shop_id, id), newest first: an entry is an event
# that is not a folded code event, or the last code event of a phone with no account after it.

#: the object type of the per-conversation customer-service events (a chat record: opened,
#: assigned, transferred, too slow, ended, rated) — hidden from the log unless asked for
CHAT_OBJECT = "conversation"
ACCOUNT_CREATED = "account.created"

_PHONE = col(AuditEvent.detail)["phone"].as_string()
_IS_CODE = col(AuditEvent.action).startswith("code.")
_HAS_PHONE = and_(_PHONE.is_not(None), _PHONE != "")
#: a code event that is folded (into an account's entry, or its phone's attempt line)
_FOLDED = and_(_IS_CODE, _HAS_PHONE)
_CREATED = col(AuditEvent.action) == ACCOUNT_CREATED


@dataclass(frozen=True)
class LogFilter:
    """Which of a shop's events a view of its log takes: code events or not, per-chat events
    or not, and — when ``accounts`` is not ``None`` — only those of some accounts (their own
    events, and the codes and "account.created" of their ``phones``, as recorded) and of a
    role (``role_id``: the role's own events)."""

    codes: bool = True
    chats: bool = False
    accounts: frozenset[int] | None = None
    phones: frozenset[str] = frozenset()
    role_id: int = 0

    def where(self, shop_id: int) -> list[ColumnElement[bool]]:
        """The conditions of the events this filter takes from the shop."""
        conditions: list[ColumnElement[bool]] = [col(AuditEvent.shop_id) == shop_id]
        if not self.chats:
            conditions.append(col(AuditEvent.object_type) != CHAT_OBJECT)
        if not self.codes:
            conditions.append(not_(_IS_CODE))
        if self.accounts is not None:
            subject: list[ColumnElement[bool]] = []
            if self.accounts:
                subject.append(and_(col(AuditEvent.object_type) == "account", col(
                    AuditEvent.object_id).in_([str(a) for a in sorted(self.accounts)])))
            if self.phones:
                subject.append(and_(or_(_IS_CODE, _CREATED),
                                    _PHONE.in_(sorted(self.phones))))
            if self.role_id:
                subject.append(and_(col(AuditEvent.object_type) == "role",
                                    col(AuditEvent.object_id) == str(self.role_id)))
            conditions.append(or_(*subject) if subject else false())
        return conditions


def recorded_phone(event: AuditEvent) -> str:
    """The phone an event's detail names, as recorded ("" if none): what folds its codes."""
    detail = event.detail if isinstance(event.detail, dict) else {}
    phone = detail.get("phone")
    return phone if isinstance(phone, str) else ""


def is_folded(event: AuditEvent) -> bool:
    """Whether a code event is folded into an entry of its phone (not an entry of its own)."""
    return event.action.startswith("code.") and bool(recorded_phone(event))


async def attempts(session: AsyncSession, shop_id: int, where: LogFilter) -> list[int]:
    """The ids of the last code event of each phone whose codes led to no account after
    them (one entry each, "codes for … ; no sub-account added"), newest first. One statement,
    grouped by phone."""
    if not where.codes:
        return []
    last_code = func.max(case((_IS_CODE, col(AuditEvent.id))))
    last_created = func.max(case((_CREATED, col(AuditEvent.id))))
    rows = await session.exec(
        select(last_code, last_created)
        .where(*where.where(shop_id), _HAS_PHONE, or_(_IS_CODE, _CREATED))
        .group_by(_PHONE)
    )
    found = [code for code, created in rows.all()
             if code is not None and (created is None or code > created)]
    return sorted(found, reverse=True)


def _entries(attempt_ids: list[int]) -> ColumnElement[bool]:
    """The events that are entries: not folded, or an attempt's last code event (the ids as
    literals: they are integers, and any number of them fits)."""
    if not attempt_ids:
        return not_(_FOLDED)
    ids: BindParameter[list[int]] = bindparam("attempt_ids", attempt_ids, expanding=True,
                                              literal_execute=True)
    return or_(not_(_FOLDED), col(AuditEvent.id).in_(ids))


async def count_entries(session: AsyncSession, shop_id: int, where: LogFilter,
                        attempt_ids: list[int]) -> int:
    """How many entries the filtered log has (a ``count`` of the events that are not folded,
    and the attempts)."""
    result = await session.exec(
        select(func.count()).select_from(AuditEvent)
        .where(*where.where(shop_id), not_(_FOLDED))
    )
    return int(result.one()) + len(attempt_ids)


async def entry_events(session: AsyncSession, shop_id: int, where: LogFilter,
                       attempt_ids: list[int], *, offset: int, limit: int) -> list[AuditEvent]:
    """The events of one page of entries, newest first (the index (shop_id, id) backwards)."""
    rows = await session.exec(
        select(AuditEvent)
        .where(*where.where(shop_id), _entries(attempt_ids))
        .order_by(col(AuditEvent.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all())


async def code_history(session: AsyncSession, shop_id: int, phones: set[str],
                       up_to: int) -> list[AuditEvent]:
    """The code events and "account.created" of ``phones`` (as recorded) up to the event
    ``up_to``, oldest first: what folds into a page's entries of those phones."""
    if not phones:
        return []
    rows = await session.exec(
        select(AuditEvent)
        .where(col(AuditEvent.shop_id) == shop_id, col(AuditEvent.id) <= up_to,
               or_(_IS_CODE, _CREATED), _PHONE.in_(sorted(phones)))
        .order_by(col(AuditEvent.id))
    )
    return list(rows.all())


async def filtered_batches(session: AsyncSession, shop_id: int, where: LogFilter, *,
                           size: int = 500) -> AsyncIterator[list[AuditEvent]]:
    """Every event the filter takes (folded or not), newest first, ``size`` at a time
    (keyset: each batch below the last one's id), for an export."""
    below: int | None = None
    while True:
        conditions = where.where(shop_id)
        if below is not None:
            conditions.append(col(AuditEvent.id) < below)
        rows = await session.exec(
            select(AuditEvent).where(*conditions)
            .order_by(col(AuditEvent.id).desc()).limit(size)
        )
        batch = list(rows.all())
        if not batch:
            return
        yield batch
        if len(batch) < size:
            return
        below = batch[-1].id
