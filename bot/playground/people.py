"""The people on the playground page: who they are to the bot, and their settings."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

LANGUAGES = ("en", "zh-Hans")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{4,22}$")


class Invalid(ValueError):
    """A setting the page sent that cannot be used; the message says why."""


@dataclass
class Person:
    """A Telegram user with a private chat with the bot (``id`` is the user and chat id)."""

    id: int
    name: str
    language: str = "en"
    phone: str = ""
    note: str = ""  # what they are in the story: owner, staff, customer

    @property
    def first_name(self) -> str:
        return self.name

    def as_dict(self) -> dict[str, Any]:
        """The ``from`` of their updates."""
        return {"id": self.id, "is_bot": False, "first_name": self.name,
                "language_code": self.language}

    def public(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply the page's changes (name, language, phone, note), each checked first."""
        checked = {key: check(key, changes[key]) for key in ("name", "language", "phone", "note")
                   if key in changes}
        for key, value in checked.items():
            setattr(self, key, value)


def check(key: str, value: Any) -> Any:
    """A person's setting from the page, validated (``Invalid`` says what is wrong)."""
    if key == "id":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**40:
            raise Invalid("the id must be a positive whole number (a Telegram user id)")
        return value
    text = str(value if value is not None else "").strip()
    if key == "name":
        if not 0 < len(text) <= 64:
            raise Invalid("the name must be 1 to 64 characters")
        return text
    if key == "language":
        if not _LANGUAGE.match(text):
            raise Invalid("the language must be a code such as en or zh-Hans")
        return text
    if key == "phone":
        if text and not _PHONE.match(text):
            raise Invalid("the phone must be digits, e.g. +86 138 0013 8000")
        return text
    if key == "note":
        return text[:32]
    raise Invalid(f"unknown setting {key!r}")


def default_people() -> list[Person]:
    """Who is on the page at start: a shop owner, two staff members and a customer."""
    return [
        Person(1001, "王芳", "zh-Hans", "+86 138 0013 8000", "owner"),
        Person(2001, "Alice", "en", "+86 139 0013 9000", "staff"),
        Person(2002, "张伟", "zh-Hans", "+86 137 0013 7000", "staff"),
        Person(3001, "Chris", "en", "+86 136 0013 6000", "customer"),
    ]
