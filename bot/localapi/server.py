"""The local Bot API over HTTP, on 127.0.0.1 at a free port, inside the caller's event loop.

``LocalBotApiServer`` serves a ``LocalBotApi`` (same state, same answers, same ``envelope()``):

- ``POST``/``GET /bot<token>/<method>`` with a form (what PTB sends), JSON or multipart body
  (files become ``Upload`` values);
- ``getUpdates`` long-polls: the request is held until an update is queued or ``timeout``
  seconds pass; ``offset`` confirms (drops) earlier updates, like Telegram;
- ``api.fail_next(method, ApiError(...))`` answers with Telegram's error; any other exception
  queued there drops the connection without an answer (a network failure for the client);
- ``push_update()`` / ``push_command()`` / ``push_text()`` / ``push_contact()`` /
  ``push_press()`` queue what a person does; ``wait_for()`` / ``wait_call()`` wait (on an
  ``asyncio.Condition``, no sleeping) until the bot has made the calls expected.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import itertools
import json
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qsl

from bot.localapi.core import Call, LocalBotApi, Upload, envelope
from bot.localapi.http import Drop, HttpServer, Request, Response, json_response
from bot.localapi.request import JSON_KEYS, decode

TOKEN = "123456:LOCAL-BOT-API-TOKEN"
_INT_KEYS = {"chat_id", "message_id", "user_id", "offset", "limit", "timeout", "from_chat_id",
             "reply_to_message_id", "cache_time"}


class Sender(Protocol):
    """A Telegram user as an update's ``from``."""

    @property
    def id(self) -> int: ...

    @property
    def first_name(self) -> str: ...

    def as_dict(self) -> dict[str, Any]: ...


def _scalar(key: str, value: str) -> Any:
    """A form field back to the value PTB encoded (JSON for objects, strings stay strings)."""
    if key in JSON_KEYS:
        return decode(value)
    if key in _INT_KEYS and value.lstrip("-").isdigit():
        return int(value)
    if value in ("true", "false"):
        return value == "true"
    return value


def parse_body(content_type: str, body: bytes, query: str = "") -> dict[str, Any]:
    """The parameters of a Bot API request: query string plus form, JSON or multipart body."""
    params: dict[str, Any] = {k: _scalar(k, v) for k, v in parse_qsl(query, keep_blank_values=True)}
    kind = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return params
    if kind == "application/json":
        loaded = json.loads(body)
        if isinstance(loaded, dict):
            params.update({k: decode(v) if k in JSON_KEYS else v for k, v in loaded.items()})
    elif kind == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        uploads: dict[str, Upload] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            filename = part.get_filename()
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            if filename:
                uploads[name] = Upload(filename, part.get_content_type(), data)
            else:
                params[name] = _scalar(name, data.decode("utf-8"))
        for key, value in list(params.items()):  # media given as attach://<name>
            if isinstance(value, str) and value.startswith("attach://"):
                params[key] = uploads.pop(value.removeprefix("attach://"), value)
        params.update(uploads)
    else:  # application/x-www-form-urlencoded, PTB's default
        for key, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
            params[key] = _scalar(key, value)
    return params


def _error(status: int, description: str) -> Response:
    return json_response(status, {"ok": False, "error_code": status, "description": description})


class LocalBotApiServer:
    """``LocalBotApi`` over HTTP on 127.0.0.1, with long-polling ``getUpdates``."""

    def __init__(self, api: LocalBotApi | None = None, *, token: str = TOKEN) -> None:
        self.api = api or LocalBotApi()
        self.token = token
        self.pending: list[dict[str, Any]] = []  # queued, not yet confirmed by an offset
        #: who pressed: callback query id -> user id (to show an answer in the right chat)
        self.pressed_by: dict[str, int] = {}
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._http = HttpServer(self._handle)
        self._wakers: set[asyncio.Task[None]] = set()

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._http.port

    @property
    def base_url(self) -> str:
        """What goes into ``telegram.base_url``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> LocalBotApiServer:
        await self._http.start()
        return self

    async def stop(self) -> None:
        """Release held long polls, close every connection and the listening socket."""
        self._http.closing = True
        async with self._changed:
            self._changed.notify_all()
        await self._http.stop()
        if self._wakers:
            await asyncio.wait(list(self._wakers), timeout=5)

    async def __aenter__(self) -> LocalBotApiServer:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # --- what a person does ------------------------------------------------------------------
    def push_update(self, update: Mapping[str, Any]) -> int:
        """Queue an update for ``getUpdates`` (an ``update_id`` is added if missing)."""
        payload = dict(update)
        payload.setdefault("update_id", next(self._update_ids))
        sent = payload.get("message")
        if isinstance(sent, dict):  # kept, as Telegram keeps it, for copyMessage
            self.api.incoming.setdefault(sent["chat"]["id"], {})[sent["message_id"]] = sent
        self.pending.append(payload)
        self._wake()
        return int(payload["update_id"])

    def message(self, who: Sender, **extra: Any) -> dict[str, Any]:
        """A private-chat message from ``who`` (an update body, not yet queued)."""
        return {"message": {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": {"id": who.id, "type": "private", "first_name": who.first_name},
            "from": who.as_dict(), **extra,
        }}

    def push_text(self, who: Sender, text: str) -> int:
        """``who`` types ``text`` (a leading ``/command`` is marked as Telegram does)."""
        if text.startswith("/") and len(text) > 1:
            return self.push_command(who, text)
        return self.push_update(self.message(who, text=text))

    def push_command(self, who: Sender, command: str) -> int:
        name = command.split()[0]
        return self.push_update(self.message(
            who, text=command, entities=[{"type": "bot_command", "offset": 0, "length": len(name)}]
        ))

    def push_contact(self, who: Sender, phone: str, *, user_id: int | None = None) -> int:
        return self.push_update(self.message(who, contact={
            "phone_number": phone, "first_name": who.first_name,
            "user_id": who.id if user_id is None else user_id,
        }))

    def push_press(self, who: Sender, data: str, *, message_id: int | None = None) -> int:
        """``who`` presses the button with callback ``data`` on message ``message_id`` (by
        default the latest message in their chat showing it)."""
        chat = self.api.chat(who.id)
        candidates = [m for m in chat if message_id is None or m["message_id"] == message_id]
        for message in reversed(candidates):
            rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
            if any(button.get("callback_data") == data for row in rows for button in row):
                public = {k: v for k, v in message.items() if not k.startswith("_")}
                query_id = str(next(self._callback_ids))
                self.pressed_by[query_id] = who.id
                return self.push_update({"callback_query": {
                    "id": query_id, "from": who.as_dict(),
                    "chat_instance": str(who.id), "data": data, "message": public,
                }})
        raise LookupError(f"no message in {who.first_name}'s chat has a button {data!r}")

    # --- waiting for the bot -----------------------------------------------------------------
    def mark(self) -> int:
        """The number of calls so far (pass as ``since`` to wait for later calls only)."""
        return len(self.api.calls)

    async def wait_for(self, predicate: Callable[[list[Call]], Any], within: float = 10.0) -> Any:
        """Wait until ``predicate(calls)`` is truthy and return its value."""
        found: Any = None

        def ready() -> bool:
            nonlocal found
            found = predicate(self.api.calls)
            return bool(found)

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(ready), within)
            except TimeoutError:
                seen = ", ".join(c.method for c in self.api.calls[-15:])
                raise AssertionError(
                    f"the bot did not make the expected call within {within} s "
                    f"(last calls: {seen or 'none'})"
                ) from None
        return found

    async def wait_call(
        self,
        method: str,
        where: Callable[[Call], bool] | None = None,
        *,
        since: int = 0,
        within: float = 10.0,
    ) -> Call:
        """The first call of ``method`` (after index ``since``) that satisfies ``where``."""

        def first(calls: list[Call]) -> Call | None:
            for call in calls[since:]:
                if call.method == method and (where is None or where(call)):
                    return call
            return None

        result: Call = await self.wait_for(first, within)
        return result

    async def wait_message(
        self, who: Sender, contains: str, *, since: int = 0, within: float = 10.0
    ) -> Call:
        """The bot's first message (sent or edited) to ``who`` after ``since`` with ``contains``."""

        def match(call: Call) -> bool:
            result = call.result if isinstance(call.result, dict) else {}
            return (call.method in ("sendMessage", "editMessageText")
                    and result.get("chat", {}).get("id") == who.id
                    and contains in str(result.get("text", "")))

        found: Call = await self.wait_for(
            lambda calls: next((c for c in calls[since:] if match(c)), None), within
        )
        return found

    # --- HTTP --------------------------------------------------------------------------------
    def _wake(self) -> None:
        """Tell waiters that calls or updates changed (scheduled: callers may be sync)."""

        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        self._wakers.add(task)
        task.add_done_callback(self._wakers.discard)

    def _confirmed(self, offset: int) -> list[dict[str, Any]]:
        if offset > 0:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        return self.pending

    async def _get_updates(self, params: dict[str, Any]) -> Response:
        status, body = envelope(self.api, "getUpdates", params)  # records the call, or fails
        call = self.api.calls[-1]
        self._wake()
        if status != HTTPStatus.OK:
            return Response(status, body)
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(
                        lambda: self._http.closing or bool(self._confirmed(offset))
                    ),
                    timeout,
                )
        updates = list(self._confirmed(offset)[:limit])
        call.result = updates
        return Response(HTTPStatus.OK, json.dumps({"ok": True, "result": updates}).encode())

    async def _handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if request.verb not in ("GET", "POST") or len(parts) != 2 or not parts[0].startswith("bot"):
            return _error(404, "Not Found")
        if parts[0][3:] != self.token:
            return _error(401, "Unauthorized")
        method = parts[1]
        try:
            params = parse_body(request.content_type, request.body, request.query)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(400, f"Bad Request: {exc}")
        try:
            if method == "getUpdates":
                return await self._get_updates(params)
            return Response(*envelope(self.api, method, params))
        except Exception as exc:  # a transport failure queued with api.fail_next()
            raise Drop from exc
        finally:
            self._wake()
