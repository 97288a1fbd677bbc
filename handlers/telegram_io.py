"""Talking to Telegram: the one way a message is sent or edited, with the network retried.

Every send and edit goes through ``send`` / ``edit`` (HTML, no link previews): a connection
failure is retried a couple of times; a timeout is not (the message may have arrived, and a
duplicate is worse than a log line). ``send_safely`` / ``edit_safely`` add what a message to
another person needs: a blocked bot or a gone chat is an answer, not an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TypeVar

from telegram import (
    Bot,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, TimedOut

log = logging.getLogger(__name__)
T = TypeVar("T")

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None

#: pauses before retrying a send that failed on the network (not a timeout: that may have
#: been delivered, and a duplicate is worse than a log line)
RETRY_DELAYS = (0.05, 0.25)


class Undelivered(Enum):
    """Why a notification did not arrive."""

    #: the user blocked the bot (or their chat is gone)
    BLOCKED = "blocked"
    #: Telegram could not be reached or refused, even after the retries
    FAILED = "failed"


async def with_retry(call: Callable[[], Awaitable[T]]) -> T:
    """Run a Bot API call, retrying connection failures a couple of times."""
    for delay in (*RETRY_DELAYS, None):
        try:
            return await call()
        except (BadRequest, TimedOut):
            raise
        except NetworkError:
            if delay is None:
                raise
            log.warning("network error talking to Telegram; retrying in %.2fs", delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def not_modified(exc: BadRequest) -> bool:
    """Telegram's harmless answers to an edit: nothing changed, or the message is gone."""
    text = str(exc).lower()
    return "message is not modified" in text or "message to edit not found" in text


async def send(bot: Bot, chat_id: int, text: str, markup: Markup = None) -> Message:
    """The one way a message is sent: HTML, no link previews, network errors retried."""
    return await with_retry(
        lambda: bot.send_message(
            chat_id, text, parse_mode=ParseMode.HTML, reply_markup=markup,
            disable_web_page_preview=True,
        )
    )


async def edit(
    bot: Bot, chat_id: int, message_id: int, text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """The one way a message is edited, retried like a send; "not modified" is success."""
    try:
        await with_retry(
            lambda: bot.edit_message_text(
                text, chat_id=chat_id, message_id=message_id, parse_mode=ParseMode.HTML,
                reply_markup=markup, disable_web_page_preview=True,
            )
        )
    except BadRequest as exc:
        if "message is not modified" not in str(exc).lower():
            raise


async def send_safely(bot: Bot, chat_id: int, text: str, markup: Markup = None) -> Message | None:
    """Send, or return ``None`` when the user blocked the bot or the chat is gone."""
    try:
        return await send(bot, chat_id, text, markup)
    except Forbidden:
        log.info("user %s cannot be reached (blocked the bot)", chat_id)
        return None
    except BadRequest as exc:
        if "chat not found" in str(exc).lower():
            log.info("chat %s not found", chat_id)
            return None
        raise


async def edit_safely(
    bot: Bot,
    chat_id: int,
    message_id: int,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Edit a message (retried), ignoring "not modified", "not found" and blocked users."""
    try:
        await edit(bot, chat_id, message_id, text, markup)
    except Forbidden:
        log.info("user %s cannot be reached (blocked the bot)", chat_id)
    except BadRequest as exc:
        if not not_modified(exc):
            raise
