"""Inline keyboards: buttons (callback data within Telegram's 64 bytes), rows, one pager row."""

from __future__ import annotations

from collections.abc import Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup


def button(text: str, data: str) -> InlineKeyboardButton:
    """An inline button; callback data must fit Telegram's 64 bytes."""
    if len(data.encode()) > 64:
        raise ValueError(f"callback data too long: {data!r}")
    return InlineKeyboardButton(text, callback_data=data)


def keyboard(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    """An inline keyboard from rows of buttons (empty rows dropped)."""
    return InlineKeyboardMarkup([row for row in rows if row])


def rows_of(items: list[InlineKeyboardButton], width: int = 2) -> list[list[InlineKeyboardButton]]:
    """Lay buttons out in rows of ``width``."""
    return [items[i : i + width] for i in range(0, len(items), width)]


def pager_row(
    page: int, pages: int, *, previous: str, following: str, data: Callable[[int], str]
) -> list[InlineKeyboardButton]:
    """The row under a paged list: ``previous`` on every page but the first, ``following`` on
    every page but the last; ``data(page)`` is the callback data that shows ``page``."""
    row = []
    if page > 0:
        row.append(button(previous, data(page - 1)))
    if page < pages - 1:
        row.append(button(following, data(page + 1)))
    return row
