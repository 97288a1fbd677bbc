"""The state and the answers of the local Bot API: what Telegram would answer, kept in memory.

Every call is recorded (``calls``); every chat's messages are kept as the reader sees them
(``messages``: the text without its HTML tags, plus private ``_raw`` / ``_parse_mode`` /
``_keyboard`` keys with what the bot sent). Uploaded files are kept in ``files``. Listeners
registered in ``listeners`` hear of every call that succeeded (the playground's page feed).
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BOT_USER: dict[str, Any] = {
    "id": 777000111,
    "is_bot": True,
    "first_name": "Sub-account Bot",
    "username": "subaccount_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}

log = logging.getLogger(__name__)

_TAG = re.compile(r"<[^>]+>")
_BLOCKED = "Forbidden: bot was blocked by the user"


def plain(text: str) -> str:
    """What a user sees of an HTML text."""
    return html.unescape(_TAG.sub("", text))


class ApiError(Exception):
    """Telegram's refusal: an HTTP status and a description."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    result: Any = None


@dataclass(frozen=True)
class Upload:
    """A file sent in a multipart request."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class LocalBotApi:
    """The server side: state and answers."""

    calls: list[Call] = field(default_factory=list)
    messages: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    failures: dict[str, list[Exception]] = field(default_factory=dict)
    listeners: list[Callable[[Call], None]] = field(default_factory=list)
    #: the people's own messages (chat id → message id → message), as a test or the page
    #: sent them: what ``copyMessage`` copies from a person's chat
    incoming: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    bot_user: dict[str, Any] = field(default_factory=lambda: dict(BOT_USER))
    #: the command menus (``setMyCommands``): (scope, language code or "") → the commands
    menus: dict[tuple[tuple[Any, ...], str], list[dict[str, str]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(5000))
    _file_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

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
        for listener in list(self.listeners):
            try:
                listener(call)
            except Exception:  # the page's trouble must not become the bot's
                log.exception("a listener of the local Bot API failed on %s", method)
        return call.result

    # --- methods -----------------------------------------------------------------------------
    def _getMe(self, _params: dict[str, Any]) -> dict[str, Any]:
        return self.bot_user

    def _getUpdates(self, _params: dict[str, Any]) -> list[Any]:
        return []

    def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        text = str(params.get("text", ""))
        shown = _shown(text, params)
        if not shown.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(shown) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        return self._post(params, {"text": shown}, text)

    def _sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        upload = self._file(params.get("photo"))
        file_id, stored = upload
        width, height = _image_size(stored.data)
        photo = {"file_id": file_id, "file_unique_id": f"u{file_id}", "width": width,
                 "height": height, "file_size": stored.size}
        return self._post_with_caption(params, {"photo": [photo]})

    def _sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id, stored = self._file(params.get("document"))
        document = {"file_id": file_id, "file_unique_id": f"u{file_id}",
                    "file_name": stored.filename, "mime_type": stored.content_type,
                    "file_size": stored.size}
        return self._post_with_caption(params, {"document": document})

    def _editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params)
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text = str(params["text"])
        shown = _shown(text, params)
        if not shown.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        markup = _markup(params.get("reply_markup"))
        if shown == message["text"] and markup == message.get("reply_markup"):
            raise ApiError(400, "Bad Request: message is not modified: specified new message "
                                "content and reply markup are exactly the same")
        message["text"], message["_raw"] = shown, text
        message["_parse_mode"] = params.get("parse_mode")
        return self._edited(message, markup)

    def _editMessageCaption(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params)
        if "photo" not in message and "document" not in message:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        raw = str(params.get("caption") or "")
        shown = _shown(raw, params)
        if len(shown) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        markup = _markup(params.get("reply_markup"))
        if shown == message.get("caption", "") and markup == message.get("reply_markup"):
            raise ApiError(400, "Bad Request: message is not modified")
        if shown:
            message["caption"] = shown
        else:
            message.pop("caption", None)
        message["_raw"], message["_parse_mode"] = raw, params.get("parse_mode")
        return self._edited(message, markup)

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

    def _copyMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        """A copy of a message (the person's own, or the bot's) sent by the bot to another
        chat, without a link to the original; answered with its ``MessageId``."""
        from_chat, source_id = int(params["from_chat_id"]), int(params["message_id"])
        source = (self.incoming.get(from_chat, {}).get(source_id)
                  or self.messages.get(from_chat, {}).get(source_id))
        if source is None:
            raise ApiError(400, "Bad Request: message to copy not found")
        if any(kind in source for kind in UNCOPYABLE):
            raise ApiError(400, "Bad Request: the message can't be copied")
        content = {k: v for k, v in source.items() if k in COPIED}
        if "caption" in params:
            raw = str(params.get("caption") or "")
            content.pop("caption", None)
            if raw:
                content["caption"] = _shown(raw, params)
        if "reply_to_message_id" in params:
            content["reply_to_message"] = {"message_id": int(params["reply_to_message_id"])}
        posted = self._post(params, content, str(content.get("text", "")))
        stored = self.messages[int(params["chat_id"])][posted["message_id"]]
        stored["_copy_of"] = (from_chat, source_id)
        return {"message_id": posted["message_id"]}

    def _setMyCommands(self, params: dict[str, Any]) -> bool:
        commands = _markup(params.get("commands"))
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: too many commands specified")
        menu = []
        for command in commands:
            name = str(command.get("command", "")) if isinstance(command, dict) else ""
            description = str(command.get("description", "")) if isinstance(command, dict) else ""
            if not _COMMAND.fullmatch(name):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(description.strip()) <= 256:
                raise ApiError(400, "Bad Request: command description is empty or too long")
            menu.append({"command": name, "description": description})
        key = (_scope(params.get("scope")), _language_code(params.get("language_code")))
        if menu:
            self.menus[key] = menu
        else:
            self.menus.pop(key, None)
        return True

    def _deleteMyCommands(self, params: dict[str, Any]) -> bool:
        self.menus.pop((_scope(params.get("scope")), _language_code(params.get("language_code"))),
                       None)
        return True

    def _getMyCommands(self, params: dict[str, Any]) -> list[dict[str, str]]:
        key = (_scope(params.get("scope")), _language_code(params.get("language_code")))
        return list(self.menus.get(key, []))

    def menu(self, chat_id: int, language_code: str | None = None) -> list[str]:
        """The command names a person sees in their private chat, as Telegram picks them: the
        chat's own menu, then all private chats', then the default; at each level the menu of
        the person's language before the one for every language."""
        code = (language_code or "")[:2].lower()
        for scope in (("chat", chat_id), ("all_private_chats",), ("default",)):
            for language in (code, ""):
                found = self.menus.get((scope, language))
                if found is not None:
                    return [c["command"] for c in found]
        return []

    def _deleteMessage(self, params: dict[str, Any]) -> bool:
        chat_id = int(params["chat_id"])
        if self.messages.get(chat_id, {}).pop(int(params["message_id"]), None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        return True

    # --- helpers -----------------------------------------------------------------------------
    def _post(self, params: dict[str, Any], content: dict[str, Any], raw: str) -> dict[str, Any]:
        """Store a new message from the bot in ``params["chat_id"]`` and answer it."""
        chat_id = int(params["chat_id"])
        if chat_id in self.blocked:
            raise ApiError(403, _BLOCKED)
        message: dict[str, Any] = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group", "title": "g"},
            "from": self.bot_user,
            **content,
        }
        markup = _markup(params.get("reply_markup"))
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        message["_raw"] = raw
        message["_parse_mode"] = params.get("parse_mode")
        message["_keyboard"] = markup
        self.messages.setdefault(chat_id, {})[message["message_id"]] = message
        return _public(message)

    def _post_with_caption(self, params: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        raw = str(params.get("caption") or "")
        shown = _shown(raw, params)
        if len(shown) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        if shown:
            content["caption"] = shown
        return self._post(params, content, raw)

    def _file(self, value: Any) -> tuple[str, Upload]:
        """An uploaded file (stored under a new file id) or the file id of an earlier one."""
        if isinstance(value, Upload):
            file_id = f"file{next(self._file_ids)}"
            self.files[file_id] = value
            return file_id, value
        if isinstance(value, str) and value in self.files:
            return value, self.files[value]
        raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    def _find(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        if chat_id in self.blocked:
            raise ApiError(403, _BLOCKED)
        message = self.messages.get(chat_id, {}).get(int(params["message_id"]))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        return message

    def _edited(self, message: dict[str, Any], markup: Any) -> dict[str, Any]:
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return _public(message)

    # --- what the tests read -----------------------------------------------------------------
    def chat(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in a chat, oldest first."""
        return list(self.messages.get(chat_id, {}).values())

    def methods(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.method == name]


#: what a copy keeps of the original
COPIED = frozenset({"text", "entities", "caption", "caption_entities", "photo", "document",
                    "voice", "video", "video_note", "audio", "animation", "sticker",
                    "location", "venue", "contact", "poll", "dice"})
#: what Telegram refuses to copy (service and invoice-like messages)
UNCOPYABLE = frozenset({"invoice", "giveaway", "giveaway_winners", "paid_media",
                        "successful_payment", "new_chat_members", "left_chat_member"})


_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_SCOPES = {"default", "all_private_chats", "all_group_chats", "all_chat_administrators",
           "chat", "chat_administrators", "chat_member"}


def _scope(value: Any) -> tuple[Any, ...]:
    """A ``BotCommandScope`` as a key; Telegram's answer to a malformed one."""
    scope = _markup(value) or {"type": "default"}
    kind = scope.get("type") if isinstance(scope, dict) else None
    if kind not in _SCOPES:
        raise ApiError(400, "Bad Request: unsupported bot command scope type")
    if kind in ("chat", "chat_administrators", "chat_member"):
        if "chat_id" not in scope:
            raise ApiError(400, "Bad Request: chat not found")
        if kind == "chat_member":
            return (kind, scope["chat_id"], scope.get("user_id"))
        return (kind, scope["chat_id"])
    return (kind,)


def _language_code(value: Any) -> str:
    code = str(value or "")
    if code and not re.fullmatch(r"[a-z]{2}", code):
        raise ApiError(400, "Bad Request: invalid language code specified")
    return code


def _shown(text: str, params: dict[str, Any]) -> str:
    return plain(text) if params.get("parse_mode") == "HTML" else text


def _markup(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return json.loads(value)
    return value


def _public(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if not k.startswith("_")}


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG (what the bot sends); 0 x 0 for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return 0, 0


def envelope(api: LocalBotApi, method: str, params: dict[str, Any]) -> tuple[int, bytes]:
    """Telegram's JSON envelope around an answer or an error."""
    try:
        result = api.handle(method, params)
    except ApiError as exc:
        body = {"ok": False, "error_code": exc.code, "description": exc.description}
        return exc.code, json.dumps(body).encode()
    return 200, json.dumps({"ok": True, "result": result}).encode()
