"""What the page shows of a bot message: Telegram's HTML made safe, buttons, keyboards, files.

``telegram_html()`` keeps only the tags Telegram renders (b, i, u, s, code, pre, a, tg-spoiler,
blockquote and their aliases), drops every other tag and attribute, escapes all text and turns
bare links into anchors, as Telegram does. ``view()`` is the page's description of a message.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

#: Telegram's tags (and aliases) -> the tag the page uses
_TAGS = {
    "b": "b", "strong": "b", "i": "i", "em": "i", "u": "u", "ins": "u",
    "s": "s", "strike": "s", "del": "s", "code": "code", "pre": "pre", "a": "a",
    "tg-spoiler": "tg-spoiler", "blockquote": "blockquote",
}
_SCHEMES = ("http://", "https://", "tg://", "mailto:")
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")


def _linkify(text: str) -> str:
    """Escaped ``text`` with bare http(s) links as anchors."""
    out, last = [], 0
    for match in _URL.finditer(text):
        out.append(html.escape(text[last:match.start()], quote=False))
        url = match.group(0)
        out.append(f'<a href="{html.escape(url)}">{html.escape(url, quote=False)}</a>')
        last = match.end()
    out.append(html.escape(text[last:], quote=False))
    return "".join(out)


class _Sanitiser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        name = ("tg-spoiler" if tag == "span" and ("class", "tg-spoiler") in attrs
                else _TAGS.get(tag))
        if name is None:
            return
        if name == "a":
            href = dict(attrs).get("href") or ""
            if not href.startswith(_SCHEMES):
                href = ""
            self.out.append(f'<a href="{html.escape(href)}">' if href else "<a>")
        else:
            self.out.append(f"<{name}>")
        self.open.append(name)

    def handle_endtag(self, tag: str) -> None:
        name = "tg-spoiler" if tag == "span" else _TAGS.get(tag)
        if name is None or name not in self.open:
            return
        while self.open:  # close what was left open inside it, then it
            top = self.open.pop()
            self.out.append(f"</{top}>")
            if top == name:
                break

    def handle_data(self, data: str) -> None:
        if "a" in self.open:
            self.out.append(html.escape(data, quote=False))
        else:
            self.out.append(_linkify(data))

    def result(self) -> str:
        self.close()
        return "".join(self.out) + "".join(f"</{name}>" for name in reversed(self.open))


def telegram_html(text: str, parse_mode: str | None = "HTML") -> str:
    """``text`` as safe HTML, the way Telegram renders it in ``parse_mode`` (HTML or none)."""
    if parse_mode != "HTML":
        return _linkify(text)
    sanitiser = _Sanitiser()
    sanitiser.feed(text)
    return sanitiser.result()


def _inline(message: dict[str, Any]) -> list[list[dict[str, str]]]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    out: list[list[dict[str, str]]] = []
    for row in rows:
        buttons = []
        for button in row:
            shown = {"text": str(button.get("text", ""))}
            if "callback_data" in button:
                shown["data"] = str(button["callback_data"])
            elif "url" in button:
                shown["url"] = str(button["url"])
            buttons.append(shown)
        out.append(buttons)
    return out


def _keyboard(markup: Any) -> dict[str, Any] | None:
    """A reply keyboard (or its removal) sent with the message."""
    if not isinstance(markup, dict):
        return None
    if markup.get("remove_keyboard"):
        return {"remove": True}
    rows = markup.get("keyboard")
    if not rows:
        return None
    return {
        "rows": [[{"text": str(b["text"]) if isinstance(b, dict) else str(b),
                   "contact": bool(isinstance(b, dict) and b.get("request_contact"))}
                  for b in row] for row in rows],
        "one_time": bool(markup.get("one_time_keyboard")),
        "placeholder": str(markup.get("input_field_placeholder") or ""),
    }


def view(message: dict[str, Any]) -> dict[str, Any]:
    """A stored bot message as the page draws it."""
    shown: dict[str, Any] = {
        "id": message["message_id"],
        "from": "bot",
        "html": telegram_html(str(message.get("_raw") or ""), message.get("_parse_mode")),
        "inline": _inline(message),
        "keyboard": _keyboard(message.get("_keyboard")),
        "edited": "edit_date" in message,
    }
    if message.get("photo"):
        shown["photo"] = f"/files/{message['photo'][-1]['file_id']}"
    if message.get("document"):
        document = message["document"]
        shown["document"] = {"url": f"/files/{document['file_id']}",
                             "name": document.get("file_name") or "file",
                             "size": document.get("file_size") or 0}
    return shown
