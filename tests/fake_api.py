"""A fake Telegram Bot API: answers like Telegram, keeps every chat's messages, records calls.

Used in-process through ``FakeRequest`` (a ``telegram.request.BaseRequest``) and over HTTP by
``tests/fake_server.py`` for the tests that run the real bot process.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from telegram.request import BaseRequest, RequestData

BOT_USER = {
    "id": 777000111,
    "is_bot": True,
    "first_name": "Sub-account Bot",
    "username": "subaccount_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}

_TAG = re.compile(r"<[^>]+>")


def plain(text: str) -> str:
    """What a user sees of an HTML text."""
    return html.unescape(_TAG.sub("", text))


class ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    result: Any = None


@dataclass
class FakeBotApi:
    """The server side: state and answers."""

    calls: list[Call] = field(default_factory=list)
    messages: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    failures: dict[str, list[Exception]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(5000))  # type: ignore[type-arg]

    def fail_next(self, method: str, error: Exception) -> None:
        """Make the next call of ``method`` fail: an ``ApiError`` is Telegram's answer, any
        other exception (e.g. ``telegram.error.NetworkError``) is raised by the transport."""
        self.failures.setdefault(method, []).append(error)

    def handle(self, method: str, params: dict[str, Any]) -> Any:
        call = Call(method, params)
        self.calls.append(call)
        queued = self.failures.get(method)
        if queued:
            raise queued.pop(0)
        handler = getattr(self, f"_{method}", None)
        call.result = True if handler is None else handler(params)
        return call.result

    # --- methods -----------------------------------------------------------------------------
    def _getMe(self, _params: dict[str, Any]) -> dict[str, Any]:
        return BOT_USER

    def _getUpdates(self, _params: dict[str, Any]) -> list[Any]:
        return []

    def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        text = str(params["text"])
        shown = plain(text) if params.get("parse_mode") == "HTML" else text
        if not shown.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(shown) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        message: dict[str, Any] = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group", "title": "g"},
            "from": BOT_USER,
            "text": shown,
        }
        markup = _markup(params.get("reply_markup"))
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        message["_raw"] = text
        message["_keyboard"] = markup
        self.messages.setdefault(chat_id, {})[message["message_id"]] = message
        return _public(message)

    def _editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params)
        text = str(params["text"])
        shown = plain(text) if params.get("parse_mode") == "HTML" else text
        markup = _markup(params.get("reply_markup"))
        if shown == message["text"] and markup == message.get("reply_markup"):
            raise ApiError(400, "Bad Request: message is not modified: specified new message "
                                "content and reply markup are exactly the same")
        message["text"], message["_raw"] = shown, text
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return _public(message)

    def _editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params)
        markup = _markup(params.get("reply_markup"))
        if markup == message.get("reply_markup"):
            raise ApiError(400, "Bad Request: message is not modified")
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        return _public(message)

    def _find(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        message = self.messages.get(chat_id, {}).get(int(params["message_id"]))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        return message

    # --- what the tests read -----------------------------------------------------------------
    def chat(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in a chat, oldest first."""
        return list(self.messages.get(chat_id, {}).values())

    def methods(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.method == name]


def _markup(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return json.loads(value)
    return value


def _public(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if not k.startswith("_")}


def envelope(api: FakeBotApi, method: str, params: dict[str, Any]) -> tuple[int, bytes]:
    """Telegram's JSON envelope around an answer or an error."""
    try:
        result = api.handle(method, params)
    except ApiError as exc:
        body = {"ok": False, "error_code": exc.code, "description": exc.description}
        return exc.code, json.dumps(body).encode()
    return 200, json.dumps({"ok": True, "result": result}).encode()


class FakeRequest(BaseRequest):
    """PTB's request layer, answered in-process by a ``FakeBotApi``."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float:
        return 1.0

    async def do_request(  # type: ignore[override]
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        params = json.loads(request_data.json_payload) if request_data else {}
        params = {k: _decode(v) if k in _JSON_KEYS else v for k, v in params.items()}
        for key in ("chat_id", "message_id", "user_id"):
            if isinstance(params.get(key), str) and params[key].lstrip("-").isdigit():
                params[key] = int(params[key])
        return envelope(self.api, api_method, params)


_JSON_KEYS = {"reply_markup", "commands", "allowed_updates", "entities", "scope", "link_preview_options"}


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
