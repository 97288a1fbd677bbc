"""Scheduler wiring: the code-expiry job, and reconciliation when the bot starts.

One job, not one per code: it runs at the earliest pending deadline, expires every code that
is due (owners told, holders' code messages edited) and plans itself for the next deadline.
The deadlines live in the database, so after a restart — even a ``kill -9`` — reconciliation
expires what fell due while the bot was down and plans the rest with their original deadlines.
It also sends the codes that were committed but never sent (the process died in between), or
tells their owners that they could not be sent.
"""

from __future__ import annotations

import logging
from datetime import datetime

from telegram.ext import Application

from handlers.base import Deps
from handlers.holder_codes import deliver_undelivered, expire_and_notify, schedule_expiry

log = logging.getLogger(__name__)


async def reconcile(application: Application) -> datetime | None:  # type: ignore[type-arg]
    """Expire past-due codes, send the ones never sent, and schedule the job for the next
    deadline (returned)."""
    deps = application.bot_data["deps"]
    assert isinstance(deps, Deps)
    resent = await deliver_undelivered(application.bot, deps)
    if resent:
        log.info("%s code(s) issued but never sent were handled at start-up", resent)
    upcoming = await expire_and_notify(application.bot, deps)
    if upcoming is not None:
        schedule_expiry(application.job_queue, upcoming)
    log.info("codes reconciled; next expiry at %s", upcoming or "— (none pending)")
    return upcoming
