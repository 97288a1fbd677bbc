"""Whether a session's transaction has written anything, so that one which only read need not
commit.

A handler commits before every message it sends (what it tells must be durable). When the
transaction only read, there is nothing to make durable, and the commit is pure cost: a round of
SQLAlchemy's bookkeeping, the connection handed back to the pool and checked out again for the
next statement, and on PostgreSQL a ``COMMIT`` and then a ``BEGIN`` on the wire.

Sessions made with ``TrackedSession`` (``bot.db.sessionmaker`` uses it) note every write: an
``INSERT``, ``UPDATE`` or ``DELETE`` run through the session, and every flush. A session of any
other class is never said to have written nothing, so it always commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm import Session as _OrmSession
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.orm.session import Session

from models import audit

#: ``Session.info`` key: ``False`` from the start of a transaction until its first write
_WROTE = "subaccount_bot.wrote"


class TrackedSession(Session):
    """A SQLModel session that notes whether its current transaction has written."""


def _began(session: _OrmSession, _transaction: Any, _connection: Any) -> None:
    session.info[_WROTE] = False


def _executed(state: ORMExecuteState) -> Any:
    if not (state.is_insert or state.is_update or state.is_delete):
        return None  # SQLAlchemy runs the statement as usual
    # run it here and note the write after: the transaction may begin (and _began reset the
    # note) only while the statement runs
    result = state.invoke_statement()
    state.session.info[_WROTE] = True
    return result


def _flushed(session: _OrmSession, _flush_context: Any) -> None:
    session.info[_WROTE] = True


event.listen(TrackedSession, "after_begin", _began)
event.listen(TrackedSession, "do_orm_execute", _executed)
event.listen(TrackedSession, "after_flush", _flushed)


def may_have_written(session: AsyncSession) -> bool:
    """``False`` only when ``session`` is tracked and its transaction has neither written nor
    holds unflushed changes."""
    sync = session.sync_session
    if sync.info.get(_WROTE, True):
        return True
    return bool(sync.new or sync.dirty or sync.deleted or audit.pending(sync))
