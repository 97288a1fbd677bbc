"""The playground page's server side: people, their chats, and what they do.

The page (``static/``) loads once, then follows ``GET /api/events`` (server-sent events: first
the whole state, then every change) and sends what a person does with JSON ``POST``s:

- ``POST /api/people`` ``{id, name, language, phone}`` adds a person;
- ``POST /api/people/<id>`` ``{name?, language?, phone?}`` changes one;
- ``POST /api/people/<id>/send`` ``{text}``, ``/contact`` ``{}`` (their own phone),
  ``/press`` ``{message_id, data}`` queue the update for the bot's ``getUpdates``.

What the bot does reaches the page through the local API's listener: sent and edited messages,
deletions, and callback answers (toasts and alerts) in the chat of the person who pressed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from bot.localapi import Call, LocalBotApiServer
from bot.localapi.http import Request, Response, Stream, json_response
from bot.playground.people import Invalid, Person, check, default_people
from bot.playground.render import telegram_html, view

#: The page's files, by name -> content type
STATIC = {"index.html": "text/html; charset=utf-8", "playground.css": "text/css; charset=utf-8",
          "playground.js": "text/javascript; charset=utf-8"}
_SHOWN = ("sendMessage", "sendPhoto", "sendDocument")
_EDITS = ("editMessageText", "editMessageCaption", "editMessageReplyMarkup")
_PERSON = re.compile(r"^/api/people/(\d+)(?:/(send|contact|press))?$")
KEEPALIVE_SECONDS = 15.0


class Playground:
    """The people, each one's chat as the page shows it, and the page's live feed."""

    def __init__(self, server: LocalBotApiServer, people: list[Person] | None = None) -> None:
        self.server = server
        self.people: dict[int, Person] = {p.id: p for p in (people or default_people())}
        self.chats: dict[int, list[dict[str, Any]]] = {}
        self._own_ids = itertools.count(1)
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        server.api.listeners.append(self._on_call)

    # --- state and feed ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        bot = self.server.api.bot_user
        return {"type": "state", "bot": {"name": bot["first_name"], "username": bot["username"]},
                "people": [p.public() for p in self.people.values()],
                "chats": {str(k): v for k, v in self.chats.items()}}

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            queue.put_nowait(event)

    def close(self) -> None:
        """End every open feed (at shutdown)."""
        for queue in list(self._subscribers):
            queue.put_nowait(None)

    async def events(self) -> AsyncIterator[bytes]:
        """The feed for one page: the state, then each change; a comment now and then."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            yield _sse(self.state())
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if event is None:
                    return
                yield _sse(event)
        finally:
            self._subscribers.discard(queue)

    def _remember(self, chat_id: int, shown: dict[str, Any], *, replace: bool) -> None:
        chat = self.chats.setdefault(chat_id, [])
        if replace:
            for index, old in enumerate(chat):
                if old["from"] == "bot" and old["id"] == shown["id"]:
                    chat[index] = shown
                    return
        chat.append(shown)

    def _on_call(self, call: Call) -> None:
        """A call the bot made to the local API, as the page sees it."""
        result = call.result
        if call.method in (*_SHOWN, *_EDITS, "copyMessage") and isinstance(result, dict):
            # a copy is answered with its MessageId only: the chat is the one it went to
            chat_id = int(call.params["chat_id"] if call.method == "copyMessage"
                          else result["chat"]["id"])
            stored = self.server.api.messages.get(chat_id, {}).get(result["message_id"])
            if stored is None:
                return
            shown = view(stored)
            edit = call.method in _EDITS
            self._remember(chat_id, shown, replace=edit)
            self.publish({"type": "edit" if edit else "message", "person": chat_id,
                          "message": shown})
        elif call.method == "deleteMessage":
            chat_id, message_id = int(call.params["chat_id"]), int(call.params["message_id"])
            self.chats[chat_id] = [m for m in self.chats.get(chat_id, [])
                                   if not (m["from"] == "bot" and m["id"] == message_id)]
            self.publish({"type": "delete", "person": chat_id, "id": message_id})
        elif call.method == "answerCallbackQuery":
            who = self.server.pressed_by.pop(str(call.params.get("callback_query_id")), None)
            text = str(call.params.get("text") or "")
            if who is not None and text:
                self.publish({"type": "answer", "person": who, "text": text,
                              "alert": bool(call.params.get("show_alert"))})

    def _own(self, person: Person, html_text: str) -> None:
        """What ``person`` sent, in their chat (the bot only sees it as an update)."""
        shown = {"id": f"own{next(self._own_ids)}", "from": "person", "html": html_text}
        self._remember(person.id, shown, replace=False)
        self.publish({"type": "message", "person": person.id, "message": shown})

    # --- what people do ----------------------------------------------------------------------
    def add(self, body: dict[str, Any]) -> Person:
        person_id = check("id", body.get("id"))
        if person_id in self.people:
            raise Invalid(f"there is already a person with id {person_id}")
        person = Person(person_id, check("name", body.get("name")))
        person.update({k: body[k] for k in ("language", "phone", "note") if k in body})
        self.people[person.id] = person
        self.publish({"type": "person", "person": person.public()})
        return person

    def change(self, person: Person, body: dict[str, Any]) -> None:
        person.update(body)
        self.publish({"type": "person", "person": person.public()})

    def send(self, person: Person, body: dict[str, Any]) -> None:
        text = str(body.get("text") or "").strip()
        if not text:
            raise Invalid("type something first")
        if len(text) > 4096:
            raise Invalid("a message is at most 4096 characters")
        self._own(person, telegram_html(text, None))
        self.server.push_text(person, text)

    def contact(self, person: Person) -> None:
        digits = "".join(c for c in person.phone if c.isdigit())
        if not digits:
            raise Invalid(f"set {person.name}'s phone number first (the ⚙ settings)")
        self._own(person, f"📱 <i>{telegram_html(person.name, None)}</i> · +{digits}")
        self.server.push_contact(person, digits)

    def press(self, person: Person, body: dict[str, Any]) -> None:
        data, message_id = body.get("data"), body.get("message_id")
        if not isinstance(data, str) or not isinstance(message_id, int):
            raise Invalid("a press needs the message_id and the button's data")
        try:
            self.server.push_press(person, data, message_id=message_id)
        except LookupError:
            raise Invalid("that button is no longer there") from None

    # --- HTTP --------------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response | Stream:
        try:
            return await self._route(request)
        except Invalid as exc:
            return json_response(400, {"error": str(exc)})

    async def _route(self, request: Request) -> Response | Stream:
        path = request.path
        if request.verb == "GET":
            if path in ("/", "/index.html"):
                return _static("index.html")
            if path.startswith("/static/") and path.removeprefix("/static/") in STATIC:
                return _static(path.removeprefix("/static/"))
            if path == "/api/state":
                return json_response(200, self.state())
            if path == "/api/events":
                return Stream(self.events())
            if path.startswith("/files/"):
                return self._file(path.removeprefix("/files/"))
            return json_response(404, {"error": "not found"})
        if request.verb != "POST":
            return json_response(405, {"error": "GET or POST"})
        if request.content_type.split(";")[0].strip().lower() != "application/json":
            return json_response(415, {"error": "send JSON (Content-Type: application/json)"})
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            raise Invalid("the body is not JSON") from None
        if not isinstance(body, dict):
            raise Invalid("the body must be a JSON object")
        if path == "/api/people":
            return json_response(200, {"person": self.add(body).public()})
        match = _PERSON.match(path)
        if match is None:
            return json_response(404, {"error": "not found"})
        person = self.people.get(int(match.group(1)))
        if person is None:
            return json_response(404, {"error": f"no person with id {match.group(1)}"})
        action = match.group(2)
        if action is None:
            self.change(person, body)
        elif action == "send":
            self.send(person, body)
        elif action == "contact":
            self.contact(person)
        else:
            self.press(person, body)
        return json_response(200, {"ok": True})

    def _file(self, file_id: str) -> Response:
        upload = self.server.api.files.get(file_id)
        if upload is None:
            return json_response(404, {"error": "no such file"})
        safe = "".join(c for c in upload.filename if c.isalnum() or c in "._-") or "file"
        disposition = "inline" if upload.content_type.startswith("image/") else "attachment"
        return Response(200, upload.data, upload.content_type or "application/octet-stream",
                        (("Content-Disposition", f'{disposition}; filename="{safe}"'),
                         ("X-Content-Type-Options", "nosniff")))


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def _static(name: str) -> Response:
    data = resources.files("bot.playground").joinpath("static", name).read_bytes()
    return Response(200, data, STATIC[name], (("Cache-Control", "no-store"),))

