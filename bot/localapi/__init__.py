"""A local Telegram Bot API: the same answers as Telegram, kept in memory, on this machine.

- ``core.LocalBotApi`` — the state (every chat's messages, uploaded files) and the answers,
  with every call recorded; Telegram's errors for what Telegram refuses.
- ``request.LocalRequest`` — PTB's request layer answered in-process by a ``LocalBotApi``.
- ``server.LocalBotApiServer`` — the same over HTTP on 127.0.0.1, with long-polling
  ``getUpdates`` and helpers that queue what a person does.

The tests drive the real bot through it, and ``subaccount-bot playground`` runs the real bot
against it with a web page of chats (``bot/playground``). It never talks to Telegram.
"""

from bot.localapi.core import BOT_USER, ApiError, Call, LocalBotApi, Upload, envelope, plain
from bot.localapi.request import LocalRequest
from bot.localapi.server import LocalBotApiServer, Sender, parse_body

__all__ = [
    "BOT_USER",
    "ApiError",
    "Call",
    "LocalBotApi",
    "LocalBotApiServer",
    "LocalRequest",
    "Sender",
    "Upload",
    "envelope",
    "parse_body",
    "plain",
]
