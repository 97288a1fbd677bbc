"""Drive the real Application offline: people type, share contacts and press buttons."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

from sqlmodel import select
from telegram import Update
from telegram.ext import Application

from bot.localapi import LocalBotApi as FakeBotApi
from models.clock import ManualClock

#: jobs planned on the wall clock, not for a deadline (a poll every few seconds, for deadlines
#: another process set): a manual clock moved on would make them look due, so they are not run
WALL_CLOCK_JOBS = frozenset({"service_levels_poll"})


@dataclass(frozen=True)
class Person:
    """A Telegram user in their private chat with the bot."""

    id: int
    first_name: str
    language_code: str = "en"
    username: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "is_bot": False, "first_name": self.first_name,
            "language_code": self.language_code,
        }
        if self.username:
            data["username"] = self.username
        return data


@dataclass
class Shown:
    """A bot message as its reader sees it."""

    message_id: int
    text: str
    buttons: list[list[tuple[str, str]]]  # rows of (label, callback data or url)
    reply_keyboard: list[list[dict[str, Any]]] | None

    @property
    def labels(self) -> list[str]:
        return [label for row in self.buttons for label, _ in row]

    @property
    def data(self) -> list[str]:
        return [d for row in self.buttons for _, d in row]

    def button(self, label_part: str) -> str:
        """The callback data of the first button whose label contains ``label_part``."""
        for row in self.buttons:
            for label, data in row:
                if label_part in label:
                    return data
        raise AssertionError(f"no button with {label_part!r} in {self.labels}")


def _shown(message: dict[str, Any]) -> Shown:
    inline = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    rows = [[(b["text"], b.get("callback_data") or b.get("url") or "") for b in row]
            for row in inline]
    keyboard = message.get("_keyboard") or {}
    text = message.get("text") or message.get("caption") or ""
    return Shown(message["message_id"], text, rows, keyboard.get("keyboard"))


class Harness:
    """The bot and the people talking to it."""

    def __init__(self, app: Application,  # type: ignore[type-arg]
                 api: FakeBotApi, clock: ManualClock) -> None:
        self.app = app
        self.api = api
        self.clock = clock
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)

    # --- acting ------------------------------------------------------------------------------
    async def feed(self, payload: dict[str, Any]) -> list[Shown]:
        """Process one update; returns the messages the bot sent or edited meanwhile."""
        before = len(self.api.calls)
        payload = {"update_id": next(self._update_ids), **payload}
        update = Update.de_json(payload, self.app.bot)
        await self.app.process_update(update)
        touched: list[Shown] = []
        for call in self.api.calls[before:]:
            shows = call.method in ("sendMessage", "editMessageText", "editMessageReplyMarkup",
                                    "copyMessage", "sendPhoto", "editMessageCaption")
            if shows and isinstance(call.result, dict):
                message = dict(call.result)
                chat_id = (int(call.params["chat_id"]) if call.method == "copyMessage"
                           else message["chat"]["id"])
                stored = self.api.messages.get(chat_id, {}).get(message["message_id"])
                if stored is None:
                    continue
                message = {k: v for k, v in stored.items() if not k.startswith("_")}
                message["_keyboard"] = stored.get("_keyboard")
                touched.append(_shown(message))
        return touched

    def _message(self, who: Person, chat: dict[str, Any] | None = None,
                 **extra: Any) -> dict[str, Any]:
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat or {"id": who.id, "type": "private", "first_name": who.first_name},
            "from": who.as_dict(),
            **extra,
        }
        # kept, as Telegram keeps it, so that the bot can copy it (copyMessage)
        self.api.incoming.setdefault(message["chat"]["id"], {})[message["message_id"]] = message
        return message

    async def send(self, who: Person, *, reply_to: int | None = None, **content: Any
                   ) -> list[Shown]:
        """``who`` sends any message (``text=``, ``photo=[...]``, ``voice={...}``…), replying
        to the bot's message ``reply_to`` if given."""
        if reply_to is not None:
            original = self.api.messages[who.id][reply_to]
            content["reply_to_message"] = {
                k: v for k, v in original.items() if not k.startswith("_")}
        return await self.feed({"message": self._message(who, **content)})

    async def photo(self, who: Person, caption: str | None = None) -> list[Shown]:
        """``who`` sends a photo."""
        extra: dict[str, Any] = {"photo": [{"file_id": "ph", "file_unique_id": "ph1",
                                            "width": 90, "height": 90}]}
        if caption:
            extra["caption"] = caption
        return await self.send(who, **extra)

    async def voice(self, who: Person) -> list[Shown]:
        """``who`` sends a voice message."""
        return await self.send(who, voice={"file_id": "vo", "file_unique_id": "vo1",
                                           "duration": 3})

    async def text(self, who: Person, text: str) -> list[Shown]:
        """``who`` types ``text``."""
        return await self.feed({"message": self._message(who, text=text)})

    async def command(self, who: Person, command: str, *, group: bool = False) -> list[Shown]:
        """``who`` sends ``/command args`` (in a group when ``group``)."""
        name = command.split()[0]
        chat = {"id": -100123, "type": "supergroup", "title": "Staff room"} if group else None
        return await self.feed({"message": self._message(
            who, chat, text=command,
            entities=[{"type": "bot_command", "offset": 0, "length": len(name)}],
        )})

    async def contact(self, who: Person, phone: str, *, user_id: int | None = None) -> list[Shown]:
        """``who`` shares a contact (their own unless ``user_id`` says otherwise)."""
        return await self.feed({"message": self._message(who, contact={
            "phone_number": phone, "first_name": who.first_name,
            "user_id": who.id if user_id is None else user_id,
        })})

    async def sticker(self, who: Person) -> list[Shown]:
        """``who`` sends a sticker."""
        return await self.feed({"message": self._message(who, sticker={
            "file_id": "st", "file_unique_id": "st1", "type": "regular",
            "width": 512, "height": 512, "is_animated": False, "is_video": False,
        })})

    async def edited(self, who: Person, text: str) -> list[Shown]:
        """``who`` edits an earlier message."""
        message = self._message(who, text=text, edit_date=int(time.time()))
        return await self.feed({"edited_message": message})

    async def press(self, who: Person, data: str, *, message_id: int | None = None) -> list[Shown]:
        """``who`` presses the button with ``data`` (on the latest message showing it)."""
        chat = self.api.messages.get(who.id, {})
        if message_id is None:
            for msg in reversed(list(chat.values())):
                if data in _shown(msg).data:
                    message_id = msg["message_id"]
                    break
            else:
                message_id = list(chat)[-1] if chat else 1
        message = chat.get(message_id) or {
            "message_id": message_id, "date": int(time.time()),
            "chat": {"id": who.id, "type": "private"},
            "from": {"id": 1, "is_bot": True, "first_name": "b"},
            "text": "?",
        }
        public = {k: v for k, v in message.items() if not k.startswith("_")}
        return await self.feed({"callback_query": {
            "id": str(next(self._update_ids)), "from": who.as_dict(),
            "chat_instance": str(who.id), "data": data, "message": public,
        }})

    async def click(self, who: Person, label_part: str) -> list[Shown]:
        """``who`` presses the button whose label contains ``label_part`` on their latest menu."""
        for msg in reversed(self.api.chat(who.id)):
            shown = _shown(msg)
            for label, data in (b for row in shown.buttons for b in row):
                if label_part in label:
                    return await self.press(who, data, message_id=shown.message_id)
        raise AssertionError(f"no button with {label_part!r} in {who.first_name}'s chat")

    # --- reading -----------------------------------------------------------------------------
    def last(self, who: Person) -> Shown:
        """The bot's latest message in ``who``'s chat."""
        chat = self.api.chat(who.id)
        assert chat, f"the bot never wrote to {who.first_name}"
        return _shown(chat[-1])

    def messages(self, who: Person) -> list[Shown]:
        return [_shown(m) for m in self.api.chat(who.id)]

    def message(self, who: Person, message_id: int) -> Shown:
        return _shown(self.api.messages[who.id][message_id])

    def answers(self) -> list[str]:
        """Texts of callback-query answers (toasts), oldest first."""
        return [str(c.params.get("text") or "") for c in self.api.methods("answerCallbackQuery")]

    async def run_due_jobs(self) -> int:
        """Run every scheduled job whose time has come by the (manual) clock."""
        ran = 0
        queue = self.app.job_queue
        assert queue is not None
        for job in list(queue.jobs()):
            if job.name in WALL_CLOCK_JOBS:
                continue
            due = job.next_t
            if due is not None and due.replace(tzinfo=None) <= self.clock.now():
                job.schedule_removal()  # as APScheduler does with a run_once job that fires
                await job.run(self.app)
                ran += 1
        return ran


async def rows(h: Harness, model: Any) -> list[Any]:
    """Every row of the table ``model``, in primary-key order, read in a fresh session."""
    key = list(model.__table__.primary_key.columns)
    async with h.app.bot_data["deps"].sessions() as session:
        return list((await session.exec(select(model).order_by(*key))).all())
